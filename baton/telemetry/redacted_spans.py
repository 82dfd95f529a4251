"""A tracer whose spans record exceptions by type, never by message.

Used by baton/telemetry/observability.py for every span of a process (Temporal's interceptor
and Baton's own) unless `BATON_TRACE_CONTENT=1`. An exception's message may be
anyone's text: a tool's error quoting its arguments, a provider's error body quoting
the prompt, a workflow failure carrying either. OpenTelemetry and Temporal's
interceptor both put it in two places, the `exception` event (`record_exception`,
with the message and a traceback that ends with it) and the error status
(`f"{type}: {message}"`); this tracer hands out spans that fill both from the
exception's type and its ApplicationError type instead, at the moment they are
recorded, when the exception itself is still at hand.

Imported only when tracing is set up: without an OTLP endpoint nothing imports
OpenTelemetry.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator, Mapping, Sequence

from opentelemetry.context import Context
from opentelemetry.trace import (
    Link,
    Span,
    SpanContext,
    SpanKind,
    Status,
    StatusCode,
    Tracer,
    use_span,
)
from opentelemetry.util import types

# What the API's and the SDK's tracers decorate start_as_current_span with: a context
# manager that also decorates async functions (the API's type says so).
from opentelemetry.util._decorator import _agnosticcontextmanager

from baton.telemetry.redaction import WITHHELD, error_type, redacted_error, redacted_traceback


class RedactingSpan(Span):
    """A span that records exceptions and error statuses without their messages."""

    def __init__(self, span: Span) -> None:
        self._span = span

    def record_exception(self, exception: BaseException, attributes: types.Attributes = None,
                         timestamp: int | None = None, escaped: bool = False) -> None:
        # The event OpenTelemetry's semantic conventions define, with safe values.
        cls = type(exception)
        event: dict[str, types.AttributeValue] = {
            **(attributes or {}),
            "exception.type": (cls.__qualname__ if cls.__module__ == "builtins"
                               else f"{cls.__module__}.{cls.__qualname__}"),
            "exception.message": redacted_error(exception),
            "exception.stacktrace": redacted_traceback(exception),
            "exception.escaped": str(escaped),
        }
        kind = error_type(exception)
        if kind is not None:
            event["baton.error.type"] = kind
        self._span.add_event("exception", event, timestamp)

    def set_status(self, status: Status | StatusCode, description: str | None = None) -> None:
        code = status.status_code if isinstance(status, Status) else status
        if code is not StatusCode.ERROR:
            self._span.set_status(status, description)
            return
        # Both callers that describe an error (OpenTelemetry's use_span and Temporal's
        # interceptor) do it while handling the exception they describe.
        handled = sys.exc_info()[1]
        self._span.set_status(Status(StatusCode.ERROR, redacted_error(handled)
                                     if handled is not None else f"error: {WITHHELD}"))

    # Everything else is the wrapped span's.

    def end(self, end_time: int | None = None) -> None:
        self._span.end(end_time)

    def get_span_context(self) -> SpanContext:
        return self._span.get_span_context()

    def set_attributes(self, attributes: Mapping[str, types.AttributeValue]) -> None:
        self._span.set_attributes(attributes)

    def set_attribute(self, key: str, value: types.AttributeValue) -> None:
        self._span.set_attribute(key, value)

    def add_event(self, name: str, attributes: types.Attributes = None,
                  timestamp: int | None = None) -> None:
        self._span.add_event(name, attributes, timestamp)

    def add_link(self, context: SpanContext, attributes: types.Attributes = None) -> None:
        self._span.add_link(context, attributes)

    def update_name(self, name: str) -> None:
        self._span.update_name(name)

    def is_recording(self) -> bool:
        return self._span.is_recording()


class RedactingTracer(Tracer):
    """A tracer whose spans are RedactingSpans: what Temporal's interceptor and Baton's
    call spans are given when content is not recorded."""

    def __init__(self, tracer: Tracer) -> None:
        self._tracer = tracer

    def start_span(self, name: str, context: Context | None = None,
                   kind: SpanKind = SpanKind.INTERNAL, attributes: types.Attributes = None,
                   links: Sequence[Link] | None = None, start_time: int | None = None,
                   record_exception: bool = True,
                   set_status_on_exception: bool = True) -> Span:
        return RedactingSpan(self._tracer.start_span(
            name, context, kind, attributes, links, start_time, record_exception,
            set_status_on_exception))

    @_agnosticcontextmanager
    def start_as_current_span(self, name: str, context: Context | None = None,
                              kind: SpanKind = SpanKind.INTERNAL,
                              attributes: types.Attributes = None,
                              links: Sequence[Link] | None = None,
                              start_time: int | None = None, record_exception: bool = True,
                              set_status_on_exception: bool = True,
                              end_on_exit: bool = True) -> Iterator[Span]:
        # As the SDK's tracer does it, with the span it makes here: use_span records
        # an escaping exception through this span's record_exception and set_status.
        span = self.start_span(name, context, kind, attributes, links, start_time,
                               record_exception, set_status_on_exception)
        with use_span(span, end_on_exit=end_on_exit, record_exception=record_exception,
                      set_status_on_exception=set_status_on_exception) as current:
            yield current
