"""What a waiting run records for the people who decide, so no worker is needed to read it.

A run that waits for a person keeps, in its memo (`APPROVALS_MEMO`: an
`ApprovalsMemo`), what it waits for (each pending request, its arguments with long
values shortened) and what became of the last decisions sent to it. Visibility
answers without a worker: `starter.py pending` is one list query, whatever the
workers' state. The memo is a payload: with encryption on the SDK encrypts it like
every other payload, bound to its run (baton/runtime/codec.py).

A decision sent while no worker runs the run travels as the `DECISION_SIGNAL`
signal (a `DurableDecision`): the server records it at once; the run checks it
(pending request, deadline, approver's signature) and applies or refuses it when a
worker runs the run, and records the outcome in the memo and its trace.

Pure data (pydantic): the workflow sandbox passes this module through.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from typing import Any, Literal

from pydantic import AwareDatetime, BaseModel, Field

from baton.core.runs import ApprovalRequest, Decision
from baton.core.text import shorten

APPROVALS_MEMO = "baton_approvals"
DECISION_SIGNAL = "decide_when_running"
# The local activity that checks an approver's signature with the worker's keys: its
# answer is recorded in history, so the run replays the same on a worker whose keys
# changed since (baton/runtime/approver_keys.py).
CHECK_APPROVER_ACTIVITY = "baton_check_approver"
# Enough to read a request at a glance; the run keeps the full arguments.
SHOWN_VALUE_CHARS = 120
SHOWN_FIELDS = 20
SHOWN_WHY_CHARS = 300
KEPT_OUTCOMES = 20


class DurableDecision(BaseModel):
    """A decision sent as a signal: kept by the server until a worker runs the run.
    `sent_at` is the sender's clock: whether it came before the request's deadline
    (a signed decision's signature time counts instead)."""

    decision: Decision
    sent_at: AwareDatetime

    def stated_time(self) -> datetime:
        signature = self.decision.signature
        return signature.signed_at if signature is not None else self.sent_at


class DecisionOutcome(BaseModel):
    """What became of one decision sent to a run: applied, or refused and why."""

    request_id: str | None
    approve: bool
    outcome: Literal["applied", "refused"]
    reason: str = ""
    by: str = ""
    signed_by: str = ""
    delivered: Literal["update", "signal"]
    at: datetime


class ApprovalsMemo(BaseModel):
    """What the memo says of a run's approvals. An object, never a bare list: the
    server drops a memo value that is an empty JSON list."""

    waiting: list[ApprovalRequest] = Field(default_factory=list)
    decisions: list[DecisionOutcome] = Field(default_factory=list)


class ApproverCheck(BaseModel):
    """The check-approver activity's input: a decision and where and when it counts."""

    decision: Decision
    workflow_id: str
    run_id: str
    now: AwareDatetime
    # When the request was asked: a durable decision may be read long after it was
    # signed, but may not have been signed before it (baton/runtime/approver_keys.py).
    asked_at: AwareDatetime


def starting_memo() -> dict[str, ApprovalsMemo]:
    """The memo a run is started with (baton/runtime/launch.py): it says the run keeps its
    approvals in the memo from its first moment, so it needs no patch marker for it."""
    return {APPROVALS_MEMO: ApprovalsMemo()}


def shown_arguments(arguments: dict[str, Any]) -> dict[str, Any]:
    """`arguments` as a person reads them in a listing: numbers, booleans and short
    strings as they are, long or nested values shortened (as text), at most 20 fields."""
    shown: dict[str, Any] = {}
    for name, value in list(arguments.items())[:SHOWN_FIELDS]:
        if value is None or isinstance(value, bool | int | float):
            shown[name] = value
        elif isinstance(value, str):
            shown[name] = shorten(value, SHOWN_VALUE_CHARS)
        else:
            shown[name] = shorten(json.dumps(value, default=str), SHOWN_VALUE_CHARS)
    return shown


def shown_request(request: ApprovalRequest) -> ApprovalRequest:
    """The request as the memo keeps it: long arguments and reasons shortened."""
    return request.model_copy(update={"arguments": shown_arguments(request.arguments),
                                      "why": shorten(request.why, SHOWN_WHY_CHARS)})


def deadline(request: ApprovalRequest) -> datetime:
    """When the request's default applies if nobody has decided."""
    return request.asked_at + timedelta(seconds=request.timeout_s)
