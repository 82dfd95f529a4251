"""Encryption with integrity (baton/runtime/codec.py): a worker that requires encryption acts on
no plain run input, Update or signal, nor on a ciphertext copied from another run's
history; payloads encrypted before binding still decrypt, run and replay."""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import json
import logging
import subprocess
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import pytest
from temporalio.api.common.v1 import Payload, SearchAttributes
from temporalio.api.enums.v1 import EventType
from temporalio.api.failure.v1 import Failure
from temporalio.api.sdk.v1 import UserMetadata
from temporalio.client import (
    Client,
    WorkflowExecutionStatus,
    WorkflowFailureError,
    WorkflowHistory,
    WorkflowQueryFailedError,
    WorkflowUpdateFailedError,
)
from temporalio.common import RawValue
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.contrib.workflow_streams import PublishEntry, PublishInput
from temporalio.converter import (
    ActivitySerializationContext,
    DataConverter,
    SerializationContext,
    WorkflowSerializationContext,
)
from temporalio.exceptions import ApplicationError
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Replayer, Worker

import baton
from baton.cli import worker as worker_cli
from baton.core.errors import MisboundPayload, PlaintextRefused, UndecryptablePayload
from baton.core.events import EVENTS_TOPIC
from baton.core.runs import Decision, FanOutResult, TriageResult
from baton.runtime import recovery
from baton.runtime.approvals import pending_in_tree
from baton.runtime.codec import (
    ENCODING,
    KEY_ENV,
    NAMESPACE_METADATA,
    REQUIRE_ENV,
    WORKFLOW_METADATA,
    EncryptionCodec,
    EncryptionKeyError,
    payloads_in,
    requires_encryption,
)
from baton.runtime.temporal import data_converter, temporal_binary, worker_data_converter
from tests.helpers import finish, start, worker
from tests.test_codec import KEY_A, KEY_B, MARKER, PROMPT, encrypted_client, use_keys

# The SDK's workflow stream handlers (temporalio.contrib.workflow_streams), which every
# Baton run registers for its events: the publish signal is how a forger would inject
# an event into what `starter.py watch` shows.
PUBLISH_SIGNAL = "__temporal_workflow_stream_publish"
OFFSET_QUERY = "__temporal_workflow_stream_offset"
refunds: list[str] = []


@baton.tool(approval=True)
def pay_refund(order_id: str, amount_usd: float) -> str:
    """Refund an order (a manager approves every refund)."""
    refunds.append(order_id)
    return f"refunded {amount_usd} USD on {order_id}"


CLERK = baton.Agent("clerk", "Help customers.", model="offline:standard",
                    tools=[pay_refund])


@pytest.fixture(autouse=True)
def clear() -> None:
    refunds.clear()


def require(monkeypatch: pytest.MonkeyPatch, value: str | None) -> None:
    """Key A everywhere; BATON_REQUIRE_ENCRYPTION as given (None: its default, on)."""
    use_keys(monkeypatch, KEY_A)
    if value is None:
        monkeypatch.delenv(REQUIRE_ENV, raising=False)
    else:
        monkeypatch.setenv(REQUIRE_ENV, value)


async def plain_client(env: WorkflowEnvironment) -> Client:
    """What an attacker with network access to Temporal and no key has."""
    return await Client.connect(env.client.service_client.config.target_host,
                                namespace=env.client.namespace,
                                data_converter=pydantic_data_converter)


async def waiting_refund(client: Client, task_queue: str, order: str) -> tuple[str, str]:
    """(workflow id, request id) of a run waiting for a manager to approve a refund."""
    handle = await baton.start(CLERK, f"Refund 250 USD on order {order}", client=client,
                               task_queue=task_queue)
    for _ in range(300):
        if requests := await pending_in_tree(client, handle.workflow_id):
            return handle.workflow_id, requests[0].request_id
        await asyncio.sleep(0.1)
    raise AssertionError(f"{handle.workflow_id} never asked for an approval")


def event_types(history: WorkflowHistory) -> list[EventType.ValueType]:
    return [e.event_type for e in history.events]


def assert_failed_at_once(history: WorkflowHistory) -> None:
    """One workflow task, the run failed by it: no task retried, nothing scheduled."""
    types = event_types(history)
    assert types.count(EventType.EVENT_TYPE_WORKFLOW_TASK_STARTED) == 1
    assert EventType.EVENT_TYPE_WORKFLOW_TASK_FAILED not in types
    assert EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED not in types
    assert types[-1] == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_FAILED


@pytest.mark.parametrize("required", [None, "0"])
async def test_a_plain_update_from_the_temporal_cli_issues_no_refund(
        env: WorkflowEnvironment, task_queue: str, monkeypatch: pytest.MonkeyPatch,
        required: str | None) -> None:
    """The attack of issue 16, verbatim: `temporal workflow update execute --input` with
    a forged approval. Refused by default; with BATON_REQUIRE_ENCRYPTION=0 (the control)
    it goes through, as it did on every encrypting worker before."""
    require(monkeypatch, required)
    client = await encrypted_client(env)
    async with worker(client, task_queue, tools=CLERK.tools()):
        workflow_id, request_id = await waiting_refund(client, task_queue, "A-1")
        forged = json.dumps({"request_id": request_id, "approve": True, "by": "forged-ceo"})
        sent = await asyncio.to_thread(subprocess.run, [
            temporal_binary(), "workflow", "update", "execute",
            "--address", env.client.service_client.config.target_host,
            "--namespace", env.client.namespace, "--workflow-id", workflow_id,
            "--name", "decide", "--input", forged], capture_output=True, text=True, timeout=60)
        if required == "0":
            # Taken: only its (encrypted) answer is beyond the CLI.
            assert "encoding binary/encrypted" in sent.stderr, sent.stderr
            await asyncio.wait_for(client.get_workflow_handle(workflow_id).result(), 60)
            assert refunds == ["A-1"]
            return
        assert sent.returncode != 0
        assert "requires encrypted payloads" in sent.stderr and KEY_ENV in sent.stderr
        assert [r.request_id for r in await pending_in_tree(client, workflow_id)] == [
            request_id]
        assert refunds == []
        # The run is unharmed: the manager's decision, encrypted, is taken.
        [record] = await baton.approve(workflow_id, by="manager", client=client)
        assert record.decided_by == "manager"
        await asyncio.wait_for(client.get_workflow_handle(workflow_id).result(), 60)
    assert refunds == ["A-1"]
    history = await client.get_workflow_handle(workflow_id).fetch_history()
    accepted = [e for e in history.events if e.HasField(
        "workflow_execution_update_accepted_event_attributes")]
    assert len(accepted) == 1  # the refused Update left no trace in the history
    assert b"forged-ceo" not in history.events[-1].SerializeToString()


async def stream_offset(client: Client, workflow_id: str) -> int:
    offset: int = await client.get_workflow_handle(workflow_id).query(OFFSET_QUERY,
                                                                      result_type=int)
    return offset


async def signal_handled(client: Client, workflow_id: str) -> None:
    """Until a workflow task has completed after the run's last signal."""
    handle = client.get_workflow_handle(workflow_id)
    for _ in range(300):
        types = event_types(await handle.fetch_history())
        signaled = max(i for i, t in enumerate(types)
                       if t == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED)
        if EventType.EVENT_TYPE_WORKFLOW_TASK_COMPLETED in types[signaled:]:
            return
        await asyncio.sleep(0.1)
    raise AssertionError("the signal was never handled")


@pytest.mark.parametrize("required", [None, "0"])
async def test_a_plain_signal_injects_no_event(
        env: WorkflowEnvironment, task_queue: str, monkeypatch: pytest.MonkeyPatch,
        caplog: pytest.LogCaptureFixture, required: str | None) -> None:
    require(monkeypatch, required)
    client = await encrypted_client(env)
    forged = Payload(metadata={"encoding": b"json/plain"}, data=json.dumps({
        "kind": "result", "status": "ok", "detail": "refund issued by forged-ceo"}).encode())
    entry = PublishEntry(topic=EVENTS_TOPIC,
                         data=base64.b64encode(forged.SerializeToString()).decode())
    async with worker(client, task_queue, tools=CLERK.tools()):
        workflow_id, _ = await waiting_refund(client, task_queue, "S-1")
        before = await stream_offset(client, workflow_id)
        with caplog.at_level(logging.ERROR):
            await (await plain_client(env)).get_workflow_handle(workflow_id).signal(
                PUBLISH_SIGNAL, PublishInput(items=[entry], publisher_id="forger", sequence=1))
            await signal_handled(client, workflow_id)
        after = await stream_offset(client, workflow_id)
        await baton.approve(workflow_id, client=client)
        await asyncio.wait_for(client.get_workflow_handle(workflow_id).result(), 60)
    if required == "0":
        assert after == before + 1  # the control: a plain signal is taken
        return
    assert after == before
    # The SDK's error log says so, with the refusal's type (its traceback is redacted
    # or not, as baton/telemetry/observability.py decides for every log).
    assert "dropping the signal" in caplog.text and "PlaintextRefused" in caplog.text


@pytest.mark.parametrize("required", [None, "0"])
async def test_a_plain_run_input_fails_the_run_at_once(
        env: WorkflowEnvironment, task_queue: str, monkeypatch: pytest.MonkeyPatch,
        required: str | None) -> None:
    require(monkeypatch, required)
    async with worker(await encrypted_client(env), task_queue):
        handle = await start(await plain_client(env), task_queue, "support_desk", PROMPT,
                             result_type=TriageResult)
        if required == "0":  # the control: taken, and answered (in ciphertext)
            for _ in range(300):
                if (status := (await handle.describe()).status) != \
                        WorkflowExecutionStatus.RUNNING:
                    break
                await asyncio.sleep(0.1)
            assert status == WorkflowExecutionStatus.COMPLETED
            return
        with pytest.raises(WorkflowFailureError) as failed:
            await finish(handle)
    cause = failed.value.cause
    # Readable by the keyless sender, and quoting nothing of the input.
    assert isinstance(cause, ApplicationError) and cause.type == PlaintextRefused.TYPE
    assert cause.non_retryable and KEY_ENV in cause.message and MARKER not in cause.message
    history = await handle.fetch_history()
    assert_failed_at_once(history)
    # The Replayer refuses as the worker did: the refused run replays deterministically.
    [report] = await recovery.replay([history])
    assert report.ok, report.error


async def test_a_decision_under_another_key_is_refused_and_the_run_lives_on(
        env: WorkflowEnvironment, task_queue: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """A forged ciphertext (here: a real one under a key the workers do not hold) fails
    only the Update or query that carried it, never the run."""
    require(monkeypatch, None)
    client = await encrypted_client(env)
    async with worker(client, task_queue, tools=CLERK.tools()):
        workflow_id, request_id = await waiting_refund(client, task_queue, "U-1")
        use_keys(monkeypatch, KEY_B)
        stranger = (await encrypted_client(env)).get_workflow_handle(workflow_id)
        with pytest.raises(WorkflowUpdateFailedError) as refused:
            await stranger.execute_update(
                "decide", Decision(request_id=request_id, approve=True, by="stranger"),
                result_type=RawValue)
        cause = refused.value.cause
        assert isinstance(cause, ApplicationError) and cause.type == UndecryptablePayload.TYPE
        with pytest.raises(WorkflowQueryFailedError, match="key id"):
            await stranger.query(OFFSET_QUERY, "events", result_type=RawValue)
        use_keys(monkeypatch, KEY_A)
        assert [r.request_id for r in await pending_in_tree(client, workflow_id)] == [
            request_id]
        assert refunds == []
        await baton.approve(workflow_id, client=client)
        await asyncio.wait_for(client.get_workflow_handle(workflow_id).result(), 60)
    assert refunds == ["U-1"]


async def test_a_worker_built_with_the_plugin_refuses_plain_inputs_too(
        env: WorkflowEnvironment, task_queue: str, monkeypatch: pytest.MonkeyPatch) -> None:
    require(monkeypatch, None)
    plugin = baton.BatonPlugin()
    config = env.client.config()
    config["plugins"] = [plugin]
    client = Client(**config)
    async with Worker(client, task_queue=task_queue):
        handle = await start(await plain_client(env), task_queue, "support_desk", PROMPT,
                             result_type=TriageResult)
        with pytest.raises(WorkflowFailureError) as failed:
            await finish(handle)
        # The plugin's client itself is not refused anything (it encrypts), and reads.
        ok = await finish(await start(client, task_queue, "support_desk", PROMPT,
                                      result_type=TriageResult))
    assert MARKER in ok.answer
    cause = failed.value.cause
    assert isinstance(cause, ApplicationError) and cause.type == PlaintextRefused.TYPE
    history = await handle.fetch_history()
    assert_failed_at_once(history)
    await Replayer(workflows=[], plugins=[plugin]).replay_workflow(history)


@dataclass
class Decided:
    """A run whose refund a manager approved: the history holds the decision, encrypted."""

    workflow_id: str
    request_id: str
    history: WorkflowHistory

    def decision_payload(self) -> Payload:
        [accepted] = [e.workflow_execution_update_accepted_event_attributes
                      for e in self.history.events
                      if e.HasField("workflow_execution_update_accepted_event_attributes")]
        [payload] = accepted.accepted_request.input.args.payloads
        return payload

    def input_payload(self) -> Payload:
        started = self.history.events[0].workflow_execution_started_event_attributes
        [payload] = started.input.payloads
        return payload

    def workflow_type(self) -> str:
        return self.history.events[0].workflow_execution_started_event_attributes \
            .workflow_type.name


@pytest.fixture
async def decided(env: WorkflowEnvironment, task_queue: str,
                  monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Decided]:
    require(monkeypatch, None)
    client = await encrypted_client(env)
    async with worker(client, task_queue, tools=CLERK.tools()):
        workflow_id, request_id = await waiting_refund(client, task_queue, "C-1")
        await baton.approve(workflow_id, client=client)
        await asyncio.wait_for(client.get_workflow_handle(workflow_id).result(), 60)
    history = await client.get_workflow_handle(workflow_id).fetch_history()
    refunds.clear()
    yield Decided(workflow_id, request_id, history)


async def test_an_approval_copied_into_another_run_is_refused(
        env: WorkflowEnvironment, task_queue: str, decided: Decided) -> None:
    """A reader of the server's store pastes run A's encrypted approval into run B,
    whose request has the same id: B's worker refuses it; B's request still waits."""
    copied = decided.decision_payload()
    assert copied.metadata["encoding"] == ENCODING
    assert copied.metadata[WORKFLOW_METADATA] == decided.workflow_id.encode()
    client = await encrypted_client(env)
    async with worker(client, task_queue, tools=CLERK.tools()):
        workflow_id, request_id = await waiting_refund(client, task_queue, "C-2")
        assert request_id == decided.request_id  # the same id: only the binding differs
        with pytest.raises(WorkflowUpdateFailedError) as refused:
            await (await plain_client(env)).get_workflow_handle(workflow_id).execute_update(
                "decide", RawValue(copied), result_type=RawValue)
        cause = refused.value.cause
        assert isinstance(cause, ApplicationError) and cause.type == MisboundPayload.TYPE
        assert decided.workflow_id in cause.message and workflow_id in cause.message
        assert [r.request_id for r in await pending_in_tree(client, workflow_id)] == [
            request_id]
        assert refunds == []
        await baton.reject(workflow_id, "not this one", client=client)
        await asyncio.wait_for(client.get_workflow_handle(workflow_id).result(), 60)
    assert refunds == []


async def test_a_run_input_copied_into_another_run_fails_it(
        env: WorkflowEnvironment, task_queue: str, decided: Decided) -> None:
    attacker = await plain_client(env)
    client = await encrypted_client(env)
    async with worker(client, task_queue, tools=CLERK.tools()):
        copy = await attacker.start_workflow(
            decided.workflow_type(), RawValue(decided.input_payload()),
            id=f"copy-{uuid.uuid4().hex[:8]}", task_queue=task_queue, result_type=RawValue)
        with pytest.raises(WorkflowFailureError) as failed:
            await finish(copy)
        # The control: the same ciphertext under its own workflow id runs (a new run of
        # the closed workflow), so the refusal above is the binding's.
        again = await attacker.start_workflow(
            decided.workflow_type(), RawValue(decided.input_payload()),
            id=decided.workflow_id, task_queue=task_queue, result_type=RawValue)
        for _ in range(300):
            if await pending_in_tree(client, decided.workflow_id):
                break
            await asyncio.sleep(0.1)
        else:
            raise AssertionError("the copied input did not run under its own workflow id")
        await again.terminate("done")
    cause = failed.value.cause
    assert isinstance(cause, ApplicationError) and cause.type == MisboundPayload.TYPE
    assert decided.workflow_id in cause.message
    assert_failed_at_once(await copy.fetch_history())


async def test_nested_runs_bind_their_payloads_to_themselves_and_replay(
        env: WorkflowEnvironment, task_queue: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """A fan-out's branches are child workflows: each input is encrypted by the parent
    for the child's id, each result by the child for its own, and all of it runs,
    under a worker that checks every binding, and replays."""
    require(monkeypatch, None)
    client = await encrypted_client(env)
    async with worker(client, task_queue):
        handle = await start(client, task_queue, "research_panel", PROMPT,
                             result_type=FanOutResult)
        result = await finish(handle)
    assert result.status == "ok" and len(result.branches) >= 2
    histories = await recovery.run_histories(client, handle.id)
    assert len(histories) > 1  # the run and its nested runs
    for history in histories:
        own = {bound_to(p) for e in history.events  # core's patch markers: plain ids
               if e.marker_recorded_event_attributes.marker_name != "core_patch"
               for p in payloads_in(e, skip=(SearchAttributes, UserMetadata))}
        if history.workflow_id == handle.id:  # it also holds its children's inputs, results
            assert handle.id in own and all(b.startswith(f"{handle.id}/")
                                            for b in own - {handle.id})
        else:
            assert own == {history.workflow_id}
            # The SDK encrypts a child's summary (shown by the Web UI, through the codec
            # server, which checks no binding) in its parent's context.
            shown = {bound_to(p) for e in history.events if e.HasField("user_metadata")
                     for p in payloads_in(e.user_metadata)}
            assert shown <= {handle.id, history.workflow_id}
    for report in await recovery.replay(histories):
        assert report.ok, report.error


def bound_to(payload: Payload) -> str:
    assert payload.metadata["encoding"] == ENCODING
    return payload.metadata[WORKFLOW_METADATA].decode()


def context(workflow_id: str, namespace: str = "default") -> WorkflowSerializationContext:
    return WorkflowSerializationContext(namespace=namespace, workflow_id=workflow_id)


def activity_context(workflow_id: str) -> ActivitySerializationContext:
    return ActivitySerializationContext(
        namespace="default", activity_id="1", activity_type="call_model",
        activity_task_queue="q", workflow_id=workflow_id, workflow_type="TriageWorkflow",
        is_local=False)


def converter_with(codec: EncryptionCodec) -> DataConverter:
    return dataclasses.replace(data_converter(), payload_codec=codec)


async def convert(codec: EncryptionCodec, payload: Payload,
                  where: SerializationContext | None) -> Any:
    """What a process holding `codec` makes of `payload` in `where` (None: no context)."""
    converter = converter_with(codec)
    if where is not None:
        converter = converter.with_context(where)
    [value] = await converter.decode([payload])
    return value


async def test_binding_ties_a_ciphertext_to_its_workflow(
        monkeypatch: pytest.MonkeyPatch) -> None:
    use_keys(monkeypatch, KEY_A)
    codec = EncryptionCodec(base64.b64decode(KEY_A))
    writer = data_converter().with_context(context("run-a"))
    [sealed] = await writer.encode([{"approve": True}])
    assert sealed.metadata[WORKFLOW_METADATA] == b"run-a"
    assert sealed.metadata[NAMESPACE_METADATA] == b"default"
    # Its own workflow reads it, in workflow and activity contexts alike; a reader with
    # no context (the codec server behind the Web UI) too.
    for where in (context("run-a"), activity_context("run-a"), None):
        assert await convert(codec, sealed, where) == {"approve": True}
    # Another workflow, the same id in another namespace, no workflow at all: refused.
    for where in (context("run-b"), context("run-a", "other"), activity_context("run-b")):
        with pytest.raises(MisboundPayload, match="encrypted for workflow 'run-a'"):
            await convert(codec, sealed, where)
    # The Replayer (its own namespace name) checks the workflow id only.
    replaying = codec.refusing_plaintext(check_namespace=False)
    assert await convert(replaying, sealed, context("run-a", "ReplayNamespace")) == {
        "approve": True}
    with pytest.raises(MisboundPayload):
        await convert(replaying, sealed, context("run-b", "ReplayNamespace"))
    # The names are authenticated: rewritten or removed, the payload fails to decrypt.
    for change in ({WORKFLOW_METADATA: b"run-b"}, {NAMESPACE_METADATA: b"other"}):
        forged = Payload()
        forged.CopyFrom(sealed)
        forged.metadata.update(change)
        with pytest.raises(UndecryptablePayload, match="fails authentication"):
            await convert(codec, forged, None)
    stripped = Payload()
    stripped.CopyFrom(sealed)
    del stripped.metadata[WORKFLOW_METADATA]
    with pytest.raises(UndecryptablePayload, match="fails authentication"):
        await convert(codec, stripped, context("run-a"))


async def test_payloads_encrypted_before_binding_still_decrypt(
        monkeypatch: pytest.MonkeyPatch) -> None:
    use_keys(monkeypatch, KEY_A)
    codec = EncryptionCodec(base64.b64decode(KEY_A))
    [legacy] = await data_converter().encode([{"approve": True}])  # no context: unbound
    assert WORKFLOW_METADATA not in legacy.metadata
    for where in (context("run-a"), context("run-b"), None):
        assert await convert(codec.refusing_plaintext(), legacy, where) == {"approve": True}


async def test_only_a_refusing_codec_refuses_plain_payloads(
        monkeypatch: pytest.MonkeyPatch) -> None:
    use_keys(monkeypatch, KEY_A)
    [plain] = await pydantic_data_converter.encode([{"approve": True}])
    codec = EncryptionCodec(base64.b64decode(KEY_A))
    # A client reads runs recorded before encryption was switched on...
    assert await convert(codec, plain, context("run-a")) == {"approve": True}
    # ... a worker that requires encryption refuses them, in any context.
    for where in (context("run-a"), activity_context("run-a"), None):
        with pytest.raises(PlaintextRefused, match=f"requires encrypted payloads .*{KEY_ENV}"):
            await convert(codec.refusing_plaintext(), plain, where)
    # The refusal travels in plain text, readable by a sender without the key.
    converter = worker_data_converter(data_converter())
    failure = Failure()
    await converter.encode_failure(PlaintextRefused("refused"), failure)
    assert failure.message == "refused" and not failure.HasField("encoded_attributes")


@pytest.mark.parametrize(("environ", "expected"), [
    ({}, False),
    ({KEY_ENV: KEY_A}, True),
    ({KEY_ENV: KEY_A, REQUIRE_ENV: "0"}, False),
    ({KEY_ENV: KEY_A, REQUIRE_ENV: "1"}, True),
    ({KEY_ENV: KEY_A, REQUIRE_ENV: ""}, True),
    ({REQUIRE_ENV: "0"}, False),
])
def test_encryption_is_required_whenever_a_key_is_set(environ: dict[str, str],
                                                      expected: bool) -> None:
    assert requires_encryption(environ) is expected


@pytest.mark.parametrize(("environ", "problem"), [
    ({KEY_ENV: KEY_A, REQUIRE_ENV: "yes"}, "BATON_REQUIRE_ENCRYPTION='yes' is not accepted; "
                                           "it takes 1 (refuse plain payloads) or 0"),
    ({REQUIRE_ENV: "1"}, "BATON_REQUIRE_ENCRYPTION=1 needs BATON_ENCRYPTION_KEY"),
])
def test_a_bad_require_setting_stops_the_worker_before_it_connects(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
        environ: dict[str, str], problem: str) -> None:
    with pytest.raises(EncryptionKeyError, match=problem.replace("(", r"\(").replace(")", r"\)")):
        requires_encryption(environ)
    use_keys(monkeypatch, environ.get(KEY_ENV))
    monkeypatch.setenv(REQUIRE_ENV, environ[REQUIRE_ENV])
    monkeypatch.setenv("TEMPORAL_ADDRESS", "127.0.0.1:9")  # nothing listens there
    assert worker_cli.main([]) == 2
    assert f"error: {problem}" in capsys.readouterr().out


class UnboundCodec(EncryptionCodec):
    """Writes as Baton did before binding: no context, no workflow names."""

    def with_context(self, context: SerializationContext) -> UnboundCodec:
        return self


async def test_runs_encrypted_before_binding_run_and_replay(
        env: WorkflowEnvironment, task_queue: str, monkeypatch: pytest.MonkeyPatch) -> None:
    require(monkeypatch, None)
    old_client = await Client.connect(
        env.client.service_client.config.target_host, namespace=env.client.namespace,
        data_converter=converter_with(UnboundCodec(base64.b64decode(KEY_A))))
    # A history written entirely by the old code (its client and its worker)...
    async with worker(old_client, f"{task_queue}-old"):
        old = await start(old_client, f"{task_queue}-old", "support_desk", PROMPT,
                          result_type=TriageResult)
        assert MARKER in (await finish(old)).answer
    # ... and a run the old client started, taken up by a worker of today's code.
    mixed = await start(old_client, task_queue, "support_desk", PROMPT,
                        result_type=TriageResult)
    async with worker(await encrypted_client(env), task_queue):
        assert MARKER in (await finish(mixed)).answer
    histories = [await old.fetch_history(), await mixed.fetch_history()]
    for history in histories:
        started = history.events[0].workflow_execution_started_event_attributes
        assert WORKFLOW_METADATA not in started.input.payloads[0].metadata
    # Today's Replayer, refusing plain payloads, replays both.
    for report in await recovery.replay(histories):
        assert report.ok, report.error
