"""Throughput: triage runs per second at N concurrent runs, against raw Temporal.

Baton: N `support_desk` triage runs (router call, then the specialist's call) on the
offline model at zero latency, all started at once on one worker. Raw: N workflows of
two no-op activities each (the same shape, no Baton code), on a plain worker, in the
same run. Each figure is runs completed divided by the time from the first start to
the last result, averaged over --rounds measurements of each side taken in
alternating order (Baton, raw, raw, Baton, ...), so neither side always runs on the
emptier database. With `--workers 2` the Baton figure is also measured with two worker
processes on the task queue (2 cores: what a second process buys here).
Prints {"bench": "throughput", "runs": N, "runs_per_s": ..., "raw_runs_per_s": ...,
"ratio": ..., "workers": ..., "store": ...}.

    python bench/throughput_bench.py [--runs 500] [--workers 1] [--rounds 2]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import time
import uuid
from datetime import timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from temporalio.client import Client  # noqa: E402

from baton.core.model_io import Message  # noqa: E402
from baton.core.runs import RunOptions  # noqa: E402
from baton.define.catalogue import load_catalogue  # noqa: E402
from baton.runtime.launch import plan_run, start_run  # noqa: E402
from baton.runtime.temporal import build_worker, exit_now  # noqa: E402
from bench.common import bench_environment, raw_worker  # noqa: E402
from bench.raw_temporal import RawSequence, raw_noop  # noqa: E402

PROMPT = "My invoice shows the wrong amount"


async def baton_rate(client: Client, runs: int, task_queue: str) -> float:
    catalogue = load_catalogue()
    planned = [plan_run(catalogue, "support_desk", [Message(role="user", content=PROMPT)],
                        RunOptions()) for _ in range(runs)]
    started = time.perf_counter()
    handles = await asyncio.gather(*(start_run(client, task_queue, p) for p in planned))
    await asyncio.gather(*(h.result() for h in handles))
    return runs / (time.perf_counter() - started)


async def raw_rate(client: Client, runs: int) -> float:
    task_queue = f"bench-raw-{uuid.uuid4().hex[:8]}"
    async with raw_worker(client, task_queue, workflows=[RawSequence],
                          activities=[raw_noop]):
        started = time.perf_counter()
        handles = await asyncio.gather(*(client.start_workflow(
            RawSequence.run, 2, id=f"raw-tp-{uuid.uuid4().hex[:8]}", task_queue=task_queue,
            execution_timeout=timedelta(minutes=10)) for _ in range(runs)))
        await asyncio.gather(*(h.result() for h in handles))
        return runs / (time.perf_counter() - started)


async def with_workers(client: Client, runs: int, workers: int) -> float:
    task_queue = f"bench-tp-{uuid.uuid4().hex[:8]}"
    if workers == 1:
        async with build_worker(client, task_queue):
            return await baton_rate(client, runs, task_queue)
    address = client.service_client.config.target_host
    processes = [await asyncio.create_subprocess_exec(
        sys.executable, str(ROOT / "worker.py"), cwd=ROOT,
        env={**os.environ, "TEMPORAL_ADDRESS": address, "BATON_TASK_QUEUE": task_queue,
             "BATON_LOG_LEVEL": "WARNING"}) for _ in range(workers)]
    try:
        await asyncio.sleep(3)  # let them connect and poll
        return await baton_rate(client, runs, task_queue)
    finally:
        for process in processes:
            process.terminate()
        await asyncio.gather(*(p.wait() for p in processes))


async def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=500)
    parser.add_argument("--workers", type=int, nargs="+", default=[1])
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    env = await bench_environment()
    try:
        await with_workers(env.client, 20, 1)  # warm-up
        await raw_rate(env.client, 20)
        for workers in args.workers:
            rates: list[float] = []
            raws: list[float] = []
            for turn in range(args.rounds):
                sides = [(rates, with_workers(env.client, args.runs, workers)),
                         (raws, raw_rate(env.client, args.runs))]
                for figures, measure in sides if turn % 2 == 0 else sides[::-1]:
                    figures.append(await measure)
            rate, raw = statistics.mean(rates), statistics.mean(raws)
            print(json.dumps({"bench": "throughput", "runs": args.runs, "workers": workers,
                              "runs_per_s": round(rate, 1), "raw_runs_per_s": round(raw, 1),
                              "ratio": round(rate / raw, 2), "store": env.store,
                              "rounds": args.rounds,
                              "runs_per_s_each": [round(r, 1) for r in rates],
                              "raw_runs_per_s_each": [round(r, 1) for r in raws]}),
                  flush=True)
    finally:
        await env.shutdown()
    return 0


if __name__ == "__main__":
    exit_now(asyncio.run(main()))
