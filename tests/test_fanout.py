"""FanOutWorkflow: child workflow per branch, reducer, synthesizer, partial-failure policies,
a coordinator's planned subtasks, and a map over the caller's items."""

from __future__ import annotations

import json

import pytest
from temporalio.client import WorkflowFailureError
from temporalio.exceptions import ApplicationError
from temporalio.testing import WorkflowEnvironment

from baton.core.model_io import Chaos, ModelRequest, ModelResponse
from baton.core.runs import BranchOutcome, FanOutResult
from baton.workflows.fanout import merge_branches
from tests.helpers import fast_catalogue, finish, run, start, worker
from tests.scripted import scripted_offline

QUESTION = "Is durable execution worth it for LLM agents?"


async def test_branches_run_as_children_and_are_synthesized(env: WorkflowEnvironment,
                                                             task_queue: str) -> None:
    async with worker(env.client, task_queue):
        handle = await start(env.client, task_queue, "research_panel", QUESTION,
                             result_type=FanOutResult)
        result = await finish(handle)
    assert result.status == "ok"
    assert [b.branch for b in result.branches] == ["academic", "industry", "news"]
    assert all(b.ok and b.output and b.output["key_points"] for b in result.branches)
    assert result.answer.startswith("[offline")
    assert set(result.usage) == {"academic", "industry", "news", "synthesizer"}
    children = [w async for w in env.client.list_workflows(
        f"WorkflowId STARTS_WITH '{handle.id}/'")]
    assert sorted(w.id for w in children) == [f"{handle.id}/{b}"
                                              for b in ("academic", "industry", "news")]
    assert {w.workflow_type for w in children} == {"AgentWorkflow"}


async def test_quorum_survives_a_failing_branch(env: WorkflowEnvironment,
                                                task_queue: str) -> None:
    chaos = Chaos(failure_rate=1.0, agents=["news"])
    async with worker(env.client, task_queue):
        result = await run(env.client, task_queue, "research_panel", QUESTION,
                           cat=fast_catalogue(), chaos=chaos, result_type=FanOutResult)
    assert result.status == "degraded"
    failed = [b for b in result.branches if not b.ok]
    assert [b.branch for b in failed] == ["news"]
    assert "ModelUnavailable" in (failed[0].error or "")
    assert "## news" not in result.answer
    assert any("1 branch(es) failed" in r for r in result.reasons)


async def test_quorum_not_met_fails_the_run(env: WorkflowEnvironment, task_queue: str) -> None:
    chaos = Chaos(failure_rate=1.0, agents=["news", "industry"])
    async with worker(env.client, task_queue):
        with pytest.raises(WorkflowFailureError) as caught:
            await run(env.client, task_queue, "research_panel", QUESTION,
                      cat=fast_catalogue(), chaos=chaos, result_type=FanOutResult)
    cause = caught.value.cause
    assert isinstance(cause, ApplicationError) and cause.type == "FanOutPolicyNotMet"
    assert "1 of 3 branches succeeded" in cause.message


@pytest.mark.parametrize(("policy", "ok"), [("all", False), ("best_effort", True)])
async def test_policies_all_and_best_effort(env: WorkflowEnvironment, task_queue: str,
                                            policy: str, ok: bool) -> None:
    cat = fast_catalogue()
    panel = cat.teams["research_panel"]
    panel.policy = policy  # type: ignore[union-attr]
    chaos = Chaos(failure_rate=1.0, agents=["academic", "news"])
    async with worker(env.client, task_queue):
        if ok:
            result = await run(env.client, task_queue, "research_panel", QUESTION, cat=cat,
                               chaos=chaos, result_type=FanOutResult)
            assert [b.branch for b in result.branches if b.ok] == ["industry"]
            assert result.status == "degraded"
        else:
            with pytest.raises(WorkflowFailureError):
                await run(env.client, task_queue, "research_panel", QUESTION, cat=cat,
                          chaos=chaos, result_type=FanOutResult)


async def test_failed_synthesizer_returns_merged_findings(env: WorkflowEnvironment,
                                                          task_queue: str) -> None:
    chaos = Chaos(failure_rate=1.0, agents=["synthesizer"])
    async with worker(env.client, task_queue):
        result = await run(env.client, task_queue, "research_panel", QUESTION,
                           cat=fast_catalogue(), chaos=chaos, result_type=FanOutResult)
    assert result.status == "degraded"
    assert result.answer.startswith("## academic")
    assert "synthesizer failed" in result.reasons[0]


def test_merge_branches_renders_findings_and_text() -> None:
    merged = merge_branches([
        BranchOutcome(branch="a", ok=True, contract="Findings", output={
            "summary": "S", "key_points": ["p1", "p2"], "confidence": 0.5}),
        BranchOutcome(branch="b", ok=True, answer="plain text"),
    ])
    assert merged == "## a\nS (confidence 0.5)\n  - p1\n  - p2\n\n## b\nplain text"


async def test_large_fan_out_runs_through_shards(env: WorkflowEnvironment,
                                                 task_queue: str) -> None:
    cat = fast_catalogue()
    panel = cat.teams["research_panel"]
    panel.branches = ["academic", "industry", "news"] * 10  # type: ignore[union-attr]
    panel.quorum = 20  # type: ignore[union-attr]
    panel.branch_runs = "child"  # type: ignore[union-attr]
    async with worker(env.client, task_queue):
        handle = await start(env.client, task_queue, "research_panel", QUESTION, cat=cat,
                             result_type=FanOutResult)
        result = await finish(handle)
        shards = [w.id async for w in env.client.list_workflows(
            f"WorkflowId STARTS_WITH '{handle.id}/shard-' AND WorkflowType = "
            "'FanOutShardWorkflow'")]
        branch_ids = [w.id async for w in env.client.list_workflows(
            f"WorkflowId STARTS_WITH '{handle.id}/' AND WorkflowType = 'AgentWorkflow'")]
        progress = await handle.query("progress")
    assert sorted(shards) == [f"{handle.id}/shard-1", f"{handle.id}/shard-2"]  # 25 + 5
    assert len(branch_ids) == 30 and all("/shard-" in i for i in branch_ids)
    assert len(result.branches) == 30 and all(b.ok for b in result.branches)
    assert result.usage["academic"].calls == 10
    assert progress == "30/30 branches finished"


async def test_large_fan_out_runs_agent_branches_as_agent_calls(
        env: WorkflowEnvironment, task_queue: str) -> None:
    cat = fast_catalogue()
    panel = cat.teams["research_panel"]
    panel.branches = ["academic", "industry", "news"] * 10  # type: ignore[union-attr]
    panel.policy = "best_effort"  # type: ignore[union-attr]
    # Every news branch fails, on a model of its own (its breaker opens, no one else's).
    cat.agents["news"].model = "offline:flaky"
    chaos = Chaos(failure_rate=1.0, agents=["news"])
    async with worker(env.client, task_queue):
        handle = await start(env.client, task_queue, "research_panel", QUESTION, cat=cat,
                             chaos=chaos, result_type=FanOutResult)
        result = await finish(handle)
        children = await children_of(env, handle.id)
        history = await handle.fetch_history()
    assert children == []  # no child per branch (up to 100 run in the fan-out itself)
    assert len(result.branches) == 30
    assert [b.ok for b in result.branches].count(False) == 10  # news failed alone
    # each branch's calls are its own activities, retried on their own: siblings of the
    # failed branches never ran again (the open breaker cut some news retries short)
    assert result.usage["academic"].calls == result.usage["industry"].calls == 10
    assert 10 <= result.usage["news"].calls <= 20
    summaries = [e.user_metadata.summary.data.decode() for e in history.events
                 if e.HasField("activity_task_scheduled_event_attributes")]
    assert summaries.count('"academic · offline:standard"') == 10
    assert result.status == "degraded"


async def children_of(env: WorkflowEnvironment, workflow_id: str) -> list[str]:
    return sorted([w.id async for w in env.client.list_workflows(
        f"WorkflowId STARTS_WITH '{workflow_id}/'")])


async def test_coordinator_splits_the_request_into_child_branches(env: WorkflowEnvironment,
                                                                  task_queue: str) -> None:
    async with worker(env.client, task_queue):
        handle = await start(env.client, task_queue, "research_coordinator", QUESTION,
                             result_type=FanOutResult)
        result = await finish(handle)
    assert result.status == "ok"
    assert result.plan is not None and len(result.plan) == 3
    assert [t.member for t in result.plan] == ["academic", "industry", "news"]
    assert all(t.task and QUESTION in t.task for t in result.plan)
    # one child workflow per subtask, each with its subtask as its prompt
    assert await children_of(env, handle.id) == [
        f"{handle.id}/academic", f"{handle.id}/industry", f"{handle.id}/news"]
    assert [b.task for b in result.branches] == [t.task for t in result.plan]
    assert any(s.kind == "plan" for s in result.trace)
    assert "Focus on the evidence so far" in result.answer or result.branches[0].ok


async def test_plan_longer_than_max_branches_is_cut_and_said(env: WorkflowEnvironment,
                                                             task_queue: str) -> None:
    def six_subtasks(request: ModelRequest) -> ModelResponse | None:
        if request.agent != "coordinator":
            return None
        plan = {"subtasks": [{"task": f"part {i}", "member": "news"} for i in range(6)]}
        return ModelResponse(model=request.model, text=json.dumps(plan), parsed=plan)

    async with worker(env.client, task_queue):
        with scripted_offline(six_subtasks):
            handle = await start(env.client, task_queue, "research_coordinator", QUESTION,
                                 result_type=FanOutResult)
            result = await finish(handle)
    assert result.plan is not None and len(result.plan) == 4
    assert result.plan_note == "the planner proposed 6 subtasks; cut to max_branches 4"
    assert len(await children_of(env, handle.id)) == 4
    assert result.status == "degraded" and result.plan_note in result.reasons


async def test_empty_plan_is_a_typed_failure_or_the_declared_branches(
        env: WorkflowEnvironment, task_queue: str) -> None:
    def no_subtasks(request: ModelRequest) -> ModelResponse | None:
        if request.agent != "coordinator":
            return None
        return ModelResponse(model=request.model, text='{"subtasks": []}',
                             parsed={"subtasks": []})

    cat = fast_catalogue()
    async with worker(env.client, task_queue):
        with scripted_offline(no_subtasks):
            with pytest.raises(WorkflowFailureError) as caught:
                await run(env.client, task_queue, "research_coordinator", QUESTION, cat=cat,
                          result_type=FanOutResult)
            cause = caught.value.cause
            assert isinstance(cause, ApplicationError) and cause.type == "PlanFailed"
            assert "subtasks: List should have at least 1 item" in cause.message
            team = cat.teams["research_coordinator"]
            team.branches = ["academic", "news"]  # type: ignore[union-attr]
            result = await run(env.client, task_queue, "research_coordinator", QUESTION,
                               cat=cat, result_type=FanOutResult)
    assert result.status == "degraded" and result.plan is None
    assert [b.branch for b in result.branches] == ["academic", "news"]
    assert "ran the declared branches" in result.reasons[0]


async def test_map_runs_one_member_over_the_callers_items(env: WorkflowEnvironment,
                                                          task_queue: str) -> None:
    import baton

    analyst = baton.Agent("analyst", "Summarise one document.", model="offline:fast")
    writer = baton.Agent("editor", "Merge the summaries.", model="offline:fast")
    team = baton.Map("summaries", analyst, synthesizer=writer)
    items = ["Doc one: durable execution", "Doc two: circuit breakers", "Doc three: budgets"]
    async with worker(env.client, task_queue):
        outcome = await baton.run(team, "Summarise these documents", items=items,
                                  client=env.client, task_queue=task_queue)
        children = await children_of(env, outcome.workflow_id)
    assert len(children) == 3
    result = outcome.result
    assert isinstance(result, FanOutResult)
    assert [b.task for b in result.branches] == items
    assert all(item in b.answer for item, b in zip(items, result.branches, strict=True))
    with pytest.raises(ValueError, match="runs 'analyst' over a list of items; give them"):
        await baton.start(team, "no items", client=env.client, task_queue=task_queue)


async def test_very_large_fan_out_shards_agent_calls_by_the_hundred(
        env: WorkflowEnvironment, task_queue: str) -> None:
    cat = fast_catalogue()
    panel = cat.teams["research_panel"]
    panel.branches = ["academic", "industry", "news"] * 40  # type: ignore[union-attr]
    async with worker(env.client, task_queue):
        handle = await start(env.client, task_queue, "research_panel", QUESTION, cat=cat,
                             result_type=FanOutResult)
        result = await finish(handle)
        children = await children_of(env, handle.id)
    assert children == [f"{handle.id}/shard-1", f"{handle.id}/shard-2"]  # 100 + 20
    assert len(result.branches) == 120 and all(b.ok for b in result.branches)
    assert result.usage["news"].calls == 40
