"""baton/runtime/codec.py: encrypted payloads end to end, key handling, the codec server."""

from __future__ import annotations

import asyncio
import base64
import http.client
import json
import os
import threading
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from google.protobuf import json_format
from temporalio.api.common.v1 import Payload, Payloads, SearchAttributes
from temporalio.api.enums.v1 import EventType
from temporalio.api.failure.v1 import Failure
from temporalio.client import Client, WorkflowFailureError, WorkflowHistory
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.exceptions import ApplicationError
from temporalio.testing import WorkflowEnvironment

from baton.cli import starter
from baton.cli.codec_server import CodecServer, make_server
from baton.core.errors import UndecryptablePayload
from baton.core.model_io import Message
from baton.core.runs import RunOptions, TriageResult
from baton.define.catalogue import load_catalogue
from baton.runtime import launch, recovery
from baton.runtime.codec import (
    ENCODING,
    KEY_ENV,
    MAKE_KEY,
    OLD_KEYS_ENV,
    EncryptionCodec,
    EncryptionKeyError,
    key_id,
    missing_key_ids,
    parse_key,
    payloads_in,
)
from baton.runtime.temporal import Settings, build_worker, connect, data_converter
from tests.helpers import finish, start, worker
from tests.test_starter import run_starter

KEY_A = base64.b64encode(os.urandom(32)).decode()
KEY_B = base64.b64encode(os.urandom(32)).decode()
# Words that appear in the prompt and, quoted by the offline model, in the answer.
MARKER = "Quokka7731"
PROMPT = f"My invoice {MARKER} shows the wrong amount after I upgraded my plan"
UI = "http://localhost:8233"


def use_keys(monkeypatch: pytest.MonkeyPatch, current: str | None,
             old: tuple[str, ...] = ()) -> None:
    for name, value in ((KEY_ENV, current), (OLD_KEYS_ENV, ",".join(old) or None)):
        if value is None:
            monkeypatch.delenv(name, raising=False)
        else:
            monkeypatch.setenv(name, value)


async def encrypted_client(env: WorkflowEnvironment) -> Client:
    """A client on the session's dev server with the converter the environment asks for."""
    return await Client.connect(env.client.service_client.config.target_host,
                                namespace=env.client.namespace, data_converter=data_converter())


@dataclass
class Recorded:
    workflow_id: str
    result: TriageResult
    history: WorkflowHistory  # as the server stores it: fetch_history decodes nothing


@pytest.fixture(scope="module")
async def recorded(env: WorkflowEnvironment) -> AsyncIterator[Recorded]:
    """One support_desk run with key A on the client and the worker."""
    with pytest.MonkeyPatch.context() as mp:
        use_keys(mp, KEY_A)
        client = await encrypted_client(env)
        queue = f"codec-{uuid.uuid4().hex[:8]}"
        async with worker(client, queue):
            handle = await start(client, queue, "support_desk", PROMPT,
                                 result_type=TriageResult)
            result = await finish(handle)
    history = await env.client.get_workflow_handle(handle.id).fetch_history()
    yield Recorded(handle.id, result, history)


def stored_bytes(history: WorkflowHistory) -> bytes:
    return b"".join(event.SerializeToString() for event in history.events)


async def test_the_server_stores_no_prompt_or_answer(recorded: Recorded) -> None:
    result = recorded.result
    # The key decrypts it all: the answer quotes the prompt, routed on its words.
    assert result.handled_by == "billing"
    assert MARKER in result.answer
    stored = stored_bytes(recorded.history)
    for text in (MARKER, MARKER.lower(), PROMPT, result.answer, result.route_reason,
                 "wrong amount"):
        assert text and text.encode() not in stored, text
    # Every payload is ciphertext under key A. Aside: search attributes (the server
    # indexes them; Baton's hold names and numbers only) and the patch markers the SDK's
    # core records itself (a patch id such as "baton-search-attributes").
    payloads = [p for event in recorded.history.events
                if event.marker_recorded_event_attributes.marker_name != "core_patch"
                for p in payloads_in(event, skip=(SearchAttributes,))]
    assert len(payloads) >= 6  # input, result, two model calls each way, summaries
    assert {(p.metadata["encoding"], p.metadata["encryption-key-id"]) for p in payloads} == {
        (ENCODING, key_id(base64.b64decode(KEY_A)).encode())}
    # ... the summaries the Web UI shows included ("router · offline:fast"): user
    # metadata is a payload too.
    summaries = [e.user_metadata.summary for e in recorded.history.events
                 if e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED]
    assert summaries and all(s.metadata["encoding"] == ENCODING for s in summaries)


async def test_an_encrypted_run_replays_with_the_key_only(
        recorded: Recorded, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    use_keys(monkeypatch, KEY_A)
    [report] = await recovery.replay([recorded.history])
    assert report.ok, report.error
    # `starter.py history -o` then `replay --file`: the export keeps the ciphertext.
    exported = recovery.load_history("run.json", recorded.history.to_json())
    assert MARKER.encode() not in recorded.history.to_json().encode()
    [report] = await recovery.replay([exported])
    assert report.ok, report.error
    # Without key A, a clear refusal instead of a false "nondeterministic".
    wanted = key_id(base64.b64decode(KEY_A))
    for current in (None, KEY_B):
        use_keys(monkeypatch, current)
        with pytest.raises(recovery.RecoveryError, match=f"key id {wanted}, which this "
                                                         "process does not hold"):
            await recovery.replay([recorded.history])


def request(url: str, method: str, path: str, body: bytes | None = None,
            headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], bytes]:
    """One HTTP exchange, any status (the codec server's errors are answers too)."""
    host, port = url.removeprefix("http://").rsplit(":", 1)
    connection = http.client.HTTPConnection(host, int(port), timeout=10)
    try:
        connection.request(method, path, body=body, headers=headers or {})
        response = connection.getresponse()
        return response.status, dict(response.getheaders()), response.read()
    finally:
        connection.close()


@contextmanager
def serving(codec: EncryptionCodec, **options: Any) -> Iterator[CodecServer]:
    """A codec server on a free loopback port, in a thread, for the test's duration
    (`options` as make_server takes them)."""
    server = make_server(codec, "127.0.0.1", 0, [UI], **options)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


def payloads_json(*payloads: Payload) -> bytes:
    return json.dumps(json_format.MessageToDict(Payloads(payloads=payloads))).encode()


UI_HEADERS = {"Content-Type": "application/json", "X-Namespace": "default", "Origin": UI}


async def test_codec_server_decodes_a_payload_from_the_history(recorded: Recorded) -> None:
    stored = recorded.history.events[0].workflow_execution_started_event_attributes.input
    codec = EncryptionCodec(base64.b64decode(KEY_A))
    # /encode on: this test covers it (tests/test_codec_server.py covers it off).
    with serving(codec, allow_encode=True) as server:
        status, headers, body = await asyncio.to_thread(
            request, server.url, "POST", "/decode", payloads_json(*stored.payloads), UI_HEADERS)
        assert status == 200, body
        assert headers["Access-Control-Allow-Origin"] == UI
        assert headers["Access-Control-Allow-Credentials"] == "true"
        [decoded] = json_format.Parse(body, Payloads()).payloads
        assert decoded.metadata["encoding"] == b"json/plain"
        assert json.loads(decoded.data)["messages"][0]["content"] == PROMPT
        # The browser's preflight, from the UI's origin and from another.
        status, headers, _ = await asyncio.to_thread(
            request, server.url, "OPTIONS", "/decode", None,
            {"Origin": UI, "Access-Control-Request-Method": "POST",
             "Access-Control-Request-Headers": "content-type,x-namespace"})
        assert status == 204
        assert headers["Access-Control-Allow-Origin"] == UI
        assert headers["Access-Control-Allow-Credentials"] == "true"
        assert "content-type,x-namespace" in headers["Access-Control-Allow-Headers"]
        assert "POST" in headers["Access-Control-Allow-Methods"]
        _, headers, _ = await asyncio.to_thread(
            request, server.url, "OPTIONS", "/decode", None, {"Origin": "http://evil.example"})
        assert "Access-Control-Allow-Origin" not in headers
        # /encode, for what a person types into the UI, and back.
        plain = Payload(metadata={"encoding": b"json/plain"}, data=b'"hello"')
        status, _, body = await asyncio.to_thread(
            request, server.url, "POST", "/encode", payloads_json(plain), UI_HEADERS)
        [sealed] = json_format.Parse(body, Payloads()).payloads
        assert status == 200 and sealed.metadata["encoding"] == ENCODING
        assert codec.decode_payloads([sealed]) == [plain]
        status, _, body = await asyncio.to_thread(
            request, server.url, "POST", "/decode", b"{not json", UI_HEADERS)
        assert status == 400 and b"not protobuf JSON" in body
    with serving(EncryptionCodec(base64.b64decode(KEY_B)), allow_encode=True) as server:
        status, _, body = await asyncio.to_thread(
            request, server.url, "POST", "/decode", payloads_json(*stored.payloads), UI_HEADERS)
        assert status == 400  # with a message, like every body it cannot read
        assert json.loads(body)["key_id"] == key_id(base64.b64decode(KEY_A))


async def test_the_starter_runs_with_a_key_and_keeps_the_prompt_out_of_the_id(
        env: WorkflowEnvironment, task_queue: str, monkeypatch: pytest.MonkeyPatch) -> None:
    use_keys(monkeypatch, KEY_A)
    client = await encrypted_client(env)
    async with worker(client, task_queue):
        code, out, err = await run_starter(env, task_queue, "triage", PROMPT, "--json")
    assert code == 0, err
    shown = json.loads(out)
    assert MARKER in shown["answer"]
    assert shown["workflow_id"].startswith("triage-support-desk-")
    history = await env.client.get_workflow_handle(shown["workflow_id"]).fetch_history()
    assert MARKER.encode() not in stored_bytes(history)


def test_ids_carry_the_prompt_only_when_not_encrypting(monkeypatch: pytest.MonkeyPatch) -> None:
    message = [Message(role="user", content=PROMPT)]

    def planned_id() -> str:
        return launch.plan_run(load_catalogue(), "support_desk", message,
                               RunOptions()).workflow_id

    use_keys(monkeypatch, None)
    assert "invoice" in planned_id()
    use_keys(monkeypatch, KEY_A)
    assert "invoice" not in planned_id() and MARKER.lower() not in planned_id()


async def test_a_worker_without_the_key_fails_the_run_once_and_reset_resumes_it(
        env: WorkflowEnvironment, task_queue: str, monkeypatch: pytest.MonkeyPatch) -> None:
    use_keys(monkeypatch, KEY_A)
    client_a = await encrypted_client(env)
    use_keys(monkeypatch, KEY_B)  # a worker that was not given key A
    async with worker(await encrypted_client(env), task_queue):
        handle = await start(client_a, task_queue, "support_desk", PROMPT,
                             result_type=TriageResult)
        with pytest.raises(WorkflowFailureError) as failed:
            await finish(handle)
    cause = failed.value.cause
    # Readable by the starter although the worker's failures are otherwise encrypted.
    assert isinstance(cause, ApplicationError) and cause.type == "UndecryptablePayload"
    assert key_id(base64.b64decode(KEY_A)) in cause.message
    assert cause.non_retryable
    # One workflow task, failed for good: no retry loop on a task that cannot decode.
    types = [e.event_type for e in (await handle.fetch_history()).events]
    assert types.count(EventType.EVENT_TYPE_WORKFLOW_TASK_STARTED) == 1
    assert EventType.EVENT_TYPE_WORKFLOW_TASK_FAILED not in types
    assert types[-1] == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_FAILED
    # Give the worker key A as an older key; reset runs the request again.
    use_keys(monkeypatch, KEY_B, (KEY_A,))
    client_ba = await encrypted_client(env)
    async with worker(client_ba, task_queue):
        await recovery.reset(client_ba, handle.id)
        result = await finish(client_ba.get_workflow_handle(handle.id,
                                                            result_type=TriageResult))
    assert result.handled_by == "billing" and MARKER in result.answer


@pytest.mark.parametrize(("value", "problem"), [
    ("not base64!!", "BATON_ENCRYPTION_KEY is not base64"),
    (base64.b64encode(os.urandom(16)).decode(), "BATON_ENCRYPTION_KEY decodes to 16 bytes, "
                                                "not 32"),
    (base64.b64encode(os.urandom(32)).decode()[:-1], "is not base64"),  # lost its padding
])
def test_a_bad_key_is_refused_with_how_to_make_one(
        monkeypatch: pytest.MonkeyPatch, value: str, problem: str) -> None:
    use_keys(monkeypatch, value)
    with pytest.raises(EncryptionKeyError) as refused:
        data_converter()
    assert problem in str(refused.value) and MAKE_KEY in str(refused.value)
    assert value not in str(refused.value)  # a near-miss of a real key is still secret


@pytest.mark.parametrize(("old", "problem"), [
    (f"{KEY_A},nope!", r"BATON_DECRYPTION_KEYS \(key 2\) is not base64"),
    (f"{KEY_A},,{KEY_B}", "BATON_DECRYPTION_KEYS has an empty entry"),
])
def test_a_bad_old_key_is_refused(monkeypatch: pytest.MonkeyPatch, old: str,
                                  problem: str) -> None:
    use_keys(monkeypatch, KEY_B)
    monkeypatch.setenv(OLD_KEYS_ENV, old)
    with pytest.raises(EncryptionKeyError, match=problem):
        data_converter()


async def test_starter_and_worker_refuse_to_start_with_a_bad_key(
        env: WorkflowEnvironment, task_queue: str, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    history = Path(__file__).parent / "histories" / "triage-0.json"
    use_keys(monkeypatch, "c2hvcnQ=")
    for argv in (["triage", "hello"], ["codec-server", "--port", "0"],
                 ["replay", "--file", str(history)]):
        assert await asyncio.to_thread(starter.main, argv) == 2, argv
        err = capsys.readouterr().err
        assert "error: BATON_ENCRYPTION_KEY decodes to 5 bytes, not 32" in err, argv
    with pytest.raises(RuntimeError, match="BATON_ENCRYPTION_KEY decodes to 5 bytes"):
        await connect(Settings(address=env.client.service_client.config.target_host))
    # A worker on a client built without the codec would store plain text.
    use_keys(monkeypatch, KEY_A)
    plain = await Client.connect(env.client.service_client.config.target_host,
                                 data_converter=pydantic_data_converter)
    with pytest.raises(ValueError, match="the client has no encryption codec"):
        build_worker(plain, task_queue)


async def test_a_payload_under_an_unknown_key_fails_clearly_and_for_good() -> None:
    key_a, key_b = base64.b64decode(KEY_A), base64.b64decode(KEY_B)
    [sealed] = await EncryptionCodec(key_a).encode(
        [Payload(metadata={"encoding": b"json/plain"}, data=b'"secret"')])
    with pytest.raises(UndecryptablePayload) as refused:
        await EncryptionCodec(key_b).decode([sealed])
    error = refused.value
    assert error.non_retryable and error.type == "UndecryptablePayload"
    assert error.key_id == key_id(key_a)
    assert f"key id {key_id(key_a)!r}" in error.message
    assert f"it holds {key_id(key_b)} (BATON_ENCRYPTION_KEY)" in error.message
    assert missing_key_ids([sealed], EncryptionCodec(key_b)) == {key_id(key_a)}
    assert missing_key_ids([sealed], None) == {key_id(key_a)}
    assert missing_key_ids([sealed], EncryptionCodec(key_a)) == set()
    # Altered ciphertext is refused, not decrypted into garbage.
    altered = Payload()
    altered.CopyFrom(sealed)
    altered.data = sealed.data[:-1] + bytes([sealed.data[-1] ^ 1])
    with pytest.raises(UndecryptablePayload, match="fails authentication"):
        await EncryptionCodec(key_a).decode([altered])


async def test_key_rotation_reads_payloads_of_the_old_key(
        monkeypatch: pytest.MonkeyPatch) -> None:
    old, new = KEY_A, KEY_B
    use_keys(monkeypatch, old)
    sealed = await data_converter().encode(["written before the rotation"])
    assert sealed[0].metadata["encryption-key-id"] == key_id(parse_key(old, "x")).encode()
    # Step 1 of a rotation: every process learns the new key, still writing the old.
    use_keys(monkeypatch, old, (new,))
    assert await data_converter().decode(sealed) == ["written before the rotation"]
    # Step 2: the new key is current, the old one read only.
    use_keys(monkeypatch, new, (old,))
    rotated = data_converter()
    assert await rotated.decode(sealed) == ["written before the rotation"]
    fresh = await rotated.encode(["after"])
    assert fresh[0].metadata["encryption-key-id"] == key_id(parse_key(new, "x")).encode()
    # Decrypt only (switching encryption off, or on in two steps): plain out, both in.
    use_keys(monkeypatch, None, (new, old))
    reader = data_converter()
    assert (await reader.encode(["plain"]))[0].metadata["encoding"] == b"json/plain"
    assert await reader.decode([*sealed, *fresh]) == ["written before the rotation", "after"]
    # Runs recorded before encryption was switched on still decode.
    assert await rotated.decode(await pydantic_data_converter.encode(["older"])) == ["older"]


async def test_failure_messages_are_encrypted_except_a_missing_key(
        monkeypatch: pytest.MonkeyPatch) -> None:
    use_keys(monkeypatch, KEY_A)
    converter = data_converter()
    failure = Failure()
    await converter.encode_failure(ApplicationError(f"contract violated by {MARKER}"), failure)
    assert failure.message == "Encoded failure"
    assert MARKER.encode() not in failure.SerializeToString()
    assert str(await converter.decode_failure(failure)) == f"contract violated by {MARKER}"
    failure = Failure()
    await converter.encode_failure(UndecryptablePayload("key id 'abc' missing", "abc"), failure)
    assert "key id 'abc' missing" in failure.message
    assert not failure.HasField("encoded_attributes")


def test_no_key_no_codec(monkeypatch: pytest.MonkeyPatch) -> None:
    use_keys(monkeypatch, None)
    # pydantic's converter, with only the payload store added (baton/runtime/payload_store.py)
    converter = data_converter()
    assert converter.external_storage is not None and converter.payload_codec is None
    assert converter.payload_converter_class is pydantic_data_converter.payload_converter_class
    assert converter.failure_converter_class is pydantic_data_converter.failure_converter_class


def test_codec_server_takes_origins_not_urls() -> None:
    parser = starter.build_parser()
    args = parser.parse_args(["codec-server", "--origin", "http://ui.example:8080/"])
    assert args.origin == ["http://ui.example:8080"] and args.port == 8081
    with pytest.raises(SystemExit):
        parser.parse_args(["codec-server", "--origin", "localhost:8233/namespaces"])
