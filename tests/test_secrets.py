"""Keys stay in the worker's environment: never in input, history, results or memo."""

from __future__ import annotations

import json

import pytest
from temporalio.client import WorkflowFailureError
from temporalio.testing import WorkflowEnvironment

from baton.runs import RunResult, TriageResult
from tests.fake_llm import FakeLLMServer, Fault
from tests.helpers import KEY_ENV, on_fake, start, worker

SENTINEL = "sk-SENTINEL-0b7e4c1d9a"


@pytest.mark.parametrize("kind", ["openai", "anthropic"])
async def test_sentinel_key_appears_nowhere_in_history(env: WorkflowEnvironment,
                                                       task_queue: str, fake: FakeLLMServer,
                                                       kind: str,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(KEY_ENV, SENTINEL)
    async with worker(env.client, task_queue):
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
        assert SENTINEL not in history.to_json()
    assert SENTINEL not in result.model_dump_json()
    assert SENTINEL not in str(await described.memo())
    # the catalogue names the variable, never its value
    assert KEY_ENV in histories[0].to_json() or KEY_ENV in str(histories)


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
    async with worker(env.client, task_queue):
        handle = await start(env.client, task_queue, "writer", "x", cat=on_fake(kind, fake),
                             result_type=RunResult)
        with pytest.raises(WorkflowFailureError) as caught:
            await handle.result()
        history = await handle.fetch_history()
    assert "ModelAuthError" in str(caught.value.cause)
    assert "[redacted key]" in history.to_json()
    assert SENTINEL not in history.to_json()
