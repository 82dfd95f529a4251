"""Orchestration per MCP tool call, next to a `@baton.tool` call, in the same process and hour.

Two agents on the offline model (zero latency), each calling TOOLS no-op tools one per
turn (model, tool, model, ..., model):
- mcp: the tools of an MCP server over stdio (this file, run as `serve`), started once
  by the worker and shared by the runs; each call its own `mcp:bench/noop_N` activity;
- tool: the same no-ops as `@baton.tool` functions (bench/tool_bench.py's measure).
A call's orchestration is the time from its activity being scheduled to the next model
call being scheduled, minus the call's own time inside the activity (for MCP that is
the protocol round trip to the server, reported on its own). Timestamps come from the
histories (server time). Prints one JSON line: {"bench": "mcp", "ms_per_call": p50,
"ms_per_call_p95", "round_trip_ms": p50, "tool_ms_per_call": p50, "tool_ms_per_call_p95",
"ratio", "calls"}.

    python bench/mcp_bench.py [--runs 20] [--tools 5]
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
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from temporalio.api.enums.v1 import EventType  # noqa: E402
from temporalio.client import Client, WorkflowHistory  # noqa: E402

import baton  # noqa: E402
from baton.runtime.temporal import build_worker, exit_now  # noqa: E402
from bench.common import bench_environment  # noqa: E402
from bench.step_bench import pct  # noqa: E402
from bench.tool_bench import make_tools  # noqa: E402

SCHEDULED = EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED
COMPLETED = EventType.EVENT_TYPE_ACTIVITY_TASK_COMPLETED


def serve(count: int) -> None:
    """The MCP server of the benchmark: `noop_0` ... `noop_{count-1}` over stdio."""
    from mcp.server.mcpserver import MCPServer

    server: MCPServer[Any] = MCPServer("bench")

    def add(index: int) -> None:
        def noop(value: str) -> str:
            return value
        server.add_tool(noop, name=f"noop_{index}", description="Return the value.")

    for index in range(count):
        add(index)
    server.run("stdio")


def call_gaps_ms(history: WorkflowHistory, prefix: str) -> tuple[list[float], list[float]]:
    """(scheduled-to-next-scheduled minus the call's own time, the call's own time), in
    ms, for each activity whose type starts with `prefix`."""
    scheduled = [e for e in history.events if e.event_type == SCHEDULED]
    own: dict[int, float] = {}
    for event in history.events:
        if event.event_type == COMPLETED:
            attributes = event.activity_task_completed_event_attributes
            payload = json.loads(attributes.result.payloads[0].data)
            own[attributes.scheduled_event_id] = payload.get("elapsed_s", 0.0) * 1000
    gaps, times = [], []
    for current, following in itertools.pairwise(scheduled):
        name = current.activity_task_scheduled_event_attributes.activity_type.name
        if name.startswith(prefix):
            delta = following.event_time.ToDatetime() - current.event_time.ToDatetime()
            spent = own.get(current.event_id, 0.0)
            gaps.append(delta.total_seconds() * 1000 - spent)
            times.append(spent)
    return gaps, times


async def timed_runs(client: Client, agent: baton.Agent, runs: int, prefix: str,
                     **worker: Any) -> tuple[list[float], list[float]]:
    task_queue = f"bench-mcp-{uuid.uuid4().hex[:8]}"
    gaps: list[float] = []
    times: list[float] = []
    async with build_worker(client, task_queue, **worker):
        for _ in range(runs):
            outcome = await baton.run(agent, "go", client=client, task_queue=task_queue)
            history = await client.get_workflow_handle(outcome.workflow_id).fetch_history()
            found, spent = call_gaps_ms(history, prefix)
            gaps += found
            times += spent
    return gaps, times


async def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--tools", type=int, default=5)
    args = parser.parse_args()
    server = baton.MCPServer("bench", command=sys.executable,
                             args=[str(Path(__file__).resolve()), "serve", str(args.tools)])
    over_mcp = baton.Agent("clerk", "Use every tool once.", model="offline:bench",
                           mcp=[server], max_tool_turns=args.tools + 1)
    tools = make_tools(args.tools)
    with_tools = baton.Agent("clerk", "Use every tool once.", model="offline:bench",
                             tools=tools, max_tool_turns=args.tools + 1)
    env = await bench_environment()
    try:
        await timed_runs(env.client, over_mcp, 2, "mcp:", mcp=[server])  # warm-up
        await timed_runs(env.client, with_tools, 2, "noop_", tools=tools)
        mcp_gaps, round_trips, tool_gaps = [], [], []
        for _ in range(2):  # interleaved halves, so drift hits both alike
            gaps, spent = await timed_runs(env.client, over_mcp, max(args.runs // 2, 1),
                                           "mcp:", mcp=[server])
            mcp_gaps += gaps
            round_trips += spent
            tool_gaps += (await timed_runs(env.client, with_tools, max(args.runs // 2, 1),
                                           "noop_", tools=tools))[0]
        mcp, tool = statistics.median(mcp_gaps), statistics.median(tool_gaps)
        print(json.dumps({
            "bench": "mcp", "ms_per_call": round(mcp, 2),
            "ms_per_call_p95": round(pct(mcp_gaps, 95), 2),
            "round_trip_ms": round(statistics.median(round_trips), 2),
            "tool_ms_per_call": round(tool, 2),
            "tool_ms_per_call_p95": round(pct(tool_gaps, 95), 2),
            "ratio": round(mcp / tool, 2), "calls": len(mcp_gaps)}), flush=True)
    finally:
        await env.shutdown()
    return 0


if __name__ == "__main__":
    if sys.argv[1:2] == ["serve"]:
        serve(int(sys.argv[2]))
    else:
        exit_now(asyncio.run(main()))
