"""Deciding approvals from outside a run: `pending`, `approve`, `reject`, whatever the
workers' state.

A waiting run keeps what it waits for in its memo (baton/core/waiting.py), so nothing
here asks a run (no query, no worker needed):
- `pending(client)` is one visibility list query, the runs whose BatonStatus is
  `waiting_approval`, each read from its memo. Sessions and other running runs are
  never asked (a session that waits for a person is decided by its id).
- `decide(client, workflow_id, decision)` finds the request in the run's memo or in
  one of its running nested runs' (a fan-out branch, a supervisor's team: ids start
  with the run's id), then delivers it to exactly the workflow that holds it. When a
  worker serves that run's task queue (baton/runtime/liveness.py) it sends the `decide`
  Update: validated at once, the records come back (`Delivery.applied`), a refused
  decision changes nothing and says why (ApprovalError). When none does, or the
  Update is not answered within `UPDATE_PATIENCE`, it sends the `decide_when_running`
  signal instead: the server keeps it, and the run applies or refuses it when a
  worker runs the run (`Delivery.recorded`); the outcome shows in the run's memo
  (`decision_outcomes`, `pending`) and its trace.
Every decision carries the client's Temporal identity; with an approver key
(BATON_APPROVER_KEY) each request gets its own decision, signed for exactly its run
(baton/runtime/approver_keys.py), which a worker with BATON_APPROVER_KEYS requires.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import overload

from temporalio.client import (
    Client,
    WorkflowExecution,
    WorkflowExecutionStatus,
    WorkflowUpdateFailedError,
    WorkflowUpdateRPCTimeoutOrCancelledError,
)
from temporalio.exceptions import ApplicationError
from temporalio.service import RPCError, RPCStatusCode

from baton.core.runs import ApprovalRecord, ApprovalRequest, Decision
from baton.core.waiting import (
    APPROVALS_MEMO,
    DECISION_SIGNAL,
    ApprovalsMemo,
    DecisionOutcome,
    DurableDecision,
)
from baton.runtime.approver_keys import SigningKey
from baton.runtime.codec import client_key_problem
from baton.runtime.liveness import serving_workers
from baton.runtime.temporal import connect
from baton.telemetry.search import STATUS, nested_runs

# The runs that say they wait for a person: found by the status search attribute.
WAITING_RUNS = f"ExecutionStatus = 'Running' AND {STATUS.name} = 'waiting_approval'"
# On a namespace without Baton's search attributes: every running run, read from the
# listing alone (its memo), never asked.
RUNNING = "ExecutionStatus = 'Running'"
# How long a worker that seems to poll gets to take an Update before the decision is
# sent to wait for one: a live worker answers in milliseconds; one that stopped in the
# last minute (killed, so it could not say so) never does.
UPDATE_PATIENCE = timedelta(seconds=5)


class ApprovalError(ValueError):
    """A decision that cannot be delivered; the message says why, nothing changed."""


@dataclass
class Waiting:
    """A run waiting for people, what it waits for and what became of the decisions
    sent to it. `requests` is empty, with `known` False, for a run that started before
    Baton recorded what runs wait for: `approve` decides it while a worker runs it."""

    workflow_id: str
    requests: list[ApprovalRequest]
    outcomes: list[DecisionOutcome] = field(default_factory=list)
    known: bool = True


@dataclass(frozen=True)
class Recorded:
    """A decision the server holds for a run no worker is running: the run applies or
    refuses it when one does (`decision_outcomes` then says which)."""

    workflow_id: str
    request_id: str
    approve: bool


@dataclass
class Delivery(Sequence[ApprovalRecord]):
    """What a decision did: the records a worker applied at once (this sequence), and
    the decisions recorded for runs no worker was running (`recorded`)."""

    applied: list[ApprovalRecord] = field(default_factory=list)
    recorded: list[Recorded] = field(default_factory=list)

    @overload
    def __getitem__(self, index: int) -> ApprovalRecord: ...

    @overload
    def __getitem__(self, index: slice) -> Sequence[ApprovalRecord]: ...

    def __getitem__(self, index: int | slice) -> ApprovalRecord | Sequence[ApprovalRecord]:
        return self.applied[index]

    def __len__(self) -> int:
        return len(self.applied)

    def __iter__(self) -> Iterator[ApprovalRecord]:
        return iter(self.applied)


@dataclass
class _Holder:
    """A run (or nested run) of the tree, and what its memo says it waits for (None: it
    recorded nothing, or asks from code older than the memo)."""

    workflow_id: str
    run_id: str
    task_queue: str
    requests: list[ApprovalRequest] | None
    says_waiting: bool


class _Unanswered(Exception):
    """No worker took the Update in time."""


# --- pending ------------------------------------------------------------------------


async def pending(client: Client, *, unreadable: list[str] | None = None) -> list[Waiting]:
    """Every running run that waits for a person (nested runs under their top-level
    run), from one visibility query: no run is asked, so it answers as fast with every
    worker stopped. A run whose memo this client cannot decrypt (no key, or another)
    is skipped, its id added to `unreadable` when a list is given."""
    try:
        executions = [e async for e in client.list_workflows(WAITING_RUNS)]
        by_status = True
    except RPCError as err:
        if err.status != RPCStatusCode.INVALID_ARGUMENT:
            raise
        executions = [e async for e in client.list_workflows(RUNNING)]
        by_status = False
    waiting: dict[str, Waiting] = {}
    for execution in executions:
        try:
            requests, outcomes = await _memo(execution)
        except Exception as err:
            if client_key_problem(err) is None:
                raise
            if unreadable is not None:
                unreadable.append(execution.id)
            continue
        if requests == [] or (requests is None and not by_status):
            continue  # decided meanwhile, or not waiting (not a Baton run)
        top = waiting.setdefault(execution.id.split("/", 1)[0],
                                 Waiting(execution.id.split("/", 1)[0], []))
        top.requests += requests or []
        top.outcomes += outcomes
        top.known = top.known and requests is not None
    return [waiting[w] for w in sorted(waiting)]


async def _memo(execution: WorkflowExecution,
                ) -> tuple[list[ApprovalRequest] | None, list[DecisionOutcome]]:
    """What the run's memo says it waits for (None: it recorded nothing) and what
    became of the decisions sent to it."""
    memo: ApprovalsMemo | None = await execution.memo_value(APPROVALS_MEMO, None,
                                                            type_hint=ApprovalsMemo)
    return (None, []) if memo is None else (memo.waiting, memo.decisions)


async def decision_outcomes(client: Client, workflow_id: str) -> list[DecisionOutcome]:
    """What became of the last decisions sent to a run (from its memo, no worker needed)."""
    described = await _describe(client, workflow_id)
    return (await _memo(described))[1]


# --- asking a run (a worker must run it) ------------------------------------------


async def _pending_in(client: Client, workflow_id: str) -> list[ApprovalRequest]:
    handle = client.get_workflow_handle(workflow_id)
    try:
        requests: list[ApprovalRequest] = await handle.query(
            "pending_approvals", result_type=list[ApprovalRequest])
    except RPCError as err:
        if err.status == RPCStatusCode.NOT_FOUND:
            raise ApprovalError(f"no run {workflow_id!r} in namespace "
                                f"{client.namespace!r}") from None
        raise
    return requests


async def pending_in_tree(client: Client, workflow_id: str) -> list[ApprovalRequest]:
    """Pending requests of a run and of its running nested runs, with their full
    arguments, asked of the runs themselves: a worker must be running them."""
    found = await _pending_in(client, workflow_id)
    query = f"{nested_runs(workflow_id)} AND ExecutionStatus = 'Running'"
    async for child in client.list_workflows(query):
        found += await _pending_in(client, child.id)
    return found


# --- deciding -----------------------------------------------------------------------


async def _describe(client: Client, workflow_id: str) -> WorkflowExecution:
    try:
        return await client.get_workflow_handle(workflow_id).describe()
    except RPCError as err:
        if err.status == RPCStatusCode.NOT_FOUND:
            raise ApprovalError(f"no run {workflow_id!r} in namespace "
                                f"{client.namespace!r}") from None
        raise


async def _holder(client: Client, workflow_id: str) -> _Holder:
    # Described, not listed: the run's own record, with the memo its last task wrote.
    described = await _describe(client, workflow_id)
    running = described.status == WorkflowExecutionStatus.RUNNING
    requests = (await _memo(described))[0] if running else []
    return _Holder(workflow_id, described.run_id or "", described.task_queue, requests,
                   described.typed_search_attributes.get(STATUS) == "waiting_approval")


async def _holders_in_tree(client: Client, workflow_id: str) -> list[_Holder]:
    """The run and its running nested runs, each with what it waits for."""
    holders = [await _holder(client, workflow_id)]
    query = f"{nested_runs(workflow_id)} AND ExecutionStatus = 'Running'"
    async for child in client.list_workflows(query):
        holders.append(await _holder(client, child.id))
    for holder in holders:
        if holder.requests is None and holder.says_waiting:
            holder.requests = await _asked(client, holder.workflow_id)
    return holders


async def _asked(client: Client, workflow_id: str) -> list[ApprovalRequest]:
    """What a run that waits since before runs kept their memo waits for, asked of it."""
    try:
        return await _pending_in(client, workflow_id)
    except RPCError as err:
        raise ApprovalError(f"{workflow_id} started waiting before Baton recorded what runs "
                            "wait for: it can be decided only while a worker runs it "
                            f"({err.message})") from None


def _holders(workflow_id: str, decision: Decision,
             requests: list[ApprovalRequest]) -> set[str]:
    """The workflows (the run or nested runs) that hold what `decision` decides."""
    if decision.request_id is None:
        holders = {r.workflow_id for r in requests}
        if not holders:
            raise ApprovalError(f"run {workflow_id!r} is not waiting for a decision")
        return holders
    holders = {r.workflow_id for r in requests if r.request_id == decision.request_id}
    if not holders:
        known = ", ".join(r.request_id for r in requests) or "none"
        raise ApprovalError(f"run {workflow_id!r} has no pending request "
                            f"{decision.request_id!r}; pending: {known}")
    if len(holders) > 1:
        raise ApprovalError(f"request {decision.request_id!r} is pending in several "
                            f"nested runs ({', '.join(sorted(holders))}); name the nested "
                            "run's workflow id")
    return holders


async def decide(client: Client, workflow_id: str, decision: Decision, *,
                 key: SigningKey | None = None) -> Delivery:
    """Deliver `decision` to the workflow(s) of this run that hold the request(s),
    with the client's Temporal identity, signed with `key` when one is given: applied
    at once by a worker, or recorded until a worker runs the run."""
    holders = await _holders_in_tree(client, workflow_id)
    requests = [r for h in holders for r in h.requests or []]
    targets = _holders(workflow_id, decision, requests)
    decision = decision.model_copy(update={"identity": client.identity})
    delivery = Delivery()
    for holder in sorted((h for h in holders if h.workflow_id in targets),
                         key=lambda h: h.workflow_id):
        request_ids = ([decision.request_id] if decision.request_id else
                       [r.request_id for r in holder.requests or []])
        await _deliver(client, holder, decision, request_ids, key, delivery)
    return delivery


async def _deliver(client: Client, holder: _Holder, decision: Decision,
                   request_ids: list[str], key: SigningKey | None,
                   delivery: Delivery) -> None:
    """By Update while a worker takes them; what is left, by the durable signal."""
    # Signed: one decision per request, bound to this run, so a signature cannot be
    # replayed on another run or request, nor stand for "all pending".
    letters = ([_signed(key, decision, rid, holder) for rid in request_ids] if key
               else [decision])
    if await serving_workers(client, holder.task_queue):
        while letters:
            try:
                delivery.applied += await _update(client, holder, letters[0], key)
            except _Unanswered:
                break
            letters.pop(0)
    for letter in letters:
        for request_id in [letter.request_id] if letter.request_id else request_ids:
            one = letter.model_copy(update={"request_id": request_id})
            await _signal(client, holder, one, key)
            delivery.recorded.append(Recorded(holder.workflow_id, request_id, one.approve))


def _signed(key: SigningKey, decision: Decision, request_id: str, holder: _Holder) -> Decision:
    return key.sign(decision.model_copy(update={"request_id": request_id}),
                    workflow_id=holder.workflow_id, run_id=holder.run_id)


async def _update(client: Client, holder: _Holder, decision: Decision,
                  key: SigningKey | None) -> list[ApprovalRecord]:
    handle = client.get_workflow_handle(holder.workflow_id,
                                        run_id=holder.run_id if key else None)
    try:
        records: list[ApprovalRecord] = await handle.execute_update(
            "decide", decision, result_type=list[ApprovalRecord],
            rpc_timeout=UPDATE_PATIENCE)
    except WorkflowUpdateFailedError as err:
        cause = err.cause
        message = cause.message if isinstance(cause, ApplicationError) else str(cause)
        raise ApprovalError(f"{holder.workflow_id}: {message}") from None
    except WorkflowUpdateRPCTimeoutOrCancelledError:
        raise _Unanswered() from None
    except RPCError as err:
        if err.status == RPCStatusCode.NOT_FOUND:
            raise ApprovalError(f"{holder.workflow_id}: the run ended meanwhile") from None
        raise _Unanswered() from None  # e.g. "no poller seen for task queue recently"
    return records


async def _signal(client: Client, holder: _Holder, decision: Decision,
                  key: SigningKey | None) -> None:
    handle = client.get_workflow_handle(holder.workflow_id,
                                        run_id=holder.run_id if key else None)
    try:
        await handle.signal(DECISION_SIGNAL,
                            DurableDecision(decision=decision, sent_at=datetime.now(UTC)))
    except RPCError as err:
        raise ApprovalError(f"{holder.workflow_id}: the decision could not be recorded "
                            f"({err.message})") from None


async def approve(workflow_id: str, request: str | None = None, note: str = "", *,
                  by: str = "", client: Client | None = None,
                  key: SigningKey | None = None) -> Delivery:
    """Approve one pending request of a run, or all of them; signed with `key`
    (default: BATON_APPROVER_KEY when set)."""
    key = key or SigningKey.from_env()
    client = client or await connect()
    return await decide(client, workflow_id,
                        Decision(request_id=request, approve=True, note=note, by=by), key=key)


async def reject(workflow_id: str, reason: str, request: str | None = None, *,
                 by: str = "", client: Client | None = None,
                 key: SigningKey | None = None) -> Delivery:
    """Reject one pending request of a run, or all of them; the agent is told `reason`.
    Signed with `key` (default: BATON_APPROVER_KEY when set)."""
    if not reason.strip():
        raise ApprovalError("a rejection needs a reason (it is what the agent is told)")
    key = key or SigningKey.from_env()
    client = client or await connect()
    return await decide(client, workflow_id,
                        Decision(request_id=request, approve=False, reason=reason, by=by),
                        key=key)
