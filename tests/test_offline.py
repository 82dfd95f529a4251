"""The offline provider (activities/providers/offline.py) and the call_model activity."""

from __future__ import annotations

import json
from datetime import date
from typing import Literal

import pytest
from pydantic import BaseModel
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment

import baton
from baton.activities.model import ModelCalls
from baton.activities.providers.offline import OfflineProvider
from baton.core.contracts import CONTRACTS, contract_schema, route_schema
from baton.core.model_io import Chaos, Message, ModelRequest, ToolSpec
from examples.support_desk import issue_refund, lookup_order, track_shipment

TOOL_PARAMS = {"type": "object", "properties": {"task": {"type": "string"}}}


def request(prompt: str = "hello", **fields: object) -> ModelRequest:
    data: dict[str, object] = {"agent": "tester", "model": "offline:fast",
                               "instructions": "Be helpful.",
                               "messages": [Message(role="user", content=prompt)]}
    data.update(fields)
    return ModelRequest.model_validate(data)


async def complete(req: ModelRequest):  # type: ignore[no-untyped-def]
    return await OfflineProvider().complete(req)


@pytest.mark.parametrize("name", sorted(CONTRACTS))
async def test_builds_a_valid_instance_of_every_contract(name: str) -> None:
    response = await complete(request("Durable execution", output_schema=contract_schema(name)))
    assert response.parsed is not None
    CONTRACTS[name].model_validate(response.parsed)
    assert json.loads(response.text) == response.parsed


@pytest.mark.parametrize(("prompt", "route"), [
    ("I need a refund for this invoice", "billing"),
    ("Stack trace shows an exception in your API", "technical"),
    ("Can I change my username?", "general"),
])
async def test_routes_by_keywords_within_the_enum(prompt: str, route: str) -> None:
    schema = route_schema(["billing", "technical", "general"])
    response = await complete(request(prompt, output_schema=schema))
    assert response.parsed is not None and response.parsed["route"] == route


async def test_without_a_matching_target_it_picks_the_first() -> None:
    response = await complete(request("hello", output_schema=route_schema(["x", "y"])))
    assert response.parsed is not None and response.parsed["route"] == "x"


async def test_delegates_to_each_tool_once_then_answers() -> None:
    tools = [ToolSpec(name=n, description=n, parameters=TOOL_PARAMS) for n in ("a", "b")]
    messages = [Message(role="user", content="Build it")]
    names = []
    for _ in range(3):
        response = await complete(request(messages=messages, tools=tools))
        if not response.tool_calls:
            break
        call = response.tool_calls[0]
        names.append(call.name)
        messages += [Message(role="assistant", content="", tool_calls=[call]),
                     Message(role="tool", tool_call_id=call.id, content=f"{call.name} done")]
    assert names == ["a", "b"]
    assert "a done" in response.text and "b done" in response.text


async def test_says_it_is_offline_and_quotes_the_request() -> None:
    response = await complete(request("Where is my parcel?"))
    assert "no LLM was called" in response.text and "Where is my parcel?" in response.text
    assert response.usage.calls == 1 and response.usage.input_tokens > 0


async def test_chaos_is_deterministic_per_seed() -> None:
    first = [await _draw(7, i) for i in range(20)]
    again = [await _draw(7, i) for i in range(20)]
    other = [await _draw(8, i) for i in range(20)]
    assert first == again
    assert first != other
    assert "ok" in first and "bad" in first


async def _draw(seed: int, index: int) -> str:
    req = request(output_schema=contract_schema("Draft"), call_key=f"run-{index}",
                  chaos=Chaos(malformed_rate=0.5, seed=seed))
    response = await complete(req)
    valid = response.parsed is not None and isinstance(response.parsed.get("body"), str)
    return "ok" if valid else "bad"


async def test_chaos_applies_only_to_named_agents() -> None:
    chaos = Chaos(failure_rate=1.0, agents=["someone-else"])
    response = await complete(request(chaos=chaos))
    assert response.text


async def test_simulated_failure_is_a_retryable_application_error() -> None:
    with pytest.raises(ApplicationError) as caught:
        await complete(request(chaos=Chaos(failure_rate=1.0)))
    assert caught.value.type == "ModelUnavailable" and not caught.value.non_retryable


async def test_faulty_tries_limits_faults_to_the_first_calls() -> None:
    chaos = Chaos(failure_rate=1.0, faulty_tries=2)
    for index in (0, 1):
        with pytest.raises(ApplicationError):
            await complete(request(chaos=chaos, call_index=index))
    assert (await complete(request(chaos=chaos, call_index=2))).text


async def test_call_model_rejects_an_unknown_provider() -> None:
    with pytest.raises(ApplicationError) as caught:
        await ActivityEnvironment().run(ModelCalls().call_model, request(model="nowhere:x"))
    assert caught.value.type == "UnknownProvider" and caught.value.non_retryable
    assert ("provider 'nowhere' is not declared on this worker; its providers: anthropic, "
            "offline, openai") in caught.value.message


async def test_call_model_heartbeats_while_waiting() -> None:
    from datetime import timedelta

    env = ActivityEnvironment()
    env.info = env.info.__class__(**{**env.info.__dict__,
                                     "heartbeat_timeout": timedelta(seconds=0.3)})
    beats: list[object] = []
    env.on_heartbeat = lambda *details: beats.append(details)
    response = await env.run(ModelCalls().call_model, request(chaos=Chaos(latency_s=0.5)))
    assert response.text
    assert len(beats) >= 3  # every 0.1 s during 0.5 s of latency


# --- tool arguments: from the latest user message, by parameter name and type ----------

@baton.tool
def opening_hours(day: str) -> str:
    """The shop's opening hours on a day."""
    return day


@baton.tool
def get_weather(city: str) -> str:
    """The weather in a city."""
    return city


@baton.tool
def book_room(city: str, nights: int, guests: int = 1, check_in: date | None = None,
              email: str = "", room: Literal["single", "double", "suite"] = "single",
              express: bool = False) -> str:
    """Book a hotel room."""
    return city


@baton.tool
def add(a: int, b: int) -> int:
    """Add two integers."""
    return a + b


@baton.tool
def close_account(customer: str) -> str:
    """Close a customer's account."""
    return customer


REFUND = "I was charged twice for order A-1002. Please refund the extra 25 USD."


@pytest.mark.parametrize(("tool", "prompt", "expected"), [
    # The README's examples (examples/support_desk.py) and the issue's.
    (issue_refund, REFUND, {"order_id": "A-1002", "amount_usd": 25.0, "reason": REFUND}),
    (lookup_order, "Where is my order A-1001?", {"order_id": "A-1001"}),
    (track_shipment, "Where is order A-1001?", {"order_id": "A-1001"}),
    (get_weather, "Is it snowing in Oslo?", {"city": "Oslo"}),
    (issue_refund, "Refund $42.50 on order #1042",
     {"order_id": "1042", "amount_usd": 42.5, "reason": "Refund $42.50 on order #1042"}),
    (book_room, "Book a double room in New York for 3 nights for 2 guests from 2026-03-01; "
     "mail ada@example.com, express please",
     {"city": "New York", "nights": 3, "guests": 2, "check_in": "2026-03-01",
      "email": "ada@example.com", "room": "double", "express": True}),
    (add, "Add 2 and 3", {"a": 2, "b": 3}),
    (close_account, "Close the account of Ada Lovelace", {"customer": "Ada Lovelace"}),
    (opening_hours, "What are your opening hours on Sunday?", {"day": "Sunday"}),
], ids=["refund", "lookup", "track", "city", "hash-and-dollars", "booking", "numbers",
        "person", "weekday"])
async def test_tool_arguments_come_from_the_request_by_name_and_type(
        tool: baton.Tool, prompt: str, expected: dict[str, object]) -> None:
    req = request(prompt, tools=[tool.definition.spec()])
    [call] = (await complete(req)).tool_calls
    assert (call.name, call.arguments) == (tool.name, expected)
    tool.validate(call.arguments)  # what the tool's own activity checks
    assert (await complete(req)).tool_calls == [call]  # deterministic


async def test_nothing_found_is_an_honest_placeholder_and_optional_ones_are_left_out() -> None:
    req = request("Book something nice", tools=[book_room.definition.spec()])
    [call] = (await complete(req)).tool_calls
    # A number cannot say it is offline: the smallest the schema allows.
    assert call.arguments == {"city": "[offline: no city in the request]", "nights": 0}
    refund = await complete(request("Refund my order", tools=[issue_refund.definition.spec()]))
    arguments = refund.tool_calls[0].arguments
    assert arguments["order_id"] == "[offline: no order_id in the request]"
    assert arguments["amount_usd"] == 0.01  # gt=0: the smallest refund, never a made-up one


def session(*turns: str, agent: str = "tester") -> list[Message]:
    """Turns of a conversation this agent answered, ending with the user's latest."""
    messages: list[Message] = []
    for turn in turns[:-1]:
        messages += [Message(role="user", content=turn),
                     Message(role="assistant", content=f"About {turn}", agent=agent)]
    return [*messages, Message(role="user", content=turns[-1])]


async def test_a_session_turn_reads_its_own_request() -> None:
    tools = [track_shipment.definition.spec()]
    contract = contract_schema("Draft")
    second = session("Where is order A-1001?", "And order A-1002?")
    [call] = (await complete(request(messages=second, tools=tools,
                                     output_schema=contract))).tool_calls
    assert call.arguments == {"order_id": "A-1002"}  # not turn 1's id, not turn 2's words
    # An id the latest turn does not repeat is the one the conversation is about.
    again = session("Where is order A-1001?", "When will it arrive?")
    [call] = (await complete(request(messages=again, tools=tools))).tool_calls
    assert call.arguments == {"order_id": "A-1001"}
    # Answering turn 2 (with a contract, as in a chat), it quotes turn 2, not turn 1.
    reply = await complete(request(messages=session("Tell me about tea", "Now coffee"),
                                   output_schema=contract))
    assert reply.parsed is not None and "Now coffee" in reply.parsed["body"]
    assert "tea" not in reply.parsed["body"]
    answered = [*second, Message(role="assistant", content="", agent="tester",
                                 tool_calls=[call]),
                Message(role="tool", tool_call_id=call.id, content="in transit")]
    text = (await complete(request(messages=answered))).text
    assert 'for "And order A-1002?"' in text and "A-1001" not in text


async def test_a_repair_note_is_not_taken_for_the_request() -> None:
    messages = [Message(role="user", content="Write about coffee"),
                Message(role="assistant", content="{not json", agent="tester"),
                Message(role="user", content="Your reply did not match the Draft schema: "
                        "invalid JSON\nReply again with only JSON that matches the schema.")]
    reply = await complete(request(messages=messages, output_schema=contract_schema("Draft")))
    assert reply.parsed is not None and "Write about coffee" in reply.parsed["body"]


async def test_contract_fields_naming_a_value_are_filled_from_the_request() -> None:
    class Reply(BaseModel):
        order_id: str
        email: str
        reply: str

    prompt = "I was charged twice for order A-1002. Write to ann@example.com please."
    response = await complete(request(prompt, output_schema=Reply.model_json_schema()))
    assert response.parsed is not None
    assert (response.parsed["order_id"], response.parsed["email"]) == (
        "A-1002", "ann@example.com")
    assert response.parsed["reply"].startswith("[offline] tester on reply")  # still honest
    # Nothing to find: the honest placeholder, never a made-up id.
    bare = await complete(request("hello", output_schema=Reply.model_json_schema()))
    assert bare.parsed is not None and bare.parsed["order_id"].startswith("[offline]")
