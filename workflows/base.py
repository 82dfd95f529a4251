"""What every pattern workflow shares: the run wrapper and the live-state queries.

A pattern subclasses `PatternWorkflow`, defines its `@workflow.run` as one line
that calls `self.execute(run, ResultType, self._body)`, and reports progress with
`self.set_phase(...)`. The wrapper owns the run's ledger and turns an exhausted
budget into a result with the partial answers gathered so far; queries `phase`,
`state` and `usage` answer while the run is live. `set_status` is the one place a
run's status changes (running, waiting_approval, then its final status).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from baton.errors import BudgetExhausted
    from baton.runs import RunInput, RunResult, RunState, RunStatus
    from baton.usage import Usage

from baton.workflows.approval import ApprovalDesk
from baton.workflows.ledger import RunLedger

R = TypeVar("R", bound=RunResult)


class PatternWorkflow(ApprovalDesk):
    """Base of the pattern workflows (handlers defined here are inherited)."""

    pattern = "agent"

    def __init__(self) -> None:
        self._phase = "starting"
        self._status: RunStatus = "running"
        self._ledger: RunLedger | None = None

    @workflow.query
    def phase(self) -> str:
        """What the run is doing now, in a few words."""
        return self._phase

    @workflow.query
    def state(self) -> RunState:
        """Status, phase and spending so far, in one answer."""
        return RunState(status=self._status, phase=self._phase,
                        usage=self._ledger.spent if self._ledger is not None else Usage())

    def set_status(self, status: RunStatus) -> None:
        self._status = status

    @workflow.query
    def usage(self) -> Usage:
        """What the run has spent so far (its nested runs' once they finish)."""
        return self._ledger.spent if self._ledger is not None else Usage()

    def set_phase(self, phase: str, details: str | None = None) -> None:
        self._phase = phase
        workflow.set_current_details(details or phase)

    def partial_fields(self) -> dict[str, Any]:
        """Pattern-specific result fields worth keeping when a budget stops the run."""
        return {}

    async def execute(self, run: RunInput, result_type: type[R],
                      body: Callable[[RunLedger], Awaitable[R]]) -> R:
        self._ledger = ledger = RunLedger(run)
        self.set_status("running")
        try:
            result = await body(ledger)
        except BudgetExhausted as err:
            result = result_type(pattern=self.pattern, **ledger.stopped_by_budget(err),
                                 **self.partial_fields())
        except BaseException:
            self.set_status("failed")
            raise
        self._phase = "done"
        self.set_status(result.status)
        return result
