"""Tracing: one trace per run, GenAI spans for model and tool calls, nothing on replay.

The spans travel as they would in production: the real OTLP/HTTP exporter posts
protobuf to a small receiver in this process, which decodes what it gets.
"""

from __future__ import annotations

import asyncio
import gzip
import json
import logging
import os
import re
import subprocess
import sys
import threading
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client, WorkflowFailureError, WorkflowHistory
from temporalio.testing import WorkflowEnvironment

import baton
from baton.cli.common import UsageError, connect_or_explain
from baton.core.model_io import Chaos, Message
from baton.core.runs import RunOptions, RunResult
from baton.core.specs import Catalogue
from baton.define.catalogue import parse_catalogue
from baton.runtime.launch import plan_run, start_run
from baton.runtime.temporal import Settings, build_replayer, connect
from baton.telemetry.observability import (
    ENDPOINT_VARS,
    PROTOCOL_VARS,
    TracingConfigError,
    flush_tracing,
    reset_tracing,
    tracing_interceptors,
)
from baton.telemetry.redaction import CONTENT_VAR
from tests.fake_llm import FakeLLMServer, Fault
from tests.helpers import catalogue, fake_provider, finish, on_fake, start, worker


@dataclass
class SpanRecord:
    name: str
    trace_id: str
    span_id: str
    parent_id: str
    attributes: dict[str, Any]
    events: list[tuple[str, dict[str, Any]]]
    service: str
    error: bool
    status: str = ""  # the status description

    def text(self) -> str:
        """Every attribute and event value and the status description, for looking for
        leaked content."""
        values = [*self.attributes.values(), *(v for _, a in self.events for v in a.values()),
                  self.status]
        return "\n".join(map(str, values))


def _value(value: AnyValue) -> Any:
    kind = value.WhichOneof("value")
    if kind == "array_value":
        return [_value(v) for v in value.array_value.values]
    return getattr(value, kind) if kind else None


@dataclass
class Collector:
    """An OTLP/HTTP trace receiver on 127.0.0.1: what a collector or Phoenix would get."""

    spans: list[SpanRecord] = field(default_factory=list)
    requests: int = 0

    def __post_init__(self) -> None:
        collector = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                if self.headers.get("Content-Encoding") == "gzip":
                    body = gzip.decompress(body)
                collector.receive(self.path, ExportTraceServiceRequest.FromString(body))
                reply = ExportTraceServiceResponse().SerializeToString()
                self.send_response(200)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", str(len(reply)))
                self.end_headers()
                self.wfile.write(reply)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.paths: set[str] = set()
        self._lock = threading.Lock()
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def receive(self, path: str, request: ExportTraceServiceRequest) -> None:
        with self._lock:
            self.requests += 1
            self.paths.add(path)
            for resource_spans in request.resource_spans:
                resource = {a.key: _value(a.value) for a in resource_spans.resource.attributes}
                for scope in resource_spans.scope_spans:
                    for span in scope.spans:
                        self.spans.append(SpanRecord(
                            name=span.name, trace_id=span.trace_id.hex(),
                            span_id=span.span_id.hex(), parent_id=span.parent_span_id.hex(),
                            attributes={a.key: _value(a.value) for a in span.attributes},
                            events=[(e.name, {a.key: _value(a.value) for a in e.attributes})
                                    for e in span.events],
                            service=str(resource.get("service.name")),
                            error=span.status.code == 2, status=span.status.message))

    def named(self, prefix: str) -> list[SpanRecord]:
        return [s for s in self.spans if s.name.startswith(prefix)]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@contextmanager
def tracing_to_collector(monkeypatch: pytest.MonkeyPatch,
                         **env: str) -> Iterator[Collector]:
    """Tracing switched on, exporting to a fresh receiver; `env`: more variables."""
    receiver = Collector()
    for var in (*ENDPOINT_VARS, *PROTOCOL_VARS, CONTENT_VAR, "OTEL_SDK_DISABLED"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", receiver.url)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    reset_tracing()
    try:
        yield receiver
    finally:
        reset_tracing()
        receiver.close()


@pytest.fixture
def collector(monkeypatch: pytest.MonkeyPatch) -> Iterator[Collector]:
    """Tracing switched on for this test, exporting to a fresh receiver."""
    with tracing_to_collector(monkeypatch, OTEL_SERVICE_NAME="baton-test") as receiver:
        yield receiver


@pytest.fixture
async def traced_client(env: WorkflowEnvironment, collector: Collector) -> AsyncIterator[Client]:
    """A client as the starter and the worker get it: from connect(), interceptors on."""
    yield await connect(Settings(address=env.client.service_client.config.target_host))


def priced_catalogue() -> Catalogue:
    """The default catalogue with a price for each offline model, so calls have a cost."""
    raw = catalogue().model_dump(mode="json")
    for model in ("offline:fast", "offline:standard", "offline:strong"):
        raw["prices"][model] = {"input_per_mtok": 1.0, "output_per_mtok": 2.0}
    return parse_catalogue(raw)


async def histories(client: Client, workflow_id: str) -> list[WorkflowHistory]:
    """The history of the run and of every nested run under it."""
    return [await client.get_workflow_handle(w.id).fetch_history()
            async for w in client.list_workflows(f"WorkflowId STARTS_WITH '{workflow_id}'")]


async def test_a_run_is_one_trace_with_a_span_per_model_call(
        traced_client: Client, collector: Collector, task_queue: str) -> None:
    prompt = "Research and compare vector databases"
    # max_cached_workflows=0: every workflow task replays the history so far, as after a
    # worker restart; Temporal's workflow spans must still appear exactly once.
    async with worker(traced_client, task_queue, max_cached_workflows=0):
        handle = await start(traced_client, task_queue, "concierge_desk", prompt,
                             cat=priced_catalogue(), result_type=RunResult)
        result = await finish(handle)
    runs = await histories(traced_client, handle.id)
    flush_tracing()

    roots = collector.named("StartWorkflow:")
    assert len(roots) == 1 and roots[0].parent_id == ""
    trace_id = roots[0].trace_id
    assert {s.trace_id for s in collector.spans} == {trace_id}
    assert {s.service for s in collector.spans} == {"baton-test"}
    assert collector.paths == {"/v1/traces"}

    # Every workflow of the run (the triage, the project team, its research panel's
    # branches) and each of its activities is in the trace once, replays or not.
    workflow_ids = [h.workflow_id for h in runs]
    assert len(workflow_ids) > 2
    ran = [s.attributes["temporalWorkflowID"] for s in collector.named("RunWorkflow:")]
    assert sorted(ran) == sorted(workflow_ids)
    for history in runs:
        scheduled = sum(e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED
                        for e in history.events)
        started = [s for s in collector.named("StartActivity:")
                   if s.attributes["temporalWorkflowID"] == history.workflow_id]
        assert len(started) == scheduled

    calls = [s for s in collector.spans if s.attributes.get("gen_ai.operation.name") == "chat"]
    activity_spans = {s.span_id: s for s in collector.named("RunActivity:call_model")}
    assert len(calls) == len(activity_spans) == sum(u.calls for u in result.usage.values())
    for span in calls:
        attrs = span.attributes
        assert span.parent_id in activity_spans
        assert span.name == f"chat {attrs['gen_ai.request.model']}"
        assert attrs["gen_ai.provider.name"] == attrs["gen_ai.system"] == "offline"
        assert attrs["gen_ai.request.model"] in ("fast", "standard", "strong")
        assert attrs["gen_ai.response.model"] == attrs["gen_ai.request.model"]
        assert attrs["gen_ai.usage.input_tokens"] > 0
        assert attrs["gen_ai.usage.output_tokens"] > 0
        assert attrs["baton.cost_usd"] > 0
    for agent, usage in result.usage.items():
        mine = [s.attributes for s in calls if s.attributes["baton.agent"] == agent]
        assert sum(a["gen_ai.usage.input_tokens"] for a in mine) == usage.input_tokens
        assert sum(a["gen_ai.usage.output_tokens"] for a in mine) == usage.output_tokens
        assert sum(a["baton.cost_usd"] for a in mine) == pytest.approx(usage.cost_usd)

    handoffs = collector.named("baton.handoff")
    assert len(handoffs) == 1
    assert handoffs[0].attributes["baton.handoff.to"] == "project_team"
    assert handoffs[0].events[0][0] == "baton.handoff"
    assert "baton.step.detail" not in handoffs[0].attributes  # content is opt-in
    assert all(prompt not in s.text() for s in collector.spans)

    # Replaying the run's histories (with the same interceptors) emits nothing.
    collector.spans.clear()
    replayer = build_replayer()
    for history in runs:
        await replayer.replay_workflow(history)
    flush_tracing()
    assert collector.spans == []


@pytest.mark.parametrize("content", [False, True], ids=["metadata", "content"])
async def test_tool_calls_have_spans_and_content_is_opt_in(
        traced_client: Client, collector: Collector, task_queue: str,
        monkeypatch: pytest.MonkeyPatch, content: bool) -> None:
    from tests.data.tool_app import support

    if content:
        monkeypatch.setenv(CONTENT_VAR, "1")
        reset_tracing()  # the flag is read once per process, when tracing is set up
    prompt = "What is the status of order A-1001?"
    async with worker(traced_client, task_queue, tools=support.tools()):
        handle = await baton.start(support, prompt, client=traced_client,
                                   task_queue=task_queue)
        await asyncio.wait_for(handle.result(), 60)
    flush_tracing()

    (tool,) = collector.named("execute_tool lookup_order")
    attrs = tool.attributes
    assert attrs["gen_ai.operation.name"] == "execute_tool"
    assert attrs["gen_ai.tool.name"] == "lookup_order"
    assert attrs["baton.agent"] == "support" and attrs["baton.tool.ok"] is True
    assert {s.trace_id for s in collector.spans} == {tool.trace_id}
    (parent,) = [s for s in collector.spans if s.span_id == tool.parent_id]
    assert parent.name == "RunActivity:lookup_order"
    calls = [s for s in collector.spans if s.attributes.get("gen_ai.operation.name") == "chat"]
    assert calls
    leaked = [s.name for s in collector.spans if "A-1001" in s.text()]
    if not content:
        assert leaked == []
        return
    assert set(leaked) >= {tool.name, *(s.name for s in calls)}
    assert "A-1001" in attrs["gen_ai.tool.call.arguments"]
    assert "shipped" in attrs["gen_ai.tool.call.result"]
    first = calls[0].attributes
    assert prompt in first["gen_ai.input.messages"]
    assert "Answer questions about orders" in first["gen_ai.system_instructions"]
    assert all("gen_ai.output.messages" in s.attributes for s in calls)


async def test_retries_and_breaker_transitions_are_span_events(
        traced_client: Client, collector: Collector, task_queue: str) -> None:
    raw = catalogue().model_dump(mode="json")
    raw["agents"]["router"]["retry"] = {"max_attempts": 3, "initial_interval_s": 0.2,
                                        "backoff": 1.0, "max_interval_s": 0.2}
    # One failure opens the circuit; the retry after the cool-down is its probe.
    raw["breakers"] = {"default": {"failures": 1, "window_s": 60, "cooldown_s": 0.1}}
    cat = parse_catalogue(raw)
    chaos = Chaos(failure_rate=1.0, faulty_tries=1, agents=["router"])
    async with worker(traced_client, task_queue):
        handle = await start(traced_client, task_queue, "support_desk", "My invoice is wrong",
                             cat=cat, chaos=chaos, result_type=RunResult)
        await finish(handle)
    flush_tracing()

    router = sorted((s for s in collector.spans
                     if s.attributes.get("gen_ai.operation.name") == "chat"
                     and s.attributes["baton.agent"] == "router"),
                    key=lambda s: s.attributes["baton.attempt"])
    assert [s.attributes["baton.attempt"] for s in router] == [1, 2]
    failed, retried = router
    assert failed.error and not retried.error
    events = {name: attrs for name, attrs in failed.events}
    assert events["baton.breaker"]["baton.breaker.from"] == "closed"
    assert events["baton.breaker"]["baton.breaker.to"] == "open"
    events = {name: attrs for name, attrs in retried.events}
    assert events["baton.retry"]["baton.attempt"] == 2
    assert events["baton.breaker"]["baton.breaker.from"] == "half_open"
    assert events["baton.breaker"]["baton.breaker.to"] == "closed"


@pytest.mark.parametrize("endpoint", ["localhost:4318", "http://", "http://host:port",
                                      "ftp://collector:4318", "http//localhost:4318"])
async def test_a_malformed_endpoint_is_refused_before_anything_starts(
        monkeypatch: pytest.MonkeyPatch, endpoint: str) -> None:
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", endpoint)
    reset_tracing()
    with pytest.raises(TracingConfigError, match="OTEL_EXPORTER_OTLP_TRACES_ENDPOINT="):
        tracing_interceptors()
    # Refused before connecting: nothing listens on this address.
    with pytest.raises(RuntimeError, match="not an OTLP/HTTP endpoint"):
        await connect(Settings(address="127.0.0.1:1"))
    with pytest.raises(UsageError, match="OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"):
        await connect_or_explain(Settings(address="127.0.0.1:1"))


def test_an_unsupported_protocol_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://localhost:4317")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc")
    reset_tracing()
    with pytest.raises(TracingConfigError, match="OTEL_EXPORTER_OTLP_PROTOCOL='grpc'"):
        tracing_interceptors()


def test_without_an_endpoint_nothing_is_imported_or_set_up() -> None:
    code = (
        "import sys\n"
        "import baton.runtime.temporal, baton.cli.starter, baton.cli.worker\n"
        "import baton.activities.model, baton.activities.tools, baton.workflows.ledger\n"
        "from baton.telemetry.observability import model_call_span, tracing_interceptors\n"
        "from baton.core.model_io import Message, ModelRequest\n"
        "assert tracing_interceptors() == []\n"
        "request = ModelRequest(agent='a', model='offline:fast', instructions='i',\n"
        "                       messages=[Message(role='user', content='hi')])\n"
        "with model_call_span(request) as span:\n"
        "    assert span.span is None\n"
        "loaded = [m for m in sys.modules if m.startswith(('opentelemetry.sdk',\n"
        "          'opentelemetry.exporter', 'temporalio.contrib.opentelemetry'))]\n"
        "print(loaded)\n"
        "sys.exit(1 if loaded else 0)\n")
    clean = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    done = subprocess.run([sys.executable, "-c", code], env=clean, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr


# --- Content off: nothing a run was given reaches a span or a log line ----------------
# Exception messages are where it slips through: a tool's error quoting its arguments,
# a provider's error body quoting the prompt. The marker opens the prompt, so a
# workflow id built from the prompt's first words would carry it too.

MARKER = "zed7f3a"
LEAKY_PROMPT = f"{MARKER} asks: find the customer {MARKER}@example.com"


@baton.tool(max_attempts=1)
def find_customer(query: str) -> str:
    """Find a customer by name or email."""
    raise ValueError(f"no customer matches {query!r}")  # quotes its argument, as many do


desk = baton.Agent("desk", "Find customers with your tool.", model="offline:standard",
                   tools=[find_customer])


def leaks(collector: Collector, caplog: pytest.LogCaptureFixture) -> list[str]:
    """Where the marker was found: span names, attributes, events (exception events
    included), status descriptions, and the worker's log lines and tracebacks."""
    found = [f"span {s.name}" for s in collector.spans if MARKER in f"{s.name}\n{s.text()}"]
    return found + ["logs"] * (MARKER in caplog.text)


def exception_events(collector: Collector) -> list[dict[str, Any]]:
    return [attrs for s in collector.spans for name, attrs in s.events if name == "exception"]


async def test_a_tool_error_quoting_its_argument_leaves_only_its_type(
        traced_client: Client, collector: Collector, task_queue: str,
        caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)  # the worker's level (DEBUG dumps whole activations)
    async with worker(traced_client, task_queue, tools=[find_customer]):
        handle = await baton.start(desk, LEAKY_PROMPT, client=traced_client,
                                   task_queue=task_queue)
        outcome = await asyncio.wait_for(handle.result(), 60)
        history = (await handle.handle.fetch_history()).to_json()
    flush_tracing()

    # The tool ran with the prompt's text and its error quoted it back (into the run's
    # history, the client's own data, which encryption covers)...
    assert outcome.result.usage["desk"].tool_calls == 1
    assert re.search(rf"no customer matches '[^']*{MARKER}", history)
    # ...but the run's id is its team's, and the trace and the logs keep the error's type
    assert re.fullmatch(r"agent-desk-[0-9a-f]{8}", handle.workflow_id)
    assert leaks(collector, caplog) == []
    (tool,) = collector.named("execute_tool find_customer")
    (activity_span,) = collector.named("RunActivity:find_customer")
    for span in (tool, activity_span):
        assert span.error and span.status.startswith("ValueError: message withheld")
    events = exception_events(collector)
    assert {e["exception.type"] for e in events} == {"ValueError"}
    assert all(e["exception.message"].startswith("ValueError: message withheld")
               for e in events)
    assert all("find_customer" in e["exception.stacktrace"] for e in events)  # frames kept
    assert "Completing activity as failed" in caplog.text and "ValueError" in caplog.text


async def test_a_provider_error_body_quoting_the_prompt_leaves_only_its_type(
        traced_client: Client, collector: Collector, task_queue: str, fake: FakeLLMServer,
        provider_key: str, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    fake.fail_next(Fault(status=400, body=json.dumps({"error": {
        "message": f"Invalid prompt: {LEAKY_PROMPT!r} was flagged", "type": "invalid_request"}})))
    cat = on_fake("openai", fake)
    planned = plan_run(cat, "writer", [Message(role="user", content=LEAKY_PROMPT)],
                       RunOptions())
    async with worker(traced_client, task_queue, providers=fake_provider("openai", fake)):
        handle = await start_run(traced_client, task_queue, planned)
        with pytest.raises(WorkflowFailureError) as failed:
            await asyncio.wait_for(handle.result(), 60)
    flush_tracing()

    assert fake.requests  # the provider was called and answered with its error body
    assert re.fullmatch(r"agent-writer-[0-9a-f]{8}", handle.id)
    assert leaks(collector, caplog) == []
    (chat,) = [s for s in collector.spans if s.attributes.get("gen_ai.operation.name") == "chat"]
    assert chat.error and chat.status.startswith("ApplicationError (ModelBadRequest): ")
    kinds = {e.get("baton.error.type") for e in exception_events(collector)}
    assert "ModelBadRequest" in kinds
    # the failure itself still says what the provider said (it is the run's own data)
    cause: BaseException | None = failed.value.cause
    while cause is not None and MARKER not in str(cause):
        cause = cause.__cause__
    assert cause is not None


async def test_with_content_recorded_exception_messages_are_kept(
        env: WorkflowEnvironment, task_queue: str, monkeypatch: pytest.MonkeyPatch,
        caplog: pytest.LogCaptureFixture) -> None:
    """The redaction above is what content-off does, not a loss: opted in, the
    operator sees the messages (the check above would see them if they were there)."""
    caplog.set_level(logging.INFO)
    with tracing_to_collector(monkeypatch, **{CONTENT_VAR: "1"}) as collector:
        client = await connect(Settings(address=env.client.service_client.config.target_host))
        async with worker(client, task_queue, tools=[find_customer]):
            handle = await baton.start(desk, LEAKY_PROMPT, client=client, task_queue=task_queue)
            await asyncio.wait_for(handle.result(), 60)
        flush_tracing()
        (tool,) = collector.named("execute_tool find_customer")
        assert MARKER in tool.status
        assert any(MARKER in e["exception.message"] for e in exception_events(collector))
    assert MARKER in caplog.text


@pytest.mark.parametrize(("traced", "encrypted", "label"), [
    (False, False, "my-invoice-is-wrong-again"), (True, False, "support-desk"),
    (False, True, "support-desk"), (True, True, "support-desk")])
def test_workflow_ids_name_the_team_when_traced_or_encrypted(
        monkeypatch: pytest.MonkeyPatch, traced: bool, encrypted: bool, label: str) -> None:
    for var in (*ENDPOINT_VARS, "OTEL_SDK_DISABLED", "BATON_ENCRYPTION_KEY"):
        monkeypatch.delenv(var, raising=False)
    if traced:
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:4318")
    if encrypted:
        monkeypatch.setenv("BATON_ENCRYPTION_KEY", "a" * 44)
    planned = plan_run(catalogue(), "support_desk",
                       [Message(role="user", content="My invoice is wrong, again")],
                       RunOptions())
    assert re.fullmatch(rf"triage-{label}-[0-9a-f]{{8}}", planned.workflow_id)
