"""People in the loop (workflows/approval.py, baton/runtime/approvals.py): a run waits for a
decision delivered by an Update; approve, reject and timeout for a tool, a pipeline
stage and a supervisor's acceptance; decisions validated and routed to exactly the
call they name."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from temporalio.api.sdk.v1 import WorkflowMetadata
from temporalio.testing import WorkflowEnvironment

import baton
from baton.core.model_io import ModelRequest, ModelResponse, ToolCall, Usage
from baton.core.runs import ApprovalRequest, Decision, PipelineResult, RunState, SupervisorResult
from baton.runtime.approvals import WAITING_RUNS, ApprovalError, decide, pending, pending_in_tree
from tests.helpers import worker
from tests.scripted import scripted_offline, tool_results

FAST = {"max_attempts": 2, "initial_interval_s": 0.1, "backoff": 1.0, "max_interval_s": 0.1}
ran: list[str] = []


@pytest.fixture(autouse=True)
def clear() -> None:
    ran.clear()


@baton.tool
def lookup_order(order_id: str) -> str:
    """Look up an order."""
    ran.append(f"lookup {order_id}")
    return f"order {order_id}: delivered, 250 USD"


@baton.tool(approval=lambda order_id, amount_usd: amount_usd > 100)
def issue_refund(order_id: str, amount_usd: float) -> str:
    """Refund an order (above 100 USD a manager approves)."""
    ran.append(f"refund {order_id} {amount_usd}")
    return f"refunded {amount_usd} USD on {order_id}"


@baton.tool(approval=True, approval_timeout=1.0)
def close_account(customer: str) -> str:
    """Close a customer's account."""
    ran.append(f"close {customer}")
    return f"closed {customer}"


def clerk(*tools: baton.Tool) -> baton.Agent:
    return baton.Agent("clerk", "Help customers.", model="offline:standard",
                       tools=list(tools), retry=FAST)


async def wait_for_requests(env: WorkflowEnvironment, workflow_id: str,
                            count: int = 1) -> list[ApprovalRequest]:
    for _ in range(300):
        requests = await pending_in_tree(env.client, workflow_id)
        if len(requests) >= count:
            return requests
        await asyncio.sleep(0.1)
    raise AssertionError(f"{workflow_id} never asked for {count} approval(s)")


async def test_tool_approved_runs_and_the_decision_is_recorded(env: WorkflowEnvironment,
                                                              task_queue: str) -> None:
    member = clerk(lookup_order, issue_refund)
    async with worker(env.client, task_queue, tools=member.tools()):
        handle = await baton.start(member, "Refund 250 USD on order A-1001",
                                   client=env.client, task_queue=task_queue)
        [request] = await wait_for_requests(env, handle.workflow_id)
        assert (request.subject, request.arguments) == (
            "issue_refund", {"order_id": "A-1001", "amount_usd": 250.0})
        assert "approval policy of issue_refund" in request.why
        state = await handle.handle.query("state", result_type=RunState)
        assert state.status == "waiting_approval"
        assert ran == ["lookup A-1001"]  # work before the approval point is done, once
        # The Web UI's Current Details: plain ASCII, the command as inline code to copy.
        details = (await handle.handle.query("__temporal_workflow_metadata",
                                             result_type=WorkflowMetadata)).current_details
        assert details.isascii() and details.startswith(
            f"**Waiting for approval** {request.request_id}: clerk - issue_refund(")
        assert details.endswith(f"`python starter.py approve {handle.workflow_id} "
                                f"--request {request.request_id}`")
        [record] = await baton.approve(handle.workflow_id, request=request.request_id,
                                       note="manager ok", client=env.client)
        outcome = await asyncio.wait_for(handle.result(), 60)
        final = await handle.handle.query("state", result_type=RunState)
    assert record.approved and record.note == "manager ok"
    # Who sent it, as the client states it (what Temporal records with the Update too);
    # no approver keys on this worker, so nothing was signed.
    assert (record.client_identity, record.signed_by) == (env.client.identity, "")
    assert ran == ["lookup A-1001", "refund A-1001 250.0"]
    assert outcome.status == "ok"
    [kept] = outcome.result.approvals
    assert kept.approved and kept.request.request_id == request.request_id
    assert final.status == "ok"


async def test_policy_lets_small_refunds_through_without_a_person(
        env: WorkflowEnvironment, task_queue: str) -> None:
    member = clerk(issue_refund)
    async with worker(env.client, task_queue, tools=member.tools()):
        outcome = await baton.run(member, "Refund 40 USD on order A-7", client=env.client,
                                  task_queue=task_queue)
    assert ran == ["refund A-7 40.0"] and outcome.result.approvals == []


async def test_rejected_tool_never_runs_and_the_model_is_told_why(
        env: WorkflowEnvironment, task_queue: str) -> None:
    member = clerk(issue_refund)
    with scripted_offline(lambda r: None) as model:
        async with worker(env.client, task_queue, tools=member.tools()):
            handle = await baton.start(member, "Refund 900 USD on order B-2",
                                       client=env.client, task_queue=task_queue)
            await wait_for_requests(env, handle.workflow_id)
            await baton.reject(handle.workflow_id, "over the monthly limit", client=env.client)
            outcome = await asyncio.wait_for(handle.result(), 60)
    assert ran == []
    [result] = tool_results(model.requests[-1])
    assert result.startswith("Rejected by a person: over the monthly limit.")
    [record] = outcome.result.approvals
    assert not record.approved and record.reason == "over the monthly limit"
    assert outcome.status == "ok"  # the model carried on


async def test_no_decision_in_time_applies_the_default(env: WorkflowEnvironment,
                                                       task_queue: str) -> None:
    member = clerk(close_account)
    async with worker(env.client, task_queue, tools=member.tools()):
        outcome = await baton.run(member, "Close the account of Dana", client=env.client,
                                  task_queue=task_queue)
    assert ran == []
    [record] = outcome.result.approvals
    assert record.timed_out and not record.approved and record.decided_by == "timeout"
    assert record.reason == "no decision within 1 s"


async def test_parallel_requests_are_decided_one_by_one(env: WorkflowEnvironment,
                                                        task_queue: str) -> None:
    def two_refunds(request: ModelRequest) -> ModelResponse | None:
        if request.call_index:
            return None
        calls = [ToolCall(id=f"c{i}", name="issue_refund",
                          arguments={"order_id": order, "amount_usd": 500})
                 for i, order in enumerate(("X-1", "X-2"))]
        return ModelResponse(model=request.model, tool_calls=calls, usage=Usage(calls=1))

    member = clerk(issue_refund)
    with scripted_offline(two_refunds) as model:
        async with worker(env.client, task_queue, tools=member.tools()):
            handle = await baton.start(member, "Refund both", client=env.client,
                                       task_queue=task_queue)
            requests = await wait_for_requests(env, handle.workflow_id, 2)
            by_order = {r.arguments["order_id"]: r.request_id for r in requests}
            await baton.reject(handle.workflow_id, "duplicate", request=by_order["X-1"],
                               client=env.client)
            assert ran == []  # one decision does not release the other call
            await baton.approve(handle.workflow_id, request=by_order["X-2"],
                                client=env.client)
            outcome = await asyncio.wait_for(handle.result(), 60)
    assert ran == ["refund X-2 500.0"]
    first, second = tool_results(model.requests[-1])
    assert first.startswith("Rejected by a person: duplicate") and second.startswith("refunded")
    assert {(r.request.arguments["order_id"], r.approved) for r in outcome.result.approvals} == {
        ("X-1", False), ("X-2", True)}


async def test_bad_decisions_are_refused_and_the_run_is_unchanged(
        env: WorkflowEnvironment, task_queue: str) -> None:
    member = clerk(issue_refund)
    async with worker(env.client, task_queue, tools=member.tools()):
        handle = await baton.start(member, "Refund 300 USD on order C-3", client=env.client,
                                   task_queue=task_queue)
        [request] = await wait_for_requests(env, handle.workflow_id)
        with pytest.raises(ApprovalError, match="no pending request 'nope'; pending: "):
            await baton.approve(handle.workflow_id, request="nope", client=env.client)
        with pytest.raises(ApprovalError, match="a rejection needs a reason"):
            await baton.reject(handle.workflow_id, "  ", client=env.client)
        with pytest.raises(ApprovalError, match="needs a reason"):  # the update validator
            await decide(env.client, handle.workflow_id,
                         Decision(request_id=request.request_id, approve=False))
        with pytest.raises(ApprovalError, match="no run 'ghost'"):
            await baton.approve("ghost", client=env.client)
        assert [r.request_id for r in await pending_in_tree(env.client, handle.workflow_id)] \
            == [request.request_id]
        assert ran == []
        await baton.approve(handle.workflow_id, client=env.client)
        await asyncio.wait_for(handle.result(), 60)
        with pytest.raises(ApprovalError, match="is not waiting for a decision"):
            await baton.approve(handle.workflow_id, client=env.client)
    history = await handle.handle.fetch_history()
    updates = [e for e in history.events if e.HasField(
        "workflow_execution_update_accepted_event_attributes")]
    assert len(updates) == 1  # refused decisions left no trace in history


async def test_decision_after_a_worker_restart(env: WorkflowEnvironment,
                                               task_queue: str) -> None:
    member = clerk(lookup_order, issue_refund)
    async with worker(env.client, task_queue, tools=member.tools()):
        handle = await baton.start(member, "Refund 250 USD on order D-4", client=env.client,
                                   task_queue=task_queue)
        await wait_for_requests(env, handle.workflow_id)
    # The worker is gone while the run waits; a new one (no cache: it rebuilds the run
    # from history) receives the decision.
    async with worker(env.client, task_queue, tools=member.tools(), max_cached_workflows=0):
        await baton.approve(handle.workflow_id, client=env.client)
        outcome = await asyncio.wait_for(handle.result(), 60)
    assert ran == ["lookup D-4", "refund D-4 250.0"]  # the lookup never ran again
    assert outcome.status == "ok"


def stage_pipeline(**stage: Any) -> baton.Team:
    outline = baton.Agent("outliner", "Outline.", retry=FAST)
    writer = baton.Agent("writer", "Write.", retry=FAST)
    return baton.Pipeline("publish", [outline, baton.Stage(writer, approval=True, **stage)])


@pytest.mark.parametrize(("decision", "expected_status", "stages"), [
    ("approve", "ok", ["outliner", "writer"]),
    ("reject", "degraded", ["outliner"]),
    ("timeout", "degraded", ["outliner"]),
])
async def test_pipeline_stage_waits_for_a_person(env: WorkflowEnvironment, task_queue: str,
                                                 decision: str, expected_status: str,
                                                 stages: list[str]) -> None:
    team = stage_pipeline(approval_timeout_s=1.0 if decision == "timeout" else 600.0)
    async with worker(env.client, task_queue):
        handle = await baton.start(team, "Durable agents", client=env.client,
                                   task_queue=task_queue)
        if decision != "timeout":
            [request] = await wait_for_requests(env, handle.workflow_id)
            assert request.kind == "stage" and "Request: Durable agents" in \
                request.arguments["input"]
            if decision == "approve":
                await baton.approve(handle.workflow_id, client=env.client)
            else:
                await baton.reject(handle.workflow_id, "not now", client=env.client)
        outcome = await asyncio.wait_for(handle.result(), 60)
    result = outcome.result
    assert isinstance(result, PipelineResult)
    assert result.status == expected_status
    assert [s.stage for s in result.stages] == stages
    assert len(result.approvals) == 1


async def test_supervisor_acceptance_rejected_becomes_a_revision(
        env: WorkflowEnvironment, task_queue: str) -> None:
    lead = baton.Agent("lead", "Delegate and review.", model="offline:strong", retry=FAST)
    coder = baton.Agent("coder", "Write code.", retry=FAST)
    team = baton.Supervisor("crew", lead, [coder], approve_acceptance=True, max_revisions=1)
    async with worker(env.client, task_queue):
        handle = await baton.start(team, "Write a parser", client=env.client,
                                   task_queue=task_queue)
        [first] = await wait_for_requests(env, handle.workflow_id)
        assert first.kind == "acceptance" and first.subject == "coder"
        await baton.reject(handle.workflow_id, "add tests", client=env.client)
        for _ in range(300):
            waiting = await pending_in_tree(env.client, handle.workflow_id)
            if waiting and waiting[0].request_id != first.request_id:
                break
            await asyncio.sleep(0.1)
        await baton.approve(handle.workflow_id, client=env.client)
        outcome = await asyncio.wait_for(handle.result(), 60)
    result = outcome.result
    assert isinstance(result, SupervisorResult)
    assert result.usage["coder"].calls == 2  # revised once after the rejection
    assert [d.verdict for d in result.delegations] == ["accept"]
    assert [a.approved for a in result.approvals] == [False, True]


async def test_pending_lists_waiting_runs(env: WorkflowEnvironment, task_queue: str) -> None:
    member = clerk(issue_refund)
    async with worker(env.client, task_queue, tools=member.tools()):
        handle = await baton.start(member, "Refund 500 USD on order E-5", client=env.client,
                                   task_queue=task_queue)
        await wait_for_requests(env, handle.workflow_id)
        waiting = {w.workflow_id: w for w in await pending(env.client)}
        assert [r.subject for r in waiting[handle.workflow_id].requests] == ["issue_refund"]
        # Found through the status search attribute, not by asking every running run.
        listed = [e.id async for e in env.client.list_workflows(WAITING_RUNS)]
        assert handle.workflow_id in listed
        await baton.approve(handle.workflow_id, client=env.client)
        await asyncio.wait_for(handle.result(), 60)


async def test_starter_pending_approve_and_reject(env: WorkflowEnvironment,
                                                  task_queue: str) -> None:
    from baton.define.app import load_app
    from baton.runtime.temporal import build_replayer
    from tests.test_starter import starter

    address = env.client.service_client.config.target_host
    member = clerk(lookup_order, issue_refund)
    load_app("tests.test_approval")  # as a worker started with --app would
    async with worker(env.client, task_queue, tools=member.tools(), max_cached_workflows=0):
        handle = await baton.start(member, "Refund 250 USD on order F-6", client=env.client,
                                   task_queue=task_queue)
        [request] = await wait_for_requests(env, handle.workflow_id)
        listed = await asyncio.to_thread(starter, "pending", address=address)
        assert listed.returncode == 0, listed.stderr
        assert f"{request.request_id:<20} clerk · issue_refund" in listed.stdout
        refused = await asyncio.to_thread(starter, "reject", handle.workflow_id, "--reason", " ",
                                          address=address)
        assert refused.returncode == 2 and "--reason must say why" in refused.stderr
        unknown = await asyncio.to_thread(starter, "approve", handle.workflow_id, "--request",
                                          "x-9", address=address)
        assert unknown.returncode == 2 and "no pending request 'x-9'" in unknown.stderr
        done = await asyncio.to_thread(starter, "approve", handle.workflow_id, "--request",
                                       request.request_id, "--note", "ok", address=address)
        assert done.returncode == 0, done.stderr
        assert f"{request.request_id} in {handle.workflow_id}: clerk · issue_refund approved" \
            in done.stdout
        await asyncio.wait_for(handle.result(), 60)
    # A run that waited for a person replays deterministically against today's code.
    history = await handle.handle.fetch_history()
    await build_replayer().replay_workflow(history)
