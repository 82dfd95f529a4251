"""Function tools through the real OpenAI and Anthropic SDKs, checked on the wire.

The fake server (tests/fake_llm.py) records every request, so these tests see what a
real provider would see: each tool result in the API's native form (an OpenAI
`tool` message, an Anthropic `tool_result` block) answering the call's id, calls of
one turn run at the same time and answered together, and an agent with both tools
and an output contract getting its tool results before giving a validated answer.
"""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import pytest
from pydantic import BaseModel
from temporalio.testing import WorkflowEnvironment

from baton.activities.providers.anthropic_messages import (
    SCHEMA_TOOL_DESCRIPTION,
    schema_tool_name,
    to_anthropic_messages,
)
from baton.core.model_io import Message, ModelRequest, ToolCall, ToolSpec
from baton.core.runs import RunResult
from baton.core.specs import Catalogue
from baton.core.tools import Tool, tool
from baton.define.api import Agent
from baton.define.catalogue import parse_catalogue
from tests.fake_llm import FakeLLMServer, Fault, final, tool_calls
from tests.helpers import fake_provider, run, worker

pytestmark = pytest.mark.usefixtures("provider_key")

KINDS = ["openai", "anthropic"]
# Each API's own style of call id, so the fake's replies look like the real thing.
ID_PREFIX = {"openai": "call_", "anthropic": "toolu_"}
FAST = {"max_attempts": 2, "initial_interval_s": 0.1, "backoff": 1.0, "max_interval_s": 0.1}

# Side effects of the tools below: one entry per time a function body really ran.
lookups: list[str] = []
spans: dict[str, tuple[float, float]] = {}


@pytest.fixture(autouse=True)
def clear_side_effects() -> None:
    lookups.clear()
    spans.clear()


@tool
def lookup_order(order_id: str) -> dict[str, str]:
    """Look up an order's shipping status.

    Args:
        order_id: The order's id, e.g. A-1001.
    """
    lookups.append(order_id)
    return {"order_id": order_id, "status": f"shipped to depot {len(order_id)}"}


async def _overlapping(name: str) -> None:
    # Wait (boundedly) for the other parallel tool to start: run one after the other,
    # the first would end before the second began, whatever the machine's speed.
    spans[name] = (time.monotonic(), 0.0)
    deadline = time.monotonic() + 5
    while len(spans) < 2 and time.monotonic() < deadline:
        await asyncio.sleep(0.01)
    await asyncio.sleep(0.5)
    spans[name] = (spans[name][0], time.monotonic())


@tool
async def check_stock(sku: str) -> str:
    """How many of an item are in stock.

    Args:
        sku: The item's stock-keeping unit.
    """
    await _overlapping("check_stock")
    return f"{sku}: 7 in stock"


@tool
async def check_price(sku: str) -> str:
    """An item's current price.

    Args:
        sku: The item's stock-keeping unit.
    """
    await _overlapping("check_price")
    return f"{sku}: 19.90 USD"


class WireOrderReport(BaseModel):
    """The clerk's structured answer (a user contract)."""

    order_id: str
    status: str


def clerk(*tools: Tool, **fields: Any) -> Agent:
    return Agent("clerk", "Answer questions about orders.", tools=list(tools), **fields)


def on_fake(member: Agent, kind: str, fake: FakeLLMServer) -> Catalogue:
    """`member`'s own catalogue with every agent on the fake server's `kind` API."""
    raw = member.catalogue().model_dump(mode="json")
    raw["providers"] = {name: config.model_dump(mode="json")
                        for name, config in fake_provider(kind, fake).items()}
    for spec in raw["agents"].values():
        spec["model"] = "fake:test-model"
        spec["retry"] = FAST
    return parse_catalogue(raw)


async def run_clerk(env: WorkflowEnvironment, task_queue: str, member: Agent, kind: str,
                    fake: FakeLLMServer, prompt: str) -> RunResult:
    async with worker(env.client, task_queue, tools=member.tools(),
                      providers=fake_provider(kind, fake)):
        return await run(env.client, task_queue, member.name, prompt,
                         cat=on_fake(member, kind, fake), result_type=RunResult)


def native_results(kind: str, body: dict[str, Any]) -> list[dict[str, Any]]:
    """The tool results one request carried, each as the API's own message or block."""
    if kind == "openai":
        return [m for m in body["messages"] if m["role"] == "tool"]
    return [b for m in body["messages"] if m["role"] == "user"
            for b in m["content"] if b["type"] == "tool_result"]


def result_of(kind: str, body: dict[str, Any], call_id: str) -> str:
    """The text answering `call_id`; asserts the native shape on the way."""
    if kind == "openai":
        found = [m for m in native_results(kind, body) if m["tool_call_id"] == call_id]
        assert len(found) == 1 and set(found[0]) == {"role", "tool_call_id", "content"}
    else:
        found = [b for b in native_results(kind, body) if b["tool_use_id"] == call_id]
        assert len(found) == 1 and found[0]["type"] == "tool_result"
    content = found[0]["content"]
    assert isinstance(content, str)
    return content


def asked_for(kind: str, body: dict[str, Any]) -> list[list[str]]:
    """The call ids of each assistant turn the request replays, in the API's form."""
    turns = [m for m in body["messages"] if m["role"] == "assistant"]
    if kind == "openai":
        return [[c["id"] for c in m.get("tool_calls") or []] for m in turns]
    return [[b["id"] for b in m["content"] if b["type"] == "tool_use"] for m in turns]


def shipped(order_id: str) -> str:
    return json.dumps({"order_id": order_id, "status": f"shipped to depot {len(order_id)}"})


@pytest.mark.parametrize("kind", KINDS)
async def test_each_call_runs_once_and_its_result_reaches_the_model(
        env: WorkflowEnvironment, task_queue: str, fake: FakeLLMServer, kind: str) -> None:
    first, second = f"{ID_PREFIX[kind]}a1", f"{ID_PREFIX[kind]}b2"
    fake.reply_next(
        tool_calls(ToolCall(id=first, name="lookup_order", arguments={"order_id": "A-1"})),
        tool_calls(ToolCall(id=second, name="lookup_order", arguments={"order_id": "B-22"})))
    result = await run_clerk(env, task_queue, clerk(lookup_order), kind, fake,
                             "Where are orders A-1 and B-22?")

    assert result.status == "ok"
    assert lookups == ["A-1", "B-22"]  # once per call, never again on a later turn
    bodies = [r.body for r in fake.requests]
    assert len(bodies) == 3  # two tool turns, then the answer
    assert native_results(kind, bodies[0]) == []
    assert result_of(kind, bodies[1], first) == shipped("A-1")
    assert result_of(kind, bodies[2], first) == shipped("A-1")
    assert result_of(kind, bodies[2], second) == shipped("B-22")
    assert asked_for(kind, bodies[2]) == [[first], [second]]
    if kind == "openai":
        call = bodies[1]["messages"][2]["tool_calls"][0]
        assert call["function"] == {"name": "lookup_order", "arguments": '{"order_id": "A-1"}'}
        assert [m["role"] for m in bodies[2]["messages"]] == [
            "system", "user", "assistant", "tool", "assistant", "tool"]
    else:
        use = bodies[1]["messages"][1]["content"][0]
        assert (use["type"], use["name"], use["input"]) == (
            "tool_use", "lookup_order", {"order_id": "A-1"})
        assert [m["role"] for m in bodies[2]["messages"]] == [
            "user", "assistant", "user", "assistant", "user"]
    # the offline model's final answer quotes what the tool said
    assert "shipped to depot 3" in result.answer and "shipped to depot 4" in result.answer


@pytest.mark.parametrize("kind", KINDS)
async def test_calls_of_one_turn_run_together_and_are_answered_together(
        env: WorkflowEnvironment, task_queue: str, fake: FakeLLMServer, kind: str) -> None:
    stock, price = f"{ID_PREFIX[kind]}stock", f"{ID_PREFIX[kind]}price"
    fake.reply_next(tool_calls(
        ToolCall(id=stock, name="check_stock", arguments={"sku": "SKU-7"}),
        ToolCall(id=price, name="check_price", arguments={"sku": "SKU-7"})),
        final("SKU-7: 7 in stock at 19.90 USD."))
    result = await run_clerk(env, task_queue, clerk(check_stock, check_price), kind, fake,
                             "Is SKU-7 available, and for how much?")

    assert result.status == "ok"
    assert set(spans) == {"check_stock", "check_price"}
    starts, ends = [s for s, _ in spans.values()], [e for _, e in spans.values()]
    assert max(starts) < min(ends), f"the calls did not overlap: {spans}"
    bodies = [r.body for r in fake.requests]
    assert len(bodies) == 2
    assert result_of(kind, bodies[1], stock) == "SKU-7: 7 in stock"
    assert result_of(kind, bodies[1], price) == "SKU-7: 19.90 USD"
    assert asked_for(kind, bodies[1]) == [[stock, price]]
    if kind == "anthropic":
        # Every result of a turn goes in the one user message that follows it.
        last = bodies[1]["messages"][-1]
        assert last["role"] == "user"
        assert [b["tool_use_id"] for b in last["content"] if b["type"] == "tool_result"] == [
            stock, price]
    assert result.answer == "SKU-7: 7 in stock at 19.90 USD."


@pytest.mark.parametrize("kind", KINDS)
async def test_tools_then_a_validated_contract(env: WorkflowEnvironment, task_queue: str,
                                               fake: FakeLLMServer, kind: str) -> None:
    # No script: the offline model calls the tool, reads its result, then answers.
    agent = clerk(lookup_order, output=WireOrderReport)
    result = await run_clerk(env, task_queue, agent, kind, fake, "Where is order A-1001?")

    assert result.status == "ok"
    assert lookups == ["A-1001"]
    assert agent.output_model() is WireOrderReport
    report = WireOrderReport.model_validate(result.output)
    assert "shipped to depot 6" in report.status  # written after reading the result
    bodies = [r.body for r in fake.requests]
    assert len(bodies) == 2
    for body in bodies:
        if kind == "openai":
            assert [t["function"]["name"] for t in body["tools"]] == ["lookup_order"]
            schema = body["response_format"]["json_schema"]
            assert schema["name"] == "WireOrderReport" and schema["strict"] is True
        else:
            assert [t["name"] for t in body["tools"]] == ["lookup_order", "WireOrderReport"]
            assert body["tools"][1]["description"] == SCHEMA_TOOL_DESCRIPTION
            assert body["tool_choice"] == {"type": "any"}
    call_id = asked_for(kind, bodies[1])[0][0]
    assert result_of(kind, bodies[1], call_id) == shipped("A-1001")


async def test_anthropic_answer_beside_tool_calls_waits_for_their_results(
        env: WorkflowEnvironment, task_queue: str, fake: FakeLLMServer) -> None:
    # A model may use the answer tool in the same turn as a real tool; that answer
    # was written blind, so the tool runs and the model is asked again.
    both = {"id": "msg_1", "type": "message", "role": "assistant", "model": "test-model",
            "stop_reason": "tool_use", "stop_sequence": None,
            "usage": {"input_tokens": 10, "output_tokens": 5},
            "content": [
                {"type": "tool_use", "id": "toolu_look", "name": "lookup_order",
                 "input": {"order_id": "A-1001"}},
                {"type": "tool_use", "id": "toolu_early", "name": "WireOrderReport",
                 "input": {"order_id": "A-1001", "status": "guessed"}}]}
    fake.fail_next(Fault(body=json.dumps(both)))
    result = await run_clerk(env, task_queue, clerk(lookup_order, output=WireOrderReport),
                             "anthropic", fake, "Where is order A-1001?")

    assert lookups == ["A-1001"]
    report = WireOrderReport.model_validate(result.output)
    assert report.status != "guessed" and "shipped to depot 6" in report.status
    second = fake.requests[1].body
    # only the real call is replayed, so no tool_use is left without its result
    assert asked_for("anthropic", second) == [["toolu_look"]]
    assert result_of("anthropic", second, "toolu_look") == shipped("A-1001")


async def test_anthropic_answer_tool_is_forced_once_tools_are_no_longer_offered(
        env: WorkflowEnvironment, task_queue: str, fake: FakeLLMServer) -> None:
    agent = clerk(lookup_order, check_stock, output=WireOrderReport, max_tool_turns=1)
    result = await run_clerk(env, task_queue, agent, "anthropic", fake,
                             "Where is order A-1001?")

    assert "tool turn limit 1 reached" in " ".join(result.reasons)
    assert lookups == ["A-1001"]
    WireOrderReport.model_validate(result.output)
    first, last = fake.requests[0].body, fake.requests[-1].body
    assert first["tool_choice"] == {"type": "any"}
    assert last["tool_choice"] == {"type": "tool", "name": "WireOrderReport"}
    assert [t["name"] for t in last["tools"]] == ["WireOrderReport"]
    # the result read before the limit is still a tool_result block, not user text
    assert result_of("anthropic", last, asked_for("anthropic", last)[0][0]) == shipped("A-1001")


def test_answer_tool_never_takes_a_user_tool_name() -> None:
    tool = ToolSpec(name="Report", description="d", parameters={"type": "object"})
    request = ModelRequest(agent="a", model="anthropic:m", instructions="",
                           messages=[Message(role="user", content="x")],
                           output_schema={"type": "object"}, output_schema_name="Report",
                           tools=[tool])
    assert schema_tool_name(request) == "Report_answer"
    assert schema_tool_name(request.model_copy(update={"tools": []})) == "Report"


def user_text(kind: str, body: dict[str, Any]) -> str:
    """Everything a request says as the user or the system (not as a tool's result)."""
    said = [m["content"] for m in body["messages"] if m["role"] in ("user", "system")
            and isinstance(m["content"], str)]
    if kind == "anthropic":
        said += [b["text"] for m in body["messages"] if m["role"] == "user"
                 for b in m["content"] if b["type"] == "text"]
        said += [b["text"] for b in body.get("system", [])]
    return "\n".join(said)


@pytest.mark.parametrize("kind", KINDS)
async def test_the_answer_after_the_tool_limit_keeps_the_results(
        env: WorkflowEnvironment, task_queue: str, fake: FakeLLMServer, kind: str) -> None:
    # Past the limit no tools are offered, yet the results stay tool results: a tool's
    # output as user text would read as the user speaking. The Messages API refuses
    # tool blocks in a request without tools (the fake does too), so Anthropic gets
    # the tools the conversation used declared as stubs that may not be used.
    agent = clerk(lookup_order, check_stock, max_tool_turns=1)
    result = await run_clerk(env, task_queue, agent, kind, fake, "Where is order A-1001?")

    assert result.status != "failed" and lookups == ["A-1001"]
    last = fake.requests[-1].body
    assert result_of(kind, last, asked_for(kind, last)[0][0]) == shipped("A-1001")
    assert "shipped to depot" not in user_text(kind, last)
    if kind == "openai":
        assert "tools" not in last
    else:
        assert last["tool_choice"] == {"type": "none"}
        assert [t["name"] for t in last["tools"]] == ["lookup_order"]


def test_tool_results_are_tool_result_blocks_never_text() -> None:
    call = ToolCall(id="t1", name="lookup_order", arguments={"order_id": "A-1"})
    wire = to_anthropic_messages([
        Message(role="user", content="Where is A-1?"),
        Message(role="assistant", content="Checking.", tool_calls=[call]),
        Message(role="tool", content="shipped", tool_call_id="t1"),
        Message(role="user", content="Answer now."),
    ])
    assert [m["role"] for m in wire] == ["user", "assistant", "user"]
    assert [(b["type"], b.get("id")) for b in wire[1]["content"]] == [
        ("text", None), ("tool_use", "t1")]
    assert wire[2]["content"] == [
        {"type": "tool_result", "tool_use_id": "t1", "content": "shipped"},
        {"type": "text", "text": "Answer now."}]
