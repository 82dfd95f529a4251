"""Prometheus metrics: the Temporal SDK's own and Baton's, on one endpoint.

`python worker.py --metrics HOST:PORT` builds the worker's Temporal runtime with the
SDK's Prometheus exporter (`metrics_runtime`). Baton's instruments are created on the
metric meter the SDK hands each activity and workflow, so they are served by that
same exporter at `http://HOST:PORT/metrics`: one port to scrape, no second HTTP
server, no extra dependency, and the same numbers reach an OpenTelemetry collector
when an embedding application gives its client a runtime that exports there. With no
metrics configured those meters are the SDK's no-op meter and every recording
function here costs a few attribute look-ups.

Counts from workflow code (run results) use `workflow.metric_meter()`, which the SDK
leaves silent while a workflow is replayed, so a run evicted from the cache, moved to
another worker or replayed by `starter.py replay` is counted once.

Label values are bounded: agent, team, tool and model names come from the catalogue
and the worker's code, not from a prompt, and a worker keeps at most
`MAX_LABEL_VALUES` distinct values per label, folding any beyond into "other", so a
catalogue generated per request cannot grow Prometheus without bound.
"""

from __future__ import annotations

import functools
import ipaddress
import socket
import threading
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Protocol, TypeVar

from temporalio import activity, workflow
from temporalio.common import MetricMeter
from temporalio.exceptions import ApplicationError
from temporalio.runtime import PrometheusConfig, Runtime, TelemetryConfig

from baton.errors import CircuitOpen

if TYPE_CHECKING:
    from baton.model_io import BreakerState, ModelRequest, ModelResponse
    from baton.tools import ToolInvocation, ToolOutcome
    from baton.usage import Usage

MODEL_CALLS = "baton_model_calls_total"
TOKENS = "baton_tokens_total"
COST = "baton_cost_usd_total"
TOOL_CALLS = "baton_tool_calls_total"
RUN_RESULTS = "baton_run_results_total"
BREAKER_STATE = "baton_breaker_state"
MODEL_CALL_SECONDS = "baton_model_call_seconds"

BREAKER_CODES = {"closed": 0, "half_open": 1, "open": 2}
FINAL_STATUSES = frozenset({"ok", "degraded", "budget_exhausted", "blocked", "failed"})
# Model calls take from milliseconds (a cache hit, a local model) to minutes (long
# reasoning); the exporter's default buckets are for milliseconds, not seconds.
MODEL_CALL_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 20.0, 30.0, 60.0,
                      120.0, 300.0)
MAX_LABEL_VALUES = 100
OTHER = "other"


class MetricsAddressError(ValueError):
    """A --metrics value that cannot be served: malformed, unresolvable or taken."""


def parse_address(text: str) -> str:
    """`HOST:PORT` (or `[IPv6]:PORT`, or `:PORT` for every interface) as the socket
    address the SDK's exporter binds; it takes no host names, so they are resolved here."""
    host, sep, port_text = text.strip().rpartition(":")
    example = "expected HOST:PORT, e.g. 127.0.0.1:9464 or 0.0.0.0:9464"
    if not sep or not port_text.isdigit():
        raise MetricsAddressError(f"--metrics {text!r}: {example}")
    port = int(port_text)
    if not 0 < port < 65536:
        # Port 0 would bind a random port that no Prometheus configuration can name.
        raise MetricsAddressError(f"--metrics {text!r}: the port must be 1-65535")
    host = host.removeprefix("[").removesuffix("]") or "0.0.0.0"
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        try:
            found = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except (socket.gaierror, UnicodeError) as err:
            raise MetricsAddressError(f"--metrics {text!r}: cannot resolve host {host!r} "
                                      f"({err}); {example}") from None
        ip = ipaddress.ip_address(found[0][4][0])
    return f"[{ip}]:{port}" if ip.version == 6 else f"{ip}:{port}"


def metrics_runtime(address: str) -> Runtime:
    """A Temporal runtime serving Prometheus text at http://`address`/metrics.

    The port is bound here, so a taken one is reported before the worker connects.
    """
    bind = parse_address(address)
    config = PrometheusConfig(bind_address=bind,
                              histogram_bucket_overrides={MODEL_CALL_SECONDS: MODEL_CALL_BUCKETS})
    try:
        return Runtime(telemetry=TelemetryConfig(metrics=config))
    except ValueError as err:  # the exporter's bind failure, e.g. "Address already in use"
        reason = str(err).partition(": ")[2] or str(err)
        raise MetricsAddressError(f"--metrics {address!r}: cannot serve metrics on {bind}: "
                                  f"{reason[:1].lower()}{reason[1:]}") from None


class _LabelCap:
    """The distinct values each label has taken on this worker, up to a limit."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._seen: dict[str, set[str]] = {}
        self._lock = threading.Lock()

    def __call__(self, label: str, value: str) -> str:
        value = value or "none"  # Prometheus reads an empty label as an absent one
        with self._lock:
            seen = self._seen.setdefault(label, set())
            if value in seen:
                return value
            if len(seen) < self.limit:
                seen.add(value)
                return value
        return OTHER


cap = _LabelCap(MAX_LABEL_VALUES)
# Prometheus counters are integers in the SDK's meter, and cost is fractional: the
# running total per label set is kept here and exported as a float gauge that only
# rises (rate() and increase() treat its reset at a worker restart as a counter's).
_cost_totals: dict[tuple[str, ...], float] = {}
_cost_lock = threading.Lock()


def _activity_meter() -> MetricMeter | None:
    """The current activity's meter, or None when metrics are off."""
    if not activity.in_activity():
        return None
    try:
        meter = activity.metric_meter()
    except RuntimeError:  # a sync activity in another process has no meter
        return None
    return None if meter is MetricMeter.noop else meter


def record_model_call(agent: str, model: str, team: str, outcome: str,
                      seconds: float | None, usage: Usage | None) -> None:
    """One `call_model` attempt: `outcome` is ok, error or circuit_open (no provider
    call, so no latency)."""
    meter = _activity_meter()
    if meter is None:
        return
    labels = {"agent": cap("agent", agent), "model": cap("model", model),
              "team": cap("team", team)}
    meter.create_counter(MODEL_CALLS, "Model call attempts, by outcome").add(
        1, {**labels, "outcome": outcome})
    if seconds is not None:
        meter.create_histogram_float(MODEL_CALL_SECONDS, "Model call attempt latency", "s").record(
            seconds, {**labels, "outcome": outcome})
    if usage is None:
        return
    tokens = meter.create_counter(TOKENS, "Tokens reported by providers, by direction")
    tokens.add(usage.input_tokens, {**labels, "direction": "input"})
    tokens.add(usage.output_tokens, {**labels, "direction": "output"})
    if usage.cost_usd is not None:  # unknown prices are not counted as free
        info = activity.info()  # the SDK labels by these too: one total per series
        key = (info.namespace, info.task_queue, labels["agent"], labels["model"], labels["team"])
        with _cost_lock:
            total = _cost_totals[key] = _cost_totals.get(key, 0.0) + usage.cost_usd
        meter.create_gauge_float(COST, "USD spent on model calls with a known price, "
                                 "since the worker started").set(total, labels)


class _BreakerBoard(Protocol):
    def states(self) -> list[BreakerState]: ...


def record_breaker_states(board: _BreakerBoard) -> None:
    """Each breaker's state: 0 closed, 1 half-open, 2 open."""
    meter = _activity_meter()
    if meter is None:
        return
    gauge = meter.create_gauge(BREAKER_STATE, "Circuit breaker state per model: "
                               "0 closed, 1 half-open, 2 open")
    for state in board.states():
        gauge.set(BREAKER_CODES[state.state], {"model": cap("model", state.model)})


def record_tool_call(tool: str, agent: str, team: str, outcome: str) -> None:
    """One tool activity attempt: ok, invalid_arguments (the function did not run) or error."""
    meter = _activity_meter()
    if meter is None:
        return
    meter.create_counter(TOOL_CALLS, "Tool activity attempts, by outcome").add(
        1, {"tool": cap("tool", tool), "agent": cap("agent", agent), "team": cap("team", team),
            "outcome": outcome})


def record_run_result(team: str, status: str, nested: bool) -> None:
    """A run's final status; called from workflow code, counted once (not on replay)."""
    if status not in FINAL_STATUSES:
        return
    workflow.metric_meter().create_counter(RUN_RESULTS, "Runs finished, by status").add(
        1, {"team": cap("team", team), "status": status, "nested": str(nested).lower()})


class _ModelCaller(Protocol):
    @property
    def breakers(self) -> _BreakerBoard: ...


C = TypeVar("C", bound=_ModelCaller)


def metered_model_call(
        call: Callable[[C, ModelRequest], Awaitable[ModelResponse]],
) -> Callable[[C, ModelRequest], Awaitable[ModelResponse]]:
    """Record each attempt of the model activity: count, latency, tokens, cost, and the
    breakers' states after it (an attempt is where a breaker changes)."""

    @functools.wraps(call)
    async def metered(self: C, request: ModelRequest) -> ModelResponse:
        started = time.monotonic()
        outcome, usage = "error", None
        try:
            response = await call(self, request)
        except ApplicationError as err:
            if err.type == CircuitOpen.TYPE:
                outcome = "circuit_open"
            raise
        else:
            outcome, usage = "ok", response.usage
            return response
        finally:
            seconds = None if outcome == "circuit_open" else time.monotonic() - started
            record_model_call(request.agent, request.model, request.team, outcome, seconds,
                              usage)
            record_breaker_states(self.breakers)

    return metered


def metered_tool(
        name: str, run: Callable[[ToolInvocation], Awaitable[ToolOutcome]],
) -> Callable[[ToolInvocation], Awaitable[ToolOutcome]]:
    """Record each attempt of a tool's activity."""

    @functools.wraps(run)
    async def metered(invocation: ToolInvocation) -> ToolOutcome:
        outcome = "error"
        try:
            result = await run(invocation)
            outcome = "ok" if result.ok else "invalid_arguments"
            return result
        finally:
            record_tool_call(name, invocation.agent, invocation.team, outcome)

    return metered
