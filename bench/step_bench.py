"""Orchestration per sequential model call, for the pipeline and the supervisor.

Each run's history gives, for consecutive `call_model` activities, the time from one
being scheduled to the next being scheduled, minus the first call's own execution
(started to completed): what Temporal and Baton add per step. The offline model
answers at zero latency. The baseline is a raw Temporal workflow running no-op
activities one after another, measured the same way in the same run.
Where the time goes comes from the SDK's own latency metrics (a metric buffer per
side): the server handing a workflow task to the worker, the worker handling it, and
the server recording the task's and the activity's completion (means, ms).
Prints one JSON line per pattern:
{"bench": "step", "pattern": ..., "ms_per_step_p50", "ms_per_step_p95",
 "raw_ms_per_step_p50", "raw_ms_per_step_p95", "steps", "sdk_ms", "raw_sdk_ms"}.

    python bench/step_bench.py [--runs 20]
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
from temporalio.runtime import MetricBuffer, Runtime, TelemetryConfig  # noqa: E402

from baton.core.model_io import Message  # noqa: E402
from baton.core.runs import RunOptions  # noqa: E402
from baton.define.catalogue import load_catalogue  # noqa: E402
from baton.runtime.launch import plan_run, start_run  # noqa: E402
from baton.runtime.temporal import Settings, build_worker, connect, exit_now  # noqa: E402
from bench.common import bench_environment, raw_worker  # noqa: E402
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


async def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--patterns", nargs="+", choices=sorted(PATTERNS),
                        default=sorted(PATTERNS))
    args = parser.parse_args()
    env = await bench_environment()
    try:
        baton_client, baton_metrics = await metered(env.client)
        raw_client, raw_metrics = await metered(env.client)
        await baton_steps(baton_client, "support_desk", "warm up", 2)
        await raw_steps(raw_client, 2)
        for pattern in args.patterns:
            member, prompt = PATTERNS[pattern]
            steps, raw = [], []
            baton_metrics.retrieve_updates()
            raw_metrics.retrieve_updates()
            for _ in range(2):  # interleaved halves, so drift hits both alike
                steps += await baton_steps(baton_client, member, prompt, args.runs // 2)
                raw += await raw_steps(raw_client, args.runs // 2)
            print(json.dumps({
                "bench": "step", "pattern": pattern,
                "ms_per_step_p50": round(statistics.median(steps), 2),
                "ms_per_step_p95": round(pct(steps, 95), 2),
                "raw_ms_per_step_p50": round(statistics.median(raw), 2),
                "raw_ms_per_step_p95": round(pct(raw, 95), 2),
                "steps": len(steps), "runs": args.runs,
                "sdk_ms": mean_latencies(baton_metrics),
                "raw_sdk_ms": mean_latencies(raw_metrics)}), flush=True)
    finally:
        await env.shutdown()
    return 0


if __name__ == "__main__":
    exit_now(asyncio.run(main()))
