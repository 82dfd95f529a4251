"""A tool call reaches only a function with the schema its model was offered.

Two apps on one task queue may each define a `get_weather`: every worker serves its
tools on the task queue of their name and schema fingerprint (activities/tools.py,
workflows/tool_calls.py), so each run reaches its own function, a local tool or an
approval policy the workflow's worker lacks runs where it is served, and a schema no
live worker serves fails the run at once, typed, naming both schemas. A worker that
starts where another worker lately served a tool of its name with another schema
says so in a warning.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import sys
import time
from pathlib import Path
from typing import Annotated

import pytest
from pydantic import Field, ValidationError
from temporalio.api.enums.v1 import EventType, TaskQueueType
from temporalio.api.taskqueue.v1 import PollerInfo, TaskQueue
from temporalio.api.workflowservice.v1 import (
    DescribeTaskQueueRequest,
    DescribeTaskQueueResponse,
)
from temporalio.client import WorkflowFailureError
from temporalio.exceptions import ApplicationError
from temporalio.service import RPCError, RPCStatusCode
from temporalio.testing import WorkflowEnvironment

import baton
from baton.activities.tools import _until_polled, serving_tools, warn_of_other_schemas
from baton.core.errors import ToolUnavailable
from baton.core.tools import ToolDef, schema_fingerprint
from tests.data import weather_app
from tests.helpers import worker

ROOT = Path(__file__).resolve().parent.parent
FAST = {"max_attempts": 2, "initial_interval_s": 0.1, "backoff": 1.0, "max_interval_s": 0.1}
calls: list[tuple[str, str]] = []


@pytest.fixture(autouse=True)
def clear_calls() -> None:
    calls.clear()


# App A's and app B's tool: one name, two schemas. Both local, so the workflow's
# worker tries each first; A's has an approval policy, which runs where A is served.
@baton.tool(name="get_weather", local=True, approval=lambda query: "avalanche" in query)
def weather_by_query(query: str) -> str:
    """The weather, searched by free text."""
    calls.append(("query", query))
    return f"sunny, for {query!r}"


@baton.tool(name="get_weather", local=True)
def weather_by_city(city: str) -> str:
    """The weather in a city."""
    calls.append(("city", city))
    return f"snowing in {city}"


@baton.tool(name="get_weather")
def weather_by_zip(zip_code: int) -> str:
    """The weather at a postal code (served by no worker here)."""
    raise AssertionError("never served")


def forecaster(name: str, tool: baton.Tool) -> baton.Agent:
    return baton.Agent(name, "Report the weather.", model="offline:standard", tools=[tool],
                       retry=FAST)


def test_a_tool_is_known_by_its_name_and_what_its_schema_accepts() -> None:
    def city_weather(city: Annotated[str, Field(description="Other words.")]) -> str:
        """Reworded, same schema."""
        return city

    reworded = baton.tool(name="get_weather", description="Another description.")(city_weather)
    city = weather_by_city.definition
    assert reworded.definition.fingerprint == city.fingerprint  # wording is no new tool
    assert weather_by_query.definition.fingerprint != city.fingerprint
    assert city.task_queue("baton") == f"baton:tool:get_weather@{city.fingerprint}"
    assert len(city.fingerprint) == 12 and city.fingerprint in city.task_queue("q")

    # A catalogue may not pass other parameters off as the schema a worker serves.
    changed = {**city.model_dump(), "parameters": weather_by_zip.definition.parameters}
    with pytest.raises(ValidationError, match="is not the fingerprint of its parameters"):
        ToolDef.model_validate(changed)
    unchecked = ToolDef.model_validate({**changed, "schema_id": None})
    assert unchecked.fingerprint == weather_by_zip.definition.fingerprint
    # A parameter called "description" is part of what the schema accepts.
    with_it = {"type": "object", "properties": {"description": {"type": "string"}}}
    assert schema_fingerprint(with_it) != schema_fingerprint({**with_it, "properties": {}})


async def test_two_apps_with_one_tool_name_each_reach_their_own_function(
        env: WorkflowEnvironment, task_queue: str, tmp_path: Path) -> None:
    # Two newcomers on one queue: another app's worker process (its get_weather takes a
    # query) and this one's (a city); either may run any run's workflow.
    log = tmp_path / "weather.jsonl"
    other_app = forecaster("forecaster_a", weather_app.get_weather)
    mine = forecaster("forecaster_b", weather_by_city)
    address = env.client.service_client.config.target_host
    process = await asyncio.create_subprocess_exec(
        sys.executable, "worker.py", "--app", "tests.data.weather_app", cwd=ROOT,
        env={**os.environ, "TEMPORAL_ADDRESS": address, "BATON_TASK_QUEUE": task_queue,
             "BATON_TEST_WEATHER_LOG": str(log)},
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL)
    try:
        async with worker(env.client, task_queue, tools=[weather_by_city]):
            await served(env, weather_app.get_weather.definition.task_queue(task_queue))
            asked = [(other_app, "Sunshine in Lisbon?"), (mine, "Is it snowing in Oslo?"),
                     (other_app, "Wind at the coast?"), (mine, "Is it raining in Bergen?")]
            outcomes = await asyncio.wait_for(asyncio.gather(*(
                baton.run(member, prompt, client=env.client, task_queue=task_queue)
                for member, prompt in asked)), 90)
    finally:
        await stop(process)
    assert [o.status for o in outcomes] == ["ok"] * 4
    assert sorted(calls) == [("city", "Bergen"), ("city", "Oslo")]
    ran_there = [json.loads(line) for line in log.read_text().splitlines()]
    assert sorted(r["query"] for r in ran_there) == ["Sunshine in Lisbon?", "Wind at the coast?"]
    assert {r["pid"] for r in ran_there} == {process.pid}
    steps = [s for o in outcomes for s in o.result.trace if s.kind == "tool_call"]
    assert len(steps) == 4 and all(s.ok and "Error" not in s.detail for s in steps)


async def served(env: WorkflowEnvironment, queue: str) -> None:
    """Wait until a worker polls `queue` (a worker process takes a few seconds to start)."""
    request = DescribeTaskQueueRequest(
        namespace=env.client.namespace, task_queue=TaskQueue(name=queue),
        task_queue_type=TaskQueueType.TASK_QUEUE_TYPE_ACTIVITY)
    for _ in range(300):
        if (await env.client.workflow_service.describe_task_queue(request)).pollers:
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"no worker polls {queue}")


async def stop(process: asyncio.subprocess.Process) -> None:
    """End a worker process whatever happened: SIGTERM, then SIGKILL."""
    if process.returncode is None:
        process.terminate()
        try:
            await asyncio.wait_for(process.wait(), 20)
        except TimeoutError:
            process.kill()
            await process.wait()


async def test_a_call_runs_where_its_schema_is_served_and_fails_where_none_is(
        env: WorkflowEnvironment, task_queue: str) -> None:
    # App B's worker runs every workflow; app A's tool is served on its own queue only.
    async with worker(env.client, task_queue, tools=[weather_by_city]), \
            serving_tools(env.client, task_queue, [weather_by_query]):
        outcome = await asyncio.wait_for(baton.run(
            forecaster("forecaster_a", weather_by_query), "Sunshine in Lisbon?",
            client=env.client, task_queue=task_queue), 60)
        started = time.monotonic()
        with pytest.raises(WorkflowFailureError) as caught:
            await asyncio.wait_for(baton.run(
                forecaster("forecaster_z", weather_by_zip), "Weather at 10115?",
                client=env.client, task_queue=task_queue), 60)
        elapsed = time.monotonic() - started
    assert outcome.status == "ok" and calls == [("query", "Sunshine in Lisbon?")]
    # B's worker refused A's local policy and tool (another schema), recorded as local
    # attempts; both then ran as activities on A's queue.
    history = await env.client.get_workflow_handle(outcome.workflow_id).fetch_history()
    scheduled = [(e.activity_task_scheduled_event_attributes.activity_type.name,
                  e.activity_task_scheduled_event_attributes.task_queue.name)
                 for e in history.events
                 if e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED]
    own_queue = weather_by_query.definition.task_queue(task_queue)
    assert [s for s in scheduled if s[0] != "call_model"] == [
        ("baton_approval_policy", own_queue), ("get_weather", own_queue)]
    markers = [e for e in history.events if e.event_type == EventType.EVENT_TYPE_MARKER_RECORDED
               and e.marker_recorded_event_attributes.marker_name == "core_local_activity"]
    assert len(markers) == 3  # the serving check, then the refused policy and tool
    # A schema no live worker serves: the run fails at once, and says why.
    cause = caught.value.cause
    assert isinstance(cause, ApplicationError) and cause.type == ToolUnavailable.TYPE
    assert cause.non_retryable and elapsed < 15
    for part in ("tool 'get_weather'", task_queue, "get_weather(zip_code: integer)",
                 "this worker serves get_weather(city: string)", "stale worker",
                 "python worker.py --app MODULE"):
        assert part in cause.message, part


async def test_a_worker_warns_of_a_tool_of_its_name_served_with_another_schema(
        env: WorkflowEnvironment, task_queue: str, caplog: pytest.LogCaptureFixture) -> None:
    same_schema = baton.tool(name="get_weather", description="Reworded.")(weather_by_query.fn)
    caplog.set_level(logging.WARNING, logger="baton")
    async with serving_tools(env.client, task_queue, [weather_by_query]):
        assert not caplog.records  # nobody else was there
        # A worker with the schema already served has nothing to say.
        assert await warn_of_other_schemas(env.client, task_queue, [same_schema]) == 0
        assert not caplog.records
        async with serving_tools(env.client, task_queue, [weather_by_city]):
            [warning] = caplog.records
    assert warning.levelno == logging.WARNING and warning.name.startswith("baton")
    for part in (f"tool 'get_weather' has another schema on task queue {task_queue!r}",
                 "this worker serves   get_weather(city: string) "
                 f"[schema {weather_by_city.definition.fingerprint}]",
                 f"serves get_weather(query: string) "
                 f"[schema {weather_by_query.definition.fingerprint}]",
                 f"worker '{env.client.identity}'", "polled within the last",
                 "stale worker", "should be stopped", "ToolUnavailable"):
        assert part in warning.getMessage(), part
    # A worker process logs it where its operator reads (worker.py's output): here it
    # sees the city worker, stopped a moment ago, and says it may have stopped.
    process = await asyncio.create_subprocess_exec(
        sys.executable, "worker.py", "--app", "tests.data.weather_app", cwd=ROOT,
        env={**os.environ, "TEMPORAL_ADDRESS": env.client.service_client.config.target_host,
             "BATON_TASK_QUEUE": task_queue},
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
    try:
        # (The warning's last line ends so; the process would print nothing after it.)
        output = await asyncio.wait_for(read_until(process, "(BATON_TASK_QUEUE)."), 30)
    finally:
        await stop(process)
    assert "WARNING" in output and "has another schema" in output, output
    assert "get_weather(city: string)" in output and "get_weather(query: string)" in output


async def read_until(process: asyncio.subprocess.Process, text: str) -> str:
    """What the process printed up to the first line containing `text`."""
    assert process.stdout is not None
    lines: list[str] = []
    while not lines or text not in lines[-1]:
        line = await process.stdout.readline()
        if not line:
            raise AssertionError(f"the process ended before printing {text!r}: {lines}")
        lines.append(line.decode())
    return "".join(lines)


class _Describing:
    """A client whose DescribeTaskQueue answers with `answers` in turn (an RPCError is
    raised), the last one for good."""

    namespace = "default"

    def __init__(self, *answers: RPCError | list[PollerInfo]) -> None:
        self.answers = list(answers)
        self.workflow_service = self

    async def describe_task_queue(self, request: DescribeTaskQueueRequest) -> object:
        answer = self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]
        if isinstance(answer, RPCError):
            raise answer
        return DescribeTaskQueueResponse(pollers=answer)


async def test_a_server_hiccup_is_not_taken_for_a_worker() -> None:
    unavailable = RPCError("server restarting", RPCStatusCode.UNAVAILABLE, b"")
    denied = RPCError("no permission", RPCStatusCode.PERMISSION_DENIED, b"")
    somebody = [PollerInfo(identity="worker-1")]

    async def polled(client: _Describing) -> bool:
        return await _until_polled(client, "q", 0.3)  # type: ignore[arg-type]

    # An error, then an answer: the answer counts (before, the error meant "served").
    assert not await polled(_Describing(unavailable, []))
    assert await polled(_Describing(unavailable, somebody))
    # A server that never answers, or will not say: assume a worker, as any call would.
    assert await polled(_Describing(unavailable))
    started = time.monotonic()
    assert await polled(_Describing(denied))
    assert time.monotonic() - started < 0.1  # at once: waiting would not change it
