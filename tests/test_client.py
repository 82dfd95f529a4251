"""`BatonClient` (baton/runtime/client.py): one connected client doing a run's whole life —
start, list, pending, approve, outcome, watch, history, replay — and `list_runs`
(baton/runtime/listing.py) answering newest first."""

from __future__ import annotations

import asyncio

import pytest
from temporalio.testing import WorkflowEnvironment

import baton
from baton.runtime.client import BatonClient
from baton.runtime.listing import ListedRun, RunQuery, RunQueryError
from baton.runtime.temporal import Settings
from tests.helpers import FAST_RETRY, worker

refunded: list[str] = []


@baton.tool(approval=lambda order_id, amount_usd: amount_usd > 100)
def refund_order(order_id: str, amount_usd: float) -> str:
    """Refund an order (above 100 USD a manager approves)."""
    refunded.append(f"{order_id} {amount_usd}")
    return f"refunded {amount_usd} USD on {order_id}"


cashier = baton.Agent("cashier", "Refund orders.", model="offline:standard",
                      tools=[refund_order], retry=FAST_RETRY)


def client_on(env: WorkflowEnvironment, task_queue: str) -> BatonClient:
    return BatonClient(env.client, settings=Settings(task_queue=task_queue))


async def listed(client: BatonClient, query: RunQuery, count: int) -> list[ListedRun]:
    """The runs `query` lists, once visibility shows at least `count` of them."""
    for _ in range(200):
        if len(runs := await client.list_runs(query)) >= count:
            return runs
        await asyncio.sleep(0.1)
    raise AssertionError(f"visibility never listed {count} runs for {query.text()}")


async def test_one_client_starts_lists_approves_and_replays_a_run(
        env: WorkflowEnvironment, task_queue: str) -> None:
    client = client_on(env, task_queue)
    refunded.clear()
    async with worker(env.client, task_queue, tools=cashier.tools()):
        handle = await client.start(cashier, "Refund 250 USD on order A-1001")
        [run] = await listed(client, RunQuery(team="cashier", status="waiting_approval",
                                              since="5m"), 1)
        [waiting] = [w for w in await client.pending() if w.workflow_id == handle.workflow_id]
        [record] = await client.approve(handle.workflow_id, note="manager ok", by="tester")
        outcome = await asyncio.wait_for(client.outcome(handle.workflow_id, cashier), 60)
        by_id = await client.outcome(handle.workflow_id)
        events = [event async for _, _, event in client.watch(handle.workflow_id)]
    history = await client.history(handle.workflow_id)
    shown = await client.readable_history(handle.workflow_id)
    reports = await client.replay(handle.workflow_id)

    assert (run.workflow_id, run.pattern, run.status) == (
        handle.workflow_id, "agent", "waiting_approval")
    assert run.link == handle.link == client.link(handle.workflow_id)
    [request] = waiting.requests
    assert (request.subject, request.arguments) == (
        "refund_order", {"order_id": "A-1001", "amount_usd": 250.0})
    assert record.approved and record.note == "manager ok" and record.decided_by == "tester"
    assert refunded == ["A-1001 250.0"]
    assert outcome.status == "ok" and outcome.workflow_id == handle.workflow_id
    assert [c.tool for c in outcome.tool_calls] == ["refund_order"]
    assert [a.request.request_id for a in outcome.result.approvals] == [request.request_id]
    # Found by id alone, the same result, typed by its pattern; no output model to apply.
    assert (type(by_id.result), by_id.answer, by_id.output) == (
        type(outcome.result), outcome.answer, None)
    assert [e.status for e in events if e.kind == "status"][-1] == "ok"
    assert shown.undecoded == 0 and len(shown.history["events"]) == len(history.events)
    assert [(r.workflow_id, r.ok, r.error) for r in reports] == [
        (handle.workflow_id, True, None)]
    assert reports[0].events == len(history.events)
    assert handle.workflow_id not in {w.workflow_id for w in await client.pending()}


async def test_list_runs_answers_newest_first_and_refuses_bad_filters(
        env: WorkflowEnvironment, task_queue: str) -> None:
    client = client_on(env, task_queue)
    lister = baton.Agent(f"lister_{task_queue[-8:]}", "List me.", model="offline:fast")
    # No worker: the runs stay running, found by the attributes they start with.
    handles = [await client.start(lister, f"run number {i}") for i in range(3)]
    try:
        everything = await listed(client, RunQuery(team=lister.name), 3)
        latest = await client.list_runs(RunQuery(team=lister.name, limit=2))
    finally:
        for handle in handles:
            await handle.handle.terminate("test over")
    newest_first = [h.workflow_id for h in reversed(handles)]
    assert [r.workflow_id for r in everything] == newest_first
    assert [r.workflow_id for r in latest] == newest_first[:2]
    assert all(r.status == "running" and r.team == lister.name for r in everything)
    with pytest.raises(RunQueryError, match="unknown status 'sleepy'; accepted: running"):
        RunQuery(status="sleepy")
    with pytest.raises(RunQueryError) as refused:
        RunQuery(since="yesterday")
    assert refused.value.naming("--since").startswith(
        "--since 'yesterday' is neither an age")
    with pytest.raises(RunQueryError, match="limit must be at least 1"):
        RunQuery(limit=0)
