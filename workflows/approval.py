"""People in the loop: a run waits, durably, for a person's decision on one step.

`ApprovalDesk` is mixed into every pattern workflow. `ask(...)` records an
`ApprovalRequest` with its own request id (readable: `issue_refund-2`), sets the
run's status to `waiting_approval` with what is asked, and waits on a durable
timer for a decision: the `decide` Update (validated before it is accepted, so a
bad decision leaves the run unchanged) or, after the request's timeout, its
declared default. Who decided: the record keeps the name the decision gives, the
client's Temporal identity (client-reported) and, on a worker with
`BATON_APPROVER_KEYS`, the approver whose signature was verified before the Update
was accepted (baton/approver_keys.py). Several requests may wait at once (parallel tool calls); a
decision names the one it is for, or decides all that are pending. Work done
before the approval point is in history and never runs again.
"""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

from temporalio import workflow
from temporalio.exceptions import ApplicationError

with workflow.unsafe.imports_passed_through():
    from baton.runs import (
        ApprovalDefault,
        ApprovalKind,
        ApprovalRecord,
        ApprovalRequest,
        Decision,
        RunStatus,
    )
    from baton.text import shorten

from baton.workflows.ledger import RunLedger


class ApprovalDesk:
    """The approval requests of one workflow run, and the update that decides them."""

    _approval_requests: dict[str, ApprovalRequest]
    _approval_records: dict[str, ApprovalRecord]

    def set_status(self, status: RunStatus) -> None:  # provided by PatternWorkflow
        raise NotImplementedError

    def _desk(self) -> tuple[dict[str, ApprovalRequest], dict[str, ApprovalRecord]]:
        if not hasattr(self, "_approval_requests"):
            self._approval_requests, self._approval_records = {}, {}
        return self._approval_requests, self._approval_records

    def _pending(self) -> list[ApprovalRequest]:
        requests, records = self._desk()
        return [r for rid, r in requests.items() if rid not in records]

    @workflow.query
    def pending_approvals(self) -> list[ApprovalRequest]:
        """The requests waiting for a person, oldest first."""
        return self._pending()

    @workflow.update
    async def decide(self, decision: Decision) -> list[ApprovalRecord]:
        """Approve or reject one pending request, or all of them (no request_id)."""
        _, records = self._desk()
        targets = ([decision.request_id] if decision.request_id
                   else [r.request_id for r in self._pending()])
        # A signature reaches here only if this worker verified it (the approver
        # interceptor rejects, in the validator, one it cannot check): the handler reads
        # the decision alone, so replay on a worker configured otherwise records the same.
        signer = decision.signature.signer if decision.signature else ""
        decided = []
        for request_id in targets:
            record = ApprovalRecord(
                request=self._approval_requests[request_id], approved=decision.approve,
                note=decision.note, reason=decision.reason,
                decided_by=decision.by or "a person", decided_at=workflow.now(),
                client_identity=decision.identity, signed_by=signer)
            records[request_id] = record
            decided.append(record)
        return decided

    @decide.validator
    def _validate_decision(self, decision: Decision) -> None:
        # Raising here rejects the update before it is written to history.
        requests, records = self._desk()
        pending = self._pending()
        if decision.request_id is None:
            if not pending:
                raise ValueError("this run is not waiting for a decision")
        elif decision.request_id not in requests:
            known = ", ".join(r.request_id for r in pending) or "none"
            raise ValueError(f"this run has no approval request {decision.request_id!r}; "
                             f"pending: {known}")
        elif decision.request_id in records:
            done = records[decision.request_id]
            verdict = "approved" if done.approved else "rejected"
            raise ValueError(f"request {decision.request_id!r} was already {verdict} at "
                             f"{done.decided_at.isoformat()}")
        if not decision.approve and not decision.reason.strip():
            raise ValueError("a rejection needs a reason (it is what the agent is told)")

    async def ask(self, ledger: RunLedger, *, kind: ApprovalKind, agent: str, subject: str,
                  arguments: dict[str, Any], why: str, timeout_s: float,
                  default: ApprovalDefault) -> ApprovalRecord:
        """Wait for a decision on one step; the record of what was decided."""
        requests, records = self._desk()
        request_id = f"{subject}-{len(requests) + 1}"
        info = workflow.info()
        request = ApprovalRequest(
            request_id=request_id, workflow_id=info.workflow_id, kind=kind, agent=agent,
            subject=subject, arguments=arguments, why=why, asked_at=workflow.now(),
            timeout_s=timeout_s, default=default)
        requests[request_id] = request
        shown = shorten(json.dumps(arguments), 160)
        ledger.step("approval", agent, f"waiting: {request_id} {subject}({shown}): {why}")
        self.set_status("waiting_approval")
        workflow.set_current_details(
            f"Waiting for approval {request_id}: {agent} · {subject}({shown}) — {why}\n"
            f"python starter.py approve {info.workflow_id} --request {request_id}")
        try:
            await workflow.wait_condition(lambda: request_id in records,
                                          timeout=timedelta(seconds=timeout_s))
        except TimeoutError:
            records[request_id] = ApprovalRecord(
                request=request, approved=default == "approve", timed_out=True,
                reason="" if default == "approve" else f"no decision within {timeout_s:g} s",
                note=f"no decision within {timeout_s:g} s" if default == "approve" else "",
                decided_by="timeout", decided_at=workflow.now())
        record = records[request_id]
        if not self._pending():
            self.set_status("running")
            workflow.set_current_details("")
        verdict = "approved" if record.approved else f"rejected: {record.reason}"
        ledger.step("approval", agent, f"{request_id} {verdict} by {record.decided_by}",
                    ok=record.approved)
        ledger.approvals.append(record)
        return record


def current_desk() -> ApprovalDesk:
    """The approval desk of the workflow this code runs in."""
    desk = workflow.instance()
    if not isinstance(desk, ApprovalDesk):
        # Typed and final: a workflow task failing on this would be retried forever.
        raise ApplicationError(
            f"{type(desk).__name__} cannot wait for a person's approval: approvals (a tool "
            "with approval=..., baton.approval) need a @baton.flow or a Baton team, whose "
            "workflows take decisions; call the step from one (e.g. as a child workflow)",
            type="ApprovalUnavailable", non_retryable=True)
    return desk
