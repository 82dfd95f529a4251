"""Triage: a cheap router hands the conversation to a specialist, or answers itself.

The router is offered one transfer tool per declared target, each described by the
target's own description (workflows/handoffs.py runs the chain). A specialist that
declares handoffs of its own may hand the conversation on again (back to the
router, to a peer), at most `max_handoffs` times per run. A transfer tool nobody
declared, or a router that fails, sends the conversation to the router's declared
default, never anywhere else; if a chosen specialist fails, the default answers
(status degraded). With `nest_handoff_history` every target receives one message
holding a transcript of the earlier turns instead of the turns themselves.
"""

from __future__ import annotations

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from baton.core.handoffs import NEST_HISTORY, nest_history
    from baton.core.runs import RunInput, TriageResult
    from baton.core.specs import TriageTeam

from baton.workflows.base import PatternWorkflow
from baton.workflows.handoffs import (
    HandoffOptions,
    Transfer,
    decided_or_default,
    run_with_handoffs,
    transfers_with_tools,
)
from baton.workflows.ledger import RunLedger

__all__ = ["TriageWorkflow", "nest_history"]


@workflow.defn
class TriageWorkflow(PatternWorkflow):
    pattern = "triage"

    @workflow.run
    async def run(self, run: RunInput) -> TriageResult:
        return await self.execute(run, TriageResult, self._triage)

    async def _triage(self, ledger: RunLedger) -> TriageResult:
        run = ledger.run
        team = run.catalogue.teams[run.member]
        assert isinstance(team, TriageTeam)
        router = run.catalogue.agents[team.router]
        self.set_phase("routing",
                       f"{router.name} is routing among {', '.join(router.handoffs)}")
        options = HandoffOptions(
            max_handoffs=team.max_handoffs, on_transfer=self._handed_to,
            input_filter=NEST_HISTORY if team.nest_handoff_history else None)
        if transfers_with_tools():
            handled = await run_with_handoffs(ledger, router.name, run.messages, options)
        else:
            via = await decided_or_default(ledger, router, run.messages)
            handled = await run_with_handoffs(ledger, via.target, run.messages, options,
                                              via=via)
        return TriageResult(pattern="triage", answer=handled.answer,
                            output=handled.output_json, handled_by=handled.handled_by,
                            route_reason=handled.reason or
                            f"{router.name} answered without a handoff",
                            **ledger.result_fields())

    def _handed_to(self, transfer: Transfer) -> None:
        self.set_phase(f"handled by {transfer.target}", f"{transfer.target} is answering")
