"""The Python API (baton/define/api.py): teams built in code, composed, run with typed outputs."""

from __future__ import annotations

import asyncio
import re
from typing import Any

import pytest
from pydantic import BaseModel, Field
from temporalio.testing import WorkflowEnvironment

import baton
from baton.core.contracts import ContractError, register_contract
from baton.core.model_io import Chaos
from baton.core.runs import PipelineResult, RunOptions, SupervisorResult, TriageResult
from tests.helpers import worker

FAST = {"max_attempts": 2, "initial_interval_s": 0.1, "backoff": 1.0, "max_interval_s": 0.1}


class Ticket(BaseModel):
    """A support ticket extracted from a message."""

    customer: str = Field(min_length=1)
    topic: str = Field(min_length=1)
    urgent: bool


class Reply(BaseModel):
    subject: str = Field(min_length=1)
    body: str = Field(min_length=20)


def agents() -> dict[str, baton.Agent]:
    billing = baton.Agent("billing", "Billing questions.", model="offline:standard",
                          output=Reply, retry=FAST)
    general = baton.Agent("general", "Anything else.", model="offline:standard", retry=FAST)
    router = baton.Agent("router", "Route the request.", model="offline:fast",
                         handoffs=[billing, general], default_handoff=general, retry=FAST)
    return {"billing": billing, "general": general, "router": router}


async def run(env: WorkflowEnvironment, task_queue: str, target: baton.Team | baton.Agent,
              prompt: str, **options: Any) -> baton.RunOutcome[Any]:
    async with worker(env.client, task_queue):
        return await asyncio.wait_for(
            baton.run(target, prompt, client=env.client, task_queue=task_queue, **options), 60)


async def test_triage_built_in_python_returns_the_specialists_typed_output(
        env: WorkflowEnvironment, task_queue: str) -> None:
    desk = baton.Triage("desk", agents()["router"])
    outcome = await run(env, task_queue, desk, "I was charged twice on my invoice")
    assert isinstance(outcome.result, TriageResult)
    assert outcome.result.handled_by == "billing"
    assert isinstance(outcome.output, Reply)  # the specialist's contract, as its model


async def test_teams_compose_as_members_of_teams(env: WorkflowEnvironment,
                                                 task_queue: str) -> None:
    parts = agents()
    desk = baton.Triage("desk", parts["router"])
    extractor = baton.Agent("extractor", "Extract the ticket.", output=Ticket, retry=FAST)
    lead = baton.Agent("lead", "Plan and delegate.", model="offline:strong", retry=FAST)
    crew = baton.Supervisor("crew", lead, workers=[extractor, desk], max_rounds=4)
    outcome = await run(env, task_queue, crew, "Customer Ann: refund my invoice")
    result = outcome.result
    assert isinstance(result, SupervisorResult)
    assert [d.worker for d in result.delegations] == ["extractor", "desk"]
    assert result.usage["billing"].calls == 1  # the nested triage ran as a child workflow
    assert outcome.output is None  # a supervisor answers in text


async def test_user_contract_is_repaired_then_escalated_to_a_fallback(
        env: WorkflowEnvironment, task_queue: str) -> None:
    extractor = baton.Agent("extractor", "Extract the ticket.", model="offline:flaky",
                            fallback_models=["offline:backup"], output=Ticket, max_repairs=1,
                            retry=FAST)
    pipeline = baton.Pipeline("intake", [extractor])
    # Every answer of the primary model is malformed; the fallback's are fine.
    chaos = Chaos(malformed_rate=1.0, models=["offline:flaky"], seed=3)
    catalogue = pipeline.catalogue()
    from baton.core.model_io import Message
    from baton.runtime.launch import plan_run, start_run

    planned = plan_run(catalogue, "intake", [Message(role="user", content="Bob: app down!")],
                       RunOptions(chaos=chaos))
    async with worker(env.client, task_queue):
        handle = await start_run(env.client, task_queue, planned)
        result = await asyncio.wait_for(handle.result(), 60)
    assert isinstance(result, PipelineResult)
    kinds = [(s.kind, s.model) for s in result.trace if s.agent == "extractor"]
    assert kinds[:3] == [("repair", "offline:flaky"), ("repair", "offline:flaky"),
                         ("fallback", "offline:backup")]
    assert result.status == "degraded"
    ticket = Ticket.model_validate(result.stages[0].output)
    assert ticket.customer


def test_contract_names_are_unique_per_model() -> None:
    class Ticket(BaseModel):  # another model with the same class name
        x: int

    with pytest.raises(ContractError, match="two contracts are named 'Ticket'"):
        register_contract(Ticket)


def test_bad_definitions_are_refused_before_anything_starts() -> None:
    with pytest.raises(ValueError, match="must be written 'provider:model'"):
        baton.Agent("a", "x", model="gpt-5")
    one, other = baton.Agent("twin", "x"), baton.Agent("twin", "y")
    with pytest.raises(ValueError, match="two different agents or teams are named 'twin'"):
        baton.FanOut("f", branches=[one, other], synthesizer=baton.Agent("s", "x")).catalogue()
    with pytest.raises(ValueError, match="needs `branches`, a `planner` with `members`"):
        baton.FanOut("f", synthesizer=baton.Agent("s", "x")).catalogue()


@pytest.mark.parametrize(("build", "expected"), [
    (lambda a: baton.Triage("t", "router"), "team 't': router must be an Agent"),
    (lambda a: baton.FanOut("f", branches=["analyst"], synthesizer=a),
     "team 'f': branches must be agents or teams (the objects, not their names); "
     "got 'analyst'"),
    (lambda a: baton.FanOut("f", branches="analyst", synthesizer=a),
     "branches must be agents or teams"),
    (lambda a: baton.FanOut("f", branches=[a], synthesizer="s"), "synthesizer must be"),
    (lambda a: baton.Supervisor("s", a, ["coder"]), "workers must be agents or teams"),
    (lambda a: baton.Pipeline("p", [a, "editor"]), "stages must be agents, teams or Stages"),
    (lambda a: baton.Pipeline("p", [baton.Stage(a, loop_back_to="w")]),
     "loop_back_to must be an agent or a team"),
])
def test_team_builders_refuse_names_in_place_of_members(build: Any, expected: str) -> None:
    with pytest.raises(TypeError, match=re.escape(expected)):
        build(baton.Agent("writer", "x"))


def test_the_base_model_itself_is_no_contract() -> None:
    with pytest.raises(ContractError, match="your own pydantic model class"):
        baton.Agent("a", "x", output=BaseModel)


async def test_worker_without_the_contract_fails_the_run_at_once(
        env: WorkflowEnvironment, task_queue: str) -> None:
    """A contract the worker never imported fails the run with a clear, non-retryable
    error (not a workflow task that cannot decode its input and retries forever)."""
    from temporalio.client import WorkflowFailureError
    from temporalio.exceptions import ApplicationError

    from baton.core.model_io import Message
    from baton.core.specs import Catalogue
    from baton.runtime.launch import plan_run, start_run

    catalogue = Catalogue.model_validate(
        {"agents": {"solo": {"instructions": "x", "contract": "NeverImported"}}})
    planned = plan_run(catalogue, "solo", [Message(role="user", content="hi")], RunOptions())
    async with worker(env.client, task_queue):
        handle = await start_run(env.client, task_queue, planned)
        with pytest.raises(WorkflowFailureError) as caught:
            await asyncio.wait_for(handle.result(), 30)
    cause = caught.value.cause
    assert isinstance(cause, ApplicationError) and cause.type == "UnknownContract"
    assert "contract 'NeverImported' is not known to this worker" in cause.message
    assert "python worker.py --app MODULE" in cause.message
