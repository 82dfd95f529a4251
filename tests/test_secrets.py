"""Keys stay in the worker's environment: never in input, history, results or memo.

Nor in any other trace a run leaves: memos and search attributes, the worker's and
the starter's logs and output, spans (even with prompt recording on) and metrics.
A tool's value marked secret (a pydantic `SecretStr`, alone or as a field) is
masked before its result is recorded, so it reaches neither the model nor history.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import socket
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel, SecretStr
from temporalio.client import Client, WorkflowFailureError
from temporalio.testing import WorkflowEnvironment

import baton
from baton.core.runs import RunResult, TriageResult
from baton.core.specs import Catalogue
from baton.define.catalogue import parse_catalogue
from baton.runtime.temporal import Settings, connect
from baton.telemetry.metrics import metrics_runtime
from baton.telemetry.observability import flush_tracing
from baton.telemetry.redaction import CONTENT_VAR
from tests.fake_llm import FakeLLMServer, Fault
from tests.helpers import KEY_ENV, fake_provider, finish, on_fake, start, worker
from tests.run_records import history_text, related_histories
from tests.test_tracing import Collector, tracing_to_collector

SENTINEL = "sk-SENTINEL-0b7e4c1d9a"


@pytest.mark.parametrize("kind", ["openai", "anthropic"])
async def test_sentinel_key_appears_nowhere_in_history(env: WorkflowEnvironment,
                                                       task_queue: str, fake: FakeLLMServer,
                                                       kind: str,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(KEY_ENV, SENTINEL)
    async with worker(env.client, task_queue, providers=fake_provider(kind, fake)):
        handle = await start(env.client, task_queue, "concierge_desk",
                             "Research and compare vector databases",
                             cat=on_fake(kind, fake), result_type=TriageResult)
        result = await handle.result()
        histories = [await env.client.get_workflow_handle(w.id).fetch_history()
                     async for w in env.client.list_workflows(
                         f"WorkflowId STARTS_WITH '{handle.id}'")]
        described = await handle.describe()
    assert len(histories) >= 4  # triage, supervisor, fan-out and its branches
    # the key was used: every request carried it
    assert all(SENTINEL in str(r.headers) for r in fake.requests)
    for history in histories:
        assert SENTINEL not in history_text(history)  # payloads decoded, not base64
    assert SENTINEL not in result.model_dump_json()
    assert SENTINEL not in str(await described.memo())
    # the run names its provider; the key's variable, like its endpoint, is the worker's
    assert "fake:test-model" in history_text(histories[0])
    assert all(KEY_ENV not in history_text(h) for h in histories)
    assert all(fake.url not in history_text(h) for h in histories)


@pytest.mark.parametrize("kind", ["openai", "anthropic"])
async def test_a_key_quoted_in_an_auth_error_is_redacted(env: WorkflowEnvironment,
                                                         task_queue: str, fake: FakeLLMServer,
                                                         kind: str,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(KEY_ENV, SENTINEL)
    quoted = f"Incorrect API key provided: {SENTINEL}. Find your key in your dashboard."
    body = ({"type": "error", "error": {"type": "authentication_error", "message": quoted}}
            if kind == "anthropic" else {"error": {"message": quoted, "type": "invalid_key"}})
    fake.fail_next(Fault(status=401, body=json.dumps(body)))
    async with worker(env.client, task_queue, providers=fake_provider(kind, fake)):
        handle = await start(env.client, task_queue, "writer", "x", cat=on_fake(kind, fake),
                             result_type=RunResult)
        with pytest.raises(WorkflowFailureError) as caught:
            await handle.result()
        history = await handle.fetch_history()
    assert "ModelAuthError" in str(caught.value.cause)
    assert "[redacted key]" in history.to_json()
    assert SENTINEL not in history_text(history)


# --- Everywhere a run leaves a trace -----------------------------------------------------
# Histories (payloads decoded: `to_json()` holds them base64-encoded, where a plain
# substring search cannot see a leaked key), memos and search attributes, the worker's
# and the starter's logs, spans (with content recording on) and metrics.

ROOT = Path(__file__).resolve().parent.parent
# A key that looks like none (no sk-/key- prefix): only knowing the key can hide it.
PLAIN_SENTINEL = "Zq7rT3vX9pL2mN8kW4yBh6Jd"
TOOL_SECRET = "tok-TOOLSECRET-5f3e2a91"
PASSWORD = "hunter2-PASSWORD-77ac"
VISIBLE = "visible-marker-31c4"  # a tool's plain value: the searches must find it


class Credentials(BaseModel):
    user: str
    password: SecretStr


@baton.tool
def account_lookup(user: str) -> dict[str, Any]:
    """Look an account up."""
    return {"user": user, "plan": "pro", "note": VISIBLE, "api_token": SecretStr(TOOL_SECRET)}


@baton.tool
def account_credentials(user: str) -> Credentials:
    """The account's credentials."""
    return Credentials(user=user, password=SecretStr(PASSWORD))


def tool_catalogue(kind: str, fake: FakeLLMServer) -> Catalogue:
    """Every agent on the fake server, plus `clerk`, who calls both secret tools."""
    raw = on_fake(kind, fake).model_dump(mode="json")
    raw["tools"] = {t.name: t.definition.model_dump() for t in (account_lookup,
                                                              account_credentials)}
    raw["agents"]["clerk"] = {**raw["agents"]["writer"], "contract": None,
                              "instructions": "Answer account questions.",
                              "tools": ["account_lookup", "account_credentials"]}
    return parse_catalogue(raw)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture
def collector(monkeypatch: pytest.MonkeyPatch) -> Iterator[Collector]:
    """Tracing on, prompts and completions recorded too, exporting to a local receiver."""
    with tracing_to_collector(monkeypatch, **{CONTENT_VAR: "1"}) as receiver:
        yield receiver


async def everything_recorded(client: Client, workflow_ids: list[str]) -> str:
    """Histories (payloads decoded), memos and search attributes of these runs and of
    every nested run they started."""
    texts = []
    for workflow_id in workflow_ids:
        for history in await related_histories(client, workflow_id):
            texts.append(history_text(history))
            described = await client.get_workflow_handle(history.workflow_id).describe()
            texts.append(str(await described.memo()))
            texts.append(str(described.typed_search_attributes))
            texts.append(str(described.raw_description))
    return "\n".join(texts)


def scrape(port: int) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as response:
        return str(response.read().decode())


@pytest.mark.parametrize("kind", ["openai", "anthropic"])
async def test_keys_and_secret_tool_values_appear_nowhere(
        env: WorkflowEnvironment, task_queue: str, fake: FakeLLMServer, kind: str,
        monkeypatch: pytest.MonkeyPatch, collector: Collector,
        caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.setenv(KEY_ENV, SENTINEL)
    caplog.set_level(logging.DEBUG)
    port = free_port()
    address = env.client.service_client.config.target_host
    client = await connect(Settings(address=address), runtime=metrics_runtime(
        f"127.0.0.1:{port}"))
    cat = tool_catalogue(kind, fake)
    async with worker(client, task_queue, tools=[account_lookup, account_credentials],
                      providers=fake_provider(kind, fake)):
        composed = await start(client, task_queue, "concierge_desk",
                               "Research and compare vector databases", cat=cat,
                               result_type=TriageResult)
        tooled = await start(client, task_queue, "clerk", "What plan is ann on?", cat=cat,
                             result_type=RunResult)
        results = [await finish(composed), await finish(tooled)]
        recorded = await everything_recorded(client, [composed.id, tooled.id])
    flush_tracing()
    spans = "\n".join(f"{s.name}\n{s.text()}" for s in collector.spans)
    metrics = scrape(port)
    logs = caplog.text

    assert all(r.status == "ok" for r in results), [r.reasons for r in results]
    assert fake.requests and all(SENTINEL in str(r.headers) for r in fake.requests)
    # the searches see what they should: a plain tool value, the provider's name (its
    # key variable and endpoint are the worker's, never recorded)
    assert VISIBLE in recorded and VISIBLE in spans
    assert "fake:test-model" in recorded
    assert KEY_ENV not in recorded and fake.url not in recorded
    assert "account_lookup" in spans and "baton_model_calls" in metrics
    assert results[1].usage["clerk"].tool_calls == 2
    for where, text in [("history, memo or search attributes", recorded),
                        ("results", "".join(r.model_dump_json() for r in results)),
                        ("spans", spans), ("metrics", metrics), ("worker logs", logs)]:
        for secret in (SENTINEL, TOOL_SECRET, PASSWORD):
            assert secret not in text, f"{secret} found in {where}"


@pytest.mark.parametrize("kind", ["openai", "anthropic"])
@pytest.mark.parametrize("key", [SENTINEL, PLAIN_SENTINEL], ids=["key-like", "plain"])
async def test_a_key_quoted_back_is_redacted_everywhere(
        env: WorkflowEnvironment, task_queue: str, fake: FakeLLMServer, kind: str, key: str,
        monkeypatch: pytest.MonkeyPatch, collector: Collector,
        caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.setenv(KEY_ENV, key)
    caplog.set_level(logging.DEBUG)
    quoted = f"Incorrect API key provided: {key}. Find your key in your dashboard."
    body = ({"type": "error", "error": {"type": "authentication_error", "message": quoted}}
            if kind == "anthropic" else {"error": {"message": quoted, "type": "invalid_key"}})
    fake.fail_next(Fault(status=401, body=json.dumps(body)))
    address = env.client.service_client.config.target_host
    client = await connect(Settings(address=address))
    async with worker(client, task_queue, providers=fake_provider(kind, fake)):
        handle = await start(client, task_queue, "writer", "x", cat=on_fake(kind, fake),
                             result_type=RunResult)
        with pytest.raises(WorkflowFailureError) as caught:
            await finish(handle)
        recorded = await everything_recorded(client, [handle.id])
    flush_tracing()
    spans = "\n".join(f"{s.name}\n{s.text()}" for s in collector.spans)
    assert "ModelAuthError" in str(caught.value.cause)
    assert "Incorrect API key provided" in recorded
    for where, text in [("history, memo or search attributes", recorded),
                        ("the failure", str(caught.value.cause)), ("spans", spans),
                        ("worker logs", caplog.text)]:
        assert key not in text, f"the key found in {where}"


def write_fake_catalogue(path: Path, kind: str, fake: FakeLLMServer) -> None:
    base = f"{fake.url}/v1" if kind == "openai" else fake.url
    path.write_text(
        f'[providers.fake]\nkind = "{kind}"\nbase_url = "{base}"\napi_key_env = "{KEY_ENV}"\n\n'
        '[agents.writer]\ninstructions = "Write."\nmodel = "fake:test-model"\n'
        'retry = { max_attempts = 1 }\n')


@pytest.mark.parametrize("fails", [False, True], ids=["answers", "auth-error"])
async def test_the_starter_prints_no_key(env: WorkflowEnvironment, task_queue: str,
                                         fake: FakeLLMServer, tmp_path: Path, fails: bool,
                                         monkeypatch: pytest.MonkeyPatch,
                                         caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.setenv(KEY_ENV, PLAIN_SENTINEL)
    caplog.set_level(logging.DEBUG)
    if fails:
        fake.fail_next(Fault(status=401, body=json.dumps({"error": {
            "message": f"Incorrect API key provided: {PLAIN_SENTINEL}.",
            "type": "invalid_key"}})))
    path = tmp_path / "catalogue.toml"
    write_fake_catalogue(path, "openai", fake)
    environment = {**os.environ, "TEMPORAL_ADDRESS": env.client.service_client.config.target_host,
                   "BATON_TASK_QUEUE": task_queue, KEY_ENV: PLAIN_SENTINEL}
    async with worker(env.client, task_queue, providers=fake_provider("openai", fake)):
        for args in (["run", "writer", "hello", "--catalogue", str(path)],
                     ["run", "writer", "hello", "--catalogue", str(path), "--json"]):
            result = await asyncio.to_thread(
                subprocess.run, [sys.executable, "starter.py", *args], cwd=ROOT,
                env=environment, capture_output=True, text=True, timeout=120)
            assert result.returncode == (1 if fails else 0), result.stderr
            assert PLAIN_SENTINEL not in result.stdout + result.stderr
            fake.fail_next(*([Fault(status=401, body=json.dumps({"error": {
                "message": f"Incorrect API key provided: {PLAIN_SENTINEL}.",
                "type": "invalid_key"}}))] if fails else []))
    assert PLAIN_SENTINEL not in caplog.text
