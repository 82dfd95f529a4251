"""Prometheus metrics (baton/metrics.py): one endpoint with the SDK's and Baton's numbers,
counted as the runs' own usage says, once per run even when replayed."""

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
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Replayer

import baton
from baton.metrics import (
    BREAKER_STATE,
    COST,
    MODEL_CALL_SECONDS,
    MODEL_CALLS,
    RUN_RESULTS,
    TOKENS,
    TOOL_CALLS,
    MetricsAddressError,
    _LabelCap,
    metrics_runtime,
    parse_address,
)
from baton.model_io import BreakerPolicy, Chaos
from baton.runs import TriageResult
from baton.temporal import Settings, connect, data_converter
from baton.usage import Price, Usage
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


def total(samples: list[Sample], name: str, **labels: str) -> float:
    return sum(value for n, found, value in samples
               if n == name and all(found.get(k) == v for k, v in labels.items()))


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
    assert total(samples, COST, agent="router", team="support_desk") == pytest.approx(router_cost)
    assert total(samples, COST) == pytest.approx(spent.cost_usd)
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
    # the SDK's own worker metrics share the endpoint
    names = {name for name, _, _ in samples}
    assert {"temporal_workflow_completed", "temporal_activity_execution_latency_count"} <= names

    # replaying a finished run (another worker, `starter.py replay`) counts nothing again
    replayer = Replayer(workflows=ALL_WORKFLOWS, data_converter=data_converter(),
                        runtime=runtime)
    await replayer.replay_workflow(await first.fetch_history())
    assert total(scrape(port), RUN_RESULTS) == 3


def test_label_values_beyond_the_cap_fold_into_other() -> None:
    cap = _LabelCap(2)
    assert [cap("agent", v) for v in ("a", "b", "c", "a", "d")] == ["a", "b", "other", "a",
                                                                    "other"]
    assert cap("team", "") == "none" and cap("team", "x") == "x"


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
    from tests.test_worker import start_worker

    port = free_port()
    address = env.client.service_client.config.target_host
    process = await start_worker(address, task_queue, "--metrics", f"127.0.0.1:{port}")
    try:
        result = await run(env.client, task_queue, "support_desk", "Refund my invoice",
                           result_type=TriageResult)
        samples = scrape(port)
    finally:
        process.terminate()
        out, _ = await asyncio.wait_for(process.communicate(), 30)
    assert process.returncode == 0, out.decode()
    assert f"metrics at http://127.0.0.1:{port}/metrics" in out.decode()
    assert total(samples, MODEL_CALLS, team="support_desk") == result.total_usage.calls
    assert total(samples, RUN_RESULTS, team="support_desk", status=result.status) == 1
    assert any(name.startswith("temporal_") for name, _, _ in samples)


def test_dashboard_queries_name_only_metrics_that_exist() -> None:
    import json

    from baton import metrics

    dashboard = json.loads((ROOT / "deploy" / "grafana" / "baton-dashboard.json").read_text())
    exprs = [t["expr"] for p in dashboard["panels"] for t in p["targets"]]
    used = {name for e in exprs for name in re.findall(r"\bbaton_\w+", e)}
    known = {metrics.MODEL_CALLS, metrics.TOKENS, metrics.COST, metrics.TOOL_CALLS,
             metrics.RUN_RESULTS, metrics.BREAKER_STATE, f"{MODEL_CALL_SECONDS}_bucket"}
    assert used == known
    assert any("histogram_quantile(0.95" in e for e in exprs)
    assert any("histogram_quantile(0.5" in e for e in exprs)
