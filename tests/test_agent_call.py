"""run_agent and the run ledger (workflows/agent_call.py): budgets, repairs, escalation."""

from __future__ import annotations

import pytest
from temporalio.testing import WorkflowEnvironment

from baton.core.model_io import Chaos
from baton.core.runs import FanOutResult, PipelineResult, RunOptions, SupervisorResult, TriageResult
from baton.core.usage import Budget, Price, Usage
from tests.helpers import (
    fast_catalogue,
    run,
    run_with_requests,
    worker,
)


def test_budget_arithmetic() -> None:
    budget = Budget(max_tokens=1000, max_calls=10, max_usd=1.0)
    spent = Usage(calls=4, input_tokens=300, output_tokens=100, cost_usd=0.25)
    assert budget.exceeded_by(spent) is None
    assert budget.remaining(spent) == Budget(max_tokens=600, max_calls=6, max_usd=0.75)
    assert budget.remaining(spent).share(4) == Budget(max_tokens=150, max_calls=1,
                                                      max_usd=0.1875)
    assert budget.exceeded_by(spent.plus(Usage(calls=6))) == "calls: 10 of 10"
    assert Budget().exceeded_by(spent) is None


def test_budgets_must_be_positive() -> None:
    with pytest.raises(ValueError, match="greater than 0"):
        Budget(max_calls=0)
    with pytest.raises(ValueError, match="greater than 0"):
        RunOptions.model_validate({"budget": {"max_usd": -1}})


async def test_call_budget_stops_a_pipeline_with_partial_results(env: WorkflowEnvironment,
                                                                 task_queue: str) -> None:
    async with worker(env.client, task_queue):
        result = await run(env.client, task_queue, "article_pipeline", "Durable agents",
                           result_type=PipelineResult, budget=Budget(max_calls=2))
    assert result.status == "budget_exhausted"
    assert result.total_usage.calls == 2
    assert "Budget exhausted (calls: 2 of 2)" in result.answer
    assert "- outliner:" in result.answer and "- writer:" in result.answer
    assert result.reasons[-1] == "budget exhausted (calls: 2 of 2); partial results"


async def test_token_budget_trims_the_next_call(env: WorkflowEnvironment,
                                                task_queue: str) -> None:
    async with worker(env.client, task_queue):
        result, requests = await run_with_requests(
            env.client, task_queue, "support_desk", "Refund my invoice",
            result_type=TriageResult, budget=Budget(max_tokens=150))
    router_tokens = result.usage["router"].total_tokens
    assert router_tokens < 150
    # the specialist may only ask for what is left
    assert requests[1]["max_output_tokens"] == 150 - router_tokens
    assert result.status == "ok"


async def test_usd_budget(env: WorkflowEnvironment, task_queue: str) -> None:
    cat = fast_catalogue()
    cat.prices["offline:fast"] = Price(input_per_mtok=1000, output_per_mtok=1000)
    async with worker(env.client, task_queue):
        result = await run(env.client, task_queue, "support_desk", "Refund my invoice", cat=cat,
                           result_type=TriageResult, budget=Budget(max_usd=0.01))
    assert result.status == "budget_exhausted"
    assert (result.total_usage.cost_usd or 0) >= 0.01
    assert "USD:" in result.reasons[-1]
    assert set(result.usage) == {"router"}  # the specialist was never called


async def test_retries_count_against_the_call_budget(env: WorkflowEnvironment,
                                                     task_queue: str) -> None:
    # The router fails once and succeeds on Temporal's retry: two calls.
    chaos = Chaos(failure_rate=1.0, agents=["router"], faulty_tries=1)
    async with worker(env.client, task_queue):
        result = await run(env.client, task_queue, "support_desk", "Refund my invoice",
                           cat=fast_catalogue(), chaos=chaos, result_type=TriageResult,
                           budget=Budget(max_calls=2))
    assert result.usage["router"].calls == 2
    assert result.status == "budget_exhausted"


async def test_fan_out_branches_share_the_budget(env: WorkflowEnvironment,
                                                 task_queue: str) -> None:
    async with worker(env.client, task_queue):
        result = await run(env.client, task_queue, "research_panel", "Rust or Go?",
                           result_type=FanOutResult, budget=Budget(max_calls=3))
    # each branch had a share of one call and reported it back; none was left to synthesize
    assert result.status == "budget_exhausted"
    assert {a: u.calls for a, u in result.usage.items()} == {
        "academic": 1, "industry": 1, "news": 1}
    assert result.answer.count("\n- ") == 3


async def test_supervisor_stopped_by_its_budget(env: WorkflowEnvironment,
                                                task_queue: str) -> None:
    async with worker(env.client, task_queue):
        result = await run(env.client, task_queue, "dev_team", "Write a parser",
                           result_type=SupervisorResult, budget=Budget(max_calls=4))
    assert result.status == "budget_exhausted"
    assert result.total_usage.calls == 4
    assert [d.worker for d in result.delegations] == ["researcher"]


async def test_escalation_to_a_fallback_model_after_repairs(env: WorkflowEnvironment,
                                                            task_queue: str) -> None:
    cat = fast_catalogue(outliner={"fallback_models": ["offline:careful"]})
    chaos = Chaos(malformed_rate=1.0, models=["offline:standard"], agents=["outliner"])
    async with worker(env.client, task_queue):
        result = await run(env.client, task_queue, "article_pipeline", "Durable agents",
                           cat=cat, chaos=chaos, result_type=PipelineResult)
    kinds = [s.kind for s in result.trace if s.agent == "outliner"]
    assert kinds[:5] == ["repair", "repair", "repair", "fallback", "model_call"]
    assert result.status == "degraded"
    assert "outliner answered on fallback offline:careful" in result.reasons[0]
    assert result.stages[0].output is not None


async def test_deadline_ends_the_run_with_partial_results(env: WorkflowEnvironment,
                                                          task_queue: str) -> None:
    slow = Chaos(latency_s=1.0)
    async with worker(env.client, task_queue):
        result, requests = await run_with_requests(
            env.client, task_queue, "article_pipeline", "Durable agents", chaos=slow,
            result_type=PipelineResult, budget=Budget(max_seconds=2.5))
    assert result.status == "budget_exhausted"
    assert "time:" in result.reasons[-1]
    assert "- outliner:" in result.answer and "- writer:" in result.answer
    # the call in flight at the deadline was cut short by its schedule-to-close timeout
    assert [r["agent"] for r in requests] == ["outliner", "writer", "editor"]
    assert "formatter" not in result.answer


async def test_token_budget_exhausts(env: WorkflowEnvironment, task_queue: str) -> None:
    async with worker(env.client, task_queue):
        result = await run(env.client, task_queue, "article_pipeline", "Durable agents",
                           result_type=PipelineResult, budget=Budget(max_tokens=250))
    assert result.status == "budget_exhausted"
    assert "tokens:" in result.reasons[-1]
    assert result.total_usage.total_tokens >= 250
    assert "- outliner:" in result.answer


def test_contract_violation_names_the_field() -> None:
    from baton.core.model_io import ModelResponse
    from baton.workflows.agent_call import _check

    response = ModelResponse(model="m", text="{}", parsed={"title": "", "sections": ["a"]})
    problem, output = _check("Outline", response, None)
    assert output is None
    assert problem is not None and problem.startswith("title: String should have at least 1")
    assert "(2 error(s))" in problem


async def test_a_hung_call_times_out_and_is_retried(env: WorkflowEnvironment,
                                                    task_queue: str) -> None:
    # The offline router hangs on its first try; start-to-close (1 s) ends it.
    cat = fast_catalogue(router={"timeout_s": 1.0, "heartbeat_s": 0.5})
    chaos = Chaos(timeout_rate=1.0, agents=["router"], faulty_tries=1)
    async with worker(env.client, task_queue):
        result = await run(env.client, task_queue, "support_desk", "Refund my invoice",
                           cat=cat, chaos=chaos, result_type=TriageResult)
    assert result.handled_by == "billing" and result.status == "ok"
    assert result.usage["router"].calls == 2  # the timed-out attempt, then the retry
