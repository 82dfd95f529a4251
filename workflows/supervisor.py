"""Supervisor: a strong model delegates to workers exposed as tools and reviews each result.

The supervisor is an agent whose tools are its workers (one tool per worker,
taking a `task`), run by the general tool loop of `run_agent`: each round it
either calls worker tools or writes the final answer, and after `max_rounds` it
must answer without tools. Every delegation runs the worker (an agent activity,
or a team as a child workflow) and then asks the supervisor for a `Review`:
accept, revise (same worker, with feedback; at most `max_revisions`), or reassign
(another worker). Reviews past their bound are accepted as they stand and marked
`forced_accept`. The supervisor's own function tools, if it has any, are offered
beside its workers.
"""

from __future__ import annotations

from collections.abc import Awaitable
from typing import Any

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from pydantic import BaseModel

    from baton.core.contracts import Review, contract_name, model_schema
    from baton.core.errors import AgentFailed
    from baton.core.model_io import Message, ToolCall, ToolSpec
    from baton.core.runs import Delegation, RunInput, SupervisorResult
    from baton.core.specs import AgentSpec, SupervisorTeam
    from baton.core.text import shorten

from baton.workflows.agent_call import function_toolbox, run_agent
from baton.workflows.base import PatternWorkflow
from baton.workflows.ledger import RunLedger
from baton.workflows.members import run_member
from baton.workflows.toolbox import NO_TOOLS, Toolbox

TASK_PARAMETERS = {
    "type": "object",
    "properties": {"task": {"type": "string", "description": "What the worker must do."}},
    "required": ["task"],
    "additionalProperties": False,
}


@workflow.defn
class SupervisorWorkflow(PatternWorkflow):
    pattern = "supervisor"

    def __init__(self) -> None:
        super().__init__()
        self._delegations: list[Delegation] = []

    @workflow.query
    def delegations(self) -> list[Delegation]:
        return self._delegations

    def partial_fields(self) -> dict[str, Any]:
        return {"delegations": self._delegations}

    @workflow.run
    async def run(self, run: RunInput) -> SupervisorResult:
        return await self.execute(run, SupervisorResult, self._supervise)

    async def _supervise(self, ledger: RunLedger) -> SupervisorResult:
        run = ledger.run
        team = run.catalogue.teams[run.member]
        assert isinstance(team, SupervisorTeam)
        self._team, self._ledger_ = team, ledger
        supervisor = run.catalogue.agents[team.supervisor]

        def delegate_to(call: ToolCall) -> Awaitable[str]:
            return self._delegation_text(supervisor, call)

        toolbox = Toolbox(
            specs=[ToolSpec(name=w, description=_describe_member(run, w),
                            parameters=TASK_PARAMETERS) for w in team.workers],
            handlers=dict.fromkeys(team.workers, delegate_to),
            max_turns=team.max_rounds,
            limit_reason="round limit {max_turns} reached; final answer without tools",
            on_turn=lambda turn: self.set_phase(f"round {turn}/{team.max_rounds}"))
        own = function_toolbox(ledger, supervisor)
        if own is not None:
            toolbox.specs += own.specs
            toolbox.handlers.update(own.handlers)
        self.set_phase(f"round 1/{team.max_rounds}")
        reply = await run_agent(ledger, supervisor, list(run.messages), toolbox=toolbox)
        rounds = min(reply.tool_turns + 1, team.max_rounds)
        return SupervisorResult(pattern="supervisor", answer=reply.text,
                                delegations=self._delegations, rounds=rounds,
                                **ledger.result_fields())

    async def _delegation_text(self, supervisor: AgentSpec, call: ToolCall) -> str:
        result = await self._delegate(supervisor, call)
        if result.verdict == "unreviewed":
            return result.answer  # nothing was judged: no verdict to show the model
        return f"[{result.verdict}] {result.answer}"

    async def _delegate(self, supervisor: AgentSpec, call: ToolCall) -> Delegation:
        team, ledger = self._team, self._ledger_
        task = str(call.arguments.get("task") or ledger.run.prompt)
        worker = call.name
        if worker not in team.workers:
            ledger.step("delegation", supervisor.name, f"unknown worker {worker!r}", ok=False)
            return self._record(Delegation(worker=worker, task=task, verdict="failed", answer=(
                f"There is no worker named {worker!r}; workers: {', '.join(team.workers)}")))
        tried = [worker]
        feedback = ""
        revisions = 0
        while True:
            ledger.step("delegation", supervisor.name, f"-> {worker}: {task[:120]}")
            prompt = task if not feedback else f"{task}\n\nReviewer feedback: {feedback}"
            try:
                result = await run_member(ledger, worker, [Message(role="user", content=prompt)])
            except AgentFailed as err:
                nxt = _untried(team.workers, tried)
                if nxt is None:
                    ledger.degrade(f"every worker failed on: {task[:80]}")
                    return self._record(Delegation(worker=worker, task=task, verdict="failed",
                                                   answer=f"failed: {err.reason}"))
                ledger.degrade(f"{worker} failed; reassigned to {nxt}")
                worker = nxt
                tried.append(worker)
                continue
            if not team.review:
                return self._record(Delegation(worker=worker, task=task, verdict="unreviewed",
                                               answer=result.answer))
            review = await self._review(supervisor, worker, task, result.answer)
            ledger.step("review", supervisor.name, f"{worker}: {review.verdict}")
            if review.verdict == "accept" and team.approve_acceptance:
                decision = await self.ask(
                    ledger, kind="acceptance", agent=supervisor.name, subject=worker,
                    arguments={"task": shorten(task, 500), "answer": shorten(result.answer, 1000)},
                    why=f"{supervisor.name} accepted the work of {worker}; a person confirms",
                    timeout_s=team.approval_timeout_s, default=team.approval_default)
                if not decision.approved:
                    review = Review(verdict="revise", feedback=(
                        f"A person rejected this result: {decision.reason}"))
            bounded = revisions >= team.max_revisions
            if review.verdict == "accept" or bounded:
                verdict = "accept" if review.verdict == "accept" else "forced_accept"
                return self._record(Delegation(worker=worker, task=task, verdict=verdict,
                                               answer=result.answer, feedback=review.feedback))
            revisions += 1
            feedback = review.feedback
            if review.verdict == "reassign":
                target = review.reassign_to
                if target not in team.workers or target in tried:
                    target = _untried(team.workers, tried)
                if target is None:
                    return self._record(Delegation(worker=worker, task=task,
                                                   verdict="forced_accept", answer=result.answer,
                                                   feedback="no other worker to reassign to"))
                worker = target
                tried.append(worker)

    async def _review(self, supervisor: AgentSpec, worker: str, task: str,
                      answer: str) -> Review:
        workers = self._team.workers
        schema = model_schema(Review)
        schema["properties"]["reassign_to"] = {"anyOf": [{"enum": workers}, {"type": "null"}]}

        def known_worker(review: BaseModel) -> str | None:
            assert isinstance(review, Review)
            if review.reassign_to is not None and review.reassign_to not in workers:
                return f"reassign_to must be one of {workers}"
            return None

        request = Message(role="user", content=(
            f"Give your verdict on the work of {worker} on the task below, with concrete "
            f"feedback. Workers available: {', '.join(workers)}."
            f"\n\nTask: {task}\n\nResult from {worker}:\n{answer}"))
        try:
            reply = await run_agent(self._ledger_, supervisor, [request],
                                    contract=contract_name(Review),
                                    schema=schema, accept=known_worker, toolbox=NO_TOOLS)
        except AgentFailed as err:
            self._ledger_.degrade(f"review of {worker} failed ({err.reason}); accepted as is")
            return Review(verdict="accept", feedback="review unavailable; accepted as is")
        assert isinstance(reply.output, Review)
        return reply.output

    def _record(self, delegation: Delegation) -> Delegation:
        self._delegations.append(delegation)
        return delegation


def _untried(workers: list[str], tried: list[str]) -> str | None:
    return next((w for w in workers if w not in tried), None)


def _describe_member(run: RunInput, name: str) -> str:
    catalogue = run.catalogue
    if name in catalogue.agents:
        return catalogue.agents[name].description or f"Delegate a task to {name}."
    return catalogue.teams[name].description or f"Delegate a task to the {name} team."
