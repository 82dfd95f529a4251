"""Anthropic Messages adapter: wire format details (see test_providers.py for behaviour)."""

from __future__ import annotations

import json

import pytest
from temporalio.client import WorkflowFailureError
from temporalio.exceptions import ApplicationError
from temporalio.testing import WorkflowEnvironment

from baton.activities.providers.anthropic_messages import to_anthropic_messages
from baton.core.model_io import Message, ToolCall
from baton.core.runs import PipelineResult, RunResult, SupervisorResult
from tests.fake_llm import FakeLLMServer, Fault
from tests.helpers import fake_provider, on_fake, run, worker

pytestmark = pytest.mark.usefixtures("provider_key")


def test_turns_alternate_and_tool_results_are_blocks() -> None:
    call = ToolCall(id="t1", name="coder", arguments={"task": "x"})
    wire = to_anthropic_messages([
        Message(role="user", content="Build it"),
        Message(role="assistant", content="", tool_calls=[call]),
        Message(role="tool", content="done", tool_call_id="t1"),
        Message(role="user", content="Now finish."),
    ])
    assert [m["role"] for m in wire] == ["user", "assistant", "user"]
    assert wire[1]["content"] == [{"type": "tool_use", "id": "t1", "name": "coder",
                                   "input": {"task": "x"}, "cache_control": {"type": "ephemeral"}}]
    assert wire[2]["content"] == [
        {"type": "tool_result", "tool_use_id": "t1", "content": "done"},
        {"type": "text", "text": "Now finish."}]


def test_single_turn_has_no_history_breakpoint() -> None:
    wire = to_anthropic_messages([Message(role="user", content="hi")])
    assert wire == [{"role": "user", "content": [{"type": "text", "text": "hi"}]}]


async def test_structured_output_is_a_forced_tool(env: WorkflowEnvironment, task_queue: str,
                                                  fake: FakeLLMServer) -> None:
    async with worker(env.client, task_queue, providers=fake_provider("anthropic", fake)):
        result = await run(env.client, task_queue, "article_pipeline", "Durable execution",
                           cat=on_fake("anthropic", fake), result_type=PipelineResult)
    assert result.status == "ok"
    outliner = fake.requests[0].body
    assert outliner["tool_choice"] == {"type": "tool", "name": "Outline"}
    assert outliner["tools"][0]["input_schema"]["required"] == ["title", "sections"]
    assert outliner["system"][0]["cache_control"] == {"type": "ephemeral"}
    assert result.stages[0].output is not None and len(result.stages[0].output["sections"]) >= 2


async def test_tool_use_round_trip(env: WorkflowEnvironment, task_queue: str,
                                   fake: FakeLLMServer) -> None:
    async with worker(env.client, task_queue, providers=fake_provider("anthropic", fake)):
        result = await run(env.client, task_queue, "dev_team", "Write a date parser",
                           cat=on_fake("anthropic", fake), result_type=SupervisorResult)
    assert [d.verdict for d in result.delegations] == ["accept"] * 3
    final = [r.body for r in fake.requests if r.body.get("tools")
             and "tool_choice" not in r.body][-1]
    kinds = [[b["type"] for b in m["content"]] for m in final["messages"]]
    assert kinds == [["text"], ["tool_use"], ["tool_result"], ["tool_use"], ["tool_result"],
                     ["tool_use"], ["tool_result"]]


async def test_refusal_is_not_retried(env: WorkflowEnvironment, task_queue: str,
                                      fake: FakeLLMServer) -> None:
    body = {"id": "m", "type": "message", "role": "assistant", "model": "m", "content": [],
            "stop_reason": "refusal", "stop_sequence": None,
            "usage": {"input_tokens": 1, "output_tokens": 0}}
    fake.fail_next(Fault(body=json.dumps(body)))
    async with worker(env.client, task_queue, providers=fake_provider("anthropic", fake)):
        with pytest.raises(WorkflowFailureError) as caught:
            await run(env.client, task_queue, "writer", "x", cat=on_fake("anthropic", fake),
                      result_type=RunResult)
    assert isinstance(caught.value.cause, ApplicationError)
    assert "ModelRefusal: Anthropic declined" in caught.value.cause.message
    assert len(fake.requests) == 1
