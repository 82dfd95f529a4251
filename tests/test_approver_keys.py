"""Who decided (baton/runtime/approver_keys.py): with BATON_APPROVER_KEYS on the worker, only a
decision signed by a named approver for exactly this run and request is accepted;
anything else is refused before it reaches history and changes nothing."""

from __future__ import annotations

import asyncio
import re
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from temporalio.client import Client, WorkflowUpdateFailedError
from temporalio.testing import WorkflowEnvironment

import baton
from baton.core.runs import ApprovalRecord, Decision
from baton.runtime.approvals import ApprovalError
from baton.runtime.approver_keys import (
    KEY_ENV,
    KEYS_ENV,
    SIGNED_FIELDS,
    ApproverKeyError,
    ApproverKeys,
    SigningKey,
)
from baton.runtime.temporal import build_replayer, build_worker
from tests.helpers import worker
from tests.test_approval import clerk, issue_refund, ran, wait_for_requests

ALICE = SigningKey.generate("alice")
BOB = SigningKey.generate("bob")
MALLORY_AS_ALICE = SigningKey.generate("alice")  # claims alice's name, holds another key
NOW = datetime(2026, 12, 4, 12, 0, tzinfo=UTC)
RUN = {"workflow_id": "clerk-refund-1", "run_id": "run-a"}


@pytest.fixture(autouse=True)
def clear() -> None:
    ran.clear()


def keys(*signers: SigningKey) -> ApproverKeys:
    return ApproverKeys.parse(",".join(k.public_entry() for k in signers))


def signed(key: SigningKey = ALICE, **changes: Any) -> Decision:
    decision = Decision(request_id="issue_refund-1", approve=True, note="ok", by="alice",
                        identity="1234@desk")
    return key.sign(decision, now=NOW, **RUN).model_copy(update=changes)


def test_the_signature_covers_every_field_of_a_decision() -> None:
    # A field added to Decision and left out of the signature could be changed in flight.
    assert set(SIGNED_FIELDS) == set(Decision.model_fields) - {"signature"}


def test_a_signed_decision_is_accepted_for_its_own_run() -> None:
    keys(ALICE, BOB).check(signed(), now=NOW + timedelta(seconds=5), **RUN)


@pytest.mark.parametrize("change", [
    {"request_id": "issue_refund-2"}, {"approve": False}, {"note": "ok!"},
    {"reason": "x"}, {"by": "ceo"}, {"identity": "other@host"},
])
def test_a_changed_decision_no_longer_matches(change: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match="does not match this decision"):
        keys(ALICE).check(signed(**change), now=NOW, **RUN)


@pytest.mark.parametrize("where", [{"workflow_id": "clerk-other-2", "run_id": "run-a"},
                                   {"workflow_id": "clerk-refund-1", "run_id": "run-b"}])
def test_a_signed_decision_cannot_be_moved_to_another_run(where: dict[str, str]) -> None:
    with pytest.raises(ValueError, match="made for another run, request or content"):
        keys(ALICE).check(signed(), now=NOW, **where)


def test_a_signature_by_another_key_under_an_approvers_name_is_refused() -> None:
    with pytest.raises(ValueError, match="signature by 'alice' does not match"):
        keys(ALICE).check(signed(MALLORY_AS_ALICE), now=NOW, **RUN)


def test_an_edited_signature_time_or_value_is_refused() -> None:
    decision = signed()
    assert decision.signature is not None
    later = decision.signature.model_copy(update={"signed_at": NOW + timedelta(seconds=1)})
    with pytest.raises(ValueError, match="does not match"):
        keys(ALICE).check(decision.model_copy(update={"signature": later}), now=NOW, **RUN)
    garbage = decision.signature.model_copy(update={"value": "not base64!"})
    with pytest.raises(ValueError, match="does not match"):
        keys(ALICE).check(decision.model_copy(update={"signature": garbage}), now=NOW, **RUN)


@pytest.mark.parametrize("offset", [timedelta(minutes=11), timedelta(minutes=-3)])
def test_a_stale_or_future_signature_is_refused(offset: timedelta) -> None:
    with pytest.raises(ValueError, match="sign again"):
        keys(ALICE).check(signed(), now=NOW + offset, **RUN)


def test_unsigned_unknown_and_unverifiable_decisions_are_refused() -> None:
    unsigned = Decision(request_id="issue_refund-1", approve=True)
    with pytest.raises(ValueError, match=r"accepts only signed decisions .* approvers: alice"):
        keys(ALICE).check(unsigned, now=NOW, **RUN)
    with pytest.raises(ValueError, match="'bob', who is not an approver on this worker"):
        keys(ALICE).check(signed(BOB), now=NOW, **RUN)
    # A worker without keys cannot check a signature, so it records none as proof.
    with pytest.raises(ValueError, match="checks no signatures"):
        keys().check(signed(), now=NOW, **RUN)
    keys().check(unsigned, now=NOW, **RUN)  # and decides unsigned ones as before


def test_a_signed_decision_names_its_request() -> None:
    with pytest.raises(ValueError, match="names its request"):
        ALICE.sign(Decision(approve=True), now=NOW, **RUN)


@pytest.mark.parametrize(("variable", "value", "message"), [
    (KEYS_ENV, "alice", "is not NAME:BASE64KEY"),
    (KEYS_ENV, "al ice:AAAA", "is not NAME:BASE64KEY"),
    (KEYS_ENV, "alice:???", "(alice) is not base64"),
    (KEYS_ENV, "alice:AAAA", "is 3 bytes; an Ed25519 key is 32 bytes"),
    (KEYS_ENV, f"{ALICE.public_entry()},{ALICE.public_entry()}", "'alice' is listed twice"),
    (KEY_ENV, "alice:AAAA", "BATON_APPROVER_KEY (alice) is 3 bytes"),
])
def test_bad_key_variables_are_named(monkeypatch: pytest.MonkeyPatch, variable: str,
                                     value: str, message: str) -> None:
    monkeypatch.setenv(variable, value)
    load = ApproverKeys.from_env if variable == KEYS_ENV else SigningKey.from_env
    with pytest.raises(ApproverKeyError, match=re.escape(message)):
        load()


async def test_a_worker_with_a_bad_key_refuses_to_start(env: WorkflowEnvironment,
                                                        task_queue: str,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(KEYS_ENV, "alice:AAAA")
    with pytest.raises(ApproverKeyError, match="an Ed25519 key is 32 bytes"):
        build_worker(env.client, task_queue)


async def accepted_updates(client: Client, workflow_id: str) -> list[str]:
    """The identities Temporal recorded with each accepted Update of a run."""
    history = await client.get_workflow_handle(workflow_id).fetch_history()
    return [e.workflow_execution_update_accepted_event_attributes.accepted_request.meta.identity
            for e in history.events
            if e.HasField("workflow_execution_update_accepted_event_attributes")]


async def raw_update(client: Client, workflow_id: str, decision: Decision) -> str:
    """An Update as any client could send it (no Baton helper); the refusal message."""
    with pytest.raises(WorkflowUpdateFailedError) as refused:
        await client.get_workflow_handle(workflow_id).execute_update(
            "decide", decision, result_type=list[ApprovalRecord])
    return str(refused.value.cause)


async def test_a_keyed_worker_takes_only_a_signed_decision(
        env: WorkflowEnvironment, task_queue: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(KEYS_ENV, f"{ALICE.public_entry()},{BOB.public_entry()}")
    member = clerk(issue_refund)
    async with worker(env.client, task_queue, tools=member.tools()):
        handle = await baton.start(member, "Refund 250 USD on order K-1", client=env.client,
                                   task_queue=task_queue)
        other = await baton.start(member, "Refund 260 USD on order K-2", client=env.client,
                                  task_queue=task_queue)
        [request] = await wait_for_requests(env, handle.workflow_id)
        [twin] = await wait_for_requests(env, other.workflow_id)
        assert request.request_id == twin.request_id  # the same request id in both runs
        # Unsigned (the forged-CEO Update of issue 16), and forged under alice's name.
        forged = Decision(request_id=request.request_id, approve=True, by="forged-ceo")
        assert "accepts only signed decisions" in await raw_update(
            env.client, handle.workflow_id, forged)
        with pytest.raises(ApprovalError, match="signature by 'alice' does not match"):
            await baton.approve(handle.workflow_id, client=env.client, key=MALLORY_AS_ALICE)
        assert ran == [] and await accepted_updates(env.client, handle.workflow_id) == []
        # Alice's decision for the other run (same request id), copied onto this one.
        run_id = (await other.handle.describe()).run_id
        copied = ALICE.sign(Decision(request_id=twin.request_id, approve=True,
                                     identity=env.client.identity),
                            workflow_id=other.workflow_id, run_id=run_id)
        assert "made for another run" in await raw_update(env.client, handle.workflow_id,
                                                           copied)
        [first] = await other.handle.execute_update("decide", copied,
                                                    result_type=list[ApprovalRecord])
        [record] = await baton.approve(handle.workflow_id, note="within limits",
                                       by="alice", client=env.client, key=ALICE)
        outcome = await asyncio.wait_for(handle.result(), 60)
        await asyncio.wait_for(other.result(), 60)
    assert (record.signed_by, record.decided_by, first.signed_by) == ("alice", "alice", "alice")
    assert sorted(ran) == ["refund K-1 250.0", "refund K-2 260.0"]
    [kept] = outcome.result.approvals
    assert kept.signed_by == "alice" and kept.client_identity == env.client.identity
    # The identity recorded is the one Temporal recorded with the accepted Update.
    assert await accepted_updates(env.client, handle.workflow_id) == [env.client.identity]
    # Verification ran in the validator only: the run replays without any keys.
    monkeypatch.delenv(KEYS_ENV)
    await build_replayer().replay_workflow(await handle.handle.fetch_history())


async def test_a_signed_decision_counts_once_and_deciding_all_signs_each_request(
        env: WorkflowEnvironment, task_queue: str, monkeypatch: pytest.MonkeyPatch) -> None:
    from baton.core.model_io import ModelRequest, ModelResponse, ToolCall
    from baton.core.usage import Usage
    from tests.scripted import scripted_offline

    def three_refunds(request: ModelRequest) -> ModelResponse | None:
        if request.call_index:
            return None
        calls = [ToolCall(id=f"c{i}", name="issue_refund",
                          arguments={"order_id": order, "amount_usd": 500})
                 for i, order in enumerate(("S-1", "S-2", "S-3"))]
        return ModelResponse(model=request.model, tool_calls=calls, usage=Usage(calls=1))

    monkeypatch.setenv(KEYS_ENV, BOB.public_entry())
    member = clerk(issue_refund)
    with scripted_offline(three_refunds):
        async with worker(env.client, task_queue, tools=member.tools()):
            handle = await baton.start(member, "Refund all three", client=env.client,
                                       task_queue=task_queue)
            requests = await wait_for_requests(env, handle.workflow_id, 3)
            run_id = (await handle.handle.describe()).run_id
            once = BOB.sign(Decision(request_id=requests[0].request_id, approve=True),
                            workflow_id=handle.workflow_id, run_id=run_id)
            await handle.handle.execute_update("decide", once,
                                               result_type=list[ApprovalRecord])
            # The same signed decision again (a replay): the request is decided once.
            assert "was already approved" in await raw_update(env.client,
                                                              handle.workflow_id, once)
            monkeypatch.setenv(KEY_ENV, BOB.private_entry())  # baton.approve signs from it
            records = await baton.approve(handle.workflow_id, client=env.client)
            await asyncio.wait_for(handle.result(), 60)
    assert [r.signed_by for r in records] == ["bob", "bob"]
    assert sorted(ran) == ["refund S-1 500.0", "refund S-2 500.0", "refund S-3 500.0"]


async def test_a_worker_without_keys_refuses_a_signature_it_cannot_check(
        env: WorkflowEnvironment, task_queue: str) -> None:
    member = clerk(issue_refund)
    async with worker(env.client, task_queue, tools=member.tools()):
        handle = await baton.start(member, "Refund 300 USD on order N-1", client=env.client,
                                   task_queue=task_queue)
        await wait_for_requests(env, handle.workflow_id)
        with pytest.raises(ApprovalError, match="checks no signatures"):
            await baton.approve(handle.workflow_id, client=env.client, key=ALICE)
        [record] = await baton.approve(handle.workflow_id, client=env.client)
        await asyncio.wait_for(handle.result(), 60)
    assert record.signed_by == "" and record.client_identity == env.client.identity


async def test_starter_makes_keys_and_signs_with_them(
        env: WorkflowEnvironment, task_queue: str, monkeypatch: pytest.MonkeyPatch) -> None:
    from tests.test_starter import starter

    made = await asyncio.to_thread(starter, "approver-key", "carol")
    assert made.returncode == 0, made.stderr
    lines = dict(line.split("=", 1) for line in made.stdout.splitlines()
                 if not line.startswith("#"))
    assert set(lines) == {KEYS_ENV, KEY_ENV}
    address = env.client.service_client.config.target_host
    monkeypatch.setenv(KEYS_ENV, lines[KEYS_ENV])
    member = clerk(issue_refund)
    async with worker(env.client, task_queue, tools=member.tools()):
        handle = await baton.start(member, "Refund 400 USD on order T-1", client=env.client,
                                   task_queue=task_queue)
        [request] = await wait_for_requests(env, handle.workflow_id)
        unsigned = await asyncio.to_thread(starter, "approve", handle.workflow_id,
                                           address=address)
        assert unsigned.returncode == 2 and "accepts only signed decisions" in unsigned.stderr
        assert "Traceback" not in unsigned.stderr
        done = await asyncio.to_thread(starter, "approve", handle.workflow_id,
                                       address=address, extra_env={KEY_ENV: lines[KEY_ENV]})
        assert done.returncode == 0, done.stderr
        assert f"{request.request_id} in {handle.workflow_id}" in done.stdout
        assert "approved, signed by carol" in done.stdout
        await asyncio.wait_for(handle.result(), 60)
    bad = await asyncio.to_thread(starter, "approve", handle.workflow_id, address=address,
                                  extra_env={KEY_ENV: "carol:short"})
    assert bad.returncode == 2 and "BATON_APPROVER_KEY (carol)" in bad.stderr
    assert ran == ["refund T-1 400.0"]
