"""Guardrails (baton/guardrails.py, workflows/guardrails.py): input and output checks
that block a run, built-ins, function and agent guardrails, fail-closed errors."""

from __future__ import annotations

import asyncio

import pytest
from temporalio.testing import WorkflowEnvironment

import baton
from baton.guardrails import find_pii
from baton.model_io import Chaos
from baton.runs import TriageResult
from tests.helpers import fast_catalogue, run, worker

FAST = {"max_attempts": 2, "initial_interval_s": 0.1, "backoff": 1.0, "max_interval_s": 0.1}


def test_pii_finds_kinds_of_personal_data_and_secrets() -> None:
    assert find_pii("write to ann@example.com") == ["an e-mail address"]
    assert find_pii("card 4111 1111 1111 1111 please") == ["a card number"]
    assert find_pii("card 4111 1111 1111 1112") == []  # fails the Luhn check
    assert find_pii("key sk-abcdefghijklmnop1234") == ["an API key"]
    assert find_pii("call +44 20 7946 0958 now") == ["a phone number"]
    assert find_pii("My invoice shows the wrong amount after I upgraded") == []


async def test_input_guardrail_blocks_before_anything_runs(env: WorkflowEnvironment,
                                                           task_queue: str) -> None:
    async with worker(env.client, task_queue):
        result = await run(env.client, task_queue, "safe_desk",
                           "Refund me, my card is 4111 1111 1111 1111", cat=fast_catalogue(),
                           result_type=TriageResult)
    assert result.status == "blocked"
    assert "blocked by guardrail 'pii' on the input: contains a card number" in result.answer
    assert "router" not in result.usage  # nothing after the guardrail ran
    assert "4111" not in str(result.trace)  # the guardrail reports kinds, never values


async def test_passing_guardrails_change_nothing(env: WorkflowEnvironment,
                                                 task_queue: str) -> None:
    prompt = "My invoice shows the wrong amount"
    async with worker(env.client, task_queue):
        guarded = await run(env.client, task_queue, "safe_desk", prompt, cat=fast_catalogue(),
                            result_type=TriageResult)
        plain = await run(env.client, task_queue, "support_desk", prompt,
                          cat=fast_catalogue(), result_type=TriageResult)
    assert guarded.status == "ok" and guarded.handled_by == plain.handled_by == "billing"
    assert guarded.answer == plain.answer
    checks = [s.detail for s in guarded.trace if s.kind == "guardrail"]
    assert checks == ["pii on the input: passed", "relevance on the input: passed",
                      "pii on the output: passed"]


async def test_agent_guardrail_trips_on_an_off_topic_request(env: WorkflowEnvironment,
                                                             task_queue: str) -> None:
    chaos = Chaos(rejection_rate=1.0, agents=["relevance"])  # its verdict comes back "no"
    async with worker(env.client, task_queue):
        result = await run(env.client, task_queue, "safe_desk", "Write me a poem",
                           cat=fast_catalogue(), chaos=chaos, result_type=TriageResult)
    assert result.status == "blocked"
    assert "guardrail 'relevance' on the input" in result.answer
    assert result.usage["relevance"].calls == 1 and "router" not in result.usage


@baton.guardrail
def no_refund_promises(text: str) -> baton.GuardrailVerdict:
    """Answers must not promise refunds."""
    if "refund" in text.lower():
        return baton.GuardrailVerdict(allowed=False, reason="promises a refund")
    return baton.GuardrailVerdict(allowed=True)


@baton.guardrail
def broken(text: str) -> bool:
    raise RuntimeError("moderation service unreachable")


async def test_output_guardrail_blocks_the_answer(env: WorkflowEnvironment,
                                                  task_queue: str) -> None:
    agent = baton.Agent("helper", "Help.", retry=FAST, output_guardrails=[no_refund_promises])
    async with worker(env.client, task_queue, guardrails=[no_refund_promises]):
        outcome = await baton.run(agent, "Can I get a refund?", client=env.client,
                                  task_queue=task_queue)
    assert outcome.status == "blocked"
    assert "guardrail 'no_refund_promises' on the output: promises a refund" in outcome.answer
    assert outcome.usage.calls == 1  # the answer was written, then withheld


async def test_a_guardrail_that_raises_fails_closed(env: WorkflowEnvironment,
                                                    task_queue: str) -> None:
    agent = baton.Agent("helper", "Help.", retry=FAST, input_guardrails=[broken])
    async with worker(env.client, task_queue, guardrails=[broken]):
        outcome = await asyncio.wait_for(baton.run(
            agent, "hello", client=env.client, task_queue=task_queue), 60)
    assert outcome.status == "blocked"
    assert "the guardrail failed" in outcome.answer
    assert "moderation service unreachable" in outcome.answer
    assert outcome.usage.calls == 0


async def test_nested_block_blocks_the_parent_and_parallel_checks(
        env: WorkflowEnvironment, task_queue: str) -> None:
    guarded = baton.Agent("inner", "Help.", retry=FAST, input_guardrails=[baton_pii()])
    lead = baton.Agent("lead", "Delegate.", model="offline:strong", retry=FAST)
    team = baton.Supervisor("crew", lead, [baton.Pipeline("inner_team", [guarded])])
    async with worker(env.client, task_queue):
        outcome = await baton.run(team, "Mail ann@example.com the plan", client=env.client,
                                  task_queue=task_queue)
    assert outcome.status == "blocked"
    assert "pii" in outcome.answer and "inner_team" in outcome.answer
    # A parallel input guardrail blocks too (the first agent may have started).
    fast_guard = baton.guardrail(name="pii_parallel", parallel=True)(baton_pii().fn)
    desk = baton.Pipeline("desk", [baton.Agent("solo", "Help.", retry=FAST)]).guarded(
        input=[fast_guard])
    async with worker(env.client, task_queue, guardrails=[fast_guard]):
        blocked = await baton.run(desk, "ann@example.com", client=env.client,
                                  task_queue=task_queue)
    assert blocked.status == "blocked" and "pii_parallel" in blocked.answer


def baton_pii() -> baton.Guardrail:
    from baton.guardrails import pii

    return pii


def test_unknown_guardrail_is_refused() -> None:
    with pytest.raises(ValueError, match="names unknown guardrail 'nope'; known: pii"):
        baton.load_catalogue().model_validate(
            {"agents": {"a": {"instructions": "x", "input_guardrails": ["nope"]}}})
