"""People in the loop: a run waits, durably, for a person's decision on one step.

`ApprovalDesk` is mixed into every pattern workflow. `ask(...)` records an
`ApprovalRequest` with its own request id (readable: `issue_refund-2`), sets the
run's status to `waiting_approval` with what is asked, and waits on a durable
timer for a decision or, after the request's timeout, its declared default.
Several requests may wait at once (parallel tool calls); a decision names the one
it is for, or decides all that are pending. Work done before the approval point is
in history and never runs again.

What the run waits for is kept in its memo (baton/core/waiting.py), so `pending` and
`approve` read it from visibility without a worker. A decision arrives one of two ways:
- the `decide` Update, when a worker runs the run: validated before it is accepted,
  so a bad decision leaves the run unchanged and the sender is told at once;
- the `decide_when_running` signal, sent when no worker does: the server keeps it,
  and when a worker runs the run again the desk checks it as the Update's validator
  would (pending request, reason, approver's signature through a local activity whose
  answer history records), and that it was sent before the request's deadline; then
  applies it, or refuses it with the reason, recorded in the memo and the trace.
Who decided: the record keeps the name the decision gives, the client's Temporal
identity (client-reported) and, on a worker with `BATON_APPROVER_KEYS`, the approver
whose signature was verified (baton/runtime/approver_keys.py).
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Literal

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError

with workflow.unsafe.imports_passed_through():
    from baton.core.runs import (
        ApprovalDefault,
        ApprovalKind,
        ApprovalRecord,
        ApprovalRequest,
        Decision,
        RunStatus,
    )
    from baton.core.text import shorten
    from baton.core.waiting import (
        APPROVALS_MEMO,
        CHECK_APPROVER_ACTIVITY,
        DECISION_SIGNAL,
        KEPT_OUTCOMES,
        ApprovalsMemo,
        ApproverCheck,
        DecisionOutcome,
        DurableDecision,
        deadline,
        shown_request,
    )

from baton.workflows.ledger import RunLedger

# Runs recorded before the desk kept its memo replay without those upserts; runs
# started with the memo (baton.runtime.launch: starting_memo) need no marker to know.
MEMO_PATCH = "baton-approval-memo"
CHECK_TIMEOUT = timedelta(seconds=10)
CHECK_RETRY = RetryPolicy(maximum_attempts=3)


@dataclass
class _Desk:
    requests: dict[str, ApprovalRequest] = field(default_factory=dict)
    records: dict[str, ApprovalRecord] = field(default_factory=dict)
    # The decision that decided each request: the same one delivered again (an Update
    # that landed late, then its signal) is a duplicate, not a refusal.
    decisions: dict[str, Decision] = field(default_factory=dict)
    # Signalled decisions being checked, per request: the timeout waits for them.
    checking: dict[str, int] = field(default_factory=dict)
    turn: asyncio.Lock = field(default_factory=asyncio.Lock)
    ledgers: dict[str, RunLedger] = field(default_factory=dict)
    outcomes: list[DecisionOutcome] = field(default_factory=list)
    memo_kept: bool | None = None  # decided by the patch at the first upsert
    shown: ApprovalsMemo | None = None  # what the memo holds now


class ApprovalDesk:
    """The approval requests of one workflow run, and the messages that decide them."""

    _approval_desk: _Desk

    def set_status(self, status: RunStatus) -> None:  # provided by PatternWorkflow
        raise NotImplementedError

    def _desk(self) -> _Desk:
        if not hasattr(self, "_approval_desk"):
            self._approval_desk = _Desk()
        return self._approval_desk

    def _pending(self) -> list[ApprovalRequest]:
        desk = self._desk()
        return [r for rid, r in desk.requests.items() if rid not in desk.records]

    @workflow.query
    def pending_approvals(self) -> list[ApprovalRequest]:
        """The requests waiting for a person, oldest first."""
        return self._pending()

    @workflow.update
    async def decide(self, decision: Decision) -> list[ApprovalRecord]:
        """Approve or reject one pending request, or all of them (no request_id)."""
        # A signature reaches here only if this worker verified it (the approver
        # interceptor rejects, in the validator, one it cannot check): the handler reads
        # the decision alone, so replay on a worker configured otherwise records the same.
        return self._apply(decision, "update")

    @decide.validator
    def _validate_decision(self, decision: Decision) -> None:
        # Raising here rejects the update before it is written to history.
        if (refusal := self._refusal(decision)) is not None:
            raise ValueError(refusal)

    @workflow.signal(name=DECISION_SIGNAL,
                     unfinished_policy=workflow.HandlerUnfinishedPolicy.ABANDON)
    async def decide_when_running(self, sent: DurableDecision) -> None:
        """A decision sent while no worker ran the run: checked, then applied or refused."""
        desk = self._desk()
        targets = self._targets(sent.decision)
        # Counted before anything waits: a timeout in this workflow task then waits for
        # this decision (see _decision_or_default).
        for rid in targets:
            desk.checking[rid] = desk.checking.get(rid, 0) + 1
        try:
            # One at a time, in the order the server received them, whatever the order
            # their checks end in.
            async with desk.turn:
                await self._take(sent, targets)
        finally:
            for rid in targets:
                desk.checking[rid] -= 1

    async def _take(self, sent: DurableDecision, targets: list[str]) -> None:
        decision = sent.decision
        if self._duplicate(decision, targets):
            return
        refusal = self._refusal(decision) or self._late(sent, targets)
        if refusal is None:
            refusal = await self._approver_refusal(decision, targets)
            if self._duplicate(decision, targets):
                return
            # An Update may have decided the request while the signature was checked.
            refusal = refusal or self._refusal(decision)
        if refusal is None:
            self._apply(decision, "signal")
        else:
            self._refuse(decision, targets, refusal)

    def _targets(self, decision: Decision) -> list[str]:
        if decision.request_id is not None:
            return [decision.request_id]
        return [r.request_id for r in self._pending()]

    def _refusal(self, decision: Decision) -> str | None:
        """Why `decision` cannot be applied now, if it cannot (whatever its signature)."""
        desk = self._desk()
        if decision.request_id is None:
            if not self._pending():
                return "this run is not waiting for a decision"
        elif decision.request_id not in desk.requests:
            known = ", ".join(r.request_id for r in self._pending()) or "none"
            return (f"this run has no approval request {decision.request_id!r}; "
                    f"pending: {known}")
        elif decision.request_id in desk.records:
            done = desk.records[decision.request_id]
            verdict = "approved" if done.approved else "rejected"
            how = " (its timeout's default)" if done.timed_out else ""
            return (f"request {decision.request_id!r} was already {verdict}{how} at "
                    f"{done.decided_at.isoformat()}")
        if not decision.approve and not decision.reason.strip():
            return "a rejection needs a reason (it is what the agent is told)"
        return None

    def _late(self, sent: DurableDecision, targets: list[str]) -> str | None:
        """Why a signalled decision comes too late: sent after a deadline that has passed
        (the worker was down meanwhile, so the timer and the signal arrive together)."""
        stated, now = sent.stated_time(), workflow.now()
        for rid in targets:
            request = self._desk().requests[rid]
            due = deadline(request)
            if now >= due and stated > due:
                return (f"it was sent at {_clock(stated)}, after the deadline of request "
                        f"{rid!r} ({_clock(due)}); its default ({request.default}) applies")
        return None

    def _duplicate(self, decision: Decision, targets: list[str]) -> bool:
        """Whether every target was decided by this very decision (or by its "all
        pending" form, which the client splits per request when it falls back to signals)."""
        decided = self._desk().decisions
        forms = (decision, decision.model_copy(update={"request_id": None}))
        return bool(targets) and all(decided.get(rid) in forms for rid in targets)

    async def _approver_refusal(self, decision: Decision, targets: list[str]) -> str | None:
        """What the worker's approver keys say of the decision (None: it may be applied),
        asked of a local activity so history keeps the answer (baton/runtime/approver_keys.py)."""
        info = workflow.info()
        asked = [self._desk().requests[rid].asked_at for rid in targets]
        check = ApproverCheck(decision=decision, workflow_id=info.workflow_id,
                              run_id=info.run_id, now=workflow.now(),
                              asked_at=min(asked, default=workflow.now()))
        try:
            refusal: str = await workflow.execute_local_activity(
                CHECK_APPROVER_ACTIVITY, check, result_type=str,
                start_to_close_timeout=CHECK_TIMEOUT, retry_policy=CHECK_RETRY,
                summary=f"who decided {', '.join(targets)}")
        except ActivityError as err:
            cause = err.cause.message if isinstance(err.cause, ApplicationError) else str(err)
            return f"this worker could not check who decided: {cause}"
        return refusal or None

    def _apply(self, decision: Decision, delivered: Literal["update", "signal"]
               ) -> list[ApprovalRecord]:
        desk = self._desk()
        signer = decision.signature.signer if decision.signature else ""
        decided = []
        for request_id in self._targets(decision):
            record = ApprovalRecord(
                request=desk.requests[request_id], approved=decision.approve,
                note=decision.note, reason=decision.reason,
                decided_by=decision.by or "a person", decided_at=workflow.now(),
                client_identity=decision.identity, signed_by=signer)
            desk.records[request_id] = record
            desk.decisions[request_id] = decision
            decided.append(record)
            self._note(decision, request_id, "applied", "", delivered, signer)
        return decided

    def _refuse(self, decision: Decision, targets: list[str], reason: str) -> None:
        desk = self._desk()
        named: list[str | None] = [*targets] or [decision.request_id]
        for request_id in named:
            self._note(decision, request_id, "refused", reason, "signal", "")
            request = desk.requests.get(request_id or "")
            # Into the trace of the part of the run that asked (the last one that did).
            ledger = (desk.ledgers.get(request_id or "")
                      or next(reversed(desk.ledgers.values()), None))
            if ledger is not None:
                ledger.step("approval", request.agent if request else "person",
                            f"decision on {request_id or 'all pending'} refused: {reason}",
                            ok=False)
        self._publish()

    def _note(self, decision: Decision, request_id: str | None,
              outcome: Literal["applied", "refused"], reason: str,
              delivered: Literal["update", "signal"], signer: str) -> None:
        outcomes = self._desk().outcomes
        outcomes.append(DecisionOutcome(
            request_id=request_id, approve=decision.approve, outcome=outcome, reason=reason,
            by=decision.by, signed_by=signer, delivered=delivered, at=workflow.now()))
        del outcomes[:-KEPT_OUTCOMES]

    def _publish(self) -> None:
        """Keep the memo saying what the run waits for and what became of decisions."""
        desk = self._desk()
        shown = ApprovalsMemo(waiting=[shown_request(r) for r in self._pending()],
                              decisions=list(desk.outcomes))
        if shown == desk.shown:
            return  # parallel requests decided at once: one upsert, not one each
        if desk.memo_kept is None:
            # Started with it (baton.runtime.launch): no patch marker, no TemporalChangeVersion.
            desk.memo_kept = (APPROVALS_MEMO in workflow.info().raw_memo
                              or workflow.patched(MEMO_PATCH))
        if desk.memo_kept:
            workflow.upsert_memo({APPROVALS_MEMO: shown})
        desk.shown = shown

    async def ask(self, ledger: RunLedger, *, kind: ApprovalKind, agent: str, subject: str,
                  arguments: dict[str, Any], why: str, timeout_s: float,
                  default: ApprovalDefault) -> ApprovalRecord:
        """Wait for a decision on one step; the record of what was decided."""
        desk = self._desk()
        request_id = f"{subject}-{len(desk.requests) + 1}"
        info = workflow.info()
        request = ApprovalRequest(
            request_id=request_id, workflow_id=info.workflow_id, kind=kind, agent=agent,
            subject=subject, arguments=arguments, why=why, asked_at=workflow.now(),
            timeout_s=timeout_s, default=default)
        desk.requests[request_id] = request
        desk.ledgers[request_id] = ledger
        shown = shorten(json.dumps(arguments), 160)
        ledger.step("approval", agent, f"waiting: {request_id} {subject}({shown}): {why}")
        self.set_status("waiting_approval")
        self._publish()
        workflow.set_current_details(
            # Plain ASCII and inline code: the command is copied out of the Web UI.
            f"**Waiting for approval** {request_id}: {agent} - {subject}({shown}) - {why}\n\n"
            f"`python starter.py approve {info.workflow_id} --request {request_id}`")
        await self._decision_or_default(request)
        record = desk.records[request_id]
        if not self._pending():
            self.set_status("running")
            workflow.set_current_details("")
        self._publish()
        verdict = "approved" if record.approved else f"rejected: {record.reason}"
        ledger.step("approval", agent, f"{request_id} {verdict} by {record.decided_by}",
                    ok=record.approved)
        ledger.approvals.append(record)
        return record

    async def _decision_or_default(self, request: ApprovalRequest) -> None:
        desk, request_id = self._desk(), request.request_id
        try:
            await workflow.wait_condition(lambda: request_id in desk.records,
                                          timeout=timedelta(seconds=request.timeout_s),
                                          timeout_summary=f"waiting for approval {request_id}")
            return
        except TimeoutError:
            pass
        # A decision signalled before the deadline while no worker ran the run arrives
        # with the timer: its handler started first (signals come before timers in a
        # workflow task) and is checking it; it decides, not the default.
        await workflow.wait_condition(
            lambda: request_id in desk.records or not desk.checking.get(request_id))
        if request_id in desk.records:
            return
        timeout_s, approve = request.timeout_s, request.default == "approve"
        desk.records[request_id] = ApprovalRecord(
            request=request, approved=approve, timed_out=True,
            reason="" if approve else f"no decision within {timeout_s:g} s",
            note=f"no decision within {timeout_s:g} s" if approve else "",
            decided_by="timeout", decided_at=workflow.now())


def _clock(moment: datetime) -> str:
    return f"{moment:%Y-%m-%d %H:%M:%S} UTC"


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
