"""FanOutWorkflow: child workflow per branch, reducer, synthesizer, partial-failure policies."""

from __future__ import annotations

import pytest
from temporalio.client import WorkflowFailureError
from temporalio.exceptions import ApplicationError
from temporalio.testing import WorkflowEnvironment

from baton.model_io import Chaos
from baton.runs import BranchOutcome, FanOutResult
from baton.workflows.fanout import merge_branches
from tests.helpers import fast_catalogue, finish, run, start, worker

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
