"""Runs waiting for people, released beside raw Temporal's on one server holding them all.

Baton: --runs one-stage pipelines whose stage needs a person's approval (no call
before it parks, so what is measured is the cost of waiting itself), on one worker
process (`worker.py`), so its resident memory is measured alone; the dev server keeps
its SQLite file, so its size per waiting run is measured too.
Raw: --raw-runs workflows that wait for an update, then run one no-op activity
(`bench/raw_temporal.py` RawGate), on a worker process of their own tuned as Baton's
(`bench.common.raw_worker`), parked on the same server while Baton's runs still wait.

Then --release runs of each (default: all) are approved, one Update each (50 in
flight), in alternating turns (Baton, raw, raw, Baton, ...), oldest first, so both are
resumed from the same server holding the same runs; resumes per second is the runs a
side released over the time until they had all finished. Releasing a sample while the
rest still wait measures resumes at the full scale for a fraction of the time (parking
costs about as much as resuming, here 20-40 runs/s): a full `--runs 10000 --raw-runs
10000` run takes about 40 minutes on our 2 cores.

Prints one line per checkpoint, {"bench": "waiting", "runs": n, "worker_rss_mb": ...},
and a final one with "resumes_per_s", "raw_resumes_per_s", "ratio", "waiting_on_server"
(Baton's and raw runs waiting when the release began), "released", "raw_runs",
"raw_released", "db_kb_per_run" and the seconds each phase took ("phases_s").

    python bench/waiting_bench.py [--runs 10000] [--raw-runs N] [--release N]
        [--checkpoints 1000 5000 10000]
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
from baton.core.runs import Decision, RunOptions  # noqa: E402
from baton.runtime.launch import plan_run, start_run  # noqa: E402
from baton.runtime.temporal import exit_now  # noqa: E402
from baton.telemetry.search import STATUS  # noqa: E402
from bench.common import bench_environment  # noqa: E402
from bench.raw_temporal import RawGate  # noqa: E402

BATCH = 50  # runs started at a time
UPDATES_IN_FLIGHT = 50  # 200 overran the update RPC's deadline at 10,000 runs
RESULTS_IN_FLIGHT = 500
Handles = list[WorkflowHandle[Any, Any]]


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def db_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in path.parent.glob(path.name + "*"))


async def spawn(args: Sequence[str], env: dict[str, str]) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(sys.executable, *args, cwd=ROOT,
                                                env={**os.environ, **env})


async def park(client: Client, task_queue: str, count: int) -> Handles:
    team = baton.Pipeline("gated", [baton.Stage(baton.Agent("writer", "Write."),
                                                approval=True)])
    catalogue = team.catalogue()
    handles: Handles = []
    for start in range(0, count, BATCH):
        planned = [plan_run(catalogue, "gated", [Message(role="user", content="Go")],
                            RunOptions(), workflow_id=f"wait-{uuid.uuid4().hex[:12]}")
                   for _ in range(min(BATCH, count - start))]
        handles += await asyncio.gather(*(start_run(client, task_queue, p) for p in planned))
    return handles


async def park_raw(client: Client, task_queue: str, count: int) -> Handles:
    handles: Handles = []
    for start in range(0, count, BATCH):
        handles += await asyncio.gather(*(client.start_workflow(
            RawGate.run, id=f"rawgate-{uuid.uuid4().hex[:12]}", task_queue=task_queue)
            for _ in range(min(BATCH, count - start))))
    return handles


async def all_waiting(client: Client, task_queue: str, expected: int) -> None:
    """Until `expected` runs on `task_queue` say they wait for a person (their
    BatonStatus search attribute): one count from visibility, not a query to each."""
    query = (f"TaskQueue = '{task_queue}' AND ExecutionStatus = 'Running' "
             f"AND {STATUS.name} = 'waiting_approval'")
    for _ in range(2400):
        if (await client.count_workflows(query)).count >= expected:
            return
        await asyncio.sleep(0.5)
    raise RuntimeError(f"fewer than {expected} runs parked after 20 minutes")


async def all_raw_waiting(handles: Handles) -> None:
    """Until the last raw run started has run its first workflow task (they are
    handed out in order, so the others have too)."""
    for _ in range(2400):
        info = (await handles[-1].describe()).raw_description.workflow_execution_info
        if info.history_length >= 4:
            return
        await asyncio.sleep(0.5)
    raise RuntimeError(f"{handles[-1].id} had not started after 20 minutes")


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


async def release_in_turns(baton_runs: Handles, raw_runs: Handles, turns: int
                           ) -> tuple[float, float]:
    """Seconds Baton's and raw runs took to resume, released in `turns` alternating
    turns each (ABBA order, so neither side always goes first)."""
    spent = {"baton": 0.0, "raw": 0.0}
    sides = {"baton": (baton_runs, Decision(approve=True, note="bench")),
             "raw": (raw_runs, True)}
    for turn in range(turns):
        for side in ("baton", "raw") if turn % 2 == 0 else ("raw", "baton"):
            runs, decision = sides[side]
            share = runs[turn * len(runs) // turns:(turn + 1) * len(runs) // turns]
            spent[side] += await release(share, decision)
    return spent["baton"], spent["raw"]


async def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=10_000, help="Baton runs parked")
    parser.add_argument("--checkpoints", type=int, nargs="+", default=[1000, 5000, 10_000])
    parser.add_argument("--raw-runs", type=int,
                        help="raw-Temporal runs parked beside them (default: --runs)")
    parser.add_argument("--release", type=int,
                        help="runs of each side released and timed (default: all)")
    parser.add_argument("--turns", type=int, default=2,
                        help="alternating release turns per side")
    args = parser.parse_args()
    raw_count = args.runs if args.raw_runs is None else args.raw_runs
    released = min(args.runs, raw_count, args.release or args.runs)
    checkpoints = sorted({c for c in args.checkpoints if c <= args.runs} | {args.runs})
    phases: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as tmp:
        db = Path(tmp) / "waiting.db"
        env = await bench_environment(in_memory=False, database=db)
        address = env.client.service_client.config.target_host
        task_queue, raw_queue = (f"bench-{kind}-{uuid.uuid4().hex[:8]}"
                                 for kind in ("wait", "rawgate"))
        worker = await spawn(["worker.py"], {"TEMPORAL_ADDRESS": address,
                                             "BATON_TASK_QUEUE": task_queue,
                                             "BATON_LOG_LEVEL": "WARNING"})
        raw_worker = await spawn(["-m", "bench.raw_temporal", address, env.client.namespace,
                                  raw_queue], {})
        try:
            empty = db_bytes(db)
            started = time.perf_counter()
            handles: Handles = []
            for checkpoint in checkpoints:
                handles += await park(env.client, task_queue, checkpoint - len(handles))
                await all_waiting(env.client, task_queue, len(handles))
                print(json.dumps({"bench": "waiting", "runs": len(handles),
                                  "worker_rss_mb": round(rss_mb(worker.pid), 1)}), flush=True)
            phases["park"] = time.perf_counter() - started
            waiting_db = db_bytes(db) - empty if env.local is not None else 0
            started = time.perf_counter()
            raw_handles = await park_raw(env.client, raw_queue, raw_count)
            await all_raw_waiting(raw_handles)
            phases["raw_park"] = time.perf_counter() - started
            baton_s, raw_s = await release_in_turns(handles[:released], raw_handles[:released],
                                                    max(1, args.turns))
            phases |= {"release": baton_s, "raw_release": raw_s}
            rate, raw_rate = released / baton_s, released / raw_s
            print(json.dumps({
                "bench": "waiting", "runs": len(handles), "raw_runs": raw_count,
                "waiting_on_server": len(handles) + raw_count,
                "released": released, "raw_released": released,
                "worker_rss_mb": round(rss_mb(worker.pid), 1),
                "raw_worker_rss_mb": round(rss_mb(raw_worker.pid), 1),
                "resumes_per_s": round(rate, 1), "raw_resumes_per_s": round(raw_rate, 1),
                "ratio": round(rate / raw_rate, 2),
                "db_kb_per_run": round(waiting_db / len(handles) / 1024, 2)
                if waiting_db else None,
                "phases_s": {k: round(v, 1) for k, v in phases.items()}}), flush=True)
        finally:
            for process in (worker, raw_worker):
                process.terminate()
                await process.wait()
            await env.shutdown()
    return 0


if __name__ == "__main__":
    exit_now(asyncio.run(main()))
