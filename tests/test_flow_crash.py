"""A durable flow survives `kill -9` of its worker without losing or repeating a step.

Real processes: the flow (tests/flow_crash_app.py: model call, tool call, five times)
runs on a `worker.py --app tests.flow_crash_app` subprocess, which is killed with
SIGKILL in the middle of a model call once two steps have completed; a second worker
then finishes the run. The offline model's call log (BATON_OFFLINE_CALL_LOG) and the
tool's own log count what really ran in either process; the workflow history, read
between the kill and the second worker's start, says which steps the server had
recorded as completed when the first worker died.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import sys
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TextIO

from temporalio.api.enums.v1 import PendingActivityState
from temporalio.client import WorkflowHandle, WorkflowHistory
from temporalio.testing import WorkflowEnvironment

from baton.core.model_io import Chaos
from baton.core.runs import RunOptions
from baton.define.flows import FlowResult
from baton.runtime.launch import plan_flow, start_flow
from tests.flow_crash_app import TOOL_LOG_ENV, crash_relay

ROOT = Path(__file__).resolve().parent.parent
APP = "tests.flow_crash_app"
STEPS = 5
KILL_AFTER = 2       # completed steps (tool executions) before the kill
LATENCY_S = 0.8      # each offline model call's latency: the window the kill lands in
# For any one thing to happen. The whole test takes ~25 s, ~10 s of it the run waiting
# after the kill: its next workflow task goes to the dead worker's sticky queue until
# the worker's sticky schedule-to-start timeout (the SDK's 10 s) sends it to the shared one.
WAIT_S = 30.0


async def test_a_flow_killed_mid_way_repeats_nothing_it_completed(
        env: WorkflowEnvironment, task_queue: str, tmp_path: Path) -> None:
    calls_log = tmp_path / "model_calls.jsonl"
    tools_log = tmp_path / "tool_calls.jsonl"
    extra = {"BATON_OFFLINE_CALL_LOG": str(calls_log), TOOL_LOG_ENV: str(tools_log)}
    address = env.client.service_client.config.target_host
    planned = plan_flow(crash_relay, {"topic": "lighthouses", "steps": STEPS},
                        RunOptions(chaos=Chaos(latency_s=LATENCY_S)))
    run = planned.workflow_id
    workers: list[asyncio.subprocess.Process] = []
    outputs: list[TextIO] = []
    try:
        first = await start_worker(address, task_queue, extra, tmp_path / "first.log",
                                   workers, outputs)
        started = time.monotonic()
        handle = await start_flow(env.client, task_queue, planned)
        await wait_until(lambda: len(entries(tools_log, run)) >= KILL_AFTER,
                         f"{KILL_AFTER} tool executions", tmp_path / "first.log")
        # Then until the next model call is running on the worker: the kill lands in its
        # LATENCY_S, and every earlier step's completion is already recorded (the flow
        # could not have scheduled this call otherwise).
        await wait_until_async(lambda: model_call_running(handle),
                               "model call running after them", tmp_path / "first.log")
        first.kill()  # SIGKILL: no graceful shutdown, in-flight work is simply lost
        await first.wait()
        killed = time.monotonic()
        calls_before = entries(calls_log, run)
        tools_before = entries(tools_log, run)
        # No worker is running: what the server had recorded at the kill stays as it is.
        at_kill = recorded(await handle.fetch_history())
        second = await start_worker(address, task_queue, extra, tmp_path / "second.log",
                                    workers, outputs)
        result = await asyncio.wait_for(handle.result(), WAIT_S)
        ended = time.monotonic()
        final = recorded(await handle.fetch_history())
    finally:
        for worker in workers:
            await stop(worker)
        for output in outputs:
            output.close()

    assert isinstance(result, FlowResult) and result.status == "ok", result
    assert [s.split(":")[0] for s in result.value["stamps"]] == [
        f"stamped {step}" for step in range(STEPS)]

    # The kill landed mid-way: some steps done, the rest not, one model call in flight.
    assert len(tools_before) == KILL_AFTER, tools_before
    assert not at_kill.finished
    in_flight = [at_kill.types[a] for a in at_kill.scheduled if a not in at_kill.completed]
    assert in_flight == ["call_model"], at_kill

    calls = entries(calls_log, run)
    tools = entries(tools_log, run)
    model_counts = Counter((e["agent"], e["call"]) for e in calls)
    tool_counts = Counter(e["step"] for e in tools)
    print(f"\nkilled {killed - started:.1f} s after the start, finished "
          f"{ended - killed:.1f} s after the kill; before the kill {len(calls_before)} "
          f"model and {len(tools_before)} tool calls; in all, model calls "
          f"{dict(model_counts)}, tool calls {dict(tool_counts)}")

    # What completed before the kill ran exactly once: in the first worker, never again.
    done_calls = {(e["agent"], e["call"]) for e in calls_before
                  if e["activity"] in at_kill.completed}
    assert len(done_calls) >= KILL_AFTER
    assert all(model_counts[key] == 1 for key in done_calls), model_counts
    assert all(tool_counts[e["step"]] == 1 for e in tools_before), tool_counts
    # Every other call ran once too, except that one call answered before the kill but
    # not yet recorded (at-least-once) may have run twice.
    expected = {("crash_scribe", index) for index in range(STEPS)}
    assert set(model_counts) == expected, model_counts
    unrecorded = {(e["agent"], e["call"]) for e in calls_before} - done_calls
    assert len(unrecorded) <= 1, unrecorded
    repeated = {key for key, count in model_counts.items() if count > 1}
    assert repeated <= unrecorded and all(model_counts[k] <= 2 for k in repeated), model_counts
    assert tool_counts == Counter(range(STEPS)), tool_counts
    # The second worker did the rest, the interrupted call among it as a retry.
    second_pids = {e["pid"] for e in calls + tools} - {e["pid"] for e in calls_before
                                                         + tools_before}
    assert second_pids == {second.pid}
    retried = [e for e in calls if e["activity"] not in at_kill.completed
               and e["attempt"] > 1]
    assert len(retried) == 1 and retried[0]["pid"] == second.pid, calls

    # The server's view agrees: each step scheduled once and completed once.
    assert Counter(final.types.values()) == {"call_model": STEPS, "crash_stamp": STEPS}
    assert final.completed == set(final.scheduled) and final.finished


# --- helpers ----------------------------------------------------------------------------

class Recorded:
    """A workflow history's activities: activity id -> type, in scheduling order, and
    which of them completed."""

    def __init__(self) -> None:
        self.types: dict[str, str] = {}
        self.scheduled: list[str] = []
        self.completed: set[str] = set()
        self.finished = False

    def __repr__(self) -> str:
        return (f"Recorded(scheduled={[(a, self.types[a]) for a in self.scheduled]}, "
                f"completed={sorted(self.completed)}, finished={self.finished})")


def recorded(history: WorkflowHistory) -> Recorded:
    seen = Recorded()
    by_event: dict[int, str] = {}
    for event in history.events:
        if event.HasField("activity_task_scheduled_event_attributes"):
            attributes = event.activity_task_scheduled_event_attributes
            by_event[event.event_id] = attributes.activity_id
            seen.types[attributes.activity_id] = attributes.activity_type.name
            seen.scheduled.append(attributes.activity_id)
        elif event.HasField("activity_task_completed_event_attributes"):
            scheduled = event.activity_task_completed_event_attributes.scheduled_event_id
            seen.completed.add(by_event[scheduled])
        elif event.HasField("workflow_execution_completed_event_attributes"):
            seen.finished = True
    return seen


def entries(path: Path, run: str) -> list[dict[str, Any]]:
    """The JSON lines of `run` in a log; a line cut short by the kill is skipped."""
    if not path.exists():
        return []
    found = []
    for line in path.read_text().splitlines():
        with contextlib.suppress(json.JSONDecodeError):
            entry = json.loads(line)
            if entry.get("run") == run:
                found.append(entry)
    return found


async def start_worker(address: str, task_queue: str, extra: dict[str, str], output: Path,
                       workers: list[asyncio.subprocess.Process],
                       outputs: list[TextIO]) -> asyncio.subprocess.Process:
    """`worker.py --app` as a subprocess, remembered in `workers` before anything else can
    fail, its output in a file (a pipe nobody reads could fill and stall it)."""
    sink = output.open("w")
    outputs.append(sink)
    process = await asyncio.create_subprocess_exec(
        sys.executable, "worker.py", "--app", APP, cwd=ROOT,
        env={**os.environ, "TEMPORAL_ADDRESS": address, "BATON_TASK_QUEUE": task_queue,
             **extra},
        stdout=sink, stderr=asyncio.subprocess.STDOUT)
    workers.append(process)
    return process


async def stop(process: asyncio.subprocess.Process) -> None:
    """SIGTERM (the worker's clean stop), then SIGKILL if it is still there; never SIGINT,
    which a test runner may have set to be ignored."""
    if process.returncode is None:
        with contextlib.suppress(ProcessLookupError):
            process.send_signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(process.wait(), 15)
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                process.kill()
            await process.wait()


async def model_call_running(handle: WorkflowHandle[Any, FlowResult]) -> bool:
    """Whether a `call_model` activity of the run has been started by a worker."""
    description = await handle.describe()
    return any(pending.activity_type.name == "call_model"
               and pending.state == PendingActivityState.PENDING_ACTIVITY_STATE_STARTED
               for pending in description.raw_description.pending_activities)


async def wait_until(done: Callable[[], bool], what: str, output: Path) -> None:
    async def check() -> bool:
        return done()

    await wait_until_async(check, what, output)


async def wait_until_async(done: Callable[[], Awaitable[bool]], what: str,
                           output: Path) -> None:
    deadline = time.monotonic() + WAIT_S
    while not await done():
        if time.monotonic() > deadline:
            raise AssertionError(f"no {what} within {WAIT_S} s; worker said:\n"
                                 f"{output.read_text()[-3000:]}")
        await asyncio.sleep(0.02)
