"""Function tools (baton/core/tools.py, activities/tools.py) and the tool loop of run_agent.

Every tool call is its own activity, runs once per call, and its result reaches the
model; bad arguments, unknown tools, failing tools and endless tool use are each
bounded and reported; budgets count tool calls.
"""

from __future__ import annotations

import asyncio
import time
from typing import Annotated, Any

import pytest
from pydantic import BaseModel, Field
from temporalio.api.enums.v1 import EventType
from temporalio.client import WorkflowFailureError
from temporalio.exceptions import ApplicationError
from temporalio.testing import WorkflowEnvironment

import baton
from baton.core.errors import ToolUnavailable
from baton.core.model_io import ModelRequest, ModelResponse
from baton.core.tools import ToolDefinitionError, render_result
from baton.core.usage import Usage
from tests.helpers import worker
from tests.scripted import scripted_offline, tool_call, tool_results

FAST = {"max_attempts": 2, "initial_interval_s": 0.1, "backoff": 1.0, "max_interval_s": 0.1}
calls: list[dict[str, Any]] = []


@pytest.fixture(autouse=True)
def clear_calls() -> None:
    calls.clear()


@baton.tool
def lookup_order(order_id: Annotated[str, Field(description="The order's id.")]) -> dict[str, str]:
    """Look up an order.

    Args:
        order_id: ignored in favour of the Field description.
    """
    calls.append({"tool": "lookup_order", "order_id": order_id})
    return {"order_id": order_id, "status": "shipped"}


@baton.tool(max_attempts=3)
async def refund(order_id: str, amount_usd: float, context: baton.ToolContext) -> str:
    """Refund part of an order.

    Args:
        order_id: Which order.
        amount_usd: How much, in US dollars.
    """
    calls.append({"tool": "refund", "key": context.idempotency_key, "attempt": context.attempt})
    return f"refunded {amount_usd} on {order_id}"


def agent(*tools: baton.Tool, **fields: Any) -> baton.Agent:
    fields.setdefault("retry", FAST)
    return baton.Agent("clerk", "Help with orders.", model="offline:standard",
                       tools=list(tools), **fields)


async def run_agent(env: WorkflowEnvironment, task_queue: str, member: baton.Agent,
                    prompt: str, **options: Any) -> baton.RunOutcome[Any]:
    async with worker(env.client, task_queue, tools=member.tools()):
        return await asyncio.wait_for(
            baton.run(member, prompt, client=env.client, task_queue=task_queue, **options), 60)


def test_schema_comes_from_type_hints_and_docstring() -> None:
    schema = refund.definition.parameters
    assert refund.definition.description == "Refund part of an order."
    assert schema["properties"]["amount_usd"] == {"type": "number",
                                                  "description": "How much, in US dollars."}
    assert schema["required"] == ["order_id", "amount_usd"]
    assert "context" not in schema["properties"]  # filled by Baton, not the model
    assert lookup_order.definition.parameters["properties"]["order_id"]["description"] == \
        "The order's id."
    assert lookup_order("A-1") == {"order_id": "A-1", "status": "shipped"}  # still callable


def test_unusable_signatures_are_refused_when_decorated() -> None:
    def untyped(order_id):  # type: ignore[no-untyped-def]
        return order_id

    def star(*order_ids: str) -> str:
        return ""

    with pytest.raises(ToolDefinitionError, match="'order_id' has no type annotation"):
        baton.tool(untyped)
    def positional(order_id: str, /) -> str:
        return order_id

    for unnamed in (star, positional):
        with pytest.raises(ToolDefinitionError, match=(
                r"parameter 'order_ids?' must be a plain named parameter \(tools are called "
                r"with named arguments\)")):
            baton.tool(unnamed)
    with pytest.raises(ToolDefinitionError, match="name"):
        baton.tool(name="has spaces")(lambda: None)


def test_agent_naming_an_unknown_tool_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown tool 'missing'; known tools: none"):
        baton.load_catalogue().model_validate(
            {"agents": {"a": {"instructions": "x", "tools": ["missing"]}}})
    with pytest.raises(TypeError, match=r"must be @baton\.tool functions"):
        baton.Agent("a", "x", tools=[print])  # type: ignore[list-item]


def test_long_results_are_cut_with_a_note() -> None:
    text, cut = render_result("x" * 500, 100)
    assert cut and text.startswith("x" * 100) and "[truncated: 500 characters" in text
    assert render_result({"a": 1}, 100) == ('{"a": 1}', False)


async def test_each_call_runs_once_and_its_result_reaches_the_model(
        env: WorkflowEnvironment, task_queue: str) -> None:
    with scripted_offline(lambda r: None) as model:
        outcome = await run_agent(env, task_queue, agent(lookup_order, refund),
                                  "Refund 25 USD on order A-1001")
    assert outcome.status == "ok"
    assert [c["tool"] for c in calls] == ["lookup_order", "refund"]
    assert calls[0]["order_id"] == "A-1001"  # built from the request by the offline model
    final = model.requests[-1]
    assert tool_results(final) == ['{"order_id": "A-1001", "status": "shipped"}',
                                   "refunded 25.0 on A-1001"]
    assert "refunded 25.0 on A-1001" in outcome.answer
    usage = outcome.result.usage["clerk"]
    assert usage.tool_calls == 2 and usage.calls == 3
    tool_steps = [s for s in outcome.result.trace if s.kind == "tool_call"]
    assert [s.detail.split("(")[0] for s in tool_steps] == ["lookup_order", "refund"]
    # Each call is its own activity, named after the tool, with a readable summary.
    history = await env.client.get_workflow_handle(outcome.workflow_id).fetch_history()
    scheduled = [e.activity_task_scheduled_event_attributes for e in history.events
                 if e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED]
    assert [a.activity_type.name for a in scheduled] == [
        "call_model", "lookup_order", "call_model", "refund", "call_model"]
    summaries = [e.user_metadata.summary.data.decode() for e in history.events
                 if e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED]
    assert 'clerk · lookup_order(order_id=\\"A-1001\\")' in summaries[1]


async def test_invalid_arguments_and_unknown_tools_go_back_to_the_model(
        env: WorkflowEnvironment, task_queue: str) -> None:
    def script(request: ModelRequest) -> ModelResponse | None:
        if request.call_index == 0:
            return tool_call(request, "lookup_order", order=7)  # wrong name, wrong type
        if request.call_index == 1:
            return tool_call(request, "delete_everything")
        return None

    with scripted_offline(script) as model:
        outcome = await run_agent(env, task_queue, agent(lookup_order), "Where is A-1001?")
    first, second = tool_results(model.requests[1])[0], tool_results(model.requests[2])[1]
    assert first.startswith("Error: invalid arguments for lookup_order")
    assert "order_id: Field required" in first and "order: Extra inputs" in first
    assert second.startswith("Error: there is no tool named 'delete_everything'")
    assert calls == []  # the function never saw the bad call
    assert outcome.status == "ok"


flaky_attempts: list[str] = []


@baton.tool(max_attempts=2)
def flaky(order_id: str, context: baton.ToolContext) -> str:
    """Fails every time."""
    flaky_attempts.append(context.idempotency_key)
    raise RuntimeError("warehouse API down")


@baton.tool(max_attempts=5, on_failure="fail_agent")
def forbidden(order_id: str) -> str:
    """Refuses for good."""
    flaky_attempts.append("forbidden")
    raise ApplicationError("order is locked", type="OrderLocked", non_retryable=True)


async def test_failing_tool_is_retried_then_reported_to_the_model(
        env: WorkflowEnvironment, task_queue: str) -> None:
    flaky_attempts.clear()
    with scripted_offline(lambda r: None) as model:
        outcome = await run_agent(env, task_queue, agent(flaky), "Check order A-9")
    assert len(flaky_attempts) == 2 and len(set(flaky_attempts)) == 1  # same key each retry
    # Unique beyond this run: the same workflow id after continue-as-new is a new run.
    run_id = (await env.client.get_workflow_handle(outcome.workflow_id).describe()).run_id
    assert flaky_attempts[0].startswith(f"{outcome.workflow_id}/{run_id}/")
    [result] = tool_results(model.requests[-1])
    assert result.startswith("Error: the tool flaky failed") and "warehouse API down" in result
    assert outcome.status == "ok"
    assert [s.ok for s in outcome.result.trace if s.kind == "tool_call"] == [False]


@baton.tool(local=True, max_attempts=2)
def flaky_local(order_id: str) -> str:
    """Fails every time, on the workflow's worker."""
    flaky_attempts.append("local")
    raise RuntimeError("ledger locked")


async def test_failing_local_tool_is_reported_to_the_model_as_well(
        env: WorkflowEnvironment, task_queue: str) -> None:
    flaky_attempts.clear()
    with scripted_offline(lambda r: None) as model:
        outcome = await run_agent(env, task_queue, agent(flaky_local), "Check order A-9")
    assert flaky_attempts == ["local", "local"]
    [result] = tool_results(model.requests[-1])
    assert result.startswith("Error: the tool flaky_local failed") and "ledger locked" in result
    assert outcome.status == "ok"


async def test_non_retryable_tool_error_fails_the_agent_where_the_tool_says_so(
        env: WorkflowEnvironment, task_queue: str) -> None:
    flaky_attempts.clear()
    with scripted_offline(lambda r: None), pytest.raises(WorkflowFailureError) as caught:
        await run_agent(env, task_queue, agent(forbidden), "Check order A-9")
    cause = caught.value.cause
    assert isinstance(cause, ApplicationError) and cause.type == "ToolFailed"
    assert "OrderLocked: order is locked" in cause.message
    assert flaky_attempts == ["forbidden"]  # non-retryable: one attempt of five


async def test_max_tool_turns_stops_a_model_that_never_stops(
        env: WorkflowEnvironment, task_queue: str) -> None:
    def script(request: ModelRequest) -> ModelResponse | None:
        return tool_call(request, "lookup_order", order_id="A-1") if request.tools else None

    with scripted_offline(script) as model:
        outcome = await run_agent(env, task_queue, agent(lookup_order, max_tool_turns=3),
                                  "Loop forever")
    assert len(calls) == 3
    assert [bool(r.tools) for r in model.requests] == [True, True, True, False]
    assert outcome.status == "degraded"
    assert "tool turn limit 3 reached" in outcome.result.reasons[0]


async def test_budget_counts_tool_calls(env: WorkflowEnvironment, task_queue: str) -> None:
    def script(request: ModelRequest) -> ModelResponse | None:
        return tool_call(request, "lookup_order", order_id="A-1")

    with scripted_offline(script):
        outcome = await run_agent(env, task_queue, agent(lookup_order), "Loop forever",
                                  max_tool_calls=2)
    assert outcome.status == "budget_exhausted"
    assert len(calls) == 2
    assert "tool calls: 2 of 2" in outcome.result.reasons[0]
    assert outcome.usage.tool_calls == 2


class Verdict(BaseModel):
    order_id: str
    refundable: bool
    note: str = Field(min_length=1)


async def test_tools_and_an_output_contract_together(env: WorkflowEnvironment,
                                                     task_queue: str) -> None:
    outcome = await run_agent(env, task_queue, agent(lookup_order, output=Verdict),
                              "Can order A-1001 be refunded?")
    assert isinstance(outcome.output, Verdict)
    assert [c["tool"] for c in calls] == ["lookup_order"]
    assert "tools said" in outcome.output.note  # the offline model quotes tool results


@baton.tool(local=True)
def add(a: int, b: int) -> int:
    """Add two integers."""
    return a + b


async def test_local_tool_runs_as_a_local_activity(env: WorkflowEnvironment,
                                                   task_queue: str) -> None:
    outcome = await run_agent(env, task_queue, agent(add), "Add 2 and 3")
    history = await env.client.get_workflow_handle(outcome.workflow_id).fetch_history()
    types = [e.event_type for e in history.events]
    assert EventType.EVENT_TYPE_MARKER_RECORDED in types  # how local activities are recorded
    scheduled = [e.activity_task_scheduled_event_attributes.activity_type.name
                 for e in history.events
                 if e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED]
    assert "add" not in scheduled
    assert outcome.result.usage["clerk"].tool_calls == 1


async def test_tool_no_worker_has_fails_the_run_at_once(env: WorkflowEnvironment,
                                                        task_queue: str) -> None:
    member = agent(lookup_order)
    started = time.monotonic()
    async with worker(env.client, task_queue):  # registers no tools
        with pytest.raises(WorkflowFailureError) as caught:
            await asyncio.wait_for(baton.run(member, "Where is A-1?", client=env.client,
                                             task_queue=task_queue), 60)
    cause = caught.value.cause
    assert isinstance(cause, ApplicationError) and cause.type == ToolUnavailable.TYPE
    assert cause.non_retryable
    assert "tool 'lookup_order'" in cause.message and task_queue in cause.message
    assert "this worker has no tool 'lookup_order'" in cause.message
    assert "stale worker" in cause.message  # a worker left running with older code
    assert time.monotonic() - started < 15


def test_usage_sums_tool_fields() -> None:
    total = Usage(tool_calls=1, tool_seconds=0.5).plus(Usage(calls=1, tool_calls=2))
    assert (total.calls, total.tool_calls, total.tool_seconds) == (1, 3, 0.5)


async def test_python_client_gets_typed_output(env: WorkflowEnvironment, task_queue: str) -> None:
    from tests.data.tool_app import OrderAnswer, support

    async with worker(env.client, task_queue, tools=support.tools()):
        handle = await baton.start(support, "Status of A-1001?", client=env.client,
                                   task_queue=task_queue)
        assert handle.workflow_id.startswith("agent-status-of-a-1001-")
        assert handle.link.endswith(f"/workflows/{handle.workflow_id}")
        outcome = await asyncio.wait_for(handle.result(), 60)
    assert isinstance(outcome.output, OrderAnswer)
    assert outcome.output.answer

