"""Runs waiting for people: N runs parked at an approval on one worker, then released.

Each run is a one-stage pipeline whose stage needs a person's approval: it makes no
call before it parks, so what is measured is the cost of waiting itself. The worker
is its own process (`worker.py`), so its resident memory is measured alone; the dev
server keeps its SQLite file, so its size per waiting run is measured too. Then every
run is approved (one Update each, 50 in flight) and the time until all have finished
gives resumes per second.
The baseline, in the same run: raw Temporal workflows that wait for an update and
then run one no-op activity (`bench/raw_temporal.py`, a worker in this process tuned as
Baton's, `bench.common.raw_worker`), parked and released the same way (at most --raw-runs of them).
Prints one line per checkpoint: {"bench": "waiting", "runs": n, "worker_rss_mb": ...}
and a final one with "resumes_per_s", "raw_resumes_per_s" and "db_kb_per_run".

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
from collections.abc import Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from temporalio.client import (  # noqa: E402
    Client,
    WorkflowHandle,
    WorkflowUpdateFailedError,
    WorkflowUpdateRPCTimeoutOrCancelledError,
)

import baton  # noqa: E402
from baton.core.model_io import Message  # noqa: E402
from baton.core.runs import Decision, RunOptions, RunResult  # noqa: E402
from baton.runtime.launch import plan_run, start_run  # noqa: E402
from baton.runtime.temporal import exit_now  # noqa: E402
from baton.telemetry.search import STATUS  # noqa: E402
from bench.common import bench_environment, raw_worker  # noqa: E402
from bench.raw_temporal import RawGate, raw_noop  # noqa: E402

BATCH = 50  # runs started at a time
UPDATES_IN_FLIGHT = 50  # 200 overran the update RPC's deadline at 10,000 runs
RESULTS_IN_FLIGHT = 500


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


async def all_waiting(client: Client, task_queue: str, expected: int) -> None:
    """Until `expected` runs on `task_queue` say they wait for a person (their
    BatonStatus search attribute): one count from visibility, not a query to each."""
    query = (f"TaskQueue = '{task_queue}' AND ExecutionStatus = 'Running' "
             f"AND {STATUS.name} = 'waiting_approval'")
    for _ in range(1200):
        if (await client.count_workflows(query)).count >= expected:
            return
        await asyncio.sleep(0.5)
    raise RuntimeError(f"fewer than {expected} runs parked after 10 minutes")


async def release(handles: Sequence[WorkflowHandle[Any, Any]], decision: Any) -> float:
    """Decide every run (UPDATES_IN_FLIGHT at a time), then wait for its end (at most
    RESULTS_IN_FLIGHT long polls: the server caps a namespace's concurrent polls);
    seconds until all have finished."""
    updates = asyncio.Semaphore(UPDATES_IN_FLIGHT)
    results = asyncio.Semaphore(RESULTS_IN_FLIGHT)

    async def resume(handle: WorkflowHandle[Any, Any]) -> None:
        async with updates:
            for attempt in range(3):
                try:
                    await handle.execute_update("decide", decision)
                    break
                except WorkflowUpdateRPCTimeoutOrCancelledError:
                    continue  # the server was too busy to answer in time: ask again
                except WorkflowUpdateFailedError:
                    if attempt:
                        break  # refused as decided already: the earlier one landed
                    raise
        async with results:
            await handle.result()

    started = time.perf_counter()
    await asyncio.gather(*(resume(h) for h in handles))
    return time.perf_counter() - started


async def raw_resumes_per_s(client: Client, count: int) -> float:
    task_queue = f"bench-rawgate-{uuid.uuid4().hex[:8]}"
    async with raw_worker(client, task_queue, workflows=[RawGate],
                          activities=[raw_noop]):
        handles: list[WorkflowHandle[Any, Any]] = []
        for start in range(0, count, BATCH):
            handles += await asyncio.gather(*(client.start_workflow(
                RawGate.run, id=f"rawgate-{uuid.uuid4().hex[:12]}", task_queue=task_queue)
                for _ in range(min(BATCH, count - start))))
        for _ in range(1200):  # until the last one started has run its first task
            if (await handles[-1].describe()).raw_description.workflow_execution_info \
                    .history_length >= 4:
                break
            await asyncio.sleep(0.5)
        return count / await release(handles, True)


async def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=10_000)
    parser.add_argument("--checkpoints", type=int, nargs="+", default=[1000, 5000, 10_000])
    parser.add_argument("--raw-runs", type=int, default=2000,
                        help="raw-Temporal runs parked and released for the baseline")
    args = parser.parse_args()
    checkpoints = sorted({c for c in args.checkpoints if c <= args.runs} | {args.runs})
    with tempfile.TemporaryDirectory() as tmp:
        db = Path(tmp) / "waiting.db"
        env = await bench_environment(in_memory=False, database=db)
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
                await all_waiting(env.client, task_queue, len(handles))
                print(json.dumps({"bench": "waiting", "runs": len(handles),
                                  "worker_rss_mb": round(rss_mb(worker.pid), 1)}), flush=True)
            waiting_db = db_bytes(db) - empty if env.local is not None else 0
            elapsed = await release(handles, Decision(approve=True, note="bench"))
            rss = rss_mb(worker.pid)
            raw_count = min(args.raw_runs, len(handles))
            raw_rate = await raw_resumes_per_s(env.client, raw_count)
            print(json.dumps({"bench": "waiting", "runs": len(handles),
                              "worker_rss_mb": round(rss, 1),
                              "resumes_per_s": round(len(handles) / elapsed, 1),
                              "raw_resumes_per_s": round(raw_rate, 1), "raw_runs": raw_count,
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
