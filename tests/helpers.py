"""Shared test helpers: start a run of any team and wait for its typed result."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any, TypeVar

from temporalio.client import Client, WorkflowHandle
from temporalio.worker import Worker

from baton.core.model_io import Chaos, Message, ProviderConfig
from baton.core.runs import PATTERN_WORKFLOWS, RunInput, RunOptions, RunResult
from baton.core.specs import Catalogue
from baton.core.usage import Budget
from baton.define.catalogue import load_catalogue, parse_catalogue
from baton.runtime.temporal import build_worker
from tests.fake_llm import FakeLLMServer

R = TypeVar("R", bound=RunResult)

# Fast retries so failure tests take seconds, not the production backoff.
FAST_RETRY = {"max_attempts": 2, "initial_interval_s": 0.1, "backoff": 1.0,
              "max_interval_s": 0.1}


RESULT_TIMEOUT_S = 120
# The variable the fake provider's key is read from (set by the provider_key fixture).
KEY_ENV = "BATON_TEST_PROVIDER_KEY"


def catalogue(**agent_updates: dict[str, Any]) -> Catalogue:
    """The default catalogue without fallback models, with some agents' fields replaced.

    Fallbacks are dropped so a test sees exactly the failure it provokes; tests of
    fallbacks give an agent its fallback models explicitly.
    """
    base = load_catalogue().model_dump(mode="json")
    for spec in base["agents"].values():
        spec["fallback_models"] = []
    for agent, update in agent_updates.items():
        base["agents"][agent].update(update)
    return parse_catalogue(base)


def fast_catalogue(**agent_updates: dict[str, Any]) -> Catalogue:
    """`catalogue()` with fast retries for every agent."""
    base = catalogue().model_dump(mode="json")
    for spec in base["agents"].values():
        spec["retry"] = dict(FAST_RETRY)
    for agent, update in agent_updates.items():
        base["agents"][agent].update(update)
    return parse_catalogue(base)


def worker(client: Client, task_queue: str, **options: Any) -> Worker:
    """A worker as production builds it, but with workflows in Temporal's sandbox, so the
    suite catches nondeterministic workflow code (production runs them unsandboxed)."""
    options.setdefault("sandboxed", True)
    return build_worker(client, task_queue, **options)


async def start(client: Client, task_queue: str, member: str, prompt: str | list[Message], *,
                cat: Catalogue | None = None, chaos: Chaos | None = None,
                budget: Budget | None = None,
                result_type: type[R]) -> WorkflowHandle[Any, R]:
    cat = cat or catalogue()
    messages = ([Message(role="user", content=prompt)] if isinstance(prompt, str)
                else prompt)
    run = RunInput(member=member, messages=messages, catalogue=cat.closure(member),
                   options=RunOptions(chaos=chaos, budget=budget or Budget()))
    return await client.start_workflow(
        PATTERN_WORKFLOWS[cat.pattern_of(member)], run,
        id=f"{member}-test-{uuid.uuid4().hex[:8]}", task_queue=task_queue,
        result_type=result_type)


async def run(client: Client, task_queue: str, member: str, prompt: str | list[Message], *,
              cat: Catalogue | None = None, chaos: Chaos | None = None,
              budget: Budget | None = None, result_type: type[R]) -> R:
    handle = await start(client, task_queue, member, prompt, cat=cat, chaos=chaos,
                         budget=budget, result_type=result_type)
    return await finish(handle)


async def finish(handle: WorkflowHandle[Any, R]) -> R:
    """The run's result; a stuck workflow task retries forever, so fail instead of hanging."""
    return await asyncio.wait_for(handle.result(), RESULT_TIMEOUT_S)


async def run_with_requests(client: Client, task_queue: str, member: str,
                            prompt: str | list[Message], *, cat: Catalogue | None = None,
                            chaos: Chaos | None = None, budget: Budget | None = None,
                            result_type: type[R]) -> tuple[R, list[dict[str, Any]]]:
    """The run's result and the ModelRequest of every model call it made itself."""
    handle = await start(client, task_queue, member, prompt, cat=cat, chaos=chaos,
                         budget=budget, result_type=result_type)
    result = await finish(handle)
    return result, await activity_inputs(handle)


async def activity_inputs(handle: WorkflowHandle[Any, Any]) -> list[dict[str, Any]]:
    """The ModelRequest of every call_model activity scheduled by this workflow."""
    import json

    history = await handle.fetch_history()
    inputs = []
    for event in history.events:
        attrs = event.activity_task_scheduled_event_attributes
        if event.HasField("activity_task_scheduled_event_attributes"):
            payload = attrs.input.payloads[0]
            inputs.append(json.loads(payload.data))
    return inputs


def fake_provider(kind: str, fake: FakeLLMServer,
                  key_env: str | None = KEY_ENV) -> dict[str, ProviderConfig]:
    """The worker's provider "fake": the fake server's `kind` API (workers take it with
    `worker(..., providers=...)`; a run only names it)."""
    base = f"{fake.url}/v1" if kind == "openai" else fake.url
    return {"fake": ProviderConfig.model_validate(
        {"kind": kind, "base_url": base, "api_key_env": key_env})}


def on_fake(kind: str, fake: FakeLLMServer, *, retry: dict[str, Any] | None = None,
            timeout_s: float = 30, key_env: str | None = KEY_ENV) -> Catalogue:
    """The default catalogue with every agent on the fake server's `kind` API (a
    worker serving it needs `providers=fake_provider(kind, fake)`)."""
    raw = load_catalogue().model_dump(mode="json")
    raw["providers"] = {name: config.model_dump(mode="json")
                        for name, config in fake_provider(kind, fake, key_env).items()}
    for spec in raw["agents"].values():
        spec["model"] = "fake:test-model"
        spec["fallback_models"] = []
        spec["retry"] = retry or {"max_attempts": 3, "initial_interval_s": 0.1,
                                  "backoff": 1.0, "max_interval_s": 0.1}
        spec["timeout_s"] = timeout_s
    return parse_catalogue(raw)
