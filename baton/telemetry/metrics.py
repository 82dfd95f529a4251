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

Label values come only from what the worker knows (`known_labels`): its agents,
teams and tools, the models its catalogues name and its price table. Anything else a
run brings (an agent of the run's own catalogue, a `--model` override) is reported as
`other`, so a client can neither write its strings into Prometheus nor grow it without
bound, and the worker's own names are never pushed out by a flood of others.
"""

from __future__ import annotations

import asyncio
import functools
import ipaddress
import socket
import threading
import time
import weakref
from collections.abc import Awaitable, Callable, Iterable
from typing import TYPE_CHECKING, Protocol, TypeVar

from temporalio import activity, workflow
from temporalio.common import MetricMeter
from temporalio.exceptions import ApplicationError
from temporalio.runtime import PrometheusConfig, Runtime, TelemetryConfig

from baton.core.errors import CircuitOpen

if TYPE_CHECKING:
    from baton.core.model_io import BreakerState, ModelRequest, ModelResponse
    from baton.core.specs import Catalogue
    from baton.core.tools import ToolInvocation, ToolOutcome
    from baton.core.usage import Usage

MODEL_CALLS = "baton_model_calls_total"
TOKENS = "baton_tokens_total"
# Millionths of a USD: the SDK's counters take whole numbers, and a counter is what
# a running total is (rate() and increase() expect one; a gauge named *_total is what
# promtool warns about). Until 2026-12 this was the float gauge baton_cost_usd_total.
COST = "baton_cost_microusd_total"
MICROUSD_PER_USD = 1_000_000
TOOL_CALLS = "baton_tool_calls_total"
RUN_RESULTS = "baton_run_results_total"
BREAKER_STATE = "baton_breaker_state"
UNLISTED_BREAKERS = "baton_unlisted_breakers"
MODEL_CALL_SECONDS = "baton_model_call_seconds"

BREAKER_CODES = {"closed": 0, "half_open": 1, "open": 2}
FINAL_STATUSES = frozenset({"ok", "degraded", "budget_exhausted", "blocked", "failed"})
# Model calls take from milliseconds (a cache hit, a local model) to minutes (long
# reasoning); the exporter's default buckets are for milliseconds, not seconds.
MODEL_CALL_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 20.0, 30.0, 60.0,
                      120.0, 300.0)
OTHER = "other"
NONE = "none"  # Prometheus reads an empty label as an absent one
# A cool-down's end is published this much after it, so the breaker reads half-open
# by then even if the event loop's timer fires a tick early.
COOLDOWN_MARGIN_S = 0.01


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


class KnownLabels:
    """The label values this worker may report, per label; any other value is `other`.

    Filled from the worker's own configuration, never from a run's input. Values are
    only ever added (a worker learns its apps and catalogues as it starts), and each
    label's set is replaced whole, so reading it needs no lock.
    """

    def __init__(self) -> None:
        self._values: dict[str, frozenset[str]] = {}
        self._lock = threading.Lock()

    def add(self, label: str, values: Iterable[str]) -> None:
        if isinstance(values, str):  # a str is an iterable of one-letter values
            raise TypeError(f"known values for label {label!r} must be a collection of "
                            f"names, e.g. [{values!r}], not the string {values!r}")
        with self._lock:
            self._values[label] = self._values.get(label, frozenset()).union(values)

    def knows(self, label: str, value: str) -> bool:
        return value in self._values.get(label, frozenset())

    def __call__(self, label: str, value: str) -> str:
        """The value to report for `label`: `value` when known, else `other`."""
        if not value:
            return NONE
        return value if self.knows(label, value) else OTHER


labels = KnownLabels()


def known_labels(*, agents: Iterable[str] = (), teams: Iterable[str] = (),
                 models: Iterable[str] = (), tools: Iterable[str] = ()) -> None:
    """Add to the values this worker reports by name (repeatable; values only add up)."""
    for label, values in (("agent", agents), ("team", teams), ("model", models),
                          ("tool", tools)):
        labels.add(label, values)


def known_catalogue(catalogue: Catalogue) -> None:
    """Report a worker-side catalogue's agents, teams, tools and models by name: the
    models its agents use or fall back to, price or give breaker thresholds."""
    agents = catalogue.agents.values()
    models = {*(a.model for a in agents), *(m for a in agents for m in a.fallback_models),
              *catalogue.prices, *catalogue.breakers}
    models.discard("default")  # the breakers' fallback policy, not a model
    # An agent run on its own reports its own name as the team.
    known_labels(agents=catalogue.agents, teams=[*catalogue.teams, *catalogue.agents],
                 models=models, tools=catalogue.tools)


# Prometheus counters are integers in the SDK's meter, and cost is fractional: the
# running total per label set is kept here in USD, and the counter is raised to its
# rounded value in millionths, so rounding never accumulates across calls.
_cost_totals: dict[tuple[str, ...], float] = {}
_cost_counted: dict[tuple[str, ...], int] = {}
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
    names = {"agent": labels("agent", agent), "model": labels("model", model),
             "team": labels("team", team)}
    meter.create_counter(MODEL_CALLS, "Model call attempts, by outcome").add(
        1, {**names, "outcome": outcome})
    if seconds is not None:
        meter.create_histogram_float(MODEL_CALL_SECONDS, "Model call attempt latency", "s").record(
            seconds, {**names, "outcome": outcome})
    if usage is None:
        return
    tokens = meter.create_counter(TOKENS, "Tokens reported by providers, by direction")
    tokens.add(usage.input_tokens, {**names, "direction": "input"})
    tokens.add(usage.output_tokens, {**names, "direction": "output"})
    if usage.cost_usd is not None:  # unknown prices are not counted as free
        meter.create_counter(COST, "Millionths of a USD spent on model calls with a known "
                             "price").add(_cost_increment(names, usage.cost_usd), names)


def _cost_increment(names: dict[str, str], cost_usd: float) -> int:
    """How many millionths of a USD to add to this series' counter for `cost_usd`."""
    info = activity.info()  # the SDK labels by these too: one total per series
    key = (info.namespace, info.task_queue, names["agent"], names["model"], names["team"])
    with _cost_lock:
        total = _cost_totals[key] = _cost_totals.get(key, 0.0) + cost_usd
        counted = round(total * MICROUSD_PER_USD)
        step, _cost_counted[key] = counted - _cost_counted.get(key, 0), counted
    return step


class _BreakerBoard(Protocol):
    def states(self) -> list[BreakerState]: ...


class BreakerGauge:
    """One worker's breaker states as gauges: 0 closed, 1 half-open, 2 open.

    Set after each model call attempt (where a breaker changes) and again when an
    open breaker's cool-down ends, so the gauge turns half-open on time even when no
    call comes (the SDK's exporter has no scrape-time callback to compute it then).

    A breaker is exported under its model's name only when that model is a known
    label. The others (models a run named, e.g. a `--model` override) are counted
    per state in `baton_unlisted_breakers`: never one `model="other"` series that
    several breakers would overwrite in turn, yet an open one still shows.
    """

    def __init__(self, board: _BreakerBoard) -> None:
        # Weak: the gauge is kept per board in a WeakKeyDictionary, and a pending
        # timer must not keep a stopped worker's board alive either.
        self._board = weakref.ref(board)
        self._meter: MetricMeter | None = None
        self._timer: asyncio.TimerHandle | None = None

    def observe(self, meter: MetricMeter) -> None:
        """Publish the board's states to `meter` now, and whenever a cool-down ends."""
        self._meter = meter
        self._publish()

    def _publish(self) -> None:
        board = self._board()
        if self._meter is None or board is None:
            return
        states = board.states()
        by_model = self._meter.create_gauge(
            BREAKER_STATE, "Circuit breaker state per model: 0 closed, 1 half-open, 2 open")
        unlisted = dict.fromkeys(BREAKER_CODES, 0)
        for state in states:
            if labels.knows("model", state.model):
                by_model.set(BREAKER_CODES[state.state], {"model": state.model})
            else:
                unlisted[state.state] += 1
        counts = self._meter.create_gauge(
            UNLISTED_BREAKERS, "Circuit breakers of models this worker does not list, by state")
        for name, count in unlisted.items():
            counts.set(count, {"state": name})
        self._wake_at_next_cooldown(states)

    def _wake_at_next_cooldown(self, states: list[BreakerState]) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        waits = [s.policy.cooldown_s - s.opened_for_s for s in states
                 if s.state == "open" and s.opened_for_s is not None]
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # no event loop to wake this one (not an async activity)
            return
        if waits:
            self._timer = loop.call_later(
                max(min(waits), 0.0) + COOLDOWN_MARGIN_S, self._publish)


_gauges: weakref.WeakKeyDictionary[_BreakerBoard, BreakerGauge] = weakref.WeakKeyDictionary()


def record_breaker_states(board: _BreakerBoard) -> None:
    """Each breaker's state, now and when its cool-down ends (see BreakerGauge)."""
    meter = _activity_meter()
    if meter is None:
        return
    gauge = _gauges.get(board)
    if gauge is None:
        gauge = _gauges[board] = BreakerGauge(board)
    gauge.observe(meter)


def record_tool_call(tool: str, agent: str, team: str, outcome: str) -> None:
    """One tool activity attempt: ok, invalid_arguments (the function did not run) or error."""
    meter = _activity_meter()
    if meter is None:
        return
    meter.create_counter(TOOL_CALLS, "Tool activity attempts, by outcome").add(
        1, {"tool": labels("tool", tool), "agent": labels("agent", agent),
            "team": labels("team", team), "outcome": outcome})


def record_run_result(team: str, status: str, nested: bool) -> None:
    """A run's final status; called from workflow code, counted once (not on replay)."""
    if status not in FINAL_STATUSES:
        return
    workflow.metric_meter().create_counter(RUN_RESULTS, "Runs finished, by status").add(
        1, {"team": labels("team", team), "status": status, "nested": str(nested).lower()})


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
    """Record each attempt of a tool's activity (the worker registers the tool, so its
    name is a known label)."""
    known_labels(tools=[name])

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
