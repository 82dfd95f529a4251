"""TriageWorkflow: routing through transfer tools stays inside the declared targets, the
router may answer itself, handoff history, fallbacks."""

from __future__ import annotations

import pytest
from temporalio.testing import WorkflowEnvironment

from baton.core.model_io import Chaos, Message
from baton.core.runs import TriageResult
from baton.workflows.triage import nest_history
from tests.helpers import (
    catalogue,
    fast_catalogue,
    finish,
    run,
    run_with_requests,
    start,
    worker,
)

DECLARED = {"billing", "technical", "general"}


@pytest.mark.parametrize(("prompt", "expected"), [
    ("My invoice shows the wrong amount", "billing"),
    ("The API returns error 500 when I upload", "technical"),
    ("I cannot log into my account", "general"),
])
async def test_routes_to_the_matching_specialist(env: WorkflowEnvironment, task_queue: str,
                                                 prompt: str, expected: str) -> None:
    async with worker(env.client, task_queue):
        result = await run(env.client, task_queue, "support_desk", prompt,
                           result_type=TriageResult)
    assert result.handled_by == expected
    assert result.status == "ok"
    assert expected in result.answer and "offline" in result.answer
    assert set(result.usage) == {"router", expected}
    assert [s.kind for s in result.trace] == ["model_call", "handoff", "model_call"]
    assert result.trace[0].detail == f"asked for tools: transfer_to_{expected}"
    assert result.route_reason.startswith("[offline] the request shares the words")


async def test_the_router_answers_itself_when_no_target_fits(env: WorkflowEnvironment,
                                                             task_queue: str) -> None:
    async with worker(env.client, task_queue):
        result = await run(env.client, task_queue, "support_desk",
                           "What are your opening hours?", result_type=TriageResult)
    assert result.handled_by == "router" and result.status == "ok"
    assert set(result.usage) == {"router"} and result.usage["router"].calls == 1
    assert [s.kind for s in result.trace] == ["model_call"]
    assert "offline" in result.answer and "so I answered myself" in result.answer
    assert result.route_reason == "router answered without a handoff"


async def test_specialist_receives_the_whole_conversation(env: WorkflowEnvironment,
                                                          task_queue: str) -> None:
    conversation = [
        Message(role="user", content="Hi, I have a question about my account."),
        Message(role="assistant", content="Sure, what is it?", agent="general"),
        Message(role="user", content="I was charged twice for my subscription"),
    ]
    async with worker(env.client, task_queue):
        result, requests = await run_with_requests(
            env.client, task_queue, "support_desk", conversation, result_type=TriageResult)
    assert result.handled_by == "billing"
    specialist = requests[-1]
    assert specialist["agent"] == "billing"
    assert [m["content"] for m in specialist["messages"]] == [m.content for m in conversation]


async def test_nested_handoff_history_sends_one_transcript(env: WorkflowEnvironment,
                                                           task_queue: str) -> None:
    cat = catalogue()
    team = cat.teams["support_desk"]
    team.nest_handoff_history = True  # type: ignore[union-attr]
    conversation = [
        Message(role="user", content="Hello there"),
        Message(role="assistant", content="How can I help?", agent="general"),
        Message(role="user", content="Refund my last payment please"),
    ]
    async with worker(env.client, task_queue):
        result, requests = await run_with_requests(
            env.client, task_queue, "support_desk", conversation, cat=cat,
            result_type=TriageResult)
    assert result.handled_by == "billing"
    messages = requests[-1]["messages"]
    assert len(messages) == 1
    assert "<conversation_history>" in messages[0]["content"]
    assert "general: How can I help?" in messages[0]["content"]
    assert messages[0]["content"].endswith("Refund my last payment please")


def test_nest_history_leaves_a_single_message_alone() -> None:
    only = [Message(role="user", content="hi")]
    assert nest_history(only) == only


async def test_an_undeclared_transfer_goes_to_the_default(env: WorkflowEnvironment,
                                                           task_queue: str) -> None:
    # Every router reply is malformed: a transfer to a target nobody declared.
    chaos = Chaos(malformed_rate=1.0, agents=["router"], seed=3)
    async with worker(env.client, task_queue):
        result = await run(env.client, task_queue, "support_desk",
                           "My invoice is wrong", chaos=chaos, result_type=TriageResult)
    assert result.handled_by == "general"
    assert result.status == "degraded"
    assert result.usage["router"].calls == 1  # the default takes over at once
    [refused] = [s for s in result.trace if s.kind == "handoff"]
    assert not refused.ok and refused.detail.startswith("-> general: router asked for "
                                                        "'transfer_to_undeclared-agent-9000'")
    assert any("not one of its transfers" in r for r in result.reasons)
    assert "general" in result.answer


async def test_a_router_call_that_fails_once_is_retried(env: WorkflowEnvironment,
                                                        task_queue: str) -> None:
    chaos = Chaos(failure_rate=1.0, agents=["router"], faulty_tries=1)
    async with worker(env.client, task_queue):
        result = await run(env.client, task_queue, "support_desk", "My invoice is wrong",
                           cat=fast_catalogue(), chaos=chaos, result_type=TriageResult)
    assert result.handled_by == "billing"
    assert result.status == "ok"
    assert [s.kind for s in result.trace] == ["model_call", "handoff", "model_call"]


@pytest.mark.parametrize("seed", range(6))
async def test_routes_never_leave_declared_targets(env: WorkflowEnvironment, task_queue: str,
                                                   seed: int) -> None:
    chaos = Chaos(malformed_rate=0.5, agents=["router"], seed=seed)
    async with worker(env.client, task_queue):
        result = await run(env.client, task_queue, "support_desk",
                           f"request {seed}: API error on my invoice", chaos=chaos,
                           result_type=TriageResult)
    assert result.handled_by in DECLARED
    handoffs = [s for s in result.trace if s.kind == "handoff"]
    assert len(handoffs) == 1 and handoffs[0].detail.split(":")[0].removeprefix("-> ") in DECLARED


async def test_failed_specialist_falls_back_to_the_default(env: WorkflowEnvironment,
                                                           task_queue: str) -> None:
    cat = fast_catalogue()
    chaos = Chaos(failure_rate=1.0, agents=["billing"])
    async with worker(env.client, task_queue):
        result = await run(env.client, task_queue, "support_desk", "Refund my invoice",
                           cat=cat, chaos=chaos, result_type=TriageResult)
    assert result.handled_by == "general"
    assert result.status == "degraded"
    assert any("billing failed" in r for r in result.reasons)
    assert [s.kind for s in result.trace].count("handoff") == 2


async def test_phase_query_follows_the_run(env: WorkflowEnvironment, task_queue: str) -> None:
    async with worker(env.client, task_queue):
        handle = await start(env.client, task_queue, "support_desk", "My invoice is wrong",
                             result_type=TriageResult)
        await finish(handle)
        phase = await handle.query("phase")
    assert phase == "done"
