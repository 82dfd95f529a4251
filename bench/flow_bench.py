"""Orchestration per `agent.run` step in a flow, against raw Temporal calling the same activity.

A flow awaits `agent.run(...)` STEPS times in a row (offline model, no latency);
the baseline is a plain Temporal workflow that schedules Baton's own `call_model`
activity STEPS times with the same request, on a worker with the same options as
Baton's production worker (unsandboxed, the same activity polls and slots), in the
same run. Per step: scheduled-to-next-scheduled minus the activity's own run time
(bench/step_bench.py's measure). Prints one JSON line:
{"bench": "flow_step", "ms_per_step_p50", "ms_per_step_p95", "raw_ms_per_step_p50",
 "raw_ms_per_step_p95", "ratio_p50", "ratio_p95", "steps", "runs"}.

    python bench/flow_bench.py [--runs 20]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import uuid
from datetime import timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from temporalio import workflow  # noqa: E402
from temporalio.client import Client  # noqa: E402

import baton  # noqa: E402
from baton.activities.model import ModelCalls  # noqa: E402
from baton.core.model_io import Message, ModelRequest, ModelResponse  # noqa: E402
from baton.core.runs import RunOptions  # noqa: E402
from baton.runtime.launch import plan_flow, start_flow  # noqa: E402
from baton.runtime.temporal import build_worker, exit_now  # noqa: E402
from bench.common import bench_environment, raw_worker  # noqa: E402
from bench.step_bench import pct, step_gaps_ms  # noqa: E402

STEPS = 8
stepper = baton.Agent("stepper", "Answer in one line.", model="offline:fast")


@baton.flow
async def bench_steps(prompt: str) -> str:
    """STEPS agent calls in a row, each on the previous answer."""
    text = prompt
    for _ in range(STEPS):
        text = (await stepper.run(text)).text
    return text


@workflow.defn(sandboxed=False)
class RawModelSequence:
    """The same model activity STEPS times, written against Temporal alone."""

    @workflow.run
    async def run(self, prompt: str) -> str:
        text = prompt
        for index in range(STEPS):
            request = ModelRequest(agent="stepper", model="offline:fast",
                                   instructions="Answer in one line.",
                                   messages=[Message(role="user", content=text)],
                                   call_index=index)
            response = await workflow.execute_activity(
                "call_model", request, result_type=ModelResponse,
                start_to_close_timeout=timedelta(seconds=60),
                heartbeat_timeout=timedelta(seconds=10))
            text = response.text
        return text


async def flow_steps(client: Client, runs: int) -> list[float]:
    task_queue = f"bench-flow-{uuid.uuid4().hex[:8]}"
    gaps: list[float] = []
    async with build_worker(client, task_queue):
        for _ in range(runs):
            planned = plan_flow(bench_steps, "Durable execution", RunOptions())
            handle = await start_flow(client, task_queue, planned)
            await handle.result()
            gaps += step_gaps_ms(await handle.fetch_history(), "call_model")
    return gaps


async def raw_steps(client: Client, runs: int) -> list[float]:
    task_queue = f"bench-raw-flow-{uuid.uuid4().hex[:8]}"
    gaps: list[float] = []
    async with raw_worker(client, task_queue, workflows=[RawModelSequence],
                          activities=[ModelCalls().call_model]):
        for _ in range(runs):
            handle = await client.start_workflow(RawModelSequence.run, "Durable execution",
                                                 id=f"raw-flow-{uuid.uuid4().hex[:8]}",
                                                 task_queue=task_queue)
            await handle.result()
            gaps += step_gaps_ms(await handle.fetch_history(), None)
    return gaps


async def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=20)
    args = parser.parse_args()
    env = await bench_environment()
    try:
        await flow_steps(env.client, 2)  # warm up both
        await raw_steps(env.client, 2)
        steps: list[float] = []
        raw: list[float] = []
        for _ in range(2):  # interleaved halves, so drift hits both alike
            steps += await flow_steps(env.client, max(1, args.runs // 2))
            raw += await raw_steps(env.client, max(1, args.runs // 2))
        p50, p95 = statistics.median(steps), pct(steps, 95)
        raw50, raw95 = statistics.median(raw), pct(raw, 95)
        print(json.dumps({
            "bench": "flow_step", "ms_per_step_p50": round(p50, 2),
            "ms_per_step_p95": round(p95, 2), "raw_ms_per_step_p50": round(raw50, 2),
            "raw_ms_per_step_p95": round(raw95, 2), "ratio_p50": round(p50 / raw50, 2),
            "ratio_p95": round(p95 / raw95, 2), "steps": len(steps), "runs": args.runs}),
            flush=True)
    finally:
        await env.shutdown()
    return 0


if __name__ == "__main__":
    exit_now(asyncio.run(main()))
