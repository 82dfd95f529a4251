"""Orchestration per sequential model call, for the pipeline and the supervisor.

Each run's history gives, for consecutive `call_model` activities, the time from one
being scheduled to the next being scheduled, minus the first call's own execution
(started to completed): what Temporal and Baton add per step. The offline model
answers at zero latency. The baseline is a raw Temporal workflow running no-op
activities one after another, measured the same way in the same run.
Where the time goes comes from the SDK's own latency metrics (a metric buffer per
side): the server handing a workflow task to the worker, the worker handling it, and
the server recording the task's and the activity's completion (means, ms).
Each store (`--store file memory`: a dev server stored as `make server` stores it, an
SQLite file, and one in memory) gets a server of its own, measured one after the other.
Prints one JSON line per store and pattern:
{"bench": "step", "store": ..., "pattern": ..., "ms_per_step_p50", "ms_per_step_p95",
 "raw_ms_per_step_p50", "raw_ms_per_step_p95", "ratio_p50", "ratio_p95", "steps",
 "raw_steps", "sdk_ms", "raw_sdk_ms"}.

    python bench/step_bench.py [--runs 20] [--store file memory] [--patterns pipeline]
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import os
import statistics
import sys
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from temporalio.api.enums.v1 import EventType  # noqa: E402
from temporalio.client import Client, WorkflowHistory  # noqa: E402
from temporalio.runtime import MetricBuffer, Runtime, TelemetryConfig  # noqa: E402

from baton.core.model_io import Message  # noqa: E402
from baton.core.runs import RunOptions  # noqa: E402
from baton.define.catalogue import load_catalogue  # noqa: E402
from baton.runtime.launch import plan_run, start_run  # noqa: E402
from baton.runtime.temporal import Settings, build_worker, connect, exit_now  # noqa: E402
from bench.common import BenchEnvironment, bench_environment, raw_worker  # noqa: E402
from bench.raw_temporal import RawSequence, raw_noop  # noqa: E402

# The SDK's metrics (without their "temporal_" prefix), and what each is, per step.
SDK_LATENCIES = {
    "workflow_task_schedule_to_start_latency": "wft_schedule_to_start",  # server -> worker
    "workflow_task_execution_latency": "wft_in_worker",
    "request_latency:RespondWorkflowTaskCompleted": "respond_wft",  # the server records it
    "request_latency:RespondActivityTaskCompleted": "respond_activity",
    "activity_schedule_to_start_latency": "activity_schedule_to_start",  # 0: eager
}

PATTERNS = {"pipeline": ("article_pipeline", "Durable execution"),
            "supervisor": ("dev_team", "Write a date parser")}
STORES = ("file", "memory")
CHUNK = 10  # runs per side before the other side's turn, so drift hits both alike


def step_gaps_ms(history: WorkflowHistory, activity: str | None) -> list[float]:
    """Scheduled-to-next-scheduled minus the earlier activity's own run time (ms)."""
    scheduled, ran = [], {}
    names: dict[int, str] = {}
    started: dict[int, float] = {}
    for event in history.events:
        at = event.event_time.ToDatetime().timestamp()
        if event.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED:
            names[event.event_id] = event.activity_task_scheduled_event_attributes \
                .activity_type.name
            scheduled.append((event.event_id, at))
        elif event.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_STARTED:
            started[event.activity_task_started_event_attributes.scheduled_event_id] = at
        elif event.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_COMPLETED:
            sid = event.activity_task_completed_event_attributes.scheduled_event_id
            ran[sid] = at - started.get(sid, at)
    gaps = []
    for (sid, at), (_, next_at) in itertools.pairwise(scheduled):
        if activity is None or names[sid] == activity:
            gaps.append((next_at - at - ran.get(sid, 0.0)) * 1000)
    return gaps


async def baton_steps(client: Client, member: str, prompt: str, runs: int) -> list[float]:
    catalogue = load_catalogue()
    task_queue = f"bench-step-{uuid.uuid4().hex[:8]}"
    gaps: list[float] = []
    async with build_worker(client, task_queue):
        for _ in range(runs):
            planned = plan_run(catalogue, member, [Message(role="user", content=prompt)],
                               RunOptions())
            handle = await start_run(client, task_queue, planned)
            await handle.result()
            gaps += step_gaps_ms(await handle.fetch_history(), "call_model")
    return gaps


async def raw_steps(client: Client, runs: int, count: int = 8) -> list[float]:
    task_queue = f"bench-raw-{uuid.uuid4().hex[:8]}"
    gaps: list[float] = []
    async with raw_worker(client, task_queue, workflows=[RawSequence],
                          activities=[raw_noop]):
        for _ in range(runs):
            handle = await client.start_workflow(RawSequence.run, count,
                                                 id=f"raw-step-{uuid.uuid4().hex[:8]}",
                                                 task_queue=task_queue)
            await handle.result()
            gaps += step_gaps_ms(await handle.fetch_history(), None)
    return gaps


async def metered(client: Client) -> tuple[Client, MetricBuffer]:
    """Another client of the same server, on a runtime whose metrics we read."""
    buffer = MetricBuffer(200_000)
    runtime = Runtime(telemetry=TelemetryConfig(metrics=buffer))
    settings = Settings(address=client.service_client.config.target_host,
                        namespace=client.namespace)
    return await connect(settings, runtime=runtime), buffer


def mean_latencies(buffer: MetricBuffer) -> dict[str, float]:
    values: dict[str, list[float]] = {}
    for update in buffer.retrieve_updates():
        name = update.metric.name.removeprefix("temporal_")
        operation = update.attributes.get("operation")
        key = SDK_LATENCIES.get(f"{name}:{operation}") or SDK_LATENCIES.get(name)
        if key is not None:
            values.setdefault(key, []).append(float(update.value))
    return {key: round(statistics.mean(v), 2) for key, v in values.items()}


def pct(values: list[float], q: int) -> float:
    return statistics.quantiles(values, n=100)[q - 1] if len(values) > 1 else values[0]


def chunks(total: int, size: int) -> list[int]:
    """`total` runs as turns of at most `size` (at least one run in all)."""
    total = max(1, total)
    return [min(size, total - start) for start in range(0, total, size)]


async def measure_store(env: BenchEnvironment, patterns: list[str], runs: int) -> None:
    baton_client, baton_metrics = await metered(env.client)
    raw_client, raw_metrics = await metered(env.client)
    await baton_steps(baton_client, "support_desk", "warm up", 2)
    await raw_steps(raw_client, 2)
    for pattern in patterns:
        member, prompt = PATTERNS[pattern]
        steps, raw = [], []
        baton_metrics.retrieve_updates()
        raw_metrics.retrieve_updates()
        for index, turn in enumerate(chunks(runs, CHUNK)):
            # Each side goes first in every other turn: neither always follows the other.
            if index % 2 == 0:
                steps += await baton_steps(baton_client, member, prompt, turn)
                raw += await raw_steps(raw_client, turn)
            else:
                raw += await raw_steps(raw_client, turn)
                steps += await baton_steps(baton_client, member, prompt, turn)
        p50, p95, raw50, raw95 = (statistics.median(steps), pct(steps, 95),
                                  statistics.median(raw), pct(raw, 95))
        print(json.dumps({
            "bench": "step", "store": env.store, "pattern": pattern,
            "ms_per_step_p50": round(p50, 2), "ms_per_step_p95": round(p95, 2),
            "raw_ms_per_step_p50": round(raw50, 2), "raw_ms_per_step_p95": round(raw95, 2),
            "ratio_p50": round(p50 / raw50, 2), "ratio_p95": round(p95 / raw95, 2),
            "steps": len(steps), "raw_steps": len(raw), "runs": runs,
            "sdk_ms": mean_latencies(baton_metrics),
            "raw_sdk_ms": mean_latencies(raw_metrics)}), flush=True)


async def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=20, help="runs per pattern and side")
    parser.add_argument("--patterns", nargs="+", choices=sorted(PATTERNS),
                        default=sorted(PATTERNS))
    parser.add_argument("--store", nargs="+", choices=STORES,
                        default=[os.environ.get("BENCH_STORE", "file")],
                        help="dev-server stores, one after the other (default: BENCH_STORE, "
                        "else file); ignored with BENCH_ADDRESS")
    args = parser.parse_args()
    stores = args.store if not os.environ.get("BENCH_ADDRESS") else ["cluster"]
    for store in dict.fromkeys(stores):
        env = await bench_environment(in_memory=store == "memory")
        try:
            await measure_store(env, args.patterns, args.runs)
        finally:
            await env.shutdown()
    return 0


if __name__ == "__main__":
    exit_now(asyncio.run(main()))
