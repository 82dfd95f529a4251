"""SupervisorWorkflow: workers as tools, review verdicts, bounded revisions and rounds."""

from __future__ import annotations

from temporalio.testing import WorkflowEnvironment

from baton.core.model_io import Chaos
from baton.core.runs import SupervisorResult
from tests.helpers import fast_catalogue, finish, run, start, worker


async def test_delegates_to_each_worker_and_accepts(env: WorkflowEnvironment,
                                                    task_queue: str) -> None:
    async with worker(env.client, task_queue):
        handle = await start(env.client, task_queue, "dev_team", "Write a date parser",
                             result_type=SupervisorResult)
        result = await finish(handle)
        live = await handle.query("delegations")
    assert result.status == "ok"
    assert [(d.worker, d.verdict) for d in result.delegations] == [
        ("researcher", "accept"), ("coder", "accept"), ("reviewer", "accept")]
    assert len(live) == 3
    assert result.rounds == 4  # three delegating rounds, then the final answer
    assert "the team reports" in result.answer
    # lead: 4 turns + 3 reviews
    assert result.usage["lead"].calls == 7
    assert [s.kind for s in result.trace].count("review") == 3


async def test_revision_is_bounded(env: WorkflowEnvironment, task_queue: str) -> None:
    # The offline lead asks for a revision whenever the task says "revise".
    async with worker(env.client, task_queue):
        result = await run(env.client, task_queue, "dev_team",
                           "Draft a parser, then revise it", result_type=SupervisorResult)
    verdicts = [d.verdict for d in result.delegations]
    assert verdicts == ["forced_accept"] * 3
    # one revision each (max_revisions = 1): every worker ran twice
    assert all(result.usage[w].calls == 2 for w in ("researcher", "coder", "reviewer"))


async def test_reassign_moves_the_task_to_another_worker(env: WorkflowEnvironment,
                                                         task_queue: str) -> None:
    cat = fast_catalogue()
    team = cat.teams["dev_team"]
    team.workers = ["researcher", "coder"]  # type: ignore[union-attr]
    async with worker(env.client, task_queue):
        result = await run(env.client, task_queue, "dev_team",
                           "Please reassign this coder task", cat=cat,
                           result_type=SupervisorResult)
    first = result.delegations[0]
    assert first.worker == "coder"  # reassigned away from the researcher
    assert result.usage["researcher"].calls >= 1


async def test_failed_worker_is_reassigned(env: WorkflowEnvironment, task_queue: str) -> None:
    chaos = Chaos(failure_rate=1.0, agents=["researcher"])
    async with worker(env.client, task_queue):
        result = await run(env.client, task_queue, "dev_team", "Write a date parser",
                           cat=fast_catalogue(), chaos=chaos, result_type=SupervisorResult)
    assert result.status == "degraded"
    assert result.delegations[0].worker == "coder"
    assert any("researcher failed; reassigned to coder" in r for r in result.reasons)


async def test_round_limit_forces_a_final_answer(env: WorkflowEnvironment,
                                                 task_queue: str) -> None:
    cat = fast_catalogue()
    team = cat.teams["dev_team"]
    team.max_rounds = 2  # type: ignore[union-attr]
    async with worker(env.client, task_queue):
        result = await run(env.client, task_queue, "dev_team", "Write a date parser", cat=cat,
                           result_type=SupervisorResult)
    assert result.rounds == 2
    assert [d.worker for d in result.delegations] == ["researcher", "coder"]
    assert result.status == "degraded"
    assert "round limit 2 reached" in result.reasons[0]
    assert result.answer.startswith("[offline")


async def test_without_review_results_reach_the_supervisor_as_they_are(
        env: WorkflowEnvironment, task_queue: str) -> None:
    from tests.helpers import run_with_requests

    cat = fast_catalogue()
    raw = cat.model_dump(mode="json")
    raw["teams"]["dev_team"]["review"] = False
    from baton.define.catalogue import parse_catalogue

    cat = parse_catalogue(raw)
    async with worker(env.client, task_queue):
        result, requests = await run_with_requests(
            env.client, task_queue, "dev_team", "Write a date parser", cat=cat,
            result_type=SupervisorResult)
    assert result.status == "ok"
    assert [(d.worker, d.verdict) for d in result.delegations] == [
        ("researcher", "unreviewed"), ("coder", "unreviewed"), ("reviewer", "unreviewed")]
    assert result.usage["lead"].calls == 4  # 4 turns, no review calls
    assert "review" not in [s.kind for s in result.trace]
    last = [r for r in requests if r["agent"] == "lead"][-1]  # holds every tool result
    lead_views = [m["content"] for m in last["messages"] if m["role"] == "tool"]
    # the supervisor's model read each worker's answer exactly, with no verdict prefix
    assert lead_views == [d.answer for d in result.delegations]
