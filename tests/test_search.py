"""Searchable runs (baton/telemetry/search.py, workflows/base.py, baton/cli/runs.py): every run's
team, pattern, status, cost, tokens and models in the server's visibility, registered
where missing, refused with the command that registers them, and `starter.py list`."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import sys
import uuid
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any

import pytest
from google.protobuf.duration_pb2 import Duration
from temporalio import workflow
from temporalio.api.enums.v1 import IndexedValueType
from temporalio.api.operatorservice.v1 import (
    AddSearchAttributesRequest,
    ListSearchAttributesResponse,
)
from temporalio.api.workflowservice.v1 import RegisterNamespaceRequest
from temporalio.client import Client, WorkflowExecution, WorkflowFailureError
from temporalio.exceptions import ApplicationError
from temporalio.service import RPCError, RPCStatusCode
from temporalio.testing import WorkflowEnvironment

import baton
from baton.cli.output import usd
from baton.core.errors import SPENT_DETAIL
from baton.core.model_io import Chaos
from baton.core.runs import RunResult
from baton.core.specs import Catalogue
from baton.core.usage import Budget, Price, Usage
from baton.runtime import recovery
from baton.runtime.approvals import pending_in_tree
from baton.runtime.listing import RunQuery, RunQueryError, parse_since
from baton.runtime.temporal import Settings, build_replayer, connect, dev_server_args
from baton.telemetry import search
from baton.telemetry.search import (
    COST_USD,
    MODELS,
    PATTERN,
    STATUS,
    TEAM,
    TOKENS,
    SearchAttributesError,
    create_commands,
    ensure_search_attributes,
    patch_activation,
    register_search_attributes,
)
from tests.fake_llm import FakeLLMServer
from tests.helpers import fake_provider, fast_catalogue, finish, on_fake, start, worker
from tests.processes import spawn, stop
from tests.test_starter import NOWHERE, ROOT, starter

BAD_STATUS = ("unknown --status 'bogus'; accepted: running, waiting_approval, ok, degraded, "
              "budget_exhausted, blocked, failed")


async def visible(client: Client, query: str, workflow_id: str,
                  timeout_s: float = 10) -> WorkflowExecution:
    """The run as `query` finds it: visibility is updated after the run, eventually."""
    deadline = asyncio.get_running_loop().time() + timeout_s
    while True:
        async for execution in client.list_workflows(
                f"{query} AND WorkflowId = '{workflow_id}'"):
            return execution
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"{query!r} never found {workflow_id}")
        await asyncio.sleep(0.2)


def assert_spending(execution: WorkflowExecution, usage: Usage, models: set[str]) -> None:
    attrs = execution.typed_search_attributes
    assert attrs.get(TOKENS) == usage.total_tokens
    assert attrs.get(COST_USD) == usage.cost_usd  # None: unknown, so not set at all
    assert set(attrs.get(MODELS) or []) == models


def priced(cat: Catalogue) -> Catalogue:
    """Offline models are free; a price makes a run's cost worth searching for."""
    for agent in cat.agents.values():
        cat.prices[agent.model] = Price(input_per_mtok=100.0, output_per_mtok=400.0)
    return cat


def trace_models(result: RunResult) -> set[str]:
    return {step.model for step in result.trace if step.model}


# What each final status takes with the offline model.
CASES: list[tuple[str, str, str, Catalogue, Chaos | None, Budget | None]] = [
    ("ok", "support_desk", "My invoice shows the wrong amount", priced(fast_catalogue()),
     None, None),
    # the primary model is down: billing's breaker-guarded calls fail, its fallback answers
    ("degraded", "support_desk", "Refund my invoice",
     fast_catalogue(billing={"fallback_models": ["offline:backup"]}),
     Chaos(failure_rate=1.0, models=["offline:standard"]), None),
    ("budget_exhausted", "support_desk", "My invoice is wrong", fast_catalogue(), None,
     Budget(max_calls=1)),
    ("blocked", "safe_desk", "Refund me, my card is 4111 1111 1111 1111", fast_catalogue(),
     None, None),
]


@pytest.mark.parametrize(("status", "member", "prompt", "cat", "chaos", "budget"), CASES,
                         ids=[c[0] for c in CASES])
async def test_a_finished_run_is_found_by_its_attributes(
        env: WorkflowEnvironment, task_queue: str, status: str, member: str, prompt: str,
        cat: Catalogue, chaos: Chaos | None, budget: Budget | None) -> None:
    async with worker(env.client, task_queue):
        handle = await start(env.client, task_queue, member, prompt, cat=cat, chaos=chaos,
                             budget=budget, result_type=RunResult)
        result = await finish(handle)
    assert result.status == status
    found = await visible(env.client, f'BatonStatus = "{status}" AND BatonTeam = "{member}" '
                                      f'AND BatonPattern = "triage"', handle.id)
    assert_spending(found, result.total_usage, trace_models(result))
    if status == "ok":
        assert (result.total_usage.cost_usd or 0) > 0
        await visible(env.client, f'BatonTeam = "{member}" AND BatonCostUsd > 0', handle.id)
    if status == "degraded":
        assert trace_models(result) == {"offline:fast", "offline:standard", "offline:backup"}
        await visible(env.client, 'BatonModels = "offline:backup"', handle.id)


async def test_a_failed_run_is_found_with_what_it_spent(env: WorkflowEnvironment,
                                                        task_queue: str) -> None:
    chaos = Chaos(failure_rate=1.0, agents=["news", "industry"])  # quorum not met
    async with worker(env.client, task_queue):
        handle = await start(env.client, task_queue, "research_panel", "Is Rust fast?",
                             cat=fast_catalogue(), chaos=chaos, result_type=RunResult)
        with pytest.raises(WorkflowFailureError) as caught:
            await finish(handle)
    cause = caught.value.cause
    assert isinstance(cause, ApplicationError)
    spent = cause.details[0][SPENT_DETAIL]
    total = Usage.sum(Usage.model_validate(u) for u in spent.values())
    found = await visible(env.client, 'BatonStatus = "failed" AND BatonTeam = "research_panel" '
                                      'AND BatonPattern = "fanout"', handle.id)
    attrs = found.typed_search_attributes
    assert attrs.get(TOKENS) == total.total_tokens and attrs.get(COST_USD) == total.cost_usd
    # its failed branches are runs of their own, found the same way
    branch = await visible(env.client, 'BatonStatus = "failed" AND BatonTeam = "news"',
                           f"{handle.id}/news")
    assert branch.typed_search_attributes.get(PATTERN) == "agent"


async def test_unknown_cost_is_left_unset(env: WorkflowEnvironment, task_queue: str,
                                          fake: FakeLLMServer, provider_key: str) -> None:
    async with worker(env.client, task_queue, providers=fake_provider("openai", fake)):
        handle = await start(env.client, task_queue, "support_desk", "Refund my invoice",
                             cat=on_fake("openai", fake), result_type=RunResult)
        result = await finish(handle)
    assert result.total_usage.cost_usd is None
    found = await visible(env.client, 'BatonStatus = "ok" AND BatonTokens > 0', handle.id)
    assert found.typed_search_attributes.get(COST_USD) is None
    assert found.typed_search_attributes.get(MODELS) == ["fake:test-model"]


@baton.tool(approval=True)
def wire_money(account: str) -> str:
    """Send money to an account."""
    return f"sent to {account}"


async def test_status_follows_a_run_that_waits_for_a_person(env: WorkflowEnvironment,
                                                            task_queue: str) -> None:
    clerk = baton.Agent("clerk", "Help customers.", model="offline:standard",
                        tools=[wire_money])
    async with worker(env.client, task_queue, tools=clerk.tools()):
        handle = await baton.start(clerk, "Wire the money to account 12", client=env.client,
                                   task_queue=task_queue)
        waiting = await visible(env.client, 'BatonStatus = "waiting_approval"',
                                handle.workflow_id)
        attrs = waiting.typed_search_attributes
        assert (attrs.get(TEAM), attrs.get(PATTERN), attrs.get(TOKENS)) == (
            "clerk", "agent", None)  # spending is set when the run ends
        await baton.approve(handle.workflow_id, client=env.client)
        outcome = await asyncio.wait_for(handle.result(), 60)
    await visible(env.client, f'BatonStatus = "{outcome.status}" AND BatonTeam = "clerk"',
                  handle.workflow_id)


@pytest.mark.parametrize("first", [False, True], ids=["unsearched", "searched"])
async def test_a_run_keeps_its_choice_on_a_worker_that_decides_otherwise(
        env: WorkflowEnvironment, task_queue: str, first: bool) -> None:
    """A worker whose server refused the attributes starts runs that upsert nothing
    (instead of failing every workflow task). The patch marker records each run's
    choice: finished on a worker that would decide the other way, it replays what it
    did (no workflow cache: every task replays the whole run) and keeps to it."""
    clerk = baton.Agent("clerk", "Help customers.", model="offline:standard",
                        tools=[wire_money])
    async with worker(env.client, task_queue, tools=clerk.tools(), max_cached_workflows=0,
                      patch_activation_callback=patch_activation(first)):
        # Started as on a namespace that refused them: without starting attributes.
        handle = await start(env.client, task_queue, "clerk", "Wire the money to account 12",
                             cat=clerk.catalogue(), result_type=RunResult)
        for _ in range(300):
            if await pending_in_tree(env.client, handle.id):
                break
            await asyncio.sleep(0.1)
    async with worker(env.client, task_queue, tools=clerk.tools(), max_cached_workflows=0,
                      patch_activation_callback=patch_activation(not first)):
        await baton.approve(handle.id, client=env.client)
        outcome = await finish(handle)
    assert outcome.status == "ok"
    attrs = (await handle.describe()).typed_search_attributes
    assert attrs.get(STATUS) == ("ok" if first else None)
    await build_replayer().replay_workflow(await handle.fetch_history())


async def test_a_run_started_by_baton_is_found_from_its_first_moment(
        env: WorkflowEnvironment, task_queue: str) -> None:
    """`baton.start` (and the starter) give team, pattern and status with the start: no
    patch marker, no `TemporalChangeVersion` upsert, no first upsert; every upsert
    left is a change (waiting, running again, the end with its spending)."""
    clerk = baton.Agent("clerk", "Help customers.", model="offline:standard",
                        tools=[wire_money])
    async with worker(env.client, task_queue, tools=clerk.tools(), max_cached_workflows=0):
        handle = await baton.start(clerk, "Wire the money to account 12", client=env.client,
                                   task_queue=task_queue)
        attrs = (await handle.handle.describe()).typed_search_attributes
        assert (attrs.get(TEAM), attrs.get(PATTERN)) == ("clerk", "agent")
        await visible(env.client, 'BatonStatus = "waiting_approval"', handle.workflow_id)
        await baton.approve(handle.workflow_id, client=env.client)
        outcome = await asyncio.wait_for(handle.result(), 60)
    assert outcome.status == "ok"
    history = await handle.handle.fetch_history()
    # No patch marker: the one marker is the local check that a worker serves the tool.
    markers = [e for e in history.events if e.HasField("marker_recorded_event_attributes")]
    assert [(m.marker_recorded_event_attributes.marker_name, m.user_metadata.summary.data)
            for m in markers] == [("core_local_activity", b'"who serves wire_money"')]
    upserted = [list(e.upsert_workflow_search_attributes_event_attributes
                     .search_attributes.indexed_fields)
                for e in history.events
                if e.HasField("upsert_workflow_search_attributes_event_attributes")]
    assert [sorted(fields) for fields in upserted] == [
        ["BatonStatus"], ["BatonStatus"],
        ["BatonCostUsd", "BatonModels", "BatonStatus", "BatonTokens"]]
    attrs = (await handle.handle.describe()).typed_search_attributes
    assert (attrs.get(TEAM), attrs.get(STATUS)) == ("clerk", "ok")
    await build_replayer().replay_workflow(history)


async def test_pending_asks_every_running_run_where_the_status_is_unknown(
        env: WorkflowEnvironment, task_queue: str) -> None:
    """On a namespace without BatonStatus the query by status is refused; `pending`
    then asks every running run instead."""
    from baton.runtime.approvals import WAITING_RUNS, pending

    client = await new_namespace(env)
    with pytest.raises(RPCError) as refused:
        [e async for e in client.list_workflows(WAITING_RUNS)]
    assert refused.value.status == RPCStatusCode.INVALID_ARGUMENT
    clerk = baton.Agent("clerk", "Help customers.", model="offline:standard",
                        tools=[wire_money])
    async with worker(client, task_queue, tools=clerk.tools(),
                      patch_activation_callback=patch_activation(False)):
        handle = await baton.start(clerk, "Wire the money to account 12", client=client,
                                   task_queue=task_queue)
        for _ in range(300):
            if await pending_in_tree(client, handle.workflow_id):
                break
            await asyncio.sleep(0.1)
        waiting = {w.workflow_id for w in await pending(client)}
        assert handle.workflow_id in waiting
        await baton.approve(handle.workflow_id, client=client)
        assert (await asyncio.wait_for(handle.result(), 60)).status == "ok"


async def test_a_namespace_without_them_still_starts_the_run(env: WorkflowEnvironment,
                                                             task_queue: str) -> None:
    client = await new_namespace(env)
    clerk = baton.Agent("clerk", "Help customers.", model="offline:standard")
    handle = await baton.start(clerk, "Hello", client=client, task_queue=task_queue)
    described = await handle.handle.describe()
    assert described.typed_search_attributes.get(TEAM) is None
    await handle.handle.terminate("test over")


async def test_registering_is_idempotent_and_checks_types(env: WorkflowEnvironment) -> None:
    assert await register_search_attributes(env.client) == []  # the dev server has them
    fresh = await new_namespace(env)
    assert await register_search_attributes(fresh) == [k.name for k in search.SEARCH_ATTRIBUTES]
    assert await register_search_attributes(fresh) == []
    clashing = await new_namespace(env)
    await clashing.operator_service.add_search_attributes(AddSearchAttributesRequest(
        namespace=clashing.namespace,
        search_attributes={"BatonStatus": IndexedValueType.INDEXED_VALUE_TYPE_INT}))
    with pytest.raises(SearchAttributesError, match="BatonStatus is Int, Baton needs Keyword"):
        await register_search_attributes(clashing)


class RefusingOperator:
    """An operator service that lists nothing and may add nothing (Temporal Cloud, a
    cluster where the worker's identity is not an admin)."""

    async def list_search_attributes(self, request: Any) -> ListSearchAttributesResponse:
        return ListSearchAttributesResponse()

    async def add_search_attributes(self, request: Any) -> None:
        raise RPCError("Request unauthorized.", RPCStatusCode.PERMISSION_DENIED, b"")


def refusing_client() -> Any:
    return SimpleNamespace(
        namespace="prod", operator_service=RefusingOperator(),
        service_client=SimpleNamespace(config=SimpleNamespace(target_host="tc.example:7233")))


async def test_refusal_names_the_commands_and_the_worker_carries_on(
        caplog: pytest.LogCaptureFixture) -> None:
    commands = [
        "temporal operator search-attribute create --address tc.example:7233 --namespace prod "
        "--name BatonTeam --name BatonPattern --name BatonStatus --type Keyword",
        "temporal operator search-attribute create --address tc.example:7233 --namespace prod "
        "--name BatonCostUsd --type Double",
        "temporal operator search-attribute create --address tc.example:7233 --namespace prod "
        "--name BatonTokens --type Int",
        "temporal operator search-attribute create --address tc.example:7233 --namespace prod "
        "--name BatonModels --type KeywordList",
    ]
    with pytest.raises(SearchAttributesError) as caught:
        await register_search_attributes(refusing_client())
    message = str(caught.value)
    assert "PERMISSION_DENIED: Request unauthorized." in message
    assert all(command in message for command in commands)
    with caplog.at_level(logging.ERROR, logger="baton.telemetry.search"):
        assert await ensure_search_attributes(refusing_client()) is False
    assert commands[0] in caplog.text and "carry no search attributes" in caplog.text


async def test_worker_registers_them_where_missing(env: WorkflowEnvironment,
                                                   task_queue: str) -> None:
    client = await new_namespace(env)
    address = env.client.service_client.config.target_host
    process = await spawn(
        sys.executable, "worker.py", cwd=ROOT,
        env={**os.environ, "TEMPORAL_ADDRESS": address, "BATON_TASK_QUEUE": task_queue,
             "TEMPORAL_NAMESPACE": client.namespace},
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
    try:
        handle = await start(client, task_queue, "support_desk", "Refund my invoice",
                             cat=fast_catalogue(), result_type=RunResult)
        assert (await finish(handle)).status == "ok"
        await visible(client, 'BatonStatus = "ok" AND BatonTeam = "support_desk"', handle.id)
    finally:
        out, _ = await stop(process)
    assert "registered search attributes in namespace" in out.decode()


async def new_namespace(env: WorkflowEnvironment) -> Client:
    """A client of a namespace just registered: one without Baton's search attributes."""
    name = f"search-{uuid.uuid4().hex[:8]}"
    await env.client.workflow_service.register_namespace(RegisterNamespaceRequest(
        namespace=name, workflow_execution_retention_period=Duration(seconds=86400)))
    client = await connect(Settings(address=env.client.service_client.config.target_host,
                                    namespace=name))
    for _ in range(100):  # until the server's namespace cache has it
        try:
            await client.count_workflows()
            return client
        except RPCError:
            await asyncio.sleep(0.1)
    raise AssertionError(f"namespace {name} never became usable")


async def test_list_command_shows_runs_with_their_attributes(env: WorkflowEnvironment,
                                                             task_queue: str) -> None:
    since = (datetime.now(UTC) - timedelta(seconds=1)).isoformat()
    async with worker(env.client, task_queue):
        desk = await start(env.client, task_queue, "support_desk", "My invoice is wrong",
                           cat=priced(fast_catalogue()), result_type=RunResult)
        panel = await start(env.client, task_queue, "research_panel", "Is Rust fast?",
                            cat=fast_catalogue(), result_type=RunResult)
        desk_result, _ = await finish(desk), await finish(panel)
    for handle in (desk, panel):
        await visible(env.client, 'BatonStatus = "ok"', handle.id)
    address = env.client.service_client.config.target_host

    listed = starter("list", "--since", since, "--json", address=address)
    assert listed.returncode == 0, listed.stderr
    runs = {r["workflow_id"]: r for r in json.loads(listed.stdout)}
    assert set(runs) == {desk.id, panel.id}  # top-level runs only
    assert runs[desk.id] | {"start_time": None, "close_time": None} == {
        "workflow_id": desk.id, "team": "support_desk", "pattern": "triage", "status": "ok",
        "cost_usd": desk_result.total_usage.cost_usd,
        "tokens": desk_result.total_usage.total_tokens,
        "models": sorted(trace_models(desk_result)), "start_time": None, "close_time": None,
        "link": Settings(address=address).workflow_link(desk.id)}

    nested = json.loads(starter("list", "--since", since, "--all", "--json",
                                address=address).stdout)
    assert {r["workflow_id"] for r in nested} > {desk.id, panel.id, f"{panel.id}/news"}

    text = starter("list", "--since", "5m", "--team", "support_desk", "--status", "ok",
                   address=address)
    assert text.returncode == 0, text.stderr
    header, *lines = text.stdout.splitlines()
    assert header.split()[:5] == ["WORKFLOW", "ID", "TEAM", "PATTERN", "STATUS"]
    [line] = [line for line in lines if line.startswith(desk.id)]
    assert line.split()[1:6] == ["support_desk", "triage", "ok",
                                 usd(desk_result.total_usage.cost_usd),
                                 str(desk_result.total_usage.total_tokens)]
    assert line.endswith(Settings(address=address).workflow_link(desk.id))

    none = starter("list", "--since", since, "--status", "blocked", address=address)
    assert (none.returncode, none.stdout.strip()) == (0, "no runs match")


@pytest.mark.parametrize(("args", "expected"), [
    (["--status", "bogus"], BAD_STATUS),
    (["--since", "yesterday"], "--since 'yesterday' is neither an age (30m, 12h, 7d, 2w) "
                               "nor an ISO date"),
    (["--limit", "0"], "--limit must be at least 1"),
])
def test_list_refuses_bad_filters_before_connecting(args: list[str], expected: str) -> None:
    result = starter("list", *args, address=NOWHERE)
    assert result.returncode == 2
    assert expected in result.stderr
    assert "cannot reach Temporal" not in result.stderr and "Traceback" not in result.stderr


def test_since_accepts_ages_and_iso_dates() -> None:
    now = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)
    assert parse_since("30m", now) == now - timedelta(minutes=30)
    assert parse_since("12h", now) == now - timedelta(hours=12)
    assert parse_since("7d", now) == now - timedelta(days=7)
    assert parse_since("2026-11-20", now) == datetime(2026, 11, 20, tzinfo=UTC)
    assert parse_since("2026-11-20T09:00:00+01:00", now) == datetime(2026, 11, 20, 8,
                                                                    tzinfo=UTC)
    with pytest.raises(RunQueryError) as caught:
        parse_since("1y", now)
    assert caught.value.naming("--since").startswith("--since '1y' is neither an age")


def build_query(team: str | None, status: str | None, since: datetime | None,
                nested: bool) -> str:
    return RunQuery(team=team, status=status, since=since, nested=nested).text()


def test_query_names_the_attributes() -> None:
    query = build_query("support_desk", "running", datetime(2026, 11, 20, tzinfo=UTC), False)
    assert 'BatonTeam = "support_desk" AND BatonStatus = "running"' in query
    assert "ExecutionStatus = 'Running'" in query  # a timed-out run stays "running" there
    assert "ParentWorkflowId IS NULL" in query
    assert 'StartTime >= "2026-11-20T00:00:00+00:00"' in query
    assert "ParentWorkflowId" not in build_query(None, None, None, True)
    assert build_query('a"b', None, None, True).endswith('BatonTeam = "a\\"b"')


def test_dev_server_and_commands_use_the_same_names_and_types() -> None:
    args = dev_server_args()
    assert {args[i + 1] for i, a in enumerate(args) if a == "--search-attribute"} == {
        "BatonTeam=Keyword", "BatonPattern=Keyword", "BatonStatus=Keyword",
        "BatonCostUsd=Double", "BatonTokens=Int", "BatonModels=KeywordList"}
    assert [k.name for k in (TEAM, PATTERN, STATUS, COST_USD, TOKENS, MODELS)] == [
        "BatonTeam", "BatonPattern", "BatonStatus", "BatonCostUsd", "BatonTokens",
        "BatonModels"]
    assert create_commands([STATUS], "default") == [
        "temporal operator search-attribute create --namespace default --name BatonStatus "
        "--type Keyword"]


async def test_upserts_without_the_patch_would_break_recorded_histories(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Why the upserts are gated: replay checks them against history like any command,
    so histories recorded before them (tests/histories/) would no longer replay."""
    text = (ROOT / "tests" / "histories" / "triage-0.json").read_text()
    [report] = await recovery.replay([recovery.load_history("triage-0.json", text)])
    assert report.ok, report.error
    monkeypatch.setattr(workflow, "patched", lambda patch_id: True)
    [report] = await recovery.replay([recovery.load_history("triage-0.json", text)])
    assert not report.ok and "UpsertWorkflowSearchAttributes" in (report.error or "")


async def test_a_run_ended_from_outside_is_listed_as_it_ended(env: WorkflowEnvironment,
                                                              task_queue: str) -> None:
    since = (datetime.now(UTC) - timedelta(seconds=1)).isoformat()
    async with worker(env.client, task_queue):
        handle = await start(env.client, task_queue, "support_desk", "My invoice is wrong",
                             cat=fast_catalogue(), chaos=Chaos(latency_s=30),
                             result_type=RunResult)
        await visible(env.client, 'BatonStatus = "running"', handle.id)
        await handle.terminate("operator")
    await visible(env.client, "ExecutionStatus = 'Terminated'", handle.id)
    address = env.client.service_client.config.target_host
    [listed] = json.loads(starter("list", "--since", since, "--json", address=address).stdout)
    assert (listed["workflow_id"], listed["status"], listed["tokens"]) == (
        handle.id, "terminated", None)
    running = starter("list", "--since", since, "--status", "running", address=address)
    assert running.stdout.strip() == "no runs match"


def test_the_models_attribute_stays_under_the_servers_value_limit() -> None:
    from baton.workflows.base import _fitting

    models = [f"openai:model-{i:03d}-" + "x" * 80 for i in range(40)]
    kept = _fitting(models)
    assert kept == models[:len(kept)] and 0 < len(kept) < len(models)
    assert len(json.dumps(kept).encode()) <= 1500
    assert _fitting(["offline:fast"]) == ["offline:fast"]
