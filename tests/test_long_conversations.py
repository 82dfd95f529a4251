"""Conversations that do not re-send themselves (activities/conversations.py).

The scenario of temporalio/sdk-python#1890 (tests/long_run.py): one agent, 100 model
calls, tool results building a ~200,000-token conversation. Its history stays small
because each call carries only what is new plus a reference to the stored rest, the
model still reads the whole conversation every turn, and the run replays. A stored
conversation deleted or altered under a running agent fails it, naming the object and
the store.
"""

from __future__ import annotations

import base64
import os
from pathlib import Path
from typing import Any

import pytest
from temporalio.client import Client, WorkflowFailureError
from temporalio.exceptions import ApplicationError
from temporalio.testing import WorkflowEnvironment

import baton
from baton.activities.conversations import CACHE_ENV, OFFLOAD_ENV
from baton.runtime.codec import KEY_ENV
from baton.runtime.payload_store import DIR_ENV
from baton.runtime.temporal import build_replayer, data_converter
from tests.fake_llm import FakeLLMServer
from tests.long_run import PAGE_CHARS, page_text, run_long_conversation

pytestmark = pytest.mark.usefixtures("provider_key")

MB = 1024 * 1024


async def test_100_calls_and_200k_tokens_leave_a_small_history_and_replay(
        env: WorkflowEnvironment, task_queue: str, fake: FakeLLMServer) -> None:
    run = await run_long_conversation(env.client, task_queue, fake, calls=100)
    assert run.result.status == "ok", run.result.reasons
    print(f"\n100 calls, {run.tokens} tokens: history {run.history_bytes} bytes, "
          f"{run.events} events, largest model-call input {run.largest_model_input()} bytes")
    assert len(fake.requests) == 100
    assert run.tokens > 190_000
    assert run.history_bytes < 5 * MB
    assert run.events < 2_000
    # Each call recorded what was new, never the conversation so far.
    assert run.largest_model_input() < 4 * PAGE_CHARS
    # ... while the model read the whole conversation, in order, on every call.
    last = fake.requests[-1].body["messages"]
    pages = [m["content"] for m in last if m["role"] == "tool"]
    assert pages == [page_text(page) for page in range(1, 100)]
    assert [m["tool_calls"][0]["id"] for m in last if m.get("tool_calls")] == [
        f"call_{page}" for page in range(1, 100)]
    await build_replayer().replay_workflow(run.history)


@pytest.fixture
def cold_worker(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(OFFLOAD_ENV, "1")  # store from the first call
    monkeypatch.setenv(CACHE_ENV, "0")  # and read every conversation back from the store


def stored_objects() -> set[Path]:
    return {p for p in Path(os.environ[DIR_ENV]).rglob("*") if p.is_file()}


@pytest.mark.parametrize("encrypted", [False, True], ids=["plain", "encrypted"])
async def test_a_worker_without_the_conversation_reads_its_chain_from_the_store(
        env: WorkflowEnvironment, task_queue: str, fake: FakeLLMServer,
        cold_worker: None, encrypted: bool, monkeypatch: pytest.MonkeyPatch) -> None:
    client = env.client
    if encrypted:
        monkeypatch.setenv(KEY_ENV, base64.b64encode(os.urandom(32)).decode())
        config: dict[str, Any] = dict(env.client.config(active_config=True))
        client = Client(**{**config, "plugins": [], "data_converter": data_converter()})
    before = stored_objects()
    run = await run_long_conversation(client, task_queue, fake, calls=5)
    assert run.result.status == "ok"
    # one object per call that asked for tools, each holding only what that call added
    added = stored_objects() - before
    assert len(added) == 4
    assert max(p.stat().st_size for p in added) < 2 * PAGE_CHARS
    # with a key, the store holds ciphertext only
    pages_readable = [b"Page 1." in path.read_bytes() for path in added]
    assert any(pages_readable) != encrypted
    last = fake.requests[-1].body["messages"]
    assert [m["content"] for m in last if m["role"] == "tool"] == [
        page_text(page) for page in range(1, 5)]


@pytest.mark.parametrize("spoil", ["delete", "alter"])
async def test_a_stored_conversation_spoiled_mid_run_fails_the_agent_by_name(
        env: WorkflowEnvironment, task_queue: str, fake: FakeLLMServer, spoil: str,
        cold_worker: None) -> None:
    before = stored_objects()

    @baton.tool(name="read_page", max_result_chars=PAGE_CHARS + 100)
    def spoiling_read_page(page: int) -> str:
        """Read one page of the book.

        Args:
            page: The page number, from 1.
        """
        if page == 2:  # the first call's conversation is stored by now
            for path in stored_objects() - before:
                if spoil == "delete":
                    path.unlink()
                else:
                    data = path.read_bytes()  # flip a bit: the last byte may be "x"
                    path.write_bytes(data[:-1] + bytes([data[-1] ^ 1]))
        return page_text(page)

    with pytest.raises(WorkflowFailureError) as caught:
        # A prompt of its own: stored objects are named by their bytes, and another
        # test's identical conversation would share them.
        await run_long_conversation(env.client, task_queue, fake, calls=4,
                                    tools=[spoiling_read_page],
                                    prompt=f"Read the whole book ({task_queue}).")
    failure = caught.value.cause
    assert isinstance(failure, ApplicationError) and failure.type == "AgentFailed"
    expected = "StoredPayloadMissing" if spoil == "delete" else "StoredPayloadCorrupt"
    assert expected in failure.message
    assert os.environ[DIR_ENV] in failure.message  # names the store
    assert len(fake.requests) == 2  # the call that could not read its conversation never ran


async def test_a_store_that_cannot_be_written_costs_history_not_the_answer(
        env: WorkflowEnvironment, task_queue: str, fake: FakeLLMServer,
        cold_worker: None) -> None:
    objects = Path(os.environ[DIR_ENV]) / "sha256"
    objects.mkdir(parents=True, exist_ok=True)
    aside = objects.with_name("sha256.aside")
    objects.rename(aside)
    objects.write_text("not a directory: every write fails")
    try:
        run = await run_long_conversation(env.client, task_queue, fake, calls=3,
                                          prompt=f"Read the whole book ({task_queue}).")
    finally:
        objects.unlink()
        aside.rename(objects)
    assert run.result.status == "ok"
    # every call carried its whole conversation, and the model read all of it
    inputs = run.model_inputs()
    assert [len(i["messages"]) for i in inputs] == [1, 3, 5]
    assert not any("prefix" in i for i in inputs)
    assert [m["content"] for m in fake.requests[-1].body["messages"]
            if m["role"] == "tool"] == [page_text(1), page_text(2)]
