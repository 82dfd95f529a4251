"""Prometheus metrics (baton/telemetry/metrics.py): one endpoint with the SDK's and Baton's numbers,
counted as the runs' own usage says, once per run even when replayed; labels only from
what the worker knows, breaker states current without a call, Prometheus naming."""

from __future__ import annotations

import asyncio
import re
import socket
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment, WorkflowEnvironment
from temporalio.worker import Replayer

import baton
from baton.activities.model import ModelCalls
from baton.core.errors import CircuitOpen
from baton.core.model_io import BreakerPolicy, Chaos, Message, ModelRequest
from baton.core.runs import TriageResult
from baton.core.usage import Price, Usage
from baton.define.catalogue import load_catalogue
from baton.runtime.temporal import Settings, connect, data_converter
from baton.telemetry.metrics import (
    BREAKER_STATE,
    COST,
    MICROUSD_PER_USD,
    MODEL_CALL_SECONDS,
    MODEL_CALLS,
    RUN_RESULTS,
    TOKENS,
    TOOL_CALLS,
    UNLISTED_BREAKERS,
    KnownLabels,
    MetricsAddressError,
    known_catalogue,
    metrics_runtime,
    parse_address,
)
from baton.workflows.registry import ALL_WORKFLOWS
from tests.helpers import fast_catalogue, finish, start, worker

ROOT = Path(__file__).resolve().parent.parent

Sample = tuple[str, dict[str, str], float]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def scrape(port: int) -> list[Sample]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as response:
        text = response.read().decode()
    samples = []
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        head, _, value = line.rpartition(" ")
        name, _, labels = head.partition("{")
        samples.append((name, dict(re.findall(r'(\w+)="((?:[^"\\]|\\.)*)"', labels)),
                        float(value)))
    return samples


def matching(samples: list[Sample], name: str, **labels: str) -> list[Sample]:
    return [(n, found, value) for n, found, value in samples
            if n == name and all(found.get(k) == v for k, v in labels.items())]


def total(samples: list[Sample], name: str, **labels: str) -> float:
    return sum(value for _, _, value in matching(samples, name, **labels))


def usd(samples: list[Sample], **labels: str) -> float:
    """The cost counter's total in USD (it counts millionths)."""
    return total(samples, COST, **labels) / MICROUSD_PER_USD


def rounding(samples: list[Sample], **labels: str) -> float:
    """How far `usd()` may be from the exact sum: each series is rounded once, to half a
    millionth, however many calls it counts (a rounding per call would add up)."""
    return 0.5 / MICROUSD_PER_USD * len(matching(samples, COST, **labels))


def metric_types(port: int) -> dict[str, str]:
    """Each metric's type as the exposition's `# TYPE` lines declare it."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as response:
        text = response.read().decode()
    return dict(re.findall(r"^# TYPE (\S+) (\S+)$", text, re.MULTILINE))


async def test_one_endpoint_counts_what_the_runs_spent(env: WorkflowEnvironment,
                                                       task_queue: str) -> None:
    from tests.data.tool_app import support

    port = free_port()
    runtime = metrics_runtime(f"127.0.0.1:{port}")
    address = env.client.service_client.config.target_host
    client = await connect(Settings(address=address), runtime=runtime)
    # billing's model is down and its circuit opens after two failures: the first run
    # opens it (two failed attempts), the second fails fast; offline:backup answers both.
    cat = fast_catalogue(billing={"fallback_models": ["offline:backup"]})
    cat.breakers["offline:standard"] = BreakerPolicy(failures=2, window_s=60, cooldown_s=600)
    cat.prices["offline:fast"] = Price(input_per_mtok=1.0, output_per_mtok=2.0)
    outage = Chaos(failure_rate=1.0, models=["offline:standard"])
    known_catalogue(support.catalogue())  # as `worker.py --app` declares its app's agents
    async with worker(client, task_queue, tools=support.tools()):
        # first, while offline:standard (support's model too) still answers
        handle = await baton.start(support, "Status of A-1001?", client=client,
                                   task_queue=task_queue)
        tooled = await asyncio.wait_for(handle.result(), 60)
        first = await start(client, task_queue, "support_desk", "Refund my invoice", cat=cat,
                            chaos=outage, result_type=TriageResult)
        opened = await finish(first)
        failed_fast = await finish(await start(client, task_queue, "support_desk",
                                               "Refund my invoice", cat=cat, chaos=outage,
                                               result_type=TriageResult))
    samples = scrape(port)

    assert (opened.status, failed_fast.status, tooled.status) == ("degraded", "degraded", "ok")
    spent = Usage.sum([opened.total_usage, failed_fast.total_usage, tooled.usage])
    # every attempt is a call, as the runs' budgets count them: router 1 + billing 2 failed
    # + backup 1, then router 1 + billing failing fast 1 + backup 1
    assert total(samples, MODEL_CALLS) == spent.calls == 4 + 3 + tooled.usage.calls
    billing = {"agent": "billing", "model": "offline:standard", "team": "support_desk"}
    assert total(samples, MODEL_CALLS, outcome="error", **billing) == 2
    assert total(samples, MODEL_CALLS, outcome="circuit_open", **billing) == 1
    assert total(samples, MODEL_CALLS, agent="support", team="support") == tooled.usage.calls
    assert total(samples, TOKENS, direction="input") == spent.input_tokens > 0
    assert total(samples, TOKENS, direction="output") == spent.output_tokens > 0
    # the latency of every attempt that reached a provider (not the fail-fast one)
    assert total(samples, f"{MODEL_CALL_SECONDS}_count") == spent.calls - 1
    assert total(samples, f"{MODEL_CALL_SECONDS}_sum") > 0
    router_cost = Usage.sum([opened.usage["router"], failed_fast.usage["router"]]).cost_usd
    assert router_cost is not None and router_cost > 0
    router = {"agent": "router", "team": "support_desk"}
    assert usd(samples, **router) == pytest.approx(router_cost, abs=rounding(samples, **router))
    assert usd(samples) == pytest.approx(spent.cost_usd, abs=rounding(samples))
    # tool calls with the tool agent (it calls both of its tools)
    assert tooled.usage.tool_calls == 2
    assert total(samples, TOOL_CALLS, agent="support", team="support", outcome="ok") == 2
    assert total(samples, TOOL_CALLS, tool="lookup_order") == 1
    # run results by status, breakers by model
    assert total(samples, RUN_RESULTS, team="support_desk", status="degraded",
                 nested="false") == 2
    assert total(samples, RUN_RESULTS, team="support", status="ok") == 1
    assert total(samples, RUN_RESULTS) == 3
    assert total(samples, BREAKER_STATE, model="offline:standard") == 2  # open
    assert total(samples, BREAKER_STATE, model="offline:fast") == 0  # closed
    # Prometheus naming, as the exposition declares the types: counters, and only
    # counters, end in _total (promtool's rule); cost is a counter, in millionths of a USD
    types = metric_types(port)
    ours = {name: kind for name, kind in types.items() if name.startswith("baton_")}
    assert ours == {MODEL_CALLS: "counter", TOKENS: "counter", COST: "counter",
                    TOOL_CALLS: "counter", RUN_RESULTS: "counter", BREAKER_STATE: "gauge",
                    UNLISTED_BREAKERS: "gauge", MODEL_CALL_SECONDS: "histogram"}
    assert all(name.endswith("_total") == (kind == "counter") for name, kind in ours.items())
    # the SDK's own worker metrics share the endpoint
    names = {name for name, _, _ in samples}
    assert {"temporal_workflow_completed", "temporal_activity_execution_latency_count"} <= names

    # replaying a finished run (another worker, `starter.py replay`) counts nothing again
    replayer = Replayer(workflows=ALL_WORKFLOWS, data_converter=data_converter(),
                        runtime=runtime)
    await replayer.replay_workflow(await first.fetch_history())
    assert total(scrape(port), RUN_RESULTS) == 3


def test_only_values_the_worker_declared_are_labels() -> None:
    known = KnownLabels()
    known.add("agent", ["a", "b"])
    assert [known("agent", v) for v in ("a", "c", "b", "d")] == ["a", "other", "b", "other"]
    assert known("model", "a") == "other"  # known per label, not across labels
    known.add("agent", ["c"])  # a worker adds its apps' and catalogues' names as it starts
    assert [known("agent", v) for v in ("a", "c")] == ["a", "c"]
    assert known("team", "") == "none"
    with pytest.raises(TypeError, match=r"must be a collection of names, e.g. \['writer'\]"):
        known.add("agent", "writer")


def model_request(model: str, *, fails: bool = False) -> ModelRequest:
    """A router call that opens its model's circuit when it fails."""
    return ModelRequest(agent="router", team="support_desk", model=model, instructions="i",
                        messages=[Message(role="user", content="hi")],
                        chaos=Chaos(failure_rate=1.0) if fails else None,
                        breaker=BreakerPolicy(failures=1, window_s=60, cooldown_s=600))


async def call(env: ActivityEnvironment, calls: ModelCalls, request: ModelRequest) -> str:
    """One model call attempt as the worker runs it: "ok", or the error's type."""
    try:
        await env.run(calls.call_model, request)
    except ApplicationError as err:
        return err.type or "error"
    return "ok"


async def test_a_flood_of_client_model_names_neither_becomes_labels_nor_merges_breakers(
) -> None:
    # The model activity as a worker runs it, on a meter that serves Prometheus text:
    # a client may name any model (`--model 'offline:My email is bob@example.com'`).
    port = free_port()
    runtime = metrics_runtime(f"127.0.0.1:{port}")  # held: the exporter lives with it
    env = ActivityEnvironment()
    env.metric_meter = runtime.metric_meter
    known_catalogue(load_catalogue())  # what build_worker declares
    calls = ModelCalls()
    flood = [f"offline:My email is bob{i}@example.com" for i in range(200)]
    # every fourth flooded model fails once, which opens its circuit
    outcomes = [await call(env, calls, model_request(m, fails=i % 4 == 0))
                for i, m in enumerate(flood)]
    assert outcomes.count("ModelUnavailable") == 50 and outcomes.count("ok") == 150
    # then the worker's own models: one answers, one fails and opens, then fails fast
    assert await call(env, calls, model_request("offline:fast")) == "ok"
    assert await call(env, calls, model_request("offline:standard", fails=True)) != "ok"
    assert await call(env, calls, model_request("offline:standard")) == CircuitOpen.TYPE
    samples = scrape(port)

    baton_samples = [s for s in samples if s[0].startswith("baton_")]
    assert not [s for s in baton_samples if "example.com" in str(s)]
    assert {labels.get("model") for _, labels, _ in baton_samples} == {
        "other", "offline:fast", "offline:standard", None}  # None: the unlisted count
    # the worker's models are still labelled by name after 200 others
    assert total(samples, MODEL_CALLS, model="offline:fast", outcome="ok") == 1
    assert total(samples, MODEL_CALLS, model="offline:standard", outcome="error") == 1
    assert total(samples, MODEL_CALLS, model="offline:standard", outcome="circuit_open") == 1
    assert total(samples, MODEL_CALLS, model="other") == 200
    # one breaker series per listed model, none for "other"; the 200 others are counted
    breakers = matching(samples, BREAKER_STATE)
    assert sorted((labels["model"], value) for _, labels, value in breakers) == [
        ("offline:fast", 0), ("offline:standard", 2)]
    assert total(samples, UNLISTED_BREAKERS, state="open") == 50
    assert total(samples, UNLISTED_BREAKERS, state="closed") == 150
    assert total(samples, UNLISTED_BREAKERS, state="half_open") == 0


async def test_the_breaker_gauge_turns_half_open_when_the_cooldown_ends_without_a_call(
        env: WorkflowEnvironment, task_queue: str) -> None:
    port = free_port()
    address = env.client.service_client.config.target_host
    client = await connect(Settings(address=address), runtime=metrics_runtime(
        f"127.0.0.1:{port}"))
    cooldown_s = 6.0  # longer than the rest of the run takes after the circuit opens
    cat = fast_catalogue(billing={"fallback_models": ["offline:backup"]})
    cat.breakers["offline:standard"] = BreakerPolicy(failures=1, window_s=60,
                                                     cooldown_s=cooldown_s)
    outage = Chaos(failure_rate=1.0, models=["offline:standard"])
    billing = {"model": "offline:standard"}
    async with worker(client, task_queue):
        await finish(await start(client, task_queue, "support_desk", "Refund my invoice",
                                 cat=cat, chaos=outage, result_type=TriageResult))
        opened = scrape(port)
        calls = total(opened, MODEL_CALLS)
        # no run, so no call: only the clock moves
        deadline = asyncio.get_running_loop().time() + cooldown_s + 10
        while (total(now := scrape(port), BREAKER_STATE, **billing) != 1
               and asyncio.get_running_loop().time() < deadline):
            await asyncio.sleep(0.25)
    assert total(opened, MODEL_CALLS, outcome="error", **billing) >= 1
    assert total(opened, BREAKER_STATE, **billing) == 2  # open
    assert total(now, BREAKER_STATE, **billing) == 1  # half-open, after the cool-down
    assert total(now, MODEL_CALLS) == calls  # and no call came in between


@pytest.mark.parametrize(("text", "bind"), [
    ("127.0.0.1:9464", "127.0.0.1:9464"),
    ("0.0.0.0:9464", "0.0.0.0:9464"),
    (":9464", "0.0.0.0:9464"),
    ("[::1]:9464", "[::1]:9464"),
])
def test_metrics_address_is_host_and_port(text: str, bind: str) -> None:
    assert parse_address(text) == bind


def test_host_names_are_resolved_for_the_exporter() -> None:
    assert parse_address("localhost:9464") in ("127.0.0.1:9464", "[::1]:9464")


@pytest.mark.parametrize(("text", "message"), [
    ("nonsense", "expected HOST:PORT"),
    ("127.0.0.1:", "expected HOST:PORT"),
    ("127.0.0.1:http", "expected HOST:PORT"),
    ("127.0.0.1:0", "the port must be 1-65535"),
    ("127.0.0.1:70000", "the port must be 1-65535"),
    ("no-such-host.invalid:9464", "cannot resolve host 'no-such-host.invalid'"),
])
def test_malformed_metrics_addresses_are_refused(text: str, message: str) -> None:
    with pytest.raises(MetricsAddressError, match=re.escape(message)):
        parse_address(text)


@pytest.fixture
def taken_port() -> Iterator[int]:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        yield int(holder.getsockname()[1])


def test_a_taken_port_is_refused(taken_port: int) -> None:
    with pytest.raises(MetricsAddressError, match="address already in use"):
        metrics_runtime(f"127.0.0.1:{taken_port}")


def worker_cli(*args: str) -> subprocess.CompletedProcess[str]:
    # Refused before connecting: no server is needed, and none is reachable here.
    return subprocess.run([sys.executable, "worker.py", *args], cwd=ROOT, capture_output=True,
                          text=True, timeout=60,
                          env={"PATH": "", "TEMPORAL_ADDRESS": "127.0.0.1:1"})


def test_worker_refuses_a_malformed_metrics_address() -> None:
    result = worker_cli("--metrics", "nonsense")
    assert result.returncode == 2, result.stdout + result.stderr
    assert "error: --metrics 'nonsense': expected HOST:PORT" in result.stdout


def test_worker_refuses_a_taken_metrics_port(taken_port: int) -> None:
    result = worker_cli("--metrics", f"127.0.0.1:{taken_port}")
    assert result.returncode == 2, result.stdout + result.stderr
    assert (f"error: --metrics '127.0.0.1:{taken_port}': cannot serve metrics on "
            f"127.0.0.1:{taken_port}: address already in use") in result.stdout


async def test_worker_process_serves_its_metrics(env: WorkflowEnvironment,
                                                 task_queue: str) -> None:
    from tests.helpers import run
    from tests.processes import stop
    from tests.test_worker import start_worker

    port = free_port()
    address = env.client.service_client.config.target_host
    process = await start_worker(address, task_queue, "--metrics", f"127.0.0.1:{port}")
    try:
        result = await run(env.client, task_queue, "support_desk", "Refund my invoice",
                           result_type=TriageResult)
        samples = scrape(port)
    finally:
        out, _ = await stop(process)
    assert process.returncode == 0, out.decode()
    assert f"metrics at http://127.0.0.1:{port}/metrics" in out.decode()
    assert total(samples, MODEL_CALLS, team="support_desk") == result.total_usage.calls
    assert total(samples, RUN_RESULTS, team="support_desk", status=result.status) == 1
    assert any(name.startswith("temporal_") for name, _, _ in samples)


def test_dashboard_queries_name_only_metrics_that_exist() -> None:
    import json

    from baton.telemetry import metrics

    dashboard = json.loads((ROOT / "deploy" / "grafana" / "baton-dashboard.json").read_text())
    exprs = [t["expr"] for p in dashboard["panels"] for t in p["targets"]]
    used = {name for e in exprs for name in re.findall(r"\bbaton_\w+", e)}
    known = {metrics.MODEL_CALLS, metrics.TOKENS, metrics.COST, metrics.TOOL_CALLS,
             metrics.RUN_RESULTS, metrics.BREAKER_STATE, metrics.UNLISTED_BREAKERS,
             f"{MODEL_CALL_SECONDS}_bucket"}
    assert used == known
    assert any("histogram_quantile(0.95" in e for e in exprs)
    assert any("histogram_quantile(0.5" in e for e in exprs)
