"""MCP servers as durable tools (baton/core/mcp.py, activities/mcp.py, workflows/mcp.py).

Real MCP servers as processes: tests/mcp_servers/counter.py over stdio (started by
the worker) and over Streamable HTTP on 127.0.0.1 (started here, on a free port, and
always stopped), and tests/mcp_servers/broken.py for servers that misbehave. The
servers log every tool execution, so the tests count calls on the server's side.
The kill -9 case runs `worker.py --app tests.mcp_servers.crash_app` processes.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import socket
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from temporalio.api.common.v1 import WorkflowExecution
from temporalio.api.workflowservice.v1 import ResetStickyTaskQueueRequest
from temporalio.client import Client, WorkflowFailureError, WorkflowHistory
from temporalio.exceptions import ApplicationError
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Replayer, Worker
from temporalio.workflow import NondeterminismError

import baton
from baton.core.errors import MCPUnavailable
from baton.core.mcp import MCPDefinitionError
from baton.core.model_io import ModelRequest, ModelResponse
from baton.core.runs import RunResult
from baton.runtime.approvals import pending_in_tree
from baton.runtime.temporal import build_replayer
from tests.helpers import worker
from tests.mcp_servers.plain_app import PlainSums, plain_clerk
from tests.run_records import history_text
from tests.scripted import scripted_offline, tool_call

ROOT = Path(__file__).resolve().parent.parent
LOG_ENV = "MCP_TEST_LOG"
TOKEN_ENV = "MCP_TEST_TOKEN"
TOKEN = "mcp-secret-7f3a9c21e4"  # the HTTP server's bearer token: never in history
FAST = {"max_attempts": 2, "initial_interval_s": 0.1, "backoff": 1.0, "max_interval_s": 0.1}


def counter(name: str = "local", env: dict[str, str] | None = None,
            **options: Any) -> baton.MCPServer:
    """tests/mcp_servers/counter.py over stdio, logging to the worker's MCP_TEST_LOG."""
    return baton.MCPServer(name, command=sys.executable,
                           args=["-m", "tests.mcp_servers.counter", "stdio"], cwd=str(ROOT),
                           env={LOG_ENV: "${" + LOG_ENV + "}", **(env or {})}, **options)


def broken(mode: str, **options: Any) -> baton.MCPServer:
    return baton.MCPServer(mode, command=sys.executable,
                           args=["-m", "tests.mcp_servers.broken", mode], cwd=str(ROOT),
                           **options)


def entries(path: Path, **match: Any) -> list[dict[str, Any]]:
    """The log's lines whose fields have these values."""
    if not path.exists():
        return []
    lines = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return [e for e in lines if all(e.get(k) == v for k, v in match.items())]


@dataclass
class HTTPServer:
    url: str
    log: Path


@pytest.fixture(scope="module")
def http_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[HTTPServer]:
    """The counter server over Streamable HTTP on a free port of 127.0.0.1, requiring the
    bearer token; stopped when the module's tests are done."""
    log = tmp_path_factory.mktemp("mcp-http") / "calls.jsonl"
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    process = subprocess.Popen(
        [sys.executable, "-m", "tests.mcp_servers.counter", "http", str(port)], cwd=ROOT,
        env={**os.environ, TOKEN_ENV: TOKEN, LOG_ENV: str(log)})
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                if process.poll() is not None or time.monotonic() > deadline:
                    raise AssertionError("the HTTP MCP server did not start") from None
                time.sleep(0.05)
        yield HTTPServer(url=f"http://127.0.0.1:{port}/mcp", log=log)
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@pytest.fixture
def call_log(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Where this test's stdio servers log (the worker passes MCP_TEST_LOG on by name)."""
    log = tmp_path / "calls.jsonl"
    monkeypatch.setenv(LOG_ENV, str(log))
    monkeypatch.setenv(TOKEN_ENV, TOKEN)
    return log


def activities(history: WorkflowHistory) -> tuple[Counter[str], Counter[str], list[str]]:
    """(scheduled, completed) activity counts by type, and every activity's summary."""
    scheduled: Counter[str] = Counter()
    completed: Counter[str] = Counter()
    types: dict[int, str] = {}
    summaries: list[str] = []
    for event in history.events:
        if event.HasField("activity_task_scheduled_event_attributes"):
            name = event.activity_task_scheduled_event_attributes.activity_type.name
            types[event.event_id] = name
            scheduled[name] += 1
            summaries.append(json.loads(event.user_metadata.summary.data))
        elif event.HasField("activity_task_completed_event_attributes"):
            completed[types[event.activity_task_completed_event_attributes
                            .scheduled_event_id]] += 1
    return scheduled, completed, summaries


async def test_an_agent_uses_stdio_and_http_mcp_tools_durably(
        env: WorkflowEnvironment, task_queue: str, call_log: Path,
        http_server: HTTPServer) -> None:
    local = counter()
    remote = baton.MCPServer("remote", url=http_server.url,
                             headers={"Authorization": "Bearer ${" + TOKEN_ENV + "}"})
    agent = baton.Agent("clerk", "Use the tools, then answer.", retry=FAST,
                        mcp=[local.only("add", "slow_*"), remote.only("add")])
    # Two lines of configuration: the server, and the agent naming it; baton.worker
    # declares the agent's servers on its worker. No workflow cache: every workflow
    # task replays the history so far, so a nondeterministic tool list fails the run.
    async with baton.worker(agent, client=env.client, task_queue=task_queue, sandboxed=True,
                            max_cached_workflows=0,
                            workflow_failure_exception_types=[NondeterminismError]):
        outcomes = await asyncio.gather(*(
            baton.run(agent, f"Add 417 and 417, then echo run {run}", client=env.client,
                      task_queue=task_queue) for run in (1, 2)))
        histories = [await env.client.get_workflow_handle(o.workflow_id).fetch_history()
                     for o in outcomes]
    # The worker has stopped, and with it the stdio server it started.

    for outcome in outcomes:
        assert outcome.status == "ok", outcome.result.reasons
        assert "417 + 417 = 834" in outcome.answer and "echo:" in outcome.answer
        assert outcome.usage.tool_calls == 3
    # Each call ran once, on the server's side; one stdio process served both runs.
    assert len(entries(call_log, tool="add", a=417)) == 2
    assert len(entries(call_log, tool="slow_echo", phase="done")) == 2
    assert len(entries(http_server.log, tool="add", a=417)) == 2
    assert [e["phase"] for e in entries(call_log, tool="server")] == ["start", "stop"]

    for history in histories:
        scheduled, completed, summaries = activities(history)
        mcp_calls = {k: v for k, v in scheduled.items() if k.startswith("mcp:")}
        assert mcp_calls == {"mcp:local/add": 1, "mcp:local/slow_echo": 1,
                             "mcp:remote/add": 1}
        assert scheduled["baton_mcp_list_tools"] == 2  # one list per server per run
        assert all(completed[k] == v for k, v in scheduled.items())
        assert "clerk · local/add(a=417, b=417)" in summaries
        assert "clerk · tools of MCP server remote" in summaries
        # The worker's secrets and endpoints are nowhere in what the run recorded.
        text = history_text(history)
        assert TOKEN not in text and TOKEN_ENV not in text and LOG_ENV not in text
        assert http_server.url not in text and "tests.mcp_servers" not in text
        # The recorded tool list is what a replay offers: no server is needed for it.
        await build_replayer().replay_workflow(history)


# --- an MCP server inside a plain Temporal workflow, through BatonPlugin ----------------

async def test_an_agent_uses_mcp_tools_inside_a_plain_workflow_through_the_plugin(
        env: WorkflowEnvironment, task_queue: str, call_log: Path) -> None:
    # BatonPlugin(agent) declares the agent's server on every worker built from the
    # client; nothing else is configured. No workflow cache: every task replays.
    plugin = baton.BatonPlugin(plain_clerk)
    config = env.client.config()
    config["plugins"] = [plugin]
    client = Client(**config)
    async with Worker(client, task_queue=task_queue, workflows=[PlainSums],
                      max_cached_workflows=0):
        handle = await client.start_workflow(PlainSums.run, [417, 58],
                                             id=f"sums-{uuid.uuid4().hex[:8]}",
                                             task_queue=task_queue)
        answers = await asyncio.wait_for(handle.result(), 60)
        running = entries(call_log, tool="server")
    # The worker has stopped, and with it the stdio server it started.

    assert "417 + 417 = 834" in answers[0] and "58 + 58 = 116" in answers[1]
    # Each call ran once on the server's side, both in the one pooled process, which
    # was running while the worker was and stopped with it.
    assert len(entries(call_log, tool="add", a=417)) == 1
    assert len(entries(call_log, tool="add", a=58)) == 1
    assert [e["phase"] for e in running] == ["start"]
    assert [e["phase"] for e in entries(call_log, tool="server")] == ["start", "stop"]
    assert {e["pid"] for e in entries(call_log, tool="add")} == {running[0]["pid"]}
    assert not Path(f"/proc/{running[0]['pid']}").exists()
    history = await handle.fetch_history()
    scheduled, completed, summaries = activities(history)
    assert {k: v for k, v in scheduled.items() if k.startswith("mcp:")} == {"mcp:plain/add": 2}
    assert scheduled["baton_mcp_list_tools"] == 1  # one list for the run
    assert all(completed[k] == v for k, v in scheduled.items())
    assert "plain_clerk · plain/add(a=58, b=58)" in summaries
    text = history_text(history)  # the worker's environment is not recorded
    assert str(call_log) not in text and LOG_ENV not in text and "tests.mcp_servers" not in text
    await Replayer(workflows=[PlainSums], plugins=[plugin]).replay_workflow(history)


async def wait_for_log(path: Path, count: int, wait_s: float = 10,
                       **match: Any) -> list[dict[str, Any]]:
    deadline = time.monotonic() + wait_s
    while len(found := entries(path, **match)) < count:
        if time.monotonic() > deadline:
            raise AssertionError(f"fewer than {count} log lines {match} in {path}")
        await asyncio.sleep(0.02)
    return found


@baton.guardrail
def no_sums(text: str) -> bool:
    """Sums are private: a tool output showing one is withheld from the model."""
    return "5 + 5" not in text


async def test_a_person_approves_an_mcp_tool_and_guardrails_screen_its_output(
        env: WorkflowEnvironment, task_queue: str, call_log: Path) -> None:
    local = counter(approval=["delete_*"])
    agent = baton.Agent("janitor", "Clean up.", retry=FAST, tool_output_guardrails=[no_sums],
                        mcp=[local.only("add", "delete_records")])
    async with worker(env.client, task_queue, mcp=[local], guardrails=[no_sums]):
        handle = await baton.start(agent, "Add 5 and 5, then delete the records of table 5",
                                   client=env.client, task_queue=task_queue)
        for _ in range(300):
            if requests := await pending_in_tree(env.client, handle.workflow_id):
                break
            await asyncio.sleep(0.1)
        [request] = requests
        # The tool that needs no person ran; the one that does waits, not run.
        assert len(entries(call_log, tool="add")) == 1
        assert entries(call_log, tool="delete_records") == []
        assert request.subject == "local__delete_records"
        assert "local/delete_records need a person's approval" in request.why
        await baton.approve(handle.workflow_id, request=request.request_id, note="ok",
                            client=env.client)
        outcome = await asyncio.wait_for(handle.result(), 60)
    assert outcome.status == "degraded"  # a result was withheld (said in its reasons)
    assert len(entries(call_log, tool="delete_records")) == 1
    assert "deleted every record of" in outcome.answer
    # The sum was computed (once) but the model never read it.
    assert "5 + 5" not in outcome.answer and "[withheld]" in outcome.answer
    assert any("withheld by guardrail no_sums" in r for r in outcome.result.reasons)
    [record] = outcome.result.approvals
    assert record.approved and record.request.request_id == request.request_id


async def test_an_agent_with_mcp_tools_still_hands_off(
        env: WorkflowEnvironment, task_queue: str, call_log: Path) -> None:
    # run_agent adds the MCP tools to a copy of the agent's toolbox; the transfer made
    # through that copy must still end the turn and reach the chain.
    local = counter()
    billing = baton.Agent("mh_billing", "Answer billing questions.", retry=FAST,
                          description="Invoices, charges and refunds")
    front = baton.Agent("mh_front", "Route the request, or add numbers yourself.",
                        retry=FAST, mcp=[local.only("add")], handoffs=[billing])
    desk = baton.Triage("mh_desk", front)
    offered: list[list[str]] = []

    def script(request: ModelRequest) -> ModelResponse | None:
        if request.agent != "mh_front":
            return None
        offered.append([t.name for t in request.tools])
        return tool_call(request, "transfer_to_mh_billing", reason="a billing question")

    with scripted_offline(script):
        async with worker(env.client, task_queue, mcp=[local]):
            outcome = await baton.run(desk, "My invoice shows the wrong amount",
                                      client=env.client, task_queue=task_queue)
    assert [sorted(names) for names in offered] == [["local__add", "transfer_to_mh_billing"]]
    assert outcome.result.handled_by == "mh_billing"
    assert outcome.result.status == "ok"


async def test_the_worker_refuses_an_unapproved_call_whatever_the_run_says() -> None:
    from temporalio.common import RawValue
    from temporalio.testing import ActivityEnvironment

    from baton.activities.mcp import MCPConnections
    from baton.core.mcp import MCPCall, declared
    from baton.runtime.temporal import data_converter

    connections = MCPConnections(declared([counter(approval=["delete_*"])]))
    call = MCPCall(server="local", tool="delete_records", agent="a", call_id="c1",
                   arguments={"table": "t"})
    payload = data_converter().payload_converter.to_payload(call)
    testing = ActivityEnvironment()
    testing.payload_converter = data_converter().payload_converter
    testing.info = testing.info.__class__(**{**testing.info.__dict__,
                                              "activity_type": "mcp:local/delete_records"})
    with pytest.raises(ApplicationError) as refused:
        await testing.run(connections.call_tool, [RawValue(payload)])
    assert refused.value.type == "ApprovalMissing" and refused.value.non_retryable
    assert connections.open_sessions() == []  # refused before the server was started
    await connections.aclose()


async def test_a_stateful_server_keeps_one_session_per_run_and_idle_ones_close(
        env: WorkflowEnvironment, task_queue: str, call_log: Path) -> None:
    local = counter(stateful=True, idle_s=0.5)
    agent = baton.Agent("keeper", "Keep a note, then read it back.", retry=FAST,
                        mcp=[local.only("remember", "recall")])
    async with worker(env.client, task_queue, mcp=[local]):
        outcomes = await asyncio.gather(*(
            baton.run(agent, f"Note {run}", client=env.client, task_queue=task_queue)
            for run in (1, 2)))
        # Closed while the worker still runs: each session once idle for 0.5 s.
        await wait_for_log(call_log, 2, tool="server", phase="stop")
    assert all(o.status == "ok" for o in outcomes)
    kept = entries(call_log, tool="remember")
    read = entries(call_log, tool="recall")
    # A session (here a process) per run: each run reads back its own note only.
    assert len({e["pid"] for e in kept}) == 2
    assert {e["pid"] for e in read} == {e["pid"] for e in kept}
    assert [e["notes"] for e in read] == [1, 1]
    assert len(entries(call_log, tool="server", phase="start")) == 2


def test_worker_refuses_a_catalogue_with_a_bad_mcp_table(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from baton.cli.worker import main

    operator = tmp_path / "ops.toml"
    operator.write_text('[agents.a]\ninstructions = "x"\n\n'
                        '[mcp.tickets]\nurl = "https://h/mcp"\ncommand = "x"\n')
    assert main(["--catalogue", str(operator)]) == 2
    said = capsys.readouterr().out
    assert "mcp.tickets: an MCP server needs either `command`" in said


def test_mcp_declarations_refuse_what_cannot_work() -> None:
    from baton.core.mcp import declared
    from baton.define.catalogue import CatalogueError, parse_catalogue

    agent = {"instructions": "x"}
    for table, said in [
            ({"command": "x", "url": "http://h/mcp"}, "either `command`"),
            ({}, "either `command`"),
            ({"url": "http://h/mcp", "env": {"A": "b"}}, "`args`, `env` and `cwd`"),
            ({"command": "x", "headers": {"A": "b"}}, "`headers` are for an HTTP"),
            ({"url": "ftp://h/mcp"}, "url"),
            ({"url": "http://h/mcp", "headers": {"A": "${not a name}"}}, "not an environment"),
            ({"command": "x", "refresh": 0}, "refresh"),
            ({"command": "x", "typo": 1}, "typo")]:
        with pytest.raises(CatalogueError, match=r"mcp\.s") as refused:
            parse_catalogue({"agents": {"a": agent}, "mcp": {"s": table}})
        assert said in str(refused.value)
    with pytest.raises(CatalogueError, match=r"mcp\.bad_name"):
        parse_catalogue({"agents": {"a": agent}, "mcp": {"bad_name": {"command": "x"}}})
    with pytest.raises(CatalogueError, match="named more than once"):
        parse_catalogue({"agents": {"a": {**agent, "mcp": ["s", {"server": "s"}]}}})
    with pytest.raises(MCPDefinitionError, match="1-30 letters"):
        baton.MCPServer("has space", command="x")
    with pytest.raises(MCPDefinitionError, match="two different MCP servers"):
        declared([baton.MCPServer("s", command="a"), baton.MCPServer("s", command="b")])
    with pytest.raises(TypeError, match=r"mcp takes baton\.MCPServer"):
        baton.Agent("a", "x", mcp=["s"])  # type: ignore[list-item]
    # The operator's catalogue declares servers for worker.py --catalogue.
    operator = parse_catalogue({"agents": {"a": {**agent, "mcp": ["files"]}}, "mcp": {
        "files": {"command": "uvx", "args": ["mcp-server-filesystem"], "stateful": True}}})
    assert declared(configs=operator.mcp)["files"].stateful
    assert operator.closure("a").mcp == {}  # never in a run's input
    # A run names servers and tools, nothing else.
    spec = baton.Agent("a", "x", mcp=[baton.MCPServer("s", url="http://h/mcp",
                                                      headers={"K": "${SECRET}"}).only("t*")])
    assert spec.spec.model_dump()["mcp"] == [{"server": "s", "tools": ["t*"]}]
    catalogue = spec.catalogue().closure("a")
    assert catalogue.mcp == {} and "SECRET" not in catalogue.model_dump_json()


async def test_bad_servers_and_tools_fail_clearly_and_nothing_completed_repeats(
        env: WorkflowEnvironment, task_queue: str, call_log: Path) -> None:
    slow = counter("slowpoke", timeout_s=0.5, max_attempts=1, env={"MCP_TEST_SLOW_S": "3"})
    servers = [baton.MCPServer("ghost", command="/nonexistent/mcp-server"),
               baton.MCPServer("unset", command=sys.executable,
                               env={"TOKEN": "${MCP_TEST_UNSET_VARIABLE}"}),
               broken("exit"), broken("hang", connect_timeout_s=0.5), broken("malformed"),
               broken("bad-schema"), broken("vanishing"), slow]
    undeclared = baton.MCPServer("nowhere", command="x")

    def agent(server: baton.MCPServer) -> baton.Agent:
        return baton.Agent(f"user-of-{server.name}", "Use the tools.", retry=FAST,
                           mcp=[server.only("slow_echo") if server is slow else server])

    async with worker(env.client, task_queue, mcp=servers):
        outcomes = await asyncio.gather(*(
            baton.run(agent(s), "Say hello", client=env.client, task_queue=task_queue)
            for s in [*servers, undeclared]), return_exceptions=True)
    by_server = dict(zip([s.name for s in [*servers, undeclared]], outcomes, strict=True))

    def failure(name: str) -> str:
        error = by_server[name]
        assert isinstance(error, WorkflowFailureError), error
        assert isinstance(error.cause, ApplicationError)
        assert error.cause.type == MCPUnavailable.TYPE
        return str(error.cause.message)

    assert "cannot start '/nonexistent/mcp-server' on this worker" in failure("ghost")
    assert ("MCPConfigError: MCP server 'unset': env.TOKEN reads ${MCP_TEST_UNSET_VARIABLE}, "
            "which is not set in this worker's environment") in failure("unset")
    assert "MCPServerUnavailable: MCP server 'exit' did not start and answer" in failure("exit")
    assert "did not start and answer within 0.5 s" in failure("hang")
    assert "MCPBadToolList" in failure("malformed") and "tools.0" in failure("malformed")
    assert ("UnknownMCPServer: MCP server 'nowhere' is not declared on this worker; its MCP "
            "servers: bad-schema, exit, ghost") in failure("nowhere")

    # A tool whose schema is no JSON schema is left out, and the trace says why.
    schema = by_server["bad-schema"]
    assert isinstance(schema, baton.RunOutcome) and schema.status == "ok"
    assert "good_tool says" in schema.answer
    assert any("tool left out: 'broken_tool': its input schema is not a valid JSON schema"
               in s.detail for s in schema.result.trace)
    # A tool the server stopped offering: the model is told, the run goes on.
    vanishing = by_server["vanishing"]
    assert isinstance(vanishing, baton.RunOutcome) and vanishing.status == "ok"
    assert any("MCPToolGone: MCP server 'vanishing' no longer offers tool 'vanish'; it "
               "offers: stay" in s.detail and not s.ok for s in vanishing.result.trace)
    assert "stay says" in vanishing.answer
    # A call over its timeout is reported to the model; it ran once (one attempt).
    timed_out = by_server["slowpoke"]
    assert isinstance(timed_out, baton.RunOutcome) and timed_out.status == "ok"
    assert any("slowpoke__slow_echo" in s.detail and "failed" in s.detail and not s.ok
               for s in timed_out.result.trace)
    assert len(entries(call_log, tool="slow_echo", phase="start")) == 1


async def test_a_worker_killed_during_a_long_mcp_call_repeats_nothing_completed(
        env: WorkflowEnvironment, task_queue: str, tmp_path: Path) -> None:
    from tests.mcp_servers.crash_app import crash_keeper

    log = tmp_path / "calls.jsonl"
    extra = {LOG_ENV: str(log), "MCP_TEST_SLOW_S": "2",
             "TEMPORAL_ADDRESS": env.client.service_client.config.target_host,
             "BATON_TASK_QUEUE": task_queue}
    async with workers(extra, tmp_path) as start_worker:
        both = [await start_worker("first"), await start_worker("second")]
        handle = await baton.start(crash_keeper, "Note the lighthouse", client=env.client,
                                   task_queue=task_queue)
        [started] = await wait_for_log(log, 1, tool="slow_echo", phase="start", wait_s=45)
        # The worker whose server runs the slow call: its session's process's parent.
        [victim] = [w for w in both if w.pid == started["worker"]]
        [survivor] = [w for w in both if w is not victim]
        victim.kill()  # SIGKILL in the middle of the slow call: nothing is cleaned up
        await victim.wait()
        # What a worker that stops cleanly tells the server, and a killed one cannot: its
        # cached runs' next workflow tasks go to the shared queue at once, not after the
        # sticky queue's 10 s timeout. It changes when the run resumes, not what ran.
        await env.client.workflow_service.reset_sticky_task_queue(
            ResetStickyTaskQueueRequest(namespace=env.client.namespace,
                                        execution=WorkflowExecution(workflow_id=handle.workflow_id)))
        result = await asyncio.wait_for(handle.handle.result(), 45)
        history = await handle.handle.fetch_history()
        servers = entries(log, tool="server", phase="start")
        # The killed worker's server saw its input end and stopped by itself.
        await wait_for_log(log, 1, tool="server", phase="stop", pid=started["pid"])
    assert isinstance(result, RunResult) and result.status == "ok", result.reasons
    # Two sessions, one per worker: the run's session was rebuilt on the survivor.
    assert [s["pid"] for s in servers] == [started["pid"], servers[1]["pid"]]
    assert servers[1]["worker"] == survivor.pid
    rebuilt = servers[1]["pid"]
    # What completed before the kill ran once; the interrupted call ran again, once, on
    # the new session; the session's state did not survive the crash (documented).
    assert [e["pid"] for e in entries(log, tool="remember")] == [started["pid"]]
    assert [e["pid"] for e in entries(log, tool="slow_echo", phase="start")] == [
        started["pid"], rebuilt]
    assert [e["pid"] for e in entries(log, tool="slow_echo", phase="done")
            if e["pid"] == rebuilt] == [rebuilt]
    assert [(e["pid"], e["notes"]) for e in entries(log, tool="recall")] == [(rebuilt, 0)]
    # The server's view: the slow call scheduled on the dead worker's session queue timed
    # out waiting there; the tools were listed again (a new session on the live worker)
    # and the call completed there; every other call was scheduled and completed once.
    scheduled, completed, _ = activities(history)
    assert {k: v for k, v in scheduled.items() if "mcp" in k} == {
        "baton_mcp_list_tools": 2, "mcp:keeper/remember": 1, "mcp:keeper/slow_echo": 2,
        "mcp:keeper/recall": 1}
    assert {k: v for k, v in completed.items() if "mcp" in k} == {
        "baton_mcp_list_tools": 2, "mcp:keeper/remember": 1, "mcp:keeper/slow_echo": 1,
        "mcp:keeper/recall": 1}
    assert any("the worker holding this run's session is gone" in s.detail
               for s in result.trace)
    await build_replayer().replay_workflow(history)


@contextlib.asynccontextmanager
async def workers(extra: dict[str, str], folder: Path) -> AsyncIterator[Any]:
    """Start `worker.py --app tests.mcp_servers.crash_app` processes (output in files);
    every one is stopped at the end, and every MCP server they started."""
    processes: list[asyncio.subprocess.Process] = []
    outputs = []

    async def start(name: str) -> asyncio.subprocess.Process:
        sink = (folder / f"{name}.log").open("w")
        outputs.append(sink)
        process = await asyncio.create_subprocess_exec(
            sys.executable, "worker.py", "--app", "tests.mcp_servers.crash_app", cwd=ROOT,
            env={**os.environ, **extra}, stdout=sink, stderr=asyncio.subprocess.STDOUT)
        processes.append(process)
        return process

    try:
        yield start
    finally:
        for process in processes:
            if process.returncode is None:
                process.terminate()  # the worker's clean stop (it closes its sessions)
                try:
                    await asyncio.wait_for(process.wait(), 15)
                except TimeoutError:
                    process.kill()
                    await process.wait()
        for sink in outputs:
            sink.close()
        log = Path(extra[LOG_ENV])
        stopped = {e["pid"] for e in entries(log, tool="server", phase="stop")}
        for server in entries(log, tool="server", phase="start"):
            if server["pid"] not in stopped:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(server["pid"], 9)


async def test_the_clock_example_uses_our_mcp_server(env: WorkflowEnvironment,
                                                      task_queue: str) -> None:
    from examples.mcp_clock import clock_agent

    async with baton.worker(clock_agent, client=env.client, task_queue=task_queue):
        outcome = await baton.run(clock_agent, "What time is it in Tokyo, and 21 C in F?",
                                  client=env.client, task_queue=task_queue)
    assert outcome.status == "ok"
    assert "21 °C = 69.8 °F" in outcome.answer
    assert [s.detail.split("(")[0] for s in outcome.result.trace if s.kind == "tool_call"] == [
        "clock__current_time", "clock__celsius_to_fahrenheit"]
