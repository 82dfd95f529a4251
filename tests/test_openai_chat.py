"""OpenAI Chat Completions adapter: wire format details (see test_providers.py for behaviour)."""

from __future__ import annotations

import json

import pytest
from temporalio.client import WorkflowFailureError
from temporalio.exceptions import ApplicationError
from temporalio.testing import WorkflowEnvironment

from baton.activities.providers.openai_chat import strict_schema, to_openai_message
from baton.core.contracts import EditedDraft, Review, route_schema
from baton.core.model_io import Message, ToolCall
from baton.core.runs import RunResult, SupervisorResult
from tests.fake_llm import FakeLLMServer, Fault
from tests.helpers import fake_provider, on_fake, run, worker

pytestmark = pytest.mark.usefixtures("provider_key")


def test_strict_schema_requires_everything_and_forbids_extras() -> None:
    schema = strict_schema(Review.model_json_schema())
    assert schema["additionalProperties"] is False
    assert set(schema["required"]) == {"verdict", "feedback", "reassign_to"}
    assert {"type": "null"} in schema["properties"]["reassign_to"]["anyOf"]
    assert "default" not in json.dumps(schema)
    # the source schema is left alone
    assert "required" in Review.model_json_schema()
    assert Review.model_json_schema()["required"] == ["verdict", "feedback"]


def test_strict_schema_drops_keywords_strict_mode_rejects() -> None:
    schema = strict_schema(EditedDraft.model_json_schema())
    assert "minLength" not in json.dumps(schema)
    routed = strict_schema(route_schema(["a", "b"]))
    assert routed["properties"]["route"]["enum"] == ["a", "b"]


def test_messages_in_wire_format() -> None:
    call = ToolCall(id="c1", name="coder", arguments={"task": "x"})
    assert to_openai_message(Message(role="assistant", content="", tool_calls=[call])) == {
        "role": "assistant", "content": None, "tool_calls": [
            {"id": "c1", "type": "function",
             "function": {"name": "coder", "arguments": '{"task": "x"}'}}]}
    assert to_openai_message(Message(role="tool", content="done", tool_call_id="c1")) == {
        "role": "tool", "tool_call_id": "c1", "content": "done"}


async def test_structured_output_request_is_strict(env: WorkflowEnvironment, task_queue: str,
                                                   fake: FakeLLMServer) -> None:
    # The relevance judge answers a contract (GuardrailVerdict) in at most 200 tokens.
    async with worker(env.client, task_queue, providers=fake_provider("openai", fake)):
        result = await run(env.client, task_queue, "relevance", "Refund my invoice",
                           cat=on_fake("openai", fake), result_type=RunResult)
    assert result.status == "ok" and result.output is not None
    judge = fake.requests[0].body
    assert judge["messages"][0]["role"] == "system"
    fmt = judge["response_format"]
    assert fmt["type"] == "json_schema" and fmt["json_schema"]["strict"] is True
    schema = fmt["json_schema"]["schema"]
    assert sorted(schema["required"]) == ["allowed", "reason"]  # strict: every field
    assert schema["additionalProperties"] is False
    assert judge["max_tokens"] == 200  # a compatible server gets max_tokens


async def test_tool_results_are_fed_back(env: WorkflowEnvironment, task_queue: str,
                                         fake: FakeLLMServer) -> None:
    async with worker(env.client, task_queue, providers=fake_provider("openai", fake)):
        result = await run(env.client, task_queue, "dev_team", "Write a date parser",
                           cat=on_fake("openai", fake), result_type=SupervisorResult)
    assert len(result.delegations) == 3
    final = [r.body for r in fake.requests if r.body.get("tools")][-1]
    roles = [m["role"] for m in final["messages"]]
    assert roles == ["system", "user", "assistant", "tool", "assistant", "tool",
                     "assistant", "tool"]
    assert final["messages"][3]["tool_call_id"] == final["messages"][2]["tool_calls"][0]["id"]
    assert {t["function"]["name"] for t in final["tools"]} == {"researcher", "coder", "reviewer"}


@pytest.mark.parametrize(("message", "finish", "error_type"), [
    ({"role": "assistant", "content": None, "refusal": "I can't help with that."}, "stop",
     "ModelRefusal"),
    ({"role": "assistant", "content": "", "refusal": None}, "content_filter",
     "ModelContentFiltered"),
])
async def test_refusals_are_not_retried(env: WorkflowEnvironment, task_queue: str,
                                        fake: FakeLLMServer, message: dict[str, object],
                                        finish: str, error_type: str) -> None:
    body = {"id": "x", "object": "chat.completion", "created": 0, "model": "m",
            "choices": [{"index": 0, "message": message, "finish_reason": finish}],
            "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2}}
    fake.fail_next(Fault(body=json.dumps(body)))
    async with worker(env.client, task_queue, providers=fake_provider("openai", fake)):
        with pytest.raises(WorkflowFailureError) as caught:
            await run(env.client, task_queue, "writer", "x", cat=on_fake("openai", fake),
                      result_type=RunResult)
    assert isinstance(caught.value.cause, ApplicationError)
    assert f"{error_type}: OpenAI declined" in caught.value.cause.message
    assert len(fake.requests) == 1
