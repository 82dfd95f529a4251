"""The offline provider (activities/providers/offline.py) and the call_model activity."""

from __future__ import annotations

import json

import pytest
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment

from baton.activities.model import ModelCalls
from baton.activities.providers.offline import OfflineProvider
from baton.contracts import CONTRACTS, contract_schema, route_schema
from baton.model_io import Chaos, Message, ModelRequest, ToolSpec

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
