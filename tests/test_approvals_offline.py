"""Approvals that never depend on a live worker (baton/runtime/approvals.py,
baton/core/waiting.py, baton/runtime/liveness.py, workflows/approval.py,
baton/runtime/watch.py): with every worker stopped,
`pending` answers from one visibility query and `approve` is recorded; a worker that
comes back applies the decision (the tool runs once) or refuses it with its reason,
recorded in the memo and the trace; encrypted and signed decisions keep their checks;
`watch` says that no worker polls and keeps waiting."""

from __future__ import annotations

import asyncio
import os
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from temporalio.client import Client
from temporalio.common import SearchAttributePair, TypedSearchAttributes
from temporalio.testing import WorkflowEnvironment

import baton
from baton.core.model_io import ModelRequest, ModelResponse, ToolCall
from baton.core.runs import ApprovalRequest, Decision, RunResult
from baton.core.session_io import session_workflow_id
from baton.core.usage import Usage
from baton.core.waiting import (
    APPROVALS_MEMO,
    DECISION_SIGNAL,
    ApprovalsMemo,
    DecisionOutcome,
    DurableDecision,
)
from baton.define.catalogue import load_catalogue
from baton.runtime.approvals import (
    ApprovalError,
    Recorded,
    decide,
    decision_outcomes,
    pending,
    pending_in_tree,
)
from baton.runtime.approver_keys import KEYS_ENV, ApproverKeys
from baton.runtime.codec import ENCODING, WORKFLOW_METADATA
from baton.runtime.sessions import send_turn
from baton.runtime.temporal import build_replayer
from baton.telemetry.search import STATUS
from tests.helpers import worker
from tests.scripted import scripted_offline
from tests.test_approver_keys import ALICE
from tests.test_codec import encrypted_client
from tests.test_integrity import plain_client, require
from tests.test_starter import ROOT, run_starter

FAST = {"max_attempts": 2, "initial_interval_s": 0.1, "backoff": 1.0, "max_interval_s": 0.1}
refunds: list[str] = []


@pytest.fixture(autouse=True)
def clear() -> None:
    refunds.clear()


@baton.tool(approval=True)
def refund_while_away(order_id: str, amount_usd: float) -> str:
    """Refund an order (a manager approves every refund)."""
    refunds.append(order_id)
    return f"refunded {amount_usd} USD on {order_id}"


@baton.tool(approval=True, approval_timeout=6.0)
def refund_in_time(order_id: str, amount_usd: float) -> str:
    """Refund an order if a manager approves within 6 s (else it is not refunded)."""
    refunds.append(order_id)
    return f"refunded {amount_usd} USD on {order_id}"


CLERK = baton.Agent("away_clerk", "Help customers.", model="offline:standard",
                    tools=[refund_while_away], retry=FAST)
TIMED_CLERK = baton.Agent("timed_clerk", "Help customers.", model="offline:standard",
                          tools=[refund_in_time], retry=FAST)


def refunds_asked(request: ModelRequest) -> ModelResponse | None:
    """A clerk's first turn asks for a refund of each order named in the request."""
    if request.agent not in ("away_clerk", "timed_clerk") or request.call_index:
        return None
    orders = [w.strip(".,") for w in request.messages[-1].content.split() if "-" in w]
    calls = [ToolCall(id=f"c{i}", name=request.tools[0].name,
                      arguments={"order_id": order, "amount_usd": 500})
             for i, order in enumerate(orders)]
    return ModelResponse(model=request.model, tool_calls=calls, usage=Usage(calls=1))


async def waiting_requests(client: Client, workflow_id: str,
                           count: int = 1) -> list[ApprovalRequest]:
    """The run's requests as `pending` shows them, once it waits for `count`."""
    for _ in range(300):
        listed = {w.workflow_id: w for w in await pending(client)}
        if workflow_id in listed and len(listed[workflow_id].requests) >= count:
            return listed[workflow_id].requests
        await asyncio.sleep(0.1)
    raise AssertionError(f"{workflow_id} never asked for {count} approval(s)")


def forbid_asking_runs(monkeypatch: pytest.MonkeyPatch, client: Client) -> None:
    """Fail at once if a run is queried or sent an Update: with every worker stopped
    either would wait ~30 s for a worker that is not there."""
    def refuse(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("a run was asked while no worker runs it")

    for rpc in ("query_workflow", "update_workflow_execution"):
        monkeypatch.setattr(client.workflow_service, rpc, refuse)


async def timed(awaitable: Any) -> tuple[Any, float]:
    started = time.monotonic()
    result = await awaitable
    return result, time.monotonic() - started


async def lines_until(stream: asyncio.StreamReader, wanted: str, timeout: float) -> list[str]:
    """Lines read from `stream` up to the first that contains `wanted`."""
    seen: list[str] = []
    async with asyncio.timeout(timeout):
        while not seen or wanted not in seen[-1]:
            line = await stream.readline()
            if not line:
                raise AssertionError(f"{wanted!r} never came: {seen}")
            seen.append(line.decode())
    return seen


async def test_with_every_worker_stopped_pending_and_approve_answer_at_once(
        env: WorkflowEnvironment, task_queue: str, monkeypatch: pytest.MonkeyPatch) -> None:
    address = env.client.service_client.config.target_host
    session_id = f"idle-{uuid.uuid4().hex[:8]}"
    with scripted_offline(refunds_asked):
        async with worker(env.client, task_queue, tools=CLERK.tools()):
            handle = await baton.start(CLERK, "Refund orders W-1 and W-2", client=env.client,
                                       task_queue=task_queue)
            # An idle chat session on the same queue: `pending` used to query it too.
            await send_turn(env.client, session_id, "support_desk", "Hello",
                            load_catalogue(), task_queue)
            requests = await waiting_requests(env.client, handle.workflow_id, 2)
        # Every worker is stopped from here on, until the second `worker(...)`.
        first, second = sorted(requests, key=lambda r: r.arguments["order_id"])
        with monkeypatch.context() as no_worker:
            forbid_asking_runs(no_worker, env.client)
            listed, took = await timed(pending(env.client))
            assert took < 1.0, f"pending took {took:.2f} s"
            [waiting] = [w for w in listed if w.workflow_id == handle.workflow_id]
            assert [(r.request_id, r.arguments) for r in waiting.requests] == [
                (first.request_id, {"order_id": "W-1", "amount_usd": 500}),
                (second.request_id, {"order_id": "W-2", "amount_usd": 500})]
            assert session_workflow_id(session_id) not in {w.workflow_id for w in listed}
            delivery, took = await timed(baton.approve(
                handle.workflow_id, request=first.request_id, client=env.client))
            assert took < 1.0, f"approve took {took:.2f} s"
            assert list(delivery) == [] and delivery.recorded == [
                Recorded(handle.workflow_id, first.request_id, True)]
            with pytest.raises(ApprovalError, match="no pending request 'nope'"):
                await baton.approve(handle.workflow_id, request="nope", client=env.client)
            # Accepted by the client (the memo still lists it), refused by the run: W-1
            # will have been approved by then.
            await baton.reject(handle.workflow_id, "changed my mind", request=first.request_id,
                               client=env.client)
            # Sent past the client's checks: a request the run never had.
            await handle.handle.signal(DECISION_SIGNAL, DurableDecision(
                decision=Decision(request_id="ghost-9", approve=True),
                sent_at=datetime.now(UTC)))
        code, out, err = await run_starter(env, task_queue, "pending")
        assert code == 0, err
        assert f"{first.request_id:<20} away_clerk · refund_while_away" in out
        code, out, err = await run_starter(env, task_queue, "approve", handle.workflow_id,
                                           "--request", second.request_id)
        assert code == 0 and "Traceback" not in err, err
        assert (f"{second.request_id} in {handle.workflow_id}: approval recorded; it takes "
                "effect when a worker runs the run") in out
        watcher = await asyncio.create_subprocess_exec(
            sys.executable, "starter.py", "watch", handle.workflow_id, "--from-start",
            cwd=ROOT, env={**os.environ, "TEMPORAL_ADDRESS": address},
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
        try:
            assert watcher.stderr is not None and watcher.stdout is not None
            await lines_until(watcher.stderr, f"no worker is polling task queue {task_queue}",
                              timeout=30)
            assert refunds == []
            async with worker(env.client, task_queue, tools=CLERK.tools()):
                outcome = await asyncio.wait_for(handle.result(), 60)
                watched, _ = await asyncio.wait_for(watcher.communicate(), 60)
        finally:
            if watcher.returncode is None:
                watcher.kill()
                await watcher.wait()
            await env.client.get_workflow_handle(session_workflow_id(session_id)).terminate()
    assert watcher.returncode == 0
    assert f"result ({outcome.status})" in watched.decode()
    assert sorted(refunds) == ["W-1", "W-2"]  # each approved refund ran exactly once
    assert sorted((a.request.request_id, a.approved) for a in outcome.result.approvals) == [
        (first.request_id, True), (second.request_id, True)]
    outcomes = await decision_outcomes(env.client, handle.workflow_id)
    # In the order they were sent, each with what became of it.
    assert [(o.request_id, o.approve, o.outcome, o.delivered) for o in outcomes] == [
        (first.request_id, True, "applied", "signal"),
        (first.request_id, False, "refused", "signal"),
        ("ghost-9", True, "refused", "signal"),
        (second.request_id, True, "applied", "signal")]
    assert outcomes[1].reason.startswith(f"request {first.request_id!r} was already approved")
    assert outcomes[2].reason.startswith("this run has no approval request 'ghost-9'")
    refused = [s.detail for s in outcome.result.trace if not s.ok and s.kind == "approval"]
    assert refused == [f"decision on {first.request_id} refused: {outcomes[1].reason}",
                       f"decision on ghost-9 refused: {outcomes[2].reason}"]
    # The signature checks are local activities: history keeps their answers.
    await build_replayer().replay_workflow(await handle.handle.fetch_history())


async def test_a_decision_sent_before_the_deadline_wins_and_one_sent_after_is_refused(
        env: WorkflowEnvironment, task_queue: str) -> None:
    """The worker is down past the request's deadline: the timer and the decision reach
    the run together, and the time it was sent decides which counts."""
    with scripted_offline(refunds_asked):
        async with worker(env.client, task_queue, tools=TIMED_CLERK.tools()):
            early = await baton.start(TIMED_CLERK, "Refund order T-1", client=env.client,
                                      task_queue=task_queue)
            late = await baton.start(TIMED_CLERK, "Refund order T-2", client=env.client,
                                     task_queue=task_queue)
            [asked] = await waiting_requests(env.client, early.workflow_id)
            await waiting_requests(env.client, late.workflow_id)
        in_time = await baton.approve(early.workflow_id, client=env.client)
        due = asked.asked_at + timedelta(seconds=asked.timeout_s)
        assert [r.request_id for r in in_time.recorded] == [asked.request_id]
        assert datetime.now(UTC) < due, "the worker took too long to stop for this test"
        await asyncio.sleep((due - datetime.now(UTC)).total_seconds() + 1.0)
        too_late = await baton.approve(late.workflow_id, client=env.client)
        assert len(too_late.recorded) == 1  # the client cannot know the timer fired
        async with worker(env.client, task_queue, tools=TIMED_CLERK.tools()):
            approved = await asyncio.wait_for(early.result(), 60)
            defaulted = await asyncio.wait_for(late.result(), 60)
    assert refunds == ["T-1"]
    [record] = approved.result.approvals
    assert record.approved and not record.timed_out
    [record] = defaulted.result.approvals
    assert record.timed_out and not record.approved
    [outcome] = await decision_outcomes(env.client, late.workflow_id)
    assert outcome.outcome == "refused" and "after the deadline of request" in outcome.reason
    assert "its default (reject) applies" in outcome.reason
    for handle in (early, late):
        await build_replayer().replay_workflow(await handle.handle.fetch_history())


async def test_encrypted_signed_decisions_wait_for_a_worker_and_keep_their_checks(
        env: WorkflowEnvironment, task_queue: str, monkeypatch: pytest.MonkeyPatch) -> None:
    require(monkeypatch, None)  # key A everywhere, plain payloads refused
    monkeypatch.setenv(KEYS_ENV, ALICE.public_entry())
    client = await encrypted_client(env)
    with scripted_offline(refunds_asked):
        async with worker(client, task_queue, tools=CLERK.tools()):
            handle = await baton.start(CLERK, "Refund order E-1", client=client,
                                       task_queue=task_queue)
            [request] = await waiting_requests(client, handle.workflow_id)
        # What the server keeps of the memo is ciphertext, bound to this run.
        described = await (await plain_client(env)).get_workflow_handle(
            handle.workflow_id).describe()
        kept = described.raw_description.workflow_execution_info.memo.fields[APPROVALS_MEMO]
        assert kept.metadata["encoding"] == ENCODING and b"E-1" not in kept.data
        assert kept.metadata[WORKFLOW_METADATA] == handle.workflow_id.encode()
        unreadable: list[str] = []
        assert handle.workflow_id not in {
            w.workflow_id for w in await pending(await plain_client(env), unreadable=unreadable)}
        assert handle.workflow_id in unreadable
        # Unsigned (recorded: the client cannot know the workers want signatures), and
        # a plain forgery from a client without the key (dropped by the worker).
        unsigned = await decide(client, handle.workflow_id,
                                Decision(request_id=request.request_id, approve=True,
                                         by="mallory"))
        assert len(unsigned.recorded) == 1
        await (await plain_client(env)).get_workflow_handle(handle.workflow_id).signal(
            DECISION_SIGNAL, {"decision": {"request_id": request.request_id, "approve": True,
                                           "by": "forged-ceo"},
                              "sent_at": datetime.now(UTC).isoformat()})
        async with worker(client, task_queue, tools=CLERK.tools()):
            refusal = await refused_outcome(client, handle.workflow_id)
            assert "accepts only signed decisions" in refusal.reason
            [waiting] = [w for w in await pending(client) if w.workflow_id == handle.workflow_id]
            assert [o.reason for o in waiting.outcomes] == [refusal.reason]
            code, out, err = await run_starter(env, task_queue, "pending")
            assert code == 0, err
            assert "a decision was refused at" in out and "accepts only signed" in out
            assert refunds == []
            # A worker runs the run now: the signed decision is applied at once.
            [record] = await baton.approve(handle.workflow_id, by="alice", client=client,
                                           key=ALICE)
            outcome = await asyncio.wait_for(handle.result(), 60)
    assert refunds == ["E-1"]
    assert (record.signed_by, record.decided_by) == ("alice", "alice")
    outcomes = await decision_outcomes(client, handle.workflow_id)
    assert [(o.by, o.outcome, o.delivered) for o in outcomes] == [
        ("mallory", "refused", "signal"), ("alice", "applied", "update")]
    assert outcome.result.approvals[0].signed_by == "alice"
    # The keys' verdict on the signal is in history: the run replays without any keys.
    monkeypatch.delenv(KEYS_ENV)
    await build_replayer().replay_workflow(await handle.handle.fetch_history())


def test_a_recorded_decision_may_be_read_late_but_not_signed_before_its_request() -> None:
    asked = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
    keys = ApproverKeys.parse(ALICE.public_entry())
    decision = Decision(request_id="refund-1", approve=True)
    signed = ALICE.sign(decision, workflow_id="w", run_id="r",
                        now=asked + timedelta(minutes=5))
    read = asked + timedelta(hours=3)  # the worker came back three hours later
    keys.check_recorded(signed, workflow_id="w", run_id="r", now=read, asked_at=asked)
    with pytest.raises(ValueError, match="up to 0:10:00 old"):  # an Update keeps 10 minutes
        keys.check(signed, workflow_id="w", run_id="r", now=read)
    before = ALICE.sign(decision, workflow_id="w", run_id="r", now=asked - timedelta(hours=1))
    with pytest.raises(ValueError, match="the request's time"):
        keys.check_recorded(before, workflow_id="w", run_id="r", now=read, asked_at=asked)
    with pytest.raises(ValueError, match="does not match"):  # still bound to its run
        keys.check_recorded(signed, workflow_id="w", run_id="other", now=read, asked_at=asked)


async def refused_outcome(client: Client, workflow_id: str) -> DecisionOutcome:
    for _ in range(300):
        refused = [o for o in await decision_outcomes(client, workflow_id)
                   if o.outcome == "refused"]
        if refused:
            return refused[0]
        await asyncio.sleep(0.1)
    raise AssertionError(f"{workflow_id} never refused a decision")


async def test_pending_is_one_visibility_query_whatever_the_number_of_runs(
        env: WorkflowEnvironment, task_queue: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Runs that say they wait (as the desk records them) on a queue no worker has ever
    polled, and a running run that says nothing (a session): no run is asked."""
    asked_at = datetime.now(UTC)
    handles = [await env.client.start_workflow(
        "AgentWorkflow", id=f"waiting-{i}-{uuid.uuid4().hex[:6]}", task_queue=task_queue,
        memo={APPROVALS_MEMO: ApprovalsMemo(waiting=[ApprovalRequest(
            request_id="refund-1", workflow_id=f"w{i}", kind="tool", agent="clerk",
            subject="refund", arguments={"order_id": f"O-{i}"}, why="policy",
            asked_at=asked_at, timeout_s=600)])},
        search_attributes=TypedSearchAttributes([SearchAttributePair(
            STATUS, "waiting_approval")])) for i in range(40)]
    silent = await env.client.start_workflow("SessionWorkflow", id=f"silent-{uuid.uuid4()}",
                                             task_queue=task_queue)
    try:
        forbid_asking_runs(monkeypatch, env.client)
        monkeypatch.setattr(env.client.workflow_service, "describe_workflow_execution",
                            lambda *a, **k: pytest.fail("a run was described"))
        wanted = {h.id for h in handles}
        for _ in range(100):  # visibility is eventually consistent
            listed, took = await timed(pending(env.client))
            if wanted <= {w.workflow_id for w in listed}:
                break
            await asyncio.sleep(0.1)
        assert took < 1.0, f"pending took {took:.2f} s"
        shown = {w.workflow_id: w.requests[0].arguments for w in listed}
        assert {shown[h.id]["order_id"] for h in handles} == {f"O-{i}" for i in range(40)}
        assert silent.id not in shown
    finally:
        monkeypatch.undo()
        for handle in [*handles, silent]:
            await handle.terminate("test over")


async def test_with_a_worker_decisions_are_applied_at_once_and_counted_once(
        env: WorkflowEnvironment, task_queue: str) -> None:
    """A live worker takes the Update as before; the same decision arriving again as a
    signal (an Update slow to land, then its fallback) counts once; the memo keeps long
    arguments short and reads back as the client's types."""
    from baton.core.waiting import shown_arguments

    shown = shown_arguments({"note": "x" * 500, "items": [1, 2, 3], "n": 3, "ok": True})
    assert shown["note"].endswith("…") and len(shown["note"]) == 120
    assert shown["items"] == "[1, 2, 3]" and (shown["n"], shown["ok"]) == (3, True)
    with scripted_offline(refunds_asked):
        async with worker(env.client, task_queue, tools=CLERK.tools()):
            handle = await baton.start(CLERK, "Refund orders M-1 and M-2", client=env.client,
                                       task_queue=task_queue)
            listed = await waiting_requests(env.client, handle.workflow_id, 2)
            asked = await pending_in_tree(env.client, handle.workflow_id)
            assert listed == asked  # short arguments are kept as they are
            first, second = sorted(asked, key=lambda r: r.arguments["order_id"])
            delivery = await baton.approve(handle.workflow_id, request=first.request_id,
                                           client=env.client)
            assert delivery.recorded == [] and [r.approved for r in delivery] == [True]
            again = Decision(request_id=first.request_id, approve=True,
                             identity=env.client.identity)
            for decision in (again, Decision(request_id=first.request_id, approve=False,
                                             reason="second thoughts")):
                await handle.handle.signal(DECISION_SIGNAL, DurableDecision(
                    decision=decision, sent_at=datetime.now(UTC)))
            await refused_outcome(env.client, handle.workflow_id)
            await baton.approve(handle.workflow_id, request=second.request_id,
                                client=env.client)
            result: RunResult = (await asyncio.wait_for(handle.result(), 60)).result
    assert sorted(refunds) == ["M-1", "M-2"] and result.status == "ok"
    memo = await (await handle.handle.describe()).memo_value(APPROVALS_MEMO,
                                                             type_hint=ApprovalsMemo)
    assert memo.waiting == []
    assert [(d.request_id, d.approve, d.outcome, d.delivered) for d in memo.decisions] == [
        (first.request_id, True, "applied", "update"),
        (first.request_id, False, "refused", "signal"),  # the duplicate left no trace
        (second.request_id, True, "applied", "update")]
