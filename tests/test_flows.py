"""Flows (baton/define/flows.py, workflows/flow.py): your own orchestration code as a durable run,
and Baton's agents inside a plain Temporal workflow through BatonPlugin.

Every test runs real workflows on the dev server with the offline model; some with no
workflow cache, so every step of the flow is replayed from history.
"""

from __future__ import annotations

import asyncio
import uuid
from datetime import timedelta

import pytest
from temporalio import workflow
from temporalio.client import Client, WorkflowFailureError
from temporalio.exceptions import ApplicationError
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Replayer, Worker

import baton
from baton.core.steps import StepsMissing
from baton.define.flows import FLOWS, FlowDefinitionError, FlowResult
from baton.runtime.launch import RunRefused
from baton.runtime.temporal import build_replayer
from tests import flow_app
from tests.flow_app import Tale
from tests.test_approval import wait_for_requests


@pytest.fixture(autouse=True)
def clear_calls() -> None:
    flow_app.calls.clear()


def app_worker(env: WorkflowEnvironment, task_queue: str, **options: object) -> Worker:
    from tests.helpers import worker

    return worker(env.client, task_queue,
                  tools=[flow_app.word_count, flow_app.fails_always, flow_app.publish,
                         flow_app.change_seat],
                  **options)


async def test_a_flow_runs_its_own_control_flow_durably(env: WorkflowEnvironment,
                                                        task_queue: str) -> None:
    async with app_worker(env, task_queue, max_cached_workflows=0):
        outcome = await baton.run(flow_app.tale, "a lighthouse keeper", client=env.client,
                                  task_queue=task_queue)
    result = outcome.result
    assert isinstance(result, FlowResult) and result.status == "ok"
    assert isinstance(outcome.output, Tale)  # typed by the flow's return annotation
    assert result.pattern == "flow" and result.member == "tale"
    # the checker's verdict decided the path: either it stopped, or it wrote and counted
    agents = [s.agent for s in result.trace if s.kind == "model_call"]
    assert agents[:2] == ["outliner", "checker"]
    if outcome.output.text.startswith("Stopped:"):
        assert agents == ["outliner", "checker"] and flow_app.calls == []
    else:
        assert agents == ["outliner", "checker", "writer"]
        assert flow_app.calls and flow_app.calls[0].startswith("word_count")
        assert outcome.output.text.endswith("words)")
    assert set(result.usage) >= {"outliner", "checker"}
    assert result.total_usage.calls == len(agents)
    assert outcome.workflow_id.startswith("tale-a-lighthouse-keeper-")


async def test_each_step_is_an_activity_replayed_not_repeated(env: WorkflowEnvironment,
                                                              task_queue: str) -> None:
    async with app_worker(env, task_queue, max_cached_workflows=0):
        handle = await baton.start(flow_app.tale, "a lighthouse keeper", client=env.client,
                                   task_queue=task_queue)
        await handle.result()
    history = await handle.handle.fetch_history()
    scheduled = [e.activity_task_scheduled_event_attributes.activity_type.name
                 for e in history.events
                 if e.HasField("activity_task_scheduled_event_attributes")]
    assert scheduled[:2] == ["call_model", "call_model"]
    assert scheduled.count("word_count") == len(flow_app.calls)  # each tool call ran once
    # today's code replays the recorded history without a difference
    await build_replayer().replay_workflow(history)


async def test_gather_keeps_every_branch_and_reports_failures(env: WorkflowEnvironment,
                                                              task_queue: str) -> None:
    async with app_worker(env, task_queue):
        kept = await baton.run(flow_app.fan, '{"topics": ["tea", "rain"], "keep_failures": true}',
                               client=env.client, task_queue=task_queue)
        with pytest.raises(WorkflowFailureError) as caught:
            await baton.run(flow_app.fan, {"topics": ["tea"]}, client=env.client,
                            task_queue=task_queue)
    titles = kept.result.value
    assert len(titles) == 3 and titles[2].startswith("failed: ")
    assert "broken on purpose" in titles[2]
    assert not titles[0].startswith("failed") and not titles[1].startswith("failed")
    cause = caught.value.cause
    assert isinstance(cause, ApplicationError) and cause.type == "BranchesFailed"
    assert "1 of 2 branches failed" in cause.message


async def test_a_tool_that_needs_a_person_waits_in_a_flow(env: WorkflowEnvironment,
                                                          task_queue: str) -> None:
    async with app_worker(env, task_queue):
        handle = await baton.start(flow_app.publish_story, "Night Shift", client=env.client,
                                   task_queue=task_queue)
        [request] = await wait_for_requests(env, handle.workflow_id)
        assert flow_app.calls == []  # nothing published before the decision
        assert request.subject == "publish" and request.arguments == {"title": "Night Shift"}
        await baton.approve(handle.workflow_id, request=request.request_id, client=env.client)
        outcome = await asyncio.wait_for(handle.result(), 60)
    assert outcome.answer == "published Night Shift"
    assert flow_app.calls == ["publish Night Shift"]
    [record] = outcome.result.approvals
    assert record.approved and record.request.kind == "flow"


async def test_a_person_decides_a_flow_step(env: WorkflowEnvironment, task_queue: str) -> None:
    async with app_worker(env, task_queue, max_cached_workflows=0):
        handle = await baton.start(flow_app.ask_first, "Night Shift", client=env.client,
                                   task_queue=task_queue)
        await wait_for_requests(env, handle.workflow_id)
        await baton.reject(handle.workflow_id, "not this week", client=env.client)
        outcome = await asyncio.wait_for(handle.result(), 60)
    assert outcome.answer == "not approved: not this week"


async def test_a_flow_whose_code_raises_fails_typed(env: WorkflowEnvironment,
                                                    task_queue: str) -> None:
    async with app_worker(env, task_queue):
        with pytest.raises(WorkflowFailureError) as caught:
            await asyncio.wait_for(baton.run(flow_app.broken, "x", client=env.client,
                                             task_queue=task_queue), 60)
    cause = caught.value.cause
    assert isinstance(cause, ApplicationError) and cause.type == "FlowFailed"
    assert "flow 'broken' failed: KeyError" in cause.message


async def test_an_unknown_flow_waits_for_a_worker_and_bad_arguments_fail_at_once(
        env: WorkflowEnvironment, task_queue: str) -> None:
    from temporalio.api.enums.v1 import EventType

    async with app_worker(env, task_queue):
        handle = await env.client.start_workflow(
            "no_such_flow", id=f"ghost-{uuid.uuid4().hex[:8]}", task_queue=task_queue,
            result_type=FlowResult)
        # Like any type a worker lacks: the task fails and is retried, so a worker that
        # has the flow (a later deploy, another pool) can still run it.
        failures: list[str] = []
        for _ in range(100):
            history = await handle.fetch_history()
            failures = [e.workflow_task_failed_event_attributes.failure.message
                        for e in history.events
                        if e.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_FAILED]
            if failures:
                break
            await asyncio.sleep(0.1)
        described = await handle.describe()
        await handle.terminate("test cleanup")
        forged = await env.client.start_workflow(
            "tale", {"arguments": {"topic": 42, "extra": 1}},
            id=f"forged-{uuid.uuid4().hex[:8]}", task_queue=task_queue, result_type=FlowResult)
        with pytest.raises(WorkflowFailureError) as bad:
            await asyncio.wait_for(forged.result(), 60)
    assert failures and "no flow or workflow named 'no_such_flow'" in failures[0]
    assert "tale" in failures[0]  # the worker's flows are listed
    assert described.status is not None and described.status.name == "RUNNING"
    assert isinstance(bad.value.cause, ApplicationError)
    assert bad.value.cause.type == "InvalidRunInput"
    assert "invalid arguments for flow 'tale'" in bad.value.cause.message


async def test_bad_arguments_are_refused_before_anything_starts() -> None:
    with pytest.raises(RunRefused) as caught:
        await baton.start(flow_app.fan, "tea and rain", client=None)
    assert str(caught.value) == (
        "invalid arguments for flow 'fan': topics: Input should be a valid list; it takes "
        "topics: list[str], keep_failures: bool")


async def test_a_step_outside_a_durable_run_says_where_it_belongs() -> None:
    with pytest.raises(StepsMissing, match=r"inside a @baton.flow .* baton.run\(\.\.\.\)"):
        await baton.approval("Ship it?")


def test_a_flow_must_be_async_and_typed() -> None:
    with pytest.raises(FlowDefinitionError, match="must be an async function"):
        @baton.flow
        def not_async(topic: str) -> str:  # type: ignore[type-var]
            return topic
    with pytest.raises(FlowDefinitionError, match="parameter 'topic' has no type annotation"):
        @baton.flow
        async def untyped(topic) -> str:  # type: ignore[no-untyped-def]
            return str(topic)
    with pytest.raises(FlowDefinitionError, match="has no return annotation"):
        @baton.flow
        async def no_return(topic: str):  # type: ignore[no-untyped-def]
            return topic
    with pytest.raises(FlowDefinitionError, match="two flows are named 'tale'"):
        @baton.flow(name="tale")
        async def another(topic: str) -> str:
            return topic
    assert FLOWS["tale"] is flow_app.tale
    assert flow_app.tale.description.startswith("Outline, check, then write")


# --- Baton inside a plain Temporal workflow, through the plugin ---------------------------

@workflow.defn
class ReviewWorkflow:
    """A user's own workflow: Baton agents are steps of it."""

    @workflow.run
    async def run(self, topic: str) -> str:
        outline = await flow_app.outliner.run(topic)
        verdict = await flow_app.checker.run(outline.text)
        words = await flow_app.word_count(outline.text)
        await workflow.sleep(timedelta(milliseconds=10))
        return f"{outline.output.title}|{verdict.output.good}|{words}"


async def test_agents_run_inside_a_plain_workflow_with_the_plugin(env: WorkflowEnvironment,
                                                                  task_queue: str) -> None:
    plugin = baton.BatonPlugin(flow_app.word_count)
    config = env.client.config()
    client = Client(**{**config, "plugins": [plugin]})
    async with Worker(client, task_queue=task_queue, workflows=[ReviewWorkflow],
                      max_cached_workflows=0):
        handle = await client.start_workflow(ReviewWorkflow.run, "tea",
                                             id=f"review-{uuid.uuid4().hex[:8]}",
                                             task_queue=task_queue)
        answer = await asyncio.wait_for(handle.result(), 60)
    title, good, words = answer.split("|")
    assert title and good in ("True", "False") and int(words) > 0
    assert flow_app.calls == [f"word_count {len(title)}"] or flow_app.calls[0].startswith(
        "word_count")
    history = await handle.fetch_history()
    types = [e.activity_task_scheduled_event_attributes.activity_type.name
             for e in history.events if e.HasField("activity_task_scheduled_event_attributes")]
    assert types == ["call_model", "call_model", "word_count"]
    await Replayer(workflows=[ReviewWorkflow], plugins=[plugin]).replay_workflow(history)


async def test_the_starter_runs_a_flow_of_an_app(env: WorkflowEnvironment,
                                                 task_queue: str) -> None:
    import json

    from tests.test_starter import run_starter

    async with app_worker(env, task_queue):
        code, out, err = await run_starter(env, task_queue, "run", "tale",
                                           "a lighthouse keeper", "--app", "tests.flow_app",
                                           "--json")
        bad_code, _, bad_err = await run_starter(env, task_queue, "run", "fan", "tea and rain",
                                                 "--app", "tests.flow_app")
        # the run flags: --model reaches every agent.run, a budget stops the flow
        small_code, small_out, small_err = await run_starter(
            env, task_queue, "run", "tale", "a lighthouse keeper", "--app", "tests.flow_app",
            "--model", "offline:tiny", "--budget-calls", "1", "--json")
        quick_code, quick_out, quick_err = await run_starter(
            env, task_queue, "run", "tale", "a lighthouse keeper", "--app", "tests.flow_app",
            "--no-wait")
    assert code == 0, err
    result = json.loads(out)
    assert result["pattern"] == "flow" and result["member"] == "tale"
    assert result["status"] == "ok" and result["value"]["title"]
    assert result["workflow_id"].startswith("tale-a-lighthouse-keeper-")
    assert bad_code == 2 and "invalid arguments for flow 'fan': topics" in bad_err
    assert small_code == 0, small_err
    small = json.loads(small_out)
    assert small["status"] == "budget_exhausted"
    assert {s["model"] for s in small["trace"] if s["model"]} == {"offline:tiny"}
    assert quick_code == 0, quick_err
    assert quick_out.startswith("started tale-a-lighthouse-keeper-")


async def test_a_run_context_is_shared_by_tools_and_instructions_and_replays(
        env: WorkflowEnvironment, task_queue: str) -> None:
    from tests.helpers import activity_inputs

    async with app_worker(env, task_queue, max_cached_workflows=0) as running:
        del running
        handle = await baton.start(flow_app.seat_desk, "Ada", client=env.client,
                                   task_queue=task_queue)
        outcome = await asyncio.wait_for(handle.result(), 60)
    booking = outcome.output
    assert isinstance(booking, flow_app.SeatBooking)
    # each request's tool changed the run's own context; the second saw the first's change
    assert booking.changes == 2 == len(flow_app.calls)
    assert flow_app.calls[0].startswith("change_seat Ada unassigned -> ")
    first_seat = flow_app.calls[0].split(" -> ")[1][:40]
    assert flow_app.calls[1].startswith(f"change_seat Ada {first_seat} -> ")
    # the instructions were made from the context as it was at each call
    instructions = [r["instructions"] for r in await activity_inputs(handle.handle)
                    if "instructions" in r]  # the model calls' requests, not the tools'
    assert len(instructions) >= 2
    assert instructions[0] == "You help Ada, now in seat unassigned. Change seats on request."
    assert instructions[-1] == (f"You help Ada, now in seat {first_seat}. Change seats on "
                                "request.")
    await build_replayer().replay_workflow(await handle.handle.fetch_history())


async def test_a_context_needs_a_durable_run() -> None:
    with pytest.raises(TypeError, match="needs a durable run"):
        await flow_app.seat_agent.run("hi", context=flow_app.SeatBooking(passenger="Ada"))


async def test_an_agent_tool_in_a_plain_run_and_its_extractor_failing_typed(
        env: WorkflowEnvironment, task_queue: str) -> None:
    catalogue = flow_app.asker.catalogue()
    assert catalogue.tools["ask_outliner"].kind == "agent"
    assert "outliner" in catalogue.closure("asker").agents  # the tool's agent travels
    async with app_worker(env, task_queue):
        with pytest.raises(WorkflowFailureError) as caught:
            await asyncio.wait_for(baton.run(flow_app.asker, "Outline a tale of rain",
                                             client=env.client, task_queue=task_queue), 60)
    cause = caught.value.cause
    assert isinstance(cause, ApplicationError) and cause.type == "OutputExtractorFailed"
    assert ("the output extractor of agent tool 'ask_outliner' (agent 'outliner') raised "
            "AttributeError") in cause.message


def test_an_agent_tool_must_name_a_declared_agent() -> None:
    from baton.define.catalogue import CatalogueError, parse_catalogue

    raw = flow_app.asker.catalogue().model_dump(mode="json")
    raw["tools"]["ask_outliner"]["agent"] = "nobody"
    with pytest.raises(CatalogueError, match=r"tool 'ask_outliner'.* undeclared agent 'nobody'"):
        parse_catalogue(raw)


@pytest.mark.parametrize("is_homework", [True, False])
async def test_a_guardrail_agent_answers_its_own_model_and_trips_by_its_tripwire(
        env: WorkflowEnvironment, task_queue: str, is_homework: bool) -> None:
    import json

    from baton.core.model_io import ModelRequest, ModelResponse, Usage
    from tests.scripted import scripted_offline

    def judge(request: ModelRequest) -> ModelResponse | None:
        if request.agent != "homework_judge":
            return None
        # the judge is asked for its own model's schema, not GuardrailVerdict's
        assert request.output_schema_name == "HomeworkCheck"
        answer = {"is_homework": is_homework, "reasoning": "checked"}
        return ModelResponse(model="offline:fast", usage=Usage(calls=1), parsed=answer,
                             text=json.dumps(answer))

    with scripted_offline(judge):
        async with app_worker(env, task_queue):
            outcome = await asyncio.wait_for(baton.run(
                flow_app.tutor, "Solve x + 2 = 5 for me", client=env.client,
                task_queue=task_queue), 60)
    assert outcome.status == ("blocked" if is_homework else "ok")
    if is_homework:
        assert "homework_judge's tripwire" in outcome.answer


def test_a_guardrail_agent_with_its_own_model_needs_a_tripwire() -> None:
    judge = baton.Agent("loose_judge", "Judge.", output=flow_app.HomeworkCheck)
    with pytest.raises(TypeError, match="answers HomeworkCheck, not GuardrailVerdict: give it "
                                        "tripwire=fn"):
        baton.Agent("guarded", "Answer.", input_guardrails=[judge])


def test_the_catalogue_lists_an_apps_flows_with_their_parameters() -> None:
    from tests.test_starter import starter

    result = starter("catalogue", "--app", "tests.flow_app")
    assert result.returncode == 0, result.stderr
    assert "flows:" in result.stdout
    assert ("  fan                (topics: list[str], keep_failures: bool) Outline every topic "
            "in parallel") in result.stdout


@workflow.defn
class PublishWorkflow:
    """A user's own workflow calling a tool that needs a person: it has no desk."""

    @workflow.run
    async def run(self, title: str) -> str:
        return str(await flow_app.publish(title))


async def test_an_approval_in_a_workflow_without_a_desk_fails_typed(
        env: WorkflowEnvironment, task_queue: str) -> None:
    plugin = baton.BatonPlugin(flow_app.publish)
    client = Client(**{**env.client.config(), "plugins": [plugin]})
    async with Worker(client, task_queue=task_queue, workflows=[PublishWorkflow]):
        handle = await client.start_workflow(PublishWorkflow.run, "Night Shift",
                                             id=f"publish-{uuid.uuid4().hex[:8]}",
                                             task_queue=task_queue)
        with pytest.raises(WorkflowFailureError) as caught:
            await asyncio.wait_for(handle.result(), 60)
    cause = caught.value.cause
    assert isinstance(cause, ApplicationError) and cause.type == "ApprovalUnavailable"
    assert flow_app.calls == []


def test_agents_cannot_call_themselves_through_agent_tools() -> None:
    from baton.define.catalogue import CatalogueError, parse_catalogue

    raw = flow_app.asker.catalogue().model_dump(mode="json")
    raw["agents"]["outliner"]["tools"] = ["ask_outliner"]  # outliner asks itself
    with pytest.raises(CatalogueError, match="agents call themselves through agent tools: "
                                             "outliner -> outliner"):
        parse_catalogue(raw)


def test_tools_of_one_turn_changing_different_context_fields_keep_both() -> None:
    from baton.activities.tools import _changed
    from baton.workflows.agent_call import apply_context

    booking = flow_app.SeatBooking(passenger="Ada")
    before = booking.model_dump(mode="json")
    # two tools of one turn, each on its own copy of the context
    seat_copy, meal_copy = booking.model_copy(), booking.model_copy()
    seat_copy.seat = "12A"
    meal_copy.changes = 5
    seat_change, meal_change = _changed(seat_copy, before), _changed(meal_copy, before)
    assert seat_change == {"seat": "12A"} and meal_change == {"changes": 5}
    apply_context(booking, seat_change)
    apply_context(booking, meal_change)  # the later one does not undo the earlier
    assert (booking.seat, booking.changes) == ("12A", 5)
    assert _changed(booking.model_copy(), booking.model_dump(mode="json")) is None
