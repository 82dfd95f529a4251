"""Orchestration per tool call: a Baton function tool against a plain Temporal activity.

Both run on one embedded dev server in the same process and hour:
- baton: an agent with TOOLS no-op async tools on the offline model (zero latency),
  which calls one tool per turn: model, tool, model, tool, ..., model. A tool
  call's orchestration is the time from its activity being scheduled to the next
  model call being scheduled (dispatch, argument validation, the call, the result,
  the workflow task that reads it), minus the function's own time.
- raw: a workflow that runs TOOLS no-op activities one after another with no Baton
  code; an activity's orchestration is scheduled-to-next-scheduled.
Timestamps come from the histories (server time), so client overhead is excluded.
Prints one JSON line: {"bench": "tool", "ms_per_call": p50, "ms_per_call_p95": ...,
"raw_ms_per_activity": p50, "ratio": ...}.

    python bench/tool_bench.py [--runs 20] [--tools 5]
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import statistics
import sys
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from temporalio.api.enums.v1 import EventType  # noqa: E402
from temporalio.client import Client, WorkflowHistory  # noqa: E402

import baton  # noqa: E402
from baton.runtime.temporal import build_worker, exit_now  # noqa: E402
from bench.common import bench_environment, raw_worker  # noqa: E402
from bench.raw_temporal import RawSequence, raw_noop  # noqa: E402

SCHEDULED = EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED


def make_tools(count: int) -> list[baton.Tool]:
    def make(index: int) -> baton.Tool:
        async def noop(value: str) -> str:
            return value
        return baton.tool(name=f"noop_{index}", description="Return the value.")(noop)
    return [make(i) for i in range(count)]


def intervals_ms(history: WorkflowHistory, after: set[str] | None) -> list[float]:
    """Scheduled-to-next-scheduled gaps (ms), for activities named in `after` (all: None)."""
    events = [e for e in history.events if e.event_type == SCHEDULED]
    gaps = []
    for current, following in itertools.pairwise(events):
        name = current.activity_task_scheduled_event_attributes.activity_type.name
        if after is None or name in after:
            delta = following.event_time.ToDatetime() - current.event_time.ToDatetime()
            gaps.append(delta.total_seconds() * 1000)
    return gaps


async def baton_runs(client: Client, runs: int, tools: list[baton.Tool]) -> list[float]:
    agent = baton.Agent("clerk", "Use every tool once.", model="offline:bench", tools=tools,
                        max_tool_turns=len(tools) + 1)
    task_queue = f"bench-tool-{uuid.uuid4().hex[:8]}"
    names = {t.name for t in tools}
    gaps: list[float] = []
    async with build_worker(client, task_queue, tools=tools):
        for _ in range(runs):
            outcome = await baton.run(agent, "go", client=client, task_queue=task_queue)
            history = await client.get_workflow_handle(outcome.workflow_id).fetch_history()
            tool_time_ms = outcome.usage.tool_seconds * 1000 / max(outcome.usage.tool_calls, 1)
            gaps += [g - tool_time_ms for g in intervals_ms(history, names)]
    return gaps


async def raw_runs(client: Client, runs: int, count: int) -> list[float]:
    task_queue = f"bench-raw-{uuid.uuid4().hex[:8]}"
    gaps: list[float] = []
    async with raw_worker(client, task_queue, workflows=[RawSequence],
                          activities=[raw_noop]):
        for _ in range(runs):
            workflow_id = f"raw-seq-{uuid.uuid4().hex[:8]}"
            await client.execute_workflow(RawSequence.run, count, id=workflow_id,
                                          task_queue=task_queue)
            history = await client.get_workflow_handle(workflow_id).fetch_history()
            gaps += intervals_ms(history, None)
    return gaps


def p95(values: list[float]) -> float:
    return statistics.quantiles(values, n=20)[-1] if len(values) > 1 else values[0]


async def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--tools", type=int, default=5)
    args = parser.parse_args()
    env = await bench_environment()
    try:
        tools = make_tools(args.tools)
        await baton_runs(env.client, 2, tools)  # warm-up
        await raw_runs(env.client, 2, args.tools)
        baton_gaps, raw_gaps = [], []
        for _ in range(2):  # interleaved halves, so drift hits both alike
            baton_gaps += await baton_runs(env.client, args.runs // 2, tools)
            raw_gaps += await raw_runs(env.client, args.runs // 2, args.tools)
        tool, raw = statistics.median(baton_gaps), statistics.median(raw_gaps)
        print(json.dumps({
            "bench": "tool", "ms_per_call": round(tool, 2),
            "ms_per_call_p95": round(p95(baton_gaps), 2),
            "raw_ms_per_activity": round(raw, 2), "raw_ms_p95": round(p95(raw_gaps), 2),
            "ratio": round(tool / raw, 2), "calls": len(baton_gaps)}), flush=True)
    finally:
        await env.shutdown()
    return 0


if __name__ == "__main__":
    exit_now(asyncio.run(main()))
