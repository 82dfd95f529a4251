"""OpenTelemetry tracing, switched on by the standard OTLP endpoint variables.

With `OTEL_EXPORTER_OTLP_ENDPOINT` (or `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`) set, the
starter and the worker export spans over OTLP/HTTP (protobuf); the exporter and the
SDK read the other `OTEL_*` variables themselves (headers, timeout, service name,
resource attributes, sampler, batch sizes). Without them nothing here imports
OpenTelemetry, and every helper is a no-op: a worker that does not trace pays for
a function call and a `None` check.

One trace per run: Temporal's `TracingInterceptor` carries the trace context from
the client's StartWorkflow span through workflow and activity headers, so workflows,
child workflows and activities started by a traced client share its trace id. It
records workflow spans as zero-length spans, and none while a workflow replays
(after a worker restart or cache eviction), so replay emits nothing twice. Baton
adds what it lacks: a GenAI span per model call and per tool call (made in the
activity, never replayed), span events for retries and breaker transitions on
those spans, and one zero-length span, with an event, per handoff, fallback,
repair, error, approval and guardrail decision a workflow records (through an
extern function, skipped while replaying, so the workflow itself never touches
OpenTelemetry and stays deterministic).

Prompts and completions are recorded only with `BATON_TRACE_CONTENT=1`. Without it,
exception messages are withheld too, from spans and from the worker's logs: a tool's
error may quote its arguments and a provider's error body the prompt, and both would
otherwise reach a trace backend or a log store in clear even when payloads are
encrypted. What remains is the exception's type, the `ApplicationError` type Baton
(or a tool) gave it, and the traceback's frames: enough to see what failed and where.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol
from urllib.parse import urlsplit

from baton.core.model_io import ModelRef
from baton.telemetry.redaction import (
    content_recorded,
    redacted_traceback,
)

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.trace import Span, Tracer
    from temporalio.contrib.opentelemetry import (
        TracingInterceptor,
        TracingWorkflowInboundInterceptor,
    )

    from baton.core.model_io import Message, ModelRequest, ModelResponse
    from baton.core.runs import Step
    from baton.core.tools import Tool, ToolInvocation, ToolOutcome

ENDPOINT_VARS = ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_EXPORTER_OTLP_ENDPOINT")
PROTOCOL_VARS = ("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "OTEL_EXPORTER_OTLP_PROTOCOL")
# The SDK's loggers that attach a failed activity's or workflow task's exception.
SDK_LOGGERS = ("temporalio.activity", "temporalio.workflow", "temporalio.worker._activity",
               "temporalio.worker._workflow", "temporalio.worker._workflow_instance")
DEFAULT_SERVICE_NAME = "baton"

# The workflow-side decisions worth a point in the trace; model and tool calls have
# spans of their own, made in their activities.
STEP_EVENTS = frozenset({"handoff", "fallback", "repair", "error", "approval", "guardrail"})
_STEP_EXTERN = "__baton_trace_step"


class TracingConfigError(ValueError):
    """An OTEL_* variable Baton cannot trace with; the message names it."""


def tracing_enabled() -> bool:
    """Whether this process's environment asks for traces."""
    if os.environ.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return False
    return any(os.environ.get(var, "").strip() for var in ENDPOINT_VARS)


def check_tracing_config() -> None:
    """Refuse a malformed endpoint or an unsupported protocol before anything starts
    (the exporter would otherwise log one failed export per batch, forever)."""
    if not tracing_enabled():
        return
    for var in ENDPOINT_VARS:
        value = os.environ.get(var, "").strip()
        if value:
            _check_endpoint(var, value)
    for var in PROTOCOL_VARS:
        protocol = os.environ.get(var, "").strip()
        if protocol:
            if protocol != "http/protobuf":
                raise TracingConfigError(
                    f"{var}={protocol!r}: Baton exports traces over OTLP/HTTP with protobuf "
                    "only; set it to 'http/protobuf' (or unset it) and point the endpoint "
                    "at the collector's HTTP port (usually 4318)")
            break  # the traces-specific variable wins over the general one


def _check_endpoint(var: str, value: str) -> None:
    parts = urlsplit(value)
    try:
        parts.port  # noqa: B018 - raises ValueError on a port that is not a number
        valid = parts.scheme in ("http", "https") and bool(parts.hostname)
    except ValueError:
        valid = False
    if not valid:
        raise TracingConfigError(
            f"{var}={value!r} is not an OTLP/HTTP endpoint: expected a URL such as "
            "http://localhost:4318 (a collector) or http://localhost:6006 (`make traces`)")


class _WithheldExceptionText(logging.Filter):
    """Log records keep an exception's type and frames, not its message, unless
    content is recorded."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.exc_info and record.exc_info[1] is not None and not content_recorded():
            record.exc_text = redacted_traceback(record.exc_info[1])
            record.exc_info = None
        return True


_log_filter = _WithheldExceptionText()


def redact_worker_logs() -> None:
    """Withhold exception messages from the SDK's worker logs ("Completing activity as
    failed" carries the exception: a tool's error quoting its arguments, a provider's
    quoting the prompt). Filters on the loggers that log them, so records are cleaned
    before any handler sees them; idempotent."""
    for name in SDK_LOGGERS:
        logger = logging.getLogger(name)
        if _log_filter not in logger.filters:
            logger.addFilter(_log_filter)


@dataclass
class _Tracing:
    provider: TracerProvider
    tracer: Tracer
    interceptor: TracingInterceptor
    content: bool


# This process's tracing, set up on the first call to tracing_interceptors().
_tracing: _Tracing | None = None


def tracing_interceptors() -> list[TracingInterceptor]:
    """Temporal interceptors that trace this process's client and workers: none unless
    an OTLP endpoint is set. The exporter is set up once per process; raises
    TracingConfigError for a malformed endpoint."""
    if not tracing_enabled():
        return []
    return [_setup().interceptor]


def reset_tracing() -> None:
    """Flush and drop this process's exporter, so the next tracing_interceptors() reads
    the environment again (tests; a long-lived process never needs it)."""
    global _tracing
    if _tracing is not None:
        _tracing.provider.shutdown()
        _tracing = None


def flush_tracing(timeout_s: float = 5.0) -> None:
    """Export the spans still batched; the starter and the worker leave with os._exit,
    which skips the exporter's own exit hook."""
    if _tracing is not None:
        _tracing.provider.force_flush(int(timeout_s * 1000))


def _setup() -> _Tracing:
    global _tracing
    if _tracing is None:
        check_tracing_config()
        try:
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import (
                OTLPSpanExporter,
            )
            from opentelemetry.sdk.resources import SERVICE_NAME, Resource
            from opentelemetry.sdk.trace import TracerProvider
            from opentelemetry.sdk.trace.export import BatchSpanProcessor
        except ImportError as err:
            var = next(v for v in ENDPOINT_VARS if os.environ.get(v, "").strip())
            raise TracingConfigError(
                f"{var} is set but the OpenTelemetry exporter is not installed ({err.name}): "
                "pip install 'baton[tracing]', or unset it") from None

        resource = Resource.create()  # OTEL_SERVICE_NAME, OTEL_RESOURCE_ATTRIBUTES
        if str(resource.attributes.get(SERVICE_NAME, "")).startswith("unknown_service"):
            resource = resource.merge(Resource({SERVICE_NAME: DEFAULT_SERVICE_NAME}))
        # Baton's own provider, not the global one: a process (or a test) can set it
        # up again, and an application's global provider is left as it configured it.
        provider = TracerProvider(resource=resource)
        # Spans wait in memory for up to this delay: a worker killed with -9 loses them,
        # and its successor replays the workflows without emitting their spans again.
        # The SDK's 5 s lost whole child workflows here (measured); 1 s costs a small
        # POST a second. OTEL_BSP_SCHEDULE_DELAY still decides when set.
        delay_ms = None if os.environ.get("OTEL_BSP_SCHEDULE_DELAY") else 1000
        provider.add_span_processor(
            BatchSpanProcessor(OTLPSpanExporter(), schedule_delay_millis=delay_ms))
        content = content_recorded()
        tracer = provider.get_tracer("baton")
        if not content:
            from baton.telemetry.redacted_spans import RedactingTracer

            # Temporal's interceptor and Baton's call spans alike: every exception
            # recorded in this process's spans loses its message.
            tracer = RedactingTracer(tracer)
        _tracing = _Tracing(provider=provider, tracer=tracer,
                            interceptor=_interceptor_class()(tracer), content=content)
    return _tracing


def _interceptor_class() -> type[TracingInterceptor]:
    # Defined here so that importing this module never imports OpenTelemetry.
    import opentelemetry.trace
    import temporalio.worker
    from temporalio.contrib.opentelemetry import TracingInterceptor

    class BatonTracingInterceptor(TracingInterceptor):
        """Temporal's interceptor plus a span for each decision a workflow records."""

        def workflow_interceptor_class(
            self, input: temporalio.worker.WorkflowInterceptorClassInput,
        ) -> type[TracingWorkflowInboundInterceptor]:
            input.unsafe_extern_functions[_STEP_EXTERN] = self._step_span
            return super().workflow_interceptor_class(input)

        def _step_span(self, name: str, attributes: dict[str, Any], time_ns: int) -> None:
            # Called from workflow code, outside the sandbox, in the workflow's context:
            # the current span is the one that started this workflow (its client's or
            # its parent's), as for Temporal's own workflow spans.
            if opentelemetry.trace.get_current_span() is opentelemetry.trace.INVALID_SPAN:
                return  # not started by a traced client: nothing to belong to
            if not _content():
                attributes = {k: v for k, v in attributes.items() if k != "baton.step.detail"}
            span = self.tracer.start_span(name, attributes=attributes, start_time=time_ns)
            span.add_event(name, attributes=attributes, timestamp=time_ns)
            span.end(end_time=time_ns)

    return BatonTracingInterceptor


def _content() -> bool:
    return _tracing is not None and _tracing.content


# --- workflow side ---------------------------------------------------------------


def record_step(step: Step) -> None:
    """Trace a workflow's decision (handoff, fallback, repair, ...); called by RunLedger.

    Deterministic and free when tracing is off: the extern function exists only on a
    tracing worker, and nothing is emitted while the workflow replays.
    """
    if step.kind not in STEP_EVENTS:
        return
    from temporalio import workflow

    if not workflow.in_workflow():
        return
    emit = workflow.extern_functions().get(_STEP_EXTERN)
    if emit is None or workflow.unsafe.is_replaying():
        return
    info = workflow.info()
    attributes: dict[str, Any] = {
        "baton.step.kind": step.kind, "baton.agent": step.agent, "baton.step.ok": step.ok,
        "baton.step.detail": step.detail, "baton.path": step.path,
        "temporalWorkflowID": info.workflow_id, "temporalRunID": info.run_id}
    if step.model is not None:
        attributes["baton.model"] = step.model
    if step.kind == "handoff" and step.detail.startswith("-> "):
        attributes["baton.handoff.to"] = step.detail[3:].split(":", 1)[0].strip()
    emit(f"baton.{step.kind}", attributes, workflow.time_ns())


# --- activity side ---------------------------------------------------------------


class BreakerView(Protocol):
    @property
    def state(self) -> str: ...

    @property
    def transitions(self) -> int: ...


class CallSpan:
    """The span of one model or tool call attempt; a no-op when tracing is off."""

    def __init__(self, span: Span | None = None) -> None:
        self.span = span

    def _set(self, attributes: dict[str, Any], content: Callable[[], dict[str, Any]]) -> None:
        """Set `attributes`, and the prompt/result ones only when content is recorded
        (a callable, so nothing is serialised when it is not)."""
        if self.span is None:
            return
        if _content():
            attributes |= content()
        self.span.set_attributes(attributes)


class ModelCallSpan(CallSpan):
    def response(self, response: ModelResponse) -> None:
        if self.span is None:
            return
        usage = response.usage
        attributes: dict[str, Any] = {
            "gen_ai.response.model": _model_name(response.model),
            "gen_ai.response.finish_reasons": [response.finish_reason],
            "gen_ai.usage.input_tokens": usage.input_tokens,
            "gen_ai.usage.output_tokens": usage.output_tokens,
            # OpenInference's names for the same counts (what Phoenix reads).
            "llm.token_count.prompt": usage.input_tokens,
            "llm.token_count.completion": usage.output_tokens,
            "llm.token_count.total": usage.total_tokens,
        }
        if usage.cached_tokens:
            attributes["gen_ai.usage.cache_read.input_tokens"] = usage.cached_tokens
        if usage.cost_usd is not None:
            attributes["baton.cost_usd"] = usage.cost_usd

        def content() -> dict[str, Any]:
            output = _output_messages(response)
            return {"gen_ai.output.messages": output,
                    "output.value": (response.text if response.text and not
                                     response.tool_calls else output)}

        self._set(attributes, content)


class ToolCallSpan(CallSpan):
    def outcome(self, outcome: ToolOutcome) -> None:
        self._set({"baton.tool.ok": outcome.ok, "baton.tool.truncated": outcome.truncated},
                  lambda: {"gen_ai.tool.call.result": outcome.content,
                           "output.value": outcome.content})


@contextmanager
def model_call_span(request: ModelRequest, breaker: BreakerView | None = None,
                    api: str | None = None) -> Iterator[ModelCallSpan]:
    """A GenAI `chat` span around one model call attempt, a child of its activity's
    span; events for a retry and for a change of the model's circuit breaker. `api`:
    the wire API the worker's provider speaks (its provider name when not given)."""
    if _tracing is None:
        yield ModelCallSpan()
        return
    attributes: dict[str, Any] = {
        "gen_ai.operation.name": "chat",
        "gen_ai.provider.name": request.provider,
        "gen_ai.system": request.provider,  # the older name, still what many backends read
        "gen_ai.request.model": request.model_name,
        "gen_ai.request.max_tokens": request.max_output_tokens,
        "gen_ai.output.type": "json" if request.output_schema is not None else "text",
        "baton.model": request.model,
        "baton.provider.api": api or request.provider,
        "baton.call_index": request.call_index,
        "openinference.span.kind": "LLM",
        "llm.model_name": request.model_name,
        "llm.provider": request.provider,
    }
    if request.temperature is not None:
        attributes["gen_ai.request.temperature"] = request.temperature
    before = (breaker.state, breaker.transitions) if breaker is not None else None

    def content() -> dict[str, Any]:
        messages = _input_messages(request.messages)
        return {"gen_ai.input.messages": messages,
                "gen_ai.system_instructions": json.dumps(
                    [{"type": "text", "content": request.instructions}]),
                "input.value": messages, "input.mime_type": "application/json"}

    with _call_span(f"chat {request.model_name}", request.agent, attributes, content,
                    client=True) as span:
        try:
            yield ModelCallSpan(span)
        finally:
            if breaker is not None and before is not None and breaker.transitions != before[1]:
                span.add_event("baton.breaker", {
                    "baton.breaker.model": request.model, "baton.breaker.from": before[0],
                    "baton.breaker.to": breaker.state})


@contextmanager
def tool_call_span(tool: Tool, invocation: ToolInvocation) -> Iterator[ToolCallSpan]:
    """A GenAI `execute_tool` span around one tool call attempt."""
    if _tracing is None:
        yield ToolCallSpan()
        return
    attributes: dict[str, Any] = {
        "gen_ai.operation.name": "execute_tool",
        "gen_ai.tool.name": tool.name,
        "gen_ai.tool.type": "function",
        "gen_ai.tool.call.id": invocation.call_id,
        "gen_ai.tool.description": tool.definition.description,
        "openinference.span.kind": "TOOL",
        "tool.name": tool.name,
    }

    def content() -> dict[str, Any]:
        arguments = json.dumps(invocation.arguments, default=str)
        return {"gen_ai.tool.call.arguments": arguments, "input.value": arguments,
                "input.mime_type": "application/json"}

    with _call_span(f"execute_tool {tool.name}", invocation.agent, attributes,
                    content) as span:
        yield ToolCallSpan(span)


@contextmanager
def mcp_tool_span(server: str, tool: str, agent: str, call_id: str,
                  arguments: dict[str, Any]) -> Iterator[ToolCallSpan]:
    """A GenAI `execute_tool` span around one attempt of an MCP server's tool call."""
    if _tracing is None:
        yield ToolCallSpan()
        return
    attributes: dict[str, Any] = {
        "gen_ai.operation.name": "execute_tool",
        "gen_ai.tool.name": tool,
        "gen_ai.tool.type": "extension",
        "gen_ai.tool.call.id": call_id,
        "openinference.span.kind": "TOOL",
        "tool.name": tool,
        "baton.core.mcp.server": server,
    }

    def content() -> dict[str, Any]:
        shown = json.dumps(arguments, default=str)
        return {"gen_ai.tool.call.arguments": shown, "input.value": shown,
                "input.mime_type": "application/json"}

    with _call_span(f"execute_tool {server}/{tool}", agent, attributes, content) as span:
        yield ToolCallSpan(span)


@contextmanager
def _call_span(name: str, agent: str, attributes: dict[str, Any],
               content: Callable[[], dict[str, Any]], client: bool = False) -> Iterator[Span]:
    """What model and tool spans share: the agent, the attempt (with an event when it
    is a retry) and the content attributes when they are recorded."""
    from opentelemetry.trace import SpanKind

    tracing = _tracing
    assert tracing is not None
    attempt = _attempt()
    attributes = {**attributes, "baton.agent": agent, "baton.attempt": attempt}
    if tracing.content:
        attributes |= content()
    with tracing.tracer.start_as_current_span(
            name, kind=SpanKind.CLIENT if client else SpanKind.INTERNAL,
            attributes=attributes) as span:
        if attempt > 1:
            span.add_event("baton.retry", {"baton.attempt": attempt, "baton.agent": agent})
        yield span


def _model_name(model: str) -> str:
    """The model's own name from "provider:model" (what the GenAI conventions want)."""
    try:
        return ModelRef.parse(model).name
    except ValueError:
        return model


def _attempt() -> int:
    from temporalio import activity

    return activity.info().attempt if activity.in_activity() else 1


def _input_messages(messages: Sequence[Message]) -> str:
    """The conversation in the GenAI conventions' message shape, as JSON."""
    shaped = []
    for message in messages:
        parts: list[dict[str, Any]] = []
        if message.role == "tool":
            parts.append({"type": "tool_call_response", "id": message.tool_call_id,
                          "response": message.content})
        elif message.content:
            parts.append({"type": "text", "content": message.content})
        parts += [{"type": "tool_call", "id": call.id, "name": call.name,
                   "arguments": call.arguments} for call in message.tool_calls]
        shaped.append({"role": message.role, "parts": parts})
    return json.dumps(shaped, default=str)


def _output_messages(response: ModelResponse) -> str:
    parts: list[dict[str, Any]] = []
    if response.text:
        parts.append({"type": "text", "content": response.text})
    parts += [{"type": "tool_call", "id": call.id, "name": call.name,
               "arguments": call.arguments} for call in response.tool_calls]
    return json.dumps([{"role": "assistant", "parts": parts,
                        "finish_reason": response.finish_reason}], default=str)
