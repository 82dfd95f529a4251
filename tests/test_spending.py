"""Honest spending: every result's usage equals what the model-call activities of the
run and all its children recorded, failed and budget-stopped nested runs included."""

from __future__ import annotations

import json

import pytest
from temporalio.api.enums.v1 import EventType
from temporalio.testing import WorkflowEnvironment

import baton
from baton.core.model_io import Chaos, Message
from baton.core.runs import RunOptions, RunResult
from baton.core.specs import Catalogue
from baton.core.usage import Budget
from baton.runtime.launch import plan_run, start_run
from tests.helpers import fast_catalogue, finish, worker

FAST = {"max_attempts": 2, "initial_interval_s": 0.1, "backoff": 1.0, "max_interval_s": 0.1}


async def recorded_tokens(env: WorkflowEnvironment, workflow_id: str) -> tuple[int, int]:
    """(input, output) tokens of every completed call_model activity in the run's tree."""
    ids = [workflow_id] + [w.id async for w in env.client.list_workflows(
        f"WorkflowId STARTS_WITH '{workflow_id}/'")]
    totals = [0, 0]
    for wid in ids:
        history = await env.client.get_workflow_handle(wid).fetch_history()
        kinds = {e.event_id: e.activity_task_scheduled_event_attributes.activity_type.name
                 for e in history.events
                 if e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED}
        for event in history.events:
            if event.event_type != EventType.EVENT_TYPE_ACTIVITY_TASK_COMPLETED:
                continue
            done = event.activity_task_completed_event_attributes
            if kinds.get(done.scheduled_event_id) != "call_model":
                continue
            usage = json.loads(done.result.payloads[0].data)["usage"]
            totals[0] += usage["input_tokens"]
            totals[1] += usage["output_tokens"]
    return totals[0], totals[1]


async def run_and_compare(env: WorkflowEnvironment, task_queue: str, catalogue: Catalogue,
                          member: str, prompt: str, options: RunOptions) -> RunResult:
    planned = plan_run(catalogue, member, [Message(role="user", content=prompt)], options)
    async with worker(env.client, task_queue):
        result = await finish(await start_run(env.client, task_queue, planned))
    total = result.total_usage
    assert (total.input_tokens, total.output_tokens) == await recorded_tokens(
        env, planned.workflow_id)
    return result


CASES = [
    ("support_desk", "My invoice is wrong", None, None, "ok"),
    ("research_panel", "Is Rust fast?", None, None, "ok"),
    ("dev_team", "Write a parser", None, None, "ok"),
    ("article_pipeline", "Durable execution", None, None, "ok"),
    ("concierge_desk", "Research vector databases", None, None, "ok"),
    ("support_desk", "My invoice is wrong", Chaos(failure_rate=1.0, agents=["billing"]), None,
     "degraded"),
    ("research_panel", "Is Rust fast?", Chaos(failure_rate=1.0, agents=["news"]), None,
     "degraded"),
    ("dev_team", "Write a parser", Chaos(failure_rate=1.0, agents=["researcher"]), None,
     "degraded"),
    ("support_desk", "My invoice is wrong", None, Budget(max_calls=1), "budget_exhausted"),
    ("research_panel", "Is Rust fast?", None, Budget(max_calls=3), "budget_exhausted"),
    ("dev_team", "Write a parser", None, Budget(max_calls=4), "budget_exhausted"),
    ("article_pipeline", "Durable execution", None, Budget(max_calls=2), "budget_exhausted"),
    ("concierge_desk", "Research vector databases", None, Budget(max_calls=6),
     "budget_exhausted"),
]


@pytest.mark.parametrize(("member", "prompt", "chaos", "budget", "status"), CASES,
                         ids=[f"{c[0]}-{c[4]}" for c in CASES])
async def test_usage_equals_recorded_calls(env: WorkflowEnvironment, task_queue: str,
                                           member: str, prompt: str, chaos: Chaos | None,
                                           budget: Budget | None, status: str) -> None:
    result = await run_and_compare(env, task_queue, fast_catalogue(), member, prompt,
                                   RunOptions(chaos=chaos, budget=budget or Budget()))
    assert result.status == status


async def test_a_failed_child_still_reports_what_it_spent(env: WorkflowEnvironment,
                                                          task_queue: str) -> None:
    drafter = baton.Agent("drafter", "Draft.", retry=FAST)
    checker = baton.Agent("checker", "Check.", retry=FAST)
    other = baton.Agent("other", "Answer.", retry=FAST)
    synth = baton.Agent("synth", "Merge.", retry=FAST)
    team = baton.FanOut("panel", branches=[baton.Pipeline("draft_check", [drafter, checker]),
                                           other], synthesizer=synth, policy="best_effort")
    # The pipeline branch spends on its drafter, then fails on its checker.
    result = await run_and_compare(env, task_queue, team.catalogue(), "panel", "Go",
                                   RunOptions(chaos=Chaos(failure_rate=1.0,
                                                          agents=["checker"])))
    assert result.status == "degraded"
    assert result.usage["drafter"].input_tokens > 0  # counted although its run failed
    assert result.usage["checker"].calls == 2  # two failed attempts, no tokens
