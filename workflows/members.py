"""Running a team member, whether it is an agent or another team (composition).

`run_member` is how patterns call the things they coordinate: an agent runs as a
`call_model` activity in the current workflow (or, for fan-out branches, in its
own `AgentWorkflow` child); a team runs as the child workflow of its pattern. The
nested run's usage and trace are folded into the caller's ledger.
"""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow
from temporalio.exceptions import ApplicationError, ChildWorkflowError

with workflow.unsafe.imports_passed_through():
    from baton.core.errors import (
        SPENT_DETAIL,
        AgentFailed,
        BudgetExhausted,
        GuardrailTripped,
        ToolUnavailable,
        UnknownContract,
    )
    from baton.core.model_io import Message
    from baton.core.runs import DEADLINE_GRACE_S, PATTERN_WORKFLOWS, RunInput, RunResult, Trip
    from baton.core.usage import Usage

from baton.workflows.agent_call import run_agent
from baton.workflows.base import PatternWorkflow
from baton.workflows.ledger import RunLedger


async def run_member(ledger: RunLedger, member: str, messages: list[Message], *,
                     as_child: bool = False, concurrent: int = 1) -> RunResult:
    """Run an agent or team on `messages`.

    Raises AgentFailed when it gives no answer, BudgetExhausted when the run's budget
    ran out in it. A nested run gets the remaining budget, split `concurrent` ways.
    """
    catalogue = ledger.run.catalogue
    if member in catalogue.agents and not as_child:
        reply = await run_agent(ledger, catalogue.agents[member], messages)
        return RunResult(member=member, pattern="agent", answer=reply.answer,
                         output=reply.output_json)
    pattern = catalogue.pattern_of(member)
    share = ledger.check_budget().share(concurrent)
    child_input = ledger.run.for_member(member, messages, budget=share)
    description = (catalogue.agents[member].description if pattern == "agent"
                   else catalogue.teams[member].description)
    try:
        result: RunResult = await workflow.execute_child_workflow(
            PATTERN_WORKFLOWS[pattern],
            child_input,
            id=ledger.child_id(member),
            result_type=RunResult,
            static_summary=f"{pattern} · {member}",
            static_details=description or None,
            # The server ends a nested run at the deadline even if no worker is alive.
            execution_timeout=(timedelta(seconds=share.max_seconds + DEADLINE_GRACE_S)
                               if share.max_seconds is not None else None),
        )
    except ChildWorkflowError as err:
        cause = err.cause
        reason = cause.message if isinstance(cause, ApplicationError) else str(err)
        if isinstance(cause, ApplicationError):
            charge_spending(ledger, cause)
        ledger.step("error", member, f"{pattern} run failed: {reason}", ok=False)
        if isinstance(cause, ApplicationError) and cause.type in (ToolUnavailable.TYPE,
                                                                   UnknownContract.TYPE):
            # A worker set-up problem, not an answer: fail this run too, at once.
            raise ApplicationError(cause.message, type=cause.type, non_retryable=True) from err
        raise AgentFailed(member, reason) from err
    ledger.absorb(result)
    if result.status == "blocked":
        ledger.blocked = f"in {member}: {result.answer}"
        # A run recorded before results carried their trip says only that it was blocked.
        trip = result.trip or Trip(guardrail=member, where="run", reason=result.answer)
        raise GuardrailTripped(trip.guardrail, f"{trip.where} in {member}", trip.reason)
    if result.status == "budget_exhausted":
        raise BudgetExhausted(f"in {member}: {result.reasons[-1] if result.reasons else ''}")
    ledger.partials.append((member, result.answer))
    return result


def charge_spending(ledger: RunLedger, failure: ApplicationError) -> None:
    """Count what a failed nested run spent (its failure's details carry it)."""
    for detail in failure.details:
        if isinstance(detail, dict) and isinstance(detail.get(SPENT_DETAIL), dict):
            for agent, usage in detail[SPENT_DETAIL].items():
                ledger.charge(agent, Usage.model_validate(usage))


@workflow.defn(sandboxed=False)
class AgentWorkflow(PatternWorkflow):
    """One agent as its own workflow: a fan-out branch, visible and retried on its own."""

    pattern = "agent"

    @workflow.run
    async def run(self, run: RunInput) -> RunResult:
        return await self.execute(run, RunResult, self._answer)

    async def _answer(self, ledger: RunLedger) -> RunResult:
        run = ledger.run
        self.set_phase(f"{run.member} is answering")
        reply = await run_agent(ledger, run.catalogue.agents[run.member], run.messages)
        return RunResult(pattern="agent", answer=reply.answer, output=reply.output_json,
                         **ledger.result_fields())
