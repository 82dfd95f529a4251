"""PipelineWorkflow: typed stage contracts, gate loop-back, bounded attempts, escalation."""

from __future__ import annotations

import pytest
from temporalio.client import WorkflowFailureError
from temporalio.exceptions import ApplicationError
from temporalio.testing import WorkflowEnvironment

from baton.core.contracts import Article, Draft, EditedDraft, Outline
from baton.core.model_io import Chaos
from baton.core.runs import PipelineResult
from tests.helpers import (
    fast_catalogue,
    finish,
    run,
    run_with_requests,
    start,
    worker,
)

TOPIC = "Durable execution for AI agents"


async def test_stages_run_in_order_with_valid_contracts(env: WorkflowEnvironment,
                                                        task_queue: str) -> None:
    async with worker(env.client, task_queue):
        result, requests = await run_with_requests(
            env.client, task_queue, "article_pipeline", TOPIC, result_type=PipelineResult)
    assert result.status == "ok"
    assert [(s.stage, s.attempts) for s in result.stages] == [
        ("outliner", 1), ("writer", 1), ("editor", 1), ("formatter", 1)]
    for stage, contract in zip(result.stages, (Outline, Draft, EditedDraft, Article),
                               strict=True):
        contract.model_validate(stage.output)
    assert result.answer.startswith(f"# On {TOPIC}")
    # each stage is handed the previous stage's validated output
    assert '"sections"' in requests[1]["messages"][0]["content"]


async def test_gate_rejection_loops_back_to_the_writer(env: WorkflowEnvironment,
                                                       task_queue: str) -> None:
    chaos = Chaos(rejection_rate=1.0, agents=["editor"], faulty_tries=1)
    async with worker(env.client, task_queue):
        result, requests = await run_with_requests(
            env.client, task_queue, "article_pipeline", TOPIC, chaos=chaos,
            result_type=PipelineResult)
    assert result.status == "ok"
    assert [(s.stage, s.attempts) for s in result.stages] == [
        ("outliner", 1), ("writer", 2), ("editor", 2), ("formatter", 1)]
    gates = [s for s in result.trace if s.kind == "gate"]
    assert [g.ok for g in gates] == [False, True]
    second_writer = [r for r in requests if r["agent"] == "writer"][1]
    assert "Feedback to address: Simulated rejection" in second_writer["messages"][0]["content"]


async def test_gate_that_never_passes_escalates(env: WorkflowEnvironment,
                                                task_queue: str) -> None:
    chaos = Chaos(rejection_rate=1.0, agents=["editor"])
    async with worker(env.client, task_queue):
        result = await run(env.client, task_queue, "article_pipeline", TOPIC, chaos=chaos,
                           result_type=PipelineResult)
    assert result.status == "degraded"
    assert [(s.stage, s.attempts) for s in result.stages][1:3] == [("writer", 3), ("editor", 3)]
    assert "gate editor.approved still failing after 3 attempts" in result.reasons[0]


async def test_malformed_stage_output_is_repaired_not_passed_on(env: WorkflowEnvironment,
                                                                task_queue: str) -> None:
    chaos = Chaos(malformed_rate=1.0, agents=["writer"], faulty_tries=1)
    async with worker(env.client, task_queue):
        result, requests = await run_with_requests(
            env.client, task_queue, "article_pipeline", TOPIC, chaos=chaos,
            result_type=PipelineResult)
    assert result.status == "ok"
    assert [s.kind for s in result.trace if s.agent == "writer"][:2] == ["repair", "model_call"]
    editor_input = next(r for r in requests if r["agent"] == "editor")["messages"][0]["content"]
    assert "not json" not in editor_input and "12345" not in editor_input
    Draft.model_validate(result.stages[1].output)


async def test_stage_that_never_meets_its_contract_is_a_contract_violation(env: WorkflowEnvironment,
                                                               task_queue: str) -> None:
    chaos = Chaos(malformed_rate=1.0, agents=["outliner"])
    async with worker(env.client, task_queue):
        with pytest.raises(WorkflowFailureError) as caught:
            await run(env.client, task_queue, "article_pipeline", TOPIC,
                      cat=fast_catalogue(), chaos=chaos, result_type=PipelineResult)
    cause = caught.value.cause
    assert isinstance(cause, ApplicationError) and cause.type == "ContractViolation"
    assert "agent 'outliner' failed: baton.Outline violated" in cause.message


async def test_current_stage_query_names_the_last_stage_and_attempt(
        env: WorkflowEnvironment, task_queue: str) -> None:
    chaos = Chaos(rejection_rate=1.0, agents=["editor"], faulty_tries=1)
    async with worker(env.client, task_queue):
        handle = await start(env.client, task_queue, "article_pipeline", TOPIC, chaos=chaos,
                             result_type=PipelineResult)
        await finish(handle)
        stage = await handle.query("current_stage")
    assert stage == "formatter (attempt 1)"


async def test_a_gate_may_be_a_predicate_of_the_stage_output(env: WorkflowEnvironment,
                                                             task_queue: str) -> None:
    from typing import Literal

    from pydantic import BaseModel

    import baton

    class GradedScore(BaseModel):
        score: Literal["pass", "fail"]
        feedback: str

    seen: list[str] = []

    def never_good_enough(out: GradedScore) -> bool:
        seen.append(out.score)  # the stage's own model reaches the predicate
        return False

    drafter = baton.Agent("gate_drafter", "Draft.", retry={"max_attempts": 1})
    grader = baton.Agent("gate_grader", "Grade the draft.", output=GradedScore,
                         retry={"max_attempts": 1})
    team = baton.Pipeline("graded", [drafter, baton.Stage(grader, gate=never_good_enough,
                                                           loop_back_to=drafter)],
                          max_attempts=2)
    async with baton.worker(team, client=env.client, task_queue=task_queue):
        outcome = await baton.run(team, "Durable execution", client=env.client,
                                  task_queue=task_queue)
    assert seen and set(seen) <= {"pass", "fail"}
    assert [(s.stage, s.attempts) for s in outcome.result.stages] == [
        ("gate_drafter", 2), ("gate_grader", 2)]
    gates = [s for s in outcome.result.trace if s.kind == "gate"]
    assert len(gates) == 2 and not any(g.ok for g in gates)
    assert gates[0].detail.startswith("gate graded/gate_grader=False")
    assert outcome.status == "degraded"
    assert any("graded/gate_grader still failing after 2 attempts" in r
               for r in outcome.result.reasons)
