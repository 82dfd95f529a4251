"""Deciding approvals from outside a run: `pending`, `approve`, `reject`.

A request may wait in the run itself or in one of its nested runs (a fan-out
branch, a supervisor's team): these functions look through the run and its
running descendants (child ids start with the run's id) for the request, and send
the `decide` update to exactly the workflow that holds it. Each is one call, so a
web handler or a chat bot that holds no connection can decide and get the record.
Every decision carries the client's Temporal identity; with an approver key
(BATON_APPROVER_KEY) each request gets its own decision, signed for exactly its run
(baton/approver_keys.py), which a worker with BATON_APPROVER_KEYS requires.
"""

from __future__ import annotations

from dataclasses import dataclass

from temporalio.client import Client, WorkflowUpdateFailedError
from temporalio.exceptions import ApplicationError
from temporalio.service import RPCError, RPCStatusCode

from baton.approver_keys import SigningKey
from baton.codec import client_key_problem
from baton.runs import ApprovalRecord, ApprovalRequest, Decision
from baton.search import STATUS

# Runs that say they wait, and runs that say nothing (recorded before Baton set its
# search attributes, or not Baton runs): only those are asked, not every running run.
WAITING_RUNS = (f"ExecutionStatus = 'Running' AND ({STATUS.name} = 'waiting_approval' "
                f"OR {STATUS.name} IS NULL)")


class ApprovalError(ValueError):
    """A decision that cannot be delivered; the message says why, nothing changed."""


@dataclass
class Waiting:
    """A run waiting for people, and what it waits for."""

    workflow_id: str
    requests: list[ApprovalRequest]


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
    """Pending requests of a run and of its running nested runs."""
    found = await _pending_in(client, workflow_id)
    query = f"WorkflowId STARTS_WITH '{workflow_id}/' AND ExecutionStatus = 'Running'"
    async for child in client.list_workflows(query):
        found += await _pending_in(client, child.id)
    return found


async def pending(client: Client, *, unreadable: list[str] | None = None) -> list[Waiting]:
    """Every running run (top level) that waits for a person, with its requests. A run
    whose answer this client cannot decrypt (no key, or another) is skipped, its id
    added to `unreadable` when a list is given: one encrypted run hides no other."""
    waiting: dict[str, list[ApprovalRequest]] = {}
    try:
        executions = [e async for e in client.list_workflows(WAITING_RUNS)]
    except RPCError as err:
        if err.status != RPCStatusCode.INVALID_ARGUMENT:
            raise
        # A namespace without Baton's search attributes: every running run is asked.
        executions = [e async for e in client.list_workflows("ExecutionStatus = 'Running'")]
    for execution in executions:
        try:
            requests = await _pending_in(client, execution.id)
        except (ApprovalError, RPCError):
            continue  # not a Baton run, or one that ended meanwhile
        except Exception as err:
            if client_key_problem(err) is None:
                raise
            if unreadable is not None:
                unreadable.append(execution.id)
            continue
        if requests:
            top = execution.id.split("/", 1)[0]
            waiting.setdefault(top, []).extend(requests)
    return [Waiting(workflow_id=w, requests=r) for w, r in sorted(waiting.items())]


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


async def _send(client: Client, holder: str, decision: Decision,
                run_id: str | None = None) -> list[ApprovalRecord]:
    try:
        records: list[ApprovalRecord] = await client.get_workflow_handle(
            holder, run_id=run_id).execute_update(
                "decide", decision, result_type=list[ApprovalRecord])
    except WorkflowUpdateFailedError as err:
        cause = err.cause
        message = cause.message if isinstance(cause, ApplicationError) else str(cause)
        raise ApprovalError(f"{holder}: {message}") from None
    return records


async def _send_signed(client: Client, holder: str, decision: Decision, key: SigningKey,
                       request_ids: list[str]) -> list[ApprovalRecord]:
    """One signed Update per request, each signature bound to the holder's current run,
    so it cannot be replayed on another run or request, nor stand for "all pending"."""
    try:
        run_id = (await client.get_workflow_handle(holder).describe()).run_id
    except RPCError as err:
        raise ApprovalError(f"{holder}: cannot find its current run: {err.message}") from None
    records: list[ApprovalRecord] = []
    for request_id in request_ids:
        signed = key.sign(decision.model_copy(update={"request_id": request_id}),
                          workflow_id=holder, run_id=run_id)
        records += await _send(client, holder, signed, run_id)
    return records


async def decide(client: Client, workflow_id: str, decision: Decision, *,
                 key: SigningKey | None = None) -> list[ApprovalRecord]:
    """Deliver `decision` to the workflow(s) of this run that hold the request(s),
    with the client's Temporal identity, signed with `key` when one is given."""
    requests = await pending_in_tree(client, workflow_id)
    holders = _holders(workflow_id, decision, requests)
    decision = decision.model_copy(update={"identity": client.identity})
    records: list[ApprovalRecord] = []
    for holder in sorted(holders):
        if key is None:
            records += await _send(client, holder, decision)
            continue
        request_ids = ([decision.request_id] if decision.request_id else
                       [r.request_id for r in requests if r.workflow_id == holder])
        records += await _send_signed(client, holder, decision, key, request_ids)
    return records


async def approve(workflow_id: str, request: str | None = None, note: str = "", *,
                  by: str = "", client: Client | None = None,
                  key: SigningKey | None = None) -> list[ApprovalRecord]:
    """Approve one pending request of a run, or all of them; signed with `key`
    (default: BATON_APPROVER_KEY when set)."""
    from baton.temporal import connect

    key = key or SigningKey.from_env()
    client = client or await connect()
    return await decide(client, workflow_id,
                        Decision(request_id=request, approve=True, note=note, by=by), key=key)


async def reject(workflow_id: str, reason: str, request: str | None = None, *,
                 by: str = "", client: Client | None = None,
                 key: SigningKey | None = None) -> list[ApprovalRecord]:
    """Reject one pending request of a run, or all of them; the agent is told `reason`.
    Signed with `key` (default: BATON_APPROVER_KEY when set)."""
    from baton.temporal import connect

    if not reason.strip():
        raise ApprovalError("a rejection needs a reason (it is what the agent is told)")
    key = key or SigningKey.from_env()
    client = client or await connect()
    return await decide(client, workflow_id,
                        Decision(request_id=request, approve=False, reason=reason, by=by),
                        key=key)
