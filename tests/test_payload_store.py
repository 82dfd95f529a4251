"""baton/runtime/payload_store.py: large payloads kept outside the history, on files or S3.

The 20 MB document runs through a flow on the session's dev server, encrypted; the
S3 store runs against moto in server mode through boto3; the bad inputs (too large,
store unreachable, object deleted or altered) each end in a typed failure.
"""

from __future__ import annotations

import base64
import os
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from temporalio.api.common.v1 import Payload
from temporalio.client import Client, WorkflowFailureError
from temporalio.exceptions import ApplicationError
from temporalio.testing import WorkflowEnvironment

import baton
from baton.runtime.codec import ENCODING, KEY_ENV
from baton.runtime.payload_store import (
    DIR_ENV,
    MAX_ENV,
    OFFLOAD_ENV,
    S3_ENDPOINT_ENV,
    STORE_ENV,
    FileStore,
    PayloadStoreSettingsError,
    PayloadStoreUnavailable,
    PayloadTooLarge,
    StoredPayloadCorrupt,
    StoredPayloadMissing,
    external_storage,
)
from baton.runtime.temporal import build_replayer, data_converter
from tests.helpers import worker

MARKER = "lighthouse-keeper-ledger "
DOCUMENT = MARKER * (20 * 1024 * 1024 // len(MARKER))  # 20 MB


@baton.tool
def document_words(text: str) -> int:
    """Count the words of a document."""
    return len(text.split())


@baton.flow
async def digest_document(document: str) -> str:
    """A pipeline over a large document: a tool reads it whole, the flow reports."""
    words = await document_words(document)
    return f"{words} words, {len(document)} characters"


@pytest.fixture
def store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv(DIR_ENV, str(tmp_path))
    monkeypatch.setenv(KEY_ENV, base64.b64encode(os.urandom(32)).decode())
    for name in (STORE_ENV, OFFLOAD_ENV, MAX_ENV):
        monkeypatch.delenv(name, raising=False)
    return tmp_path


def client_of(env: WorkflowEnvironment) -> Client:
    """The session's connection with the converter this test's environment asks for."""
    config: dict[str, Any] = dict(env.client.config(active_config=True))
    config["plugins"] = []
    config["data_converter"] = data_converter()
    return Client(**config)


def stored_files(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.is_file())


def history_bytes(history: Any) -> int:
    return sum(e.ByteSize() for e in history.events)


async def test_a_20_mb_document_runs_encrypted_with_a_small_history(
        env: WorkflowEnvironment, task_queue: str, store: Path) -> None:
    client = client_of(env)
    async with worker(client, task_queue, tools=[document_words], sandboxed=False):
        outcome = await baton.run(digest_document, {"document": DOCUMENT}, client=client,
                                  task_queue=task_queue)
    expected = f"{len(DOCUMENT.split())} words, {len(DOCUMENT)} characters"
    assert outcome.result.answer == expected
    history = await client.get_workflow_handle(outcome.workflow_id).fetch_history()
    size = history_bytes(history)
    print(f"\n20 MB document: history {size} bytes, {len(history.events)} events, "
          f"{len(stored_files(store))} stored objects")
    assert size < 100_000
    # the store holds the document only as ciphertext, checked against its name on read
    files = stored_files(store)
    assert files and max(f.stat().st_size for f in files) > 20 * 1024 * 1024
    for file in files:
        raw = file.read_bytes()
        assert MARKER.encode() not in raw
        stored = Payload.FromString(raw)
        assert stored.metadata["encoding"] == ENCODING
    # replay reads the stored payloads back
    await build_replayer().replay_workflow(history)


EXTRACTOR = baton.Agent("doc_extractor", "Pick out the document's key facts.")
SUMMARIZER = baton.Agent("doc_summarizer", "Summarise the key facts in three lines.")
DOCUMENT_PIPELINE = baton.Pipeline("document_desk", [EXTRACTOR, SUMMARIZER])


async def test_a_20_mb_document_runs_through_a_pipeline_with_a_small_history(
        env: WorkflowEnvironment, task_queue: str, store: Path) -> None:
    client = client_of(env)
    prompt = "Summarise this document.\n\n" + DOCUMENT
    async with worker(client, task_queue, sandboxed=False):
        outcome = await baton.run(DOCUMENT_PIPELINE, prompt, client=client,
                                  task_queue=task_queue)
    assert outcome.result.status == "ok", outcome.result.reasons
    assert [stage.stage for stage in outcome.result.stages] == ["doc_extractor",
                                                                "doc_summarizer"]
    history = await client.get_workflow_handle(outcome.workflow_id).fetch_history()
    size = history_bytes(history)
    print(f"\n20 MB document through a pipeline: history {size} bytes, "
          f"{len(history.events)} events")
    assert size < 100_000
    # the first stage's model read the whole document: it quotes its end
    assert MARKER.strip() in outcome.result.stages[0].answer
    await build_replayer().replay_workflow(history)


async def test_a_deleted_or_altered_object_fails_the_run_by_name(
        env: WorkflowEnvironment, task_queue: str, store: Path) -> None:
    client = client_of(env)
    small = MARKER * (600 * 1024 // len(MARKER))  # over the 512 KiB threshold
    handles = []
    for spoil in ("delete", "alter"):
        before = set(stored_files(store))
        handles.append(await baton.start(digest_document, {"document": small + spoil},
                                         client=client, task_queue=task_queue))
        [written] = set(stored_files(store)) - before
        if spoil == "delete":
            written.unlink()
        else:
            # Flip a bit: the last byte may be anything (a GCM tag when encrypted), so
            # overwriting it with a fixed byte left it unchanged one time in 256.
            data = written.read_bytes()
            written.write_bytes(data[:-1] + bytes([data[-1] ^ 1]))
    async with worker(client, task_queue, tools=[document_words], sandboxed=False):
        failures = []
        for handle in handles:
            with pytest.raises(WorkflowFailureError) as caught:
                await handle.result()
            failures.append(caught.value.cause)
    missing, altered = failures
    assert isinstance(missing, ApplicationError) and missing.type == StoredPayloadMissing.TYPE
    assert isinstance(altered, ApplicationError) and altered.type == StoredPayloadCorrupt.TYPE
    for failure in (missing, altered):
        assert str(store) in failure.message and "payload store" in failure.message


async def test_a_payload_over_the_store_limit_is_refused_at_the_client(
        env: WorkflowEnvironment, task_queue: str, store: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(MAX_ENV, str(1024 * 1024))
    with pytest.raises(PayloadTooLarge) as caught:
        await baton.start(digest_document, {"document": MARKER * 100_000},
                          client=client_of(env), task_queue=task_queue)
    assert "accepts at most 1048576" in caught.value.message and str(store) in caught.value.message
    assert caught.value.message.startswith("payload sha256:")
    assert stored_files(store) == []


def test_unusable_settings_are_refused_by_name(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(PayloadStoreSettingsError, match=OFFLOAD_ENV):
        external_storage({OFFLOAD_ENV: "half a meg"})
    with pytest.raises(PayloadStoreSettingsError, match="s3://bucket/prefix"):
        external_storage({STORE_ENV: "https://bucket.example/prefix"})
    storage = external_storage({DIR_ENV: "/srv/payloads", OFFLOAD_ENV: "1000"})
    assert storage.payload_size_threshold == 1000
    assert isinstance(storage.drivers[0], FileStore)


async def test_a_reference_names_only_a_digest(tmp_path: Path) -> None:
    """A history's claim cannot point the store at another file."""
    from temporalio.converter import StorageDriverClaim, StorageDriverRetrieveContext

    files = FileStore(tmp_path)
    forged = StorageDriverClaim({"hash_algorithm": "sha256", "hash_value": "../../etc/passwd"})
    with pytest.raises(StoredPayloadCorrupt, match="without a sha256 digest"):
        await files.retrieve(StorageDriverRetrieveContext(), [forged])


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def s3(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A local S3-compatible server (moto), its endpoint in the environment."""
    from moto.server import ThreadedMotoServer

    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port)
    server.start()
    endpoint = f"http://127.0.0.1:{port}"
    for name, value in (("AWS_ACCESS_KEY_ID", "test"), ("AWS_SECRET_ACCESS_KEY", "test"),
                        ("AWS_DEFAULT_REGION", "us-east-1"), (S3_ENDPOINT_ENV, endpoint)):
        monkeypatch.setenv(name, value)
    monkeypatch.delenv(KEY_ENV, raising=False)
    try:
        yield endpoint
    finally:
        server.stop()


async def test_the_s3_store_through_boto3(env: WorkflowEnvironment, task_queue: str,
                                          s3: str, monkeypatch: pytest.MonkeyPatch) -> None:
    import boto3  # type: ignore[import-untyped]

    objects = boto3.client("s3", endpoint_url=s3)
    objects.create_bucket(Bucket="runs")
    monkeypatch.setenv(STORE_ENV, "s3://runs/baton/payloads")
    document = MARKER * (3 * 1024 * 1024 // len(MARKER))  # 3 MB: over Temporal's 2 MB
    client = client_of(env)
    # started before any worker polls, its stored input then deleted from the bucket
    doomed = await baton.start(digest_document, {"document": document + "gone"},
                               client=client, task_queue=task_queue)
    [doomed_key] = [o["Key"] for o in objects.list_objects_v2(Bucket="runs")["Contents"]]
    objects.delete_object(Bucket="runs", Key=doomed_key)
    async with worker(client, task_queue, tools=[document_words], sandboxed=False):
        outcome = await baton.run(digest_document, {"document": document}, client=client,
                                  task_queue=task_queue)
        with pytest.raises(WorkflowFailureError) as caught:
            await doomed.result()
    assert outcome.result.answer == f"{len(document.split())} words, {len(document)} characters"
    keys = [o["Key"] for o in objects.list_objects_v2(Bucket="runs")["Contents"]]
    assert keys and all(k.startswith("baton/payloads/v0/") for k in keys)
    history = await client.get_workflow_handle(outcome.workflow_id).fetch_history()
    assert history_bytes(history) < 100_000
    await build_replayer().replay_workflow(history)
    missing = caught.value.cause
    assert isinstance(missing, ApplicationError) and missing.type == StoredPayloadMissing.TYPE
    assert doomed_key in missing.message and "s3://runs/baton/payloads" in missing.message
    # a bucket that does not exist, and a store nobody answers at: typed and named
    monkeypatch.setenv(STORE_ENV, "s3://no-such-bucket/p")
    with pytest.raises(PayloadStoreUnavailable, match="s3://no-such-bucket/p"):
        await baton.start(digest_document, {"document": document}, client=client_of(env),
                          task_queue=task_queue)
    monkeypatch.setenv(S3_ENDPOINT_ENV, f"http://127.0.0.1:{free_port()}")
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")
    with pytest.raises(PayloadStoreUnavailable, match="s3://no-such-bucket/p"):
        await baton.start(digest_document, {"document": document}, client=client_of(env),
                          task_queue=task_queue)
