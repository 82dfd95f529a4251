"""Both real adapters (OpenAI Chat Completions, Anthropic Messages) through their SDKs.

Each test runs real workflows whose model calls go through the official SDK to a
local fake server (tests/fake_llm.py), parametrized over the two wire APIs.
"""

from __future__ import annotations

import os
import time

import pytest
from temporalio.api.enums.v1 import EventType
from temporalio.client import WorkflowFailureError
from temporalio.exceptions import ApplicationError
from temporalio.testing import WorkflowEnvironment

from baton.activities.providers import register_provider
from baton.activities.providers.anthropic_messages import AnthropicMessagesProvider
from baton.activities.providers.openai_chat import OpenAIChatProvider
from baton.core.runs import FanOutResult, PipelineResult, RunResult, SupervisorResult, TriageResult
from baton.define.catalogue import load_catalogue
from tests.fake_llm import USAGE, FakeLLMServer, Fault
from tests.helpers import KEY_ENV, fake_provider, finish, on_fake, run, start, worker

pytestmark = pytest.mark.usefixtures("provider_key")

KINDS = ["openai", "anthropic"]
def api_path(kind: str) -> str:
    return "/v1/chat/completions" if kind == "openai" else "/v1/messages"


CASES = [
    ("support_desk", "My invoice shows the wrong amount", TriageResult),
    ("research_panel", "Is durable execution worth it?", FanOutResult),
    ("dev_team", "Write a date parser", SupervisorResult),
    ("article_pipeline", "Durable execution", PipelineResult),
    ("concierge_desk", "Research and compare vector databases", TriageResult),
]


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize(("member", "prompt", "result_type"), CASES, ids=[c[0] for c in CASES])
async def test_every_pattern_runs_on_the_adapter(env: WorkflowEnvironment, task_queue: str,
                                                 fake: FakeLLMServer, kind: str, member: str,
                                                 prompt: str,
                                                 result_type: type[RunResult]) -> None:
    async with worker(env.client, task_queue, providers=fake_provider(kind, fake)):
        result = await run(env.client, task_queue, member, prompt, cat=on_fake(kind, fake),
                           result_type=result_type)
    assert result.status == "ok"
    assert {r.path for r in fake.requests} == {api_path(kind)}
    total = result.total_usage
    assert total.calls == len(fake.requests)
    # usage comes from the provider's response: every call reported the same figures
    assert total.input_tokens == USAGE["input"] * total.calls
    assert total.cached_tokens == USAGE["cached"] * total.calls
    assert total.cost_usd is None  # no price is known for fake:test-model
    if isinstance(result, TriageResult) and member == "support_desk":
        assert result.handled_by == "billing"
    if isinstance(result, SupervisorResult):
        assert [d.worker for d in result.delegations] == ["researcher", "coder", "reviewer"]


@pytest.mark.parametrize("kind", KINDS)
async def test_rate_limit_waits_as_told_then_succeeds(env: WorkflowEnvironment, task_queue: str,
                                                      fake: FakeLLMServer, kind: str) -> None:
    # The policy alone would wait 20 s before retrying; the server asks for 0.4 s.
    cat = on_fake(kind, fake, retry={"max_attempts": 3, "initial_interval_s": 20.0,
                                     "backoff": 1.0, "max_interval_s": 20.0})
    fake.fail_next(Fault(status=429, headers={"retry-after-ms": "400"}))
    async with worker(env.client, task_queue, providers=fake_provider(kind, fake)):
        handle = await start(env.client, task_queue, "writer", "Durable execution", cat=cat,
                             result_type=RunResult)
        result = await finish(handle)
        history = await handle.fetch_history()
    assert result.status == "ok"
    first, second = fake.requests[0], fake.requests[1]
    assert 0.35 <= second.at - first.at < 10
    attempts = [e.activity_task_started_event_attributes.attempt for e in history.events
                if e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_STARTED]
    assert attempts == [2]  # the history keeps the attempt that succeeded, after the retry


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("fault", [
    Fault(status=500),
    Fault(status=200, body="<html>502 Bad Gateway</html>"),
    Fault(delay_s=4.0),  # hangs past the 2 s call timeout
], ids=["500", "malformed-body", "hung"])
async def test_transient_failures_are_retried(env: WorkflowEnvironment, task_queue: str,
                                              fake: FakeLLMServer, kind: str,
                                              fault: Fault) -> None:
    fake.fail_next(fault)
    async with worker(env.client, task_queue, providers=fake_provider(kind, fake)):
        result = await run(env.client, task_queue, "writer", "Durable execution",
                           cat=on_fake(kind, fake, timeout_s=2), result_type=RunResult)
    assert result.status == "ok"
    assert len(fake.requests) == 2


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize(("status", "error_type"), [
    (400, "ModelBadRequest"), (401, "ModelAuthError"), (403, "ModelPermissionDenied"),
    (404, "ModelNotFound"), (422, "ModelUnprocessable"),
])
async def test_client_errors_fail_on_the_first_attempt(env: WorkflowEnvironment,
                                                       task_queue: str, fake: FakeLLMServer,
                                                       kind: str, status: int,
                                                       error_type: str) -> None:
    fake.fail_next(Fault(status=status))
    async with worker(env.client, task_queue, providers=fake_provider(kind, fake)):
        with pytest.raises(WorkflowFailureError) as caught:
            await run(env.client, task_queue, "writer", "Durable execution",
                      cat=on_fake(kind, fake), result_type=RunResult)
    cause = caught.value.cause
    assert isinstance(cause, ApplicationError) and cause.type == "AgentFailed"
    assert f"{error_type}: " in cause.message and f"HTTP {status}" in cause.message
    assert len(fake.requests) == 1  # max_attempts is 3: the error was not retried


@pytest.mark.parametrize("kind", KINDS)
async def test_missing_key_names_the_variable(env: WorkflowEnvironment, task_queue: str,
                                              fake: FakeLLMServer, kind: str,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(KEY_ENV)
    async with worker(env.client, task_queue, providers=fake_provider(kind, fake)):
        with pytest.raises(WorkflowFailureError) as caught:
            await run(env.client, task_queue, "writer", "Durable execution",
                      cat=on_fake(kind, fake), result_type=RunResult)
    assert isinstance(caught.value.cause, ApplicationError)
    assert f"ModelAuthError: {KEY_ENV} is not set in the worker's environment" in \
        caught.value.cause.message
    assert fake.requests == []


@pytest.mark.parametrize("kind", KINDS)
async def test_key_reaches_the_provider_in_its_header(env: WorkflowEnvironment,
                                                      task_queue: str, fake: FakeLLMServer,
                                                      kind: str) -> None:
    async with worker(env.client, task_queue, providers=fake_provider(kind, fake)):
        await run(env.client, task_queue, "writer", "Durable execution",
                  cat=on_fake(kind, fake), result_type=RunResult)
    headers = {k.lower(): v for k, v in fake.requests[0].headers.items()}
    # the SDK decides the header (Authorization: Bearer, or x-api-key in older Anthropic SDKs)
    assert "test-key-123" in headers.get("authorization", "") + headers.get("x-api-key", "")
    # SDK retries are off: Temporal owns them (the SDKs say so in a header)
    assert headers.get("x-stainless-retry-count", "0") == "0"


@pytest.mark.parametrize(("kind", "variables"), [
    ("openai", ("OPENAI_API_KEY", "OPENAI_BASE_URL")),
    ("anthropic", ("ANTHROPIC_API_KEY", "ANTHROPIC_BASE_URL")),
])
async def test_standard_environment_variables(env: WorkflowEnvironment, task_queue: str,
                                              fake: FakeLLMServer, kind: str,
                                              variables: tuple[str, str],
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    key, base = variables
    monkeypatch.setenv(key, "std-key")
    monkeypatch.setenv(base, f"{fake.url}/v1" if kind == "openai" else fake.url)
    # adapters keep one client per worker process; start from a clean one
    register_provider(kind, OpenAIChatProvider if kind == "openai" else AnthropicMessagesProvider)
    cat = load_catalogue().with_model(f"{kind}:gpt-5-nano" if kind == "openai"
                                      else f"{kind}:claude-haiku-4-5")
    try:
        async with worker(env.client, task_queue):
            result = await run(env.client, task_queue, "support_desk", "Refund my invoice",
                               cat=cat, result_type=TriageResult)
    finally:
        register_provider(kind, OpenAIChatProvider if kind == "openai"
                          else AnthropicMessagesProvider)
    assert result.handled_by == "billing"
    assert len(fake.requests) == 2
    # a priced model: cost = uncached input + cached input + output, per million tokens
    price = cat.price_for(cat.agents["router"].model)
    assert price is not None and price.cached_input_per_mtok is not None
    one_call = ((USAGE["input"] - USAGE["cached"]) * price.input_per_mtok
                + USAGE["cached"] * price.cached_input_per_mtok
                + USAGE["output"] * price.output_per_mtok) / 1_000_000
    assert result.total_usage.cost_usd == pytest.approx(2 * one_call)
    assert os.environ[key] == "std-key"


@pytest.mark.parametrize("kind", KINDS)
async def test_timeout_is_below_start_to_close(env: WorkflowEnvironment, task_queue: str,
                                               fake: FakeLLMServer, kind: str) -> None:
    """The SDK gives up before Temporal does, so the attempt ends with a typed error."""
    fake.fail_next(Fault(delay_s=3.0), Fault(delay_s=3.0))
    cat = on_fake(kind, fake, timeout_s=2, retry={"max_attempts": 2, "initial_interval_s": 0.1,
                                                   "backoff": 1.0, "max_interval_s": 0.1})
    started = time.monotonic()
    async with worker(env.client, task_queue, providers=fake_provider(kind, fake)):
        with pytest.raises(WorkflowFailureError) as caught:
            await run(env.client, task_queue, "writer", "x", cat=cat, result_type=RunResult)
    assert isinstance(caught.value.cause, ApplicationError)
    assert "ModelTimeout" in caught.value.cause.message
    assert time.monotonic() - started < 15
