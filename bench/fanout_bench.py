"""Fan-out overhead: N offline agents with simulated latency, Temporal vs plain asyncio.

For each N, the same calls run twice in this process:
- baseline: `asyncio.gather` of the N branch calls through the offline provider,
  then the synthesizer call; no Temporal;
- baton: `FanOutWorkflow` on the embedded dev server (SQLite file with the WAL and
  synchronous=normal pragmas, as `make demo` runs it): by default (branch_runs
  "auto") one `call_model` activity per branch, then the synthesizer activity.
Only the branch agents sleep; the synthesizer answers at once in both.

- raw activities (the floor of the default shape): one workflow, no Baton code,
  running N activities at once, each sleeping the same latency; every repeat, at
  every N;
- raw: a parent starting N children that each run one activity sleeping the same
  latency (the one-child-workflow-per-branch shape).
Each case runs --repeat times; the median is reported (this machine is noisy). Raw
Temporal costs about 100 ms of CPU per branch here (44 s at N = 500), so it runs
--raw-repeat times and only up to --raw-max-n: it is the chart's reference, not a goal's.

Prints one JSON line per case: case, n, latency_s, wall_s, baseline_s, ratio
(wall_s / baseline_s), plus raw_activities_s and raw_s (raw-Temporal medians, raw_s
null where not run) and wall_min/max_s.

    python bench/fanout_bench.py [--n 10 100 500] [--latency 1.0] [--repeat 3]
        [--raw-repeat 3] [--raw-max-n 500] [--in-memory]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import time
import uuid
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from temporalio.worker import PollerBehaviorSimpleMaximum  # noqa: E402

from baton.activities.providers.offline import OfflineProvider  # noqa: E402
from baton.core.model_io import Chaos, Message, ModelRequest  # noqa: E402
from baton.core.runs import FanOutResult, RunInput, RunOptions  # noqa: E402
from baton.core.specs import Catalogue  # noqa: E402
from baton.define.catalogue import parse_catalogue  # noqa: E402
from baton.runtime.temporal import build_worker, exit_now  # noqa: E402
from bench.common import BenchEnvironment, CpuMeter, bench_environment  # noqa: E402
from bench.raw_temporal import run_raw  # noqa: E402

PROMPT = "Summarise the trade-offs of durable execution"


def bench_catalogue(n: int, branch_runs: str = "auto") -> Catalogue:
    return parse_catalogue({
        "agents": {
            "analyst": {"instructions": "Analyse the question.", "model": "offline:bench"},
            "synthesizer": {"instructions": "Merge the analyses.", "model": "offline:bench"},
        },
        "teams": {"panel": {"pattern": "fanout", "branches": ["analyst"] * n,
                            "synthesizer": "synthesizer", "policy": "all",
                            "branch_runs": branch_runs}},
    })


async def baseline(n: int, chaos: Chaos) -> float:
    provider = OfflineProvider()

    def request(agent: str, key: str) -> ModelRequest:
        return ModelRequest(agent=agent, model="offline:bench", instructions="Analyse.",
                            messages=[Message(role="user", content=PROMPT)], call_key=key,
                            chaos=chaos)

    started = time.perf_counter()
    answers = await asyncio.gather(*(provider.complete(request("analyst", f"b{i}"))
                                     for i in range(n)))
    merged = "\n".join(a.text for a in answers)
    synth = request("synthesizer", "s")
    synth.messages = [Message(role="user", content=merged)]
    await provider.complete(synth)
    return time.perf_counter() - started


async def with_temporal(env: BenchEnvironment, n: int, chaos: Chaos,
                        branch_runs: str = "auto",
                        activity_polls: int | None = None) -> tuple[float, CpuMeter]:
    """One fan-out run on a worker built exactly as worker.py builds it; its wall time
    and the CPU the server and this process (the worker) used for it."""
    task_queue = f"bench-{uuid.uuid4().hex[:8]}"
    catalogue = bench_catalogue(n, branch_runs)
    run = RunInput(member="panel", messages=[Message(role="user", content=PROMPT)],
                   catalogue=catalogue, options=RunOptions(chaos=chaos))
    options: dict[str, Any] = {}
    if activity_polls is not None:  # else Baton's default
        options["activity_task_poller_behavior"] = PollerBehaviorSimpleMaximum(activity_polls)
    async with build_worker(env.client, task_queue, **options):
        with CpuMeter(env.server_pid()) as cpu:
            started = time.perf_counter()
            result = await env.client.execute_workflow(
                "FanOutWorkflow", run, id=f"bench-fanout-{n}-{uuid.uuid4().hex[:6]}",
                task_queue=task_queue, result_type=FanOutResult)
            wall = time.perf_counter() - started
    assert result.status == "ok" and len(result.branches) == n, result.status
    return wall, cpu


def per_branch_ms(meters: list[CpuMeter], n: int) -> dict[str, float | None]:
    """Median CPU per branch, server and worker, in ms."""
    servers = [m.server_s for m in meters if m.server_s is not None]
    return {"server_cpu_ms_per_branch": round(statistics.median(servers) * 1000 / n, 2)
            if servers else None,
            "worker_cpu_ms_per_branch": round(
                statistics.median(m.worker_s for m in meters) * 1000 / n, 2)}




async def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, nargs="+", default=[10, 100, 500])
    parser.add_argument("--latency", type=float, default=1.0)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--raw-repeat", type=int, metavar="R",
                        help="raw-Temporal runs per N (default: --repeat)")
    parser.add_argument("--raw-max-n", type=int, default=500, metavar="N",
                        help="largest N raw Temporal runs at (0: never)")
    parser.add_argument("--activity-polls", type=int, metavar="N",
                        help="activity-task polls of the worker (Baton's default: 20)")
    parser.add_argument("--branch-runs", choices=["auto", "child", "activity"],
                        default="auto", help="how branches run (the team's branch_runs); "
                        "'child' is the one-child-workflow-per-branch design measured before")
    parser.add_argument("--in-memory", action="store_true",
                        help="in-memory SQLite instead of the embedded default's file")
    args = parser.parse_args()
    chaos = Chaos(latency_s=args.latency, agents=["analyst"])
    env = await bench_environment(in_memory=args.in_memory or None)
    try:
        await with_temporal(env, 5, Chaos(agents=["analyst"]))  # warm-up
        for n in args.n:
            walls, bases, raws, floors = [], [], [], []
            meters, raw_meters = [], []
            raw_repeat = 0 if n > args.raw_max_n else (
                args.repeat if args.raw_repeat is None else args.raw_repeat)
            for i in range(max(args.repeat, raw_repeat)):
                if i < args.repeat:
                    bases.append(await baseline(n, chaos))
                    if i % 2:  # the raw floor goes first in every other repeat
                        floors.append(await run_raw(env.client, n, args.latency,
                                                    branches="activity"))
                    wall, meter = await with_temporal(env, n, chaos, args.branch_runs,
                                                      args.activity_polls)
                    walls.append(wall)
                    meters.append(meter)
                    if not i % 2:
                        floors.append(await run_raw(env.client, n, args.latency,
                                                    branches="activity"))
                if i < raw_repeat:
                    with CpuMeter(env.server_pid()) as raw_meter:
                        raws.append(await run_raw(env.client, n, args.latency))
                    raw_meters.append(raw_meter)
            wall, base = statistics.median(walls), statistics.median(bases)
            raw_cpu = per_branch_ms(raw_meters, n) if raw_meters else {}
            print(json.dumps({
                "bench": "fanout",
                "case": f"fanout-{'sqlite-file' if env.store == 'file' else env.store}",
                "store": env.store,
                "n": n, "branch_runs": args.branch_runs,
                "activity_polls": args.activity_polls or 20,
                "latency_s": args.latency, "wall_s": round(wall, 3),
                "baseline_s": round(base, 3), "ratio": round(wall / base, 2),
                "raw_activities_s": round(statistics.median(floors), 3),
                "ratio_raw_activities": round(wall / statistics.median(floors), 2),
                "raw_s": round(statistics.median(raws), 3) if raws else None,
                "raw_repeat": len(raws),
                "wall_min_s": round(min(walls), 3), "wall_max_s": round(max(walls), 3),
                "repeat": args.repeat, **per_branch_ms(meters, n),
                "raw_server_cpu_ms_per_branch": raw_cpu.get("server_cpu_ms_per_branch"),
                "raw_worker_cpu_ms_per_branch": raw_cpu.get("worker_cpu_ms_per_branch"),
            }), flush=True)
    finally:
        await env.shutdown()
    return 0


if __name__ == "__main__":
    exit_now(asyncio.run(main()))
