"""The raw-Temporal references for the benchmarks: no Baton code at all.

A parent workflow starts N children at once; each child runs one activity that
sleeps (or one workflow runs the N activities itself). Each runs on its own task
queue, on a worker tuned exactly as Baton's production worker
(`bench.common.raw_worker`), so a ratio against it measures what Baton's
orchestration adds, not a difference in worker options.

`python -m bench.raw_temporal ADDRESS NAMESPACE TASK_QUEUE` serves RawGate as a process
of its own (the waiting benchmark's baseline, beside Baton's `worker.py`) until killed.
"""

from __future__ import annotations

import asyncio
import sys
import uuid
from datetime import timedelta

from temporalio import activity, workflow
from temporalio.client import Client

from bench.common import raw_worker


@activity.defn
async def raw_sleep(seconds: float) -> str:
    await asyncio.sleep(seconds)
    return "done"


@workflow.defn
class RawChild:
    @workflow.run
    async def run(self, seconds: float) -> str:
        return str(await workflow.execute_activity(
            raw_sleep, seconds, start_to_close_timeout=timedelta(seconds=60)))


@workflow.defn
class RawParent:
    @workflow.run
    async def run(self, n: int, seconds: float) -> int:
        parent = workflow.info().workflow_id
        results = await asyncio.gather(*(
            workflow.execute_child_workflow(RawChild.run, seconds, id=f"{parent}/{i}")
            for i in range(n)))
        return len(results)


@workflow.defn
class RawFanOut:
    """N activities at once in one workflow, each sleeping: the least Temporal can do
    for the shape Baton's fan-out takes by default (one activity per branch)."""

    @workflow.run
    async def run(self, n: int, seconds: float) -> int:
        results = await asyncio.gather(*(
            workflow.execute_activity(raw_sleep, seconds,
                                      start_to_close_timeout=timedelta(seconds=60))
            for _ in range(n)))
        return len(results)


@activity.defn
async def raw_noop(value: str) -> str:
    return value


@workflow.defn
class RawSequence:
    """`count` no-op activities one after another (the tool and step benchmarks' baseline)."""

    @workflow.run
    async def run(self, count: int) -> int:
        for _ in range(count):
            await workflow.execute_activity(raw_noop, "x",
                                            start_to_close_timeout=timedelta(seconds=30))
        return count


@workflow.defn
class RawGate:
    """Waits for a `decide` update, then runs one no-op activity: the waiting
    benchmark's baseline for a run parked until a person answers."""

    def __init__(self) -> None:
        self._decided = False

    @workflow.run
    async def run(self) -> str:
        await workflow.wait_condition(lambda: self._decided)
        return str(await workflow.execute_activity(
            raw_noop, "x", start_to_close_timeout=timedelta(seconds=30)))

    @workflow.update
    def decide(self, approve: bool) -> bool:
        self._decided = True
        return approve


RAW_WORKFLOWS = [RawParent, RawChild, RawFanOut]
RAW_ACTIVITIES = [raw_sleep]


async def run_raw(client: Client, n: int, seconds: float, *,
                  branches: str = "child") -> float:
    """Seconds for N branches sleeping `seconds`: each a child workflow running one
    activity (`branches="child"`), or each an activity of one workflow ("activity")."""
    loop = asyncio.get_running_loop()
    task_queue = f"raw-{uuid.uuid4().hex[:8]}"
    run = RawParent.run if branches == "child" else RawFanOut.run
    async with raw_worker(client, task_queue, workflows=RAW_WORKFLOWS,
                          activities=RAW_ACTIVITIES):
        started = loop.time()
        await client.execute_workflow(run, args=[n, seconds],
                                      id=f"raw-{n}-{uuid.uuid4().hex[:6]}",
                                      task_queue=task_queue)
        return loop.time() - started


async def serve_gates(address: str, namespace: str, task_queue: str) -> None:
    """RawGate's worker, with no Baton data converter (raw Temporal), until killed."""
    client = await Client.connect(address, namespace=namespace)
    async with raw_worker(client, task_queue, workflows=[RawGate], activities=[raw_noop]):
        await asyncio.Event().wait()


if __name__ == "__main__":
    asyncio.run(serve_gates(*sys.argv[1:4]))
