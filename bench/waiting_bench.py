"""Runs waiting for people: N runs parked at an approval on one worker, then released.

Each run is a one-stage pipeline whose stage needs a person's approval: it makes no
call before it parks, so what is measured is the cost of waiting itself. The worker
is its own process (`worker.py`), so its resident memory is measured alone; the dev
server keeps its SQLite file, so its size per waiting run is measured too. Then every
run is approved (one Update each, 50 at a time) and the time until all have finished
gives resumes per second.
Prints one line per checkpoint: {"bench": "waiting", "runs": n, "worker_rss_mb": ...}
and a final one with "resumes_per_s" and "db_kb_per_run".

    python bench/waiting_bench.py [--runs 10000] [--checkpoints 1000 5000 10000]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from temporalio.client import Client, WorkflowHandle  # noqa: E402

import baton  # noqa: E402
from baton.approvals import pending_in_tree  # noqa: E402
from baton.launch import plan_run, start_run  # noqa: E402
from baton.model_io import Message  # noqa: E402
from baton.runs import Decision, RunOptions, RunResult  # noqa: E402
from baton.temporal import exit_now  # noqa: E402
from bench.common import bench_environment  # noqa: E402

BATCH = 50


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def db_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in path.parent.glob(path.name + "*"))


async def park(client: Client, task_queue: str, count: int) -> list[WorkflowHandle[
        object, RunResult]]:
    team = baton.Pipeline("gated", [baton.Stage(baton.Agent("writer", "Write."),
                                                approval=True)])
    catalogue = team.catalogue()
    handles = []
    for start in range(0, count, BATCH):
        planned = [plan_run(catalogue, "gated", [Message(role="user", content="Go")],
                            RunOptions(), workflow_id=f"wait-{uuid.uuid4().hex[:12]}")
                   for _ in range(min(BATCH, count - start))]
        handles += await asyncio.gather(*(start_run(client, task_queue, p) for p in planned))
    return handles


async def all_waiting(client: Client, handles: list[WorkflowHandle[object, RunResult]]) -> None:
    """Until the last run started is parked (runs park in about start order)."""
    for _ in range(600):
        if await pending_in_tree(client, handles[-1].id):
            return
        await asyncio.sleep(0.5)
    raise RuntimeError("the last run never parked")


async def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=10_000)
    parser.add_argument("--checkpoints", type=int, nargs="+", default=[1000, 5000, 10_000])
    args = parser.parse_args()
    checkpoints = sorted({c for c in args.checkpoints if c <= args.runs} | {args.runs})
    with tempfile.TemporaryDirectory() as tmp:
        db = Path(tmp) / "waiting.db"
        env = await bench_environment(
            dev_server_database_filename=str(db),
            dev_server_extra_args=["--sqlite-pragma", "journal_mode=wal",
                                   "--sqlite-pragma", "synchronous=normal"])
        task_queue = f"bench-wait-{uuid.uuid4().hex[:8]}"
        address = env.client.service_client.config.target_host
        worker = await asyncio.create_subprocess_exec(
            sys.executable, str(ROOT / "worker.py"), cwd=ROOT,
            env={**os.environ, "TEMPORAL_ADDRESS": address, "BATON_TASK_QUEUE": task_queue,
                 "BATON_LOG_LEVEL": "WARNING"})
        try:
            empty = db_bytes(db)
            handles: list[WorkflowHandle[object, RunResult]] = []
            for checkpoint in checkpoints:
                handles += await park(env.client, task_queue, checkpoint - len(handles))
                await all_waiting(env.client, handles)
                print(json.dumps({"bench": "waiting", "runs": len(handles),
                                  "worker_rss_mb": round(rss_mb(worker.pid), 1)}), flush=True)
            waiting_db = db_bytes(db) - empty if env.local is not None else 0
            started = time.perf_counter()
            decision = Decision(approve=True, note="bench")
            for index in range(0, len(handles), BATCH):
                await asyncio.gather(*(h.execute_update("decide", decision)
                                       for h in handles[index:index + BATCH]))
            await asyncio.gather(*(h.result() for h in handles))
            elapsed = time.perf_counter() - started
            print(json.dumps({"bench": "waiting", "runs": len(handles),
                              "worker_rss_mb": round(rss_mb(worker.pid), 1),
                              "resumes_per_s": round(len(handles) / elapsed, 1),
                              "db_kb_per_run": round(waiting_db / len(handles) / 1024, 2)
                              if waiting_db else None}),
                  flush=True)
        finally:
            worker.terminate()
            await worker.wait()
            await env.shutdown()
    return 0


if __name__ == "__main__":
    exit_now(asyncio.run(main()))
