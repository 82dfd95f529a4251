"""Property-based tests: whatever comes in is either used or refused clearly, never a crash.

- the starter's arguments: every command line either plans runs that would start
  (their input survives the trip to a worker) or is refused with exit status 2 and
  an `error:` (or argparse) message; never a traceback;
- catalogues (data and TOML text): a `Catalogue` or a `CatalogueError`, nothing else;
- `@baton.tool` signatures and `baton.Agent(...)` keywords: a tool whose schema is a
  valid JSON schema of its parameters (or `ToolDefinitionError`), an agent (or a
  `ValueError`/`TypeError` with a message);
- run inputs sent straight to the workflows through a client: each run completes or
  fails with a typed, non-retryable `ApplicationError` in bounded time; a workflow
  task that fails again and again (the run stuck forever) is a failure of the test;
- oversized inputs: prompts around the 32 MiB limit, a tool returning 5 MB.

Examples are derandomized (the same inputs every run, so CI cannot flake) with no
per-example deadline. `BATON_FUZZ_SEED=<n>` draws other inputs from that seed and
`BATON_FUZZ_SCALE=<k>` runs k times as many examples, for a deeper local search.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import copy
import dataclasses
import datetime
import enum
import inspect
import io
import json
import math
import os
import subprocess
import sys
import tempfile
import typing
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Annotated, Any, Literal
from unittest import mock

import jsonschema
import pytest
from google.protobuf.duration_pb2 import Duration
from hypothesis import HealthCheck, given, seed, settings
from hypothesis import strategies as st
from pydantic import BaseModel, Field, ValidationError
from temporalio.client import Client, WorkflowFailureError, WorkflowHandle
from temporalio.exceptions import ApplicationError
from temporalio.testing import WorkflowEnvironment

import baton
from baton.cli import common as cli_common
from baton.cli import starter
from baton.core.contracts import CONTRACTS
from baton.core.model_io import MAX_PROMPT_BYTES, Chaos, Message, ToolCall
from baton.core.runs import PATTERN_WORKFLOWS, RunInput, RunOptions, RunResult
from baton.core.specs import Catalogue
from baton.core.tools import ToolContext, ToolDefinitionError
from baton.core.usage import Budget
from baton.define.catalogue import CatalogueError, load_catalogue, parse_catalogue
from baton.runtime import launch
from baton.runtime.temporal import data_converter
from tests.helpers import fast_catalogue, worker
from tests.run_records import (
    failing_tasks,
    history_text,
    largest_payload,
    related_histories,
)

ROOT = Path(__file__).resolve().parent.parent
_SEED = os.environ.get("BATON_FUZZ_SEED")
_SCALE = float(os.environ.get("BATON_FUZZ_SCALE", "1"))


def fuzz(examples: int) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Hypothesis settings for this file: bounded, reproducible, no timing flakiness."""
    configured = settings(
        max_examples=max(1, int(examples * _SCALE)), deadline=None,
        derandomize=_SEED is None, database=None, print_blob=True,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                               HealthCheck.filter_too_much,
                               HealthCheck.function_scoped_fixture])

    def apply(test: Callable[..., Any]) -> Callable[..., Any]:
        test = configured(test)
        return seed(int(_SEED))(test) if _SEED is not None else test
    return apply


def non_finite_numbers(value: Any, where: str = "input") -> list[str]:
    """Paths of NaN or infinite floats in a dumped model (JSON turns them into null)."""
    if isinstance(value, float) and not math.isfinite(value):
        return [where]
    if isinstance(value, dict):
        return [p for k, v in value.items() for p in non_finite_numbers(v, f"{where}.{k}")]
    if isinstance(value, list):
        return [p for i, v in enumerate(value) for p in non_finite_numbers(v, f"{where}[{i}]")]
    return []


def round_trip(value: BaseModel, kind: type[BaseModel]) -> BaseModel:
    """`value` as a worker decodes it: through Baton's data converter and back."""
    converter = data_converter().payload_converter
    payloads = converter.to_payloads([value])
    decoded = converter.from_payloads(payloads, [kind])[0]
    assert isinstance(decoded, kind)
    return decoded


# --- 1. the starter's arguments -------------------------------------------------------

class _RecordingClient:
    """Stands in for a Temporal client: checks what `start_workflow` would send."""

    def __init__(self) -> None:
        self.started: list[dict[str, Any]] = []

    async def start_workflow(self, workflow: str, arg: Any, **options: Any) -> Any:
        assert isinstance(arg, RunInput)
        bad = non_finite_numbers(arg.model_dump())
        assert not bad, f"a run input carries NaN/infinity at {bad} (JSON sends null)"
        decoded = round_trip(arg, RunInput)
        assert decoded.model_dump(mode="json") == arg.model_dump(mode="json")
        timeout = options.get("execution_timeout")
        if timeout is not None:
            Duration().FromTimedelta(timeout)  # what the client would put on the wire
        assert 0 < len(options["id"].encode()) <= 1000
        self.started.append({"workflow": workflow, "id": options["id"]})
        return mock.Mock(id=options["id"])


@dataclasses.dataclass
class Outcome:
    status: int
    stdout: str
    stderr: str
    started: list[dict[str, Any]]


async def _not_connecting(*_: Any, **__: Any) -> Any:
    raise RuntimeError("fuzz: not connecting")


def run_starter(argv: list[str], stdin: str = "") -> Outcome:
    """`starter.main(argv)` in this process, with no server: runs it plans are checked
    by a recording client; commands that would connect stop at `connect`."""
    client = _RecordingClient()

    async def execute(args: Any, runs: Any) -> int:
        for planned in runs:
            await launch.start_run(client, "fuzz", planned.planned)  # type: ignore[arg-type]
        return 0

    out, err = io.StringIO(), io.StringIO()

    def call() -> int:
        # A thread of its own: main() calls asyncio.run, which must not touch the
        # event loop pytest-asyncio keeps for this thread.
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                return starter.main(argv)
            except SystemExit as exit_:
                return exit_.code if isinstance(exit_.code, int) else 2

    with mock.patch.object(starter, "execute", execute), \
            mock.patch.object(cli_common, "connect", _not_connecting), \
            mock.patch.object(sys, "stdin", io.StringIO(stdin)), \
            mock.patch.dict(os.environ, {"TEMPORAL_ADDRESS": "127.0.0.1:9"}), \
            concurrent.futures.ThreadPoolExecutor(1) as pool:
        status = pool.submit(call).result(timeout=60)
    return Outcome(status, out.getvalue(), err.getvalue(), client.started)


def check_refusal_or_start(argv: list[str], outcome: Outcome) -> None:
    where = f"argv={argv!r}\nstatus={outcome.status}\nstderr={outcome.stderr[-2000:]}"
    assert "Traceback" not in outcome.stderr + outcome.stdout, where
    assert outcome.status in (0, 2), where
    if outcome.status == 2:
        lines = outcome.stderr.split("\n")
        assert lines, where
        ours = lines[0].startswith("error: ")
        argparse_usage = lines[0].startswith("usage: ") and any(
            line.startswith("starter.py") and ": error: " in line for line in lines)
        assert ours or argparse_usage, where
        assert not outcome.started, where
        if ours and "cannot reach Temporal" not in outcome.stderr:
            assert len(lines[0]) > len("error: "), where


TEAMS = ["support_desk", "research_panel", "dev_team", "article_pipeline", "concierge_desk",
         "research_coordinator", "safe_desk", "project_team"]
AGENTS = ["router", "billing", "writer", "coder", "synthesizer", "relevance"]
COMMANDS = ["triage", "fanout", "supervisor", "pipeline", "composed"]
# Mostly usable values, so that one bad value meets an otherwise good command line.
GOOD_NUMBERS = ["1", "3", "0.5", "2.5", "600", "100", "1e-9", "1e6"]
BAD_NUMBERS = ["0", "-1", "1e309", "inf", "-inf", "nan", "NaN", "abc", "", "1_000",
               "99999999999999999999999", "0x10", " 2 ", "1e12", "1e15", "601", "1e300",
               "-0", "1e-320"]
NUMBERS = st.sampled_from(GOOD_NUMBERS * 3 + BAD_NUMBERS)
RATES = st.sampled_from(["0", "1", "0.3", "0.05", "0.5"] * 2
                        + ["1.5", "-0.1", "nan", "inf", "x", "1e-9", ""])
MODELS = st.sampled_from(["offline:fast", "offline:standard"] * 4 + [
    "offline:", ":fast", "gpt", "mystery:x", "openai:gpt-5-nano",
    "anthropic:claude-haiku-4-5", "offline: ", "offline:fast:extra", "OFFLINE:fast", "",
    "offline:ü", "offline:" + "m" * 300])
MEMBERS = st.one_of(st.sampled_from([*TEAMS, *AGENTS] * 2 + [
    "ghost", "", " ", "a/b", "support_desk ", "ROUTER"]), st.text(max_size=20))
# Random tokens never start with "-": an abbreviated --app/--catalogue/--file would
# import or read whatever the text names. Flags come from the list below.
WORDS = st.text(max_size=30).filter(lambda t: not t.startswith("-"))
PROMPTS = st.one_of(
    st.text(max_size=300),
    st.sampled_from(["", " ", "\n\t", "-", "héllo 🌍", "a\u202eb", "\x00nul", "\ud800lone",
                     "\udcff surrogate-escaped byte", "invoice " * 50]))


@st.composite
def flags(draw: st.DrawFn) -> list[str]:
    """Some of the common flags, with values good and bad."""
    options: list[list[str]] = [
        ["--model", draw(MODELS)], ["--json"], ["--follow"], ["--no-wait"],
        ["--budget-tokens", draw(NUMBERS)], ["--budget-calls", draw(NUMBERS)],
        ["--budget-usd", draw(NUMBERS)], ["--budget-tool-calls", draw(NUMBERS)],
        ["--deadline", draw(NUMBERS)], ["--chaos", draw(RATES)], ["--seed", draw(NUMBERS)],
        ["--latency", draw(NUMBERS)], ["--item", draw(WORDS)], ["--team", draw(MEMBERS)],
        ["--catalogue", draw(st.sampled_from([str(ROOT / "baton/default_catalogue.toml")] * 3
                                             + ["/nonexistent/c.toml", "/dev/null",
                                                str(ROOT / "pyproject.toml")]))],
        ["--app", draw(st.sampled_from(["no_such_module_xyz", "", "json", "os.path",
                                        "a-b", "tests.fuzz_no_such", "tests.fuzz_app",
                                        "tests.fuzz_app"]))],
    ]
    chosen = draw(st.lists(st.sampled_from(range(len(options))), max_size=4))
    return [token for index in chosen for token in options[index]]


@st.composite
def command_lines(draw: st.DrawFn) -> list[str]:
    kind = draw(st.sampled_from(["pattern"] * 4 + ["run"] * 2 + [
        "demo", "catalogue", "server", "chat", "random"]))
    if kind == "pattern":
        head = [draw(st.sampled_from(COMMANDS)), draw(PROMPTS)]
    elif kind == "run":
        head = ["run", draw(MEMBERS), draw(PROMPTS)]
    elif kind == "demo":
        head = ["demo"]
    elif kind == "catalogue":
        head = ["catalogue"]
    elif kind == "server":
        head = draw(st.sampled_from([
            ["breakers"], ["history", "wf-1"], ["replay"], ["replay", "wf-1"],
            ["reset", "wf-1"], ["pending"], ["approve", "wf-1"],
            ["reject", "wf-1", "--reason", ""], ["reject", "wf-1", "--reason", "no"],
            ["watch", "wf-1"], ["end", "s-1"], ["replay", "--file", "/nonexistent"],
            ["replay", "--file", str(ROOT / "pyproject.toml")]]))
    elif kind == "chat":
        head = ["chat", draw(MEMBERS), *draw(st.sampled_from([
            [], ["hello"], [""], ["--session", draw(WORDS)],
            ["--idle-timeout", draw(NUMBERS), "hi"]]))]
    else:
        return draw(st.lists(st.one_of(WORDS, st.sampled_from(
            ["triage", "run", "--json", "--", "-x", "-h", "--model"])), max_size=6))
    return head + draw(flags())


@fuzz(150)
@given(argv=command_lines(), stdin=st.sampled_from(["", "from stdin", " \n", "x" * 1000]))
def test_starter_arguments_start_a_run_or_are_refused(argv: list[str], stdin: str) -> None:
    outcome = run_starter(argv, stdin)
    check_refusal_or_start(argv, outcome)


@pytest.mark.parametrize("argv", [
    ["triage", "hi", "--latency", "1000"],
    ["triage", "hi", "--deadline", "inf"],
    ["triage", "hi", "--deadline", "1e12"],
    ["triage", "hi", "--budget-usd", "nan"],
    ["triage", "hi", "--budget-tokens", "inf"],
    ["chat", "support_desk", "hi", "--latency", "1000"],
    ["chat", "support_desk", "hi", "--idle-timeout", "nan"],
    ["run", "writer", "\udcff"],
])
def test_starter_found_cases(argv: list[str]) -> None:
    """Inputs the fuzzer found: each was a traceback (exit 1, or after connecting) or a
    limit silently dropped (NaN sent as null)."""
    check_refusal_or_start(argv, run_starter(argv))


def _subprocess_starter(*args: str, stdin: str | None = None) -> Any:
    env = {**os.environ, "TEMPORAL_ADDRESS": "127.0.0.1:9"}
    return subprocess.run([sys.executable, "starter.py", *args], cwd=ROOT, env=env,
                          input=stdin, capture_output=True, text=True, timeout=60)


@pytest.mark.parametrize("argv", [
    ["triage", "hi", "--latency", "1000", "--budget-usd", "nan", "--deadline", "inf"],
    ["run", "ghost", "héllo 🌍"],
    ["fanout", "x", "--chaos", "2"],
])
def test_starter_refusals_in_a_real_process(argv: list[str]) -> None:
    """A few examples end to end: a real process, its real exit status and output."""
    result = _subprocess_starter(*argv)
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    assert result.stderr.startswith(("error: ", "usage: ")), result.stderr


def test_starter_refuses_undecodable_argv_bytes() -> None:
    """Invalid UTF-8 on the command line arrives as lone surrogates (surrogateescape):
    refused before connecting, not a crash."""
    env = {**os.environ, "TEMPORAL_ADDRESS": "127.0.0.1:9"}
    result = subprocess.run([sys.executable, "starter.py", "triage", b"caf\xe9".decode(
        "utf-8", "surrogateescape")], cwd=ROOT, env=env, capture_output=True, timeout=60)
    stderr = result.stderr.decode(errors="replace")
    assert "Traceback" not in stderr
    assert result.returncode == 2, stderr
    assert stderr.startswith("error: cannot start support_desk:"), stderr


# --- 2. catalogues ----------------------------------------------------------------------

JUNK = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.floats()
    | st.text(max_size=12),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner,
                                                                  max_size=3),
    max_leaves=6)
WEIRD_NAMES = st.one_of(st.sampled_from(["x y", "", "ü", "n" * 80, "a/b", "default", "pii"]),
                        st.text(max_size=8))
AGENT_NAMES = ["a", "b", "c", "d"]
TEAM_NAMES = ["t1", "t2", "t3"]
MODEL_STRINGS = st.sampled_from(["offline:fast", "offline:standard"] * 3 + [
    "openai:gpt-5-nano", "anthropic:claude-haiku-4-5", "local:llama", "gpt", ":x",
    "mystery:y", "offline:", "offline: "])
CONTRACT_NAMES = st.sampled_from([None] * 4 + ["RouteDecision", "Plan", "Findings", "Review",
                                               "Article", "GuardrailVerdict",
                                               "NoSuchContract", ""])


@st.composite
def _sometimes_junk(draw: st.DrawFn, good: st.SearchStrategy[Any], rate: int) -> Any:
    return draw(JUNK) if draw(st.integers(0, 99)) < rate else draw(good)


class Fuzzer:
    """Strategies that give a plausible value, or junk `rate` percent of the time."""

    def __init__(self, rate: int) -> None:
        self.rate = rate
        self.names = st.one_of(*[st.sampled_from(AGENT_NAMES + TEAM_NAMES)] * 6, WEIRD_NAMES)
        self.agent_names = st.one_of(*[st.sampled_from(AGENT_NAMES)] * 6, WEIRD_NAMES)

    def of(self, good: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
        return _sometimes_junk(good, self.rate) if self.rate else good

    def agent_fields(self) -> dict[str, st.SearchStrategy[Any]]:
        of, names = self.of, self.names
        return {
            "model": of(MODEL_STRINGS),
            "fallback_models": of(st.lists(MODEL_STRINGS, max_size=2)),
            "contract": of(CONTRACT_NAMES),
            "handoffs": of(st.lists(names, max_size=3)),
            "default_handoff": of(names),
            "max_output_tokens": of(st.integers(1, 200_000)),
            "temperature": of(st.floats(0, 2) | st.none()),
            "timeout_s": of(st.floats(0.5, 3600)),
            "heartbeat_s": of(st.floats(0.5, 600)),
            "retry": of(st.fixed_dictionaries({}, optional={
                "max_attempts": st.integers(1, 20), "initial_interval_s": st.floats(0.1, 300),
                "backoff": st.floats(1, 10), "max_interval_s": st.floats(0.1, 3600)})),
            "max_repairs": of(st.integers(0, 10)),
            "tools": of(st.lists(st.sampled_from(["lookup", "ghost"]), max_size=2)),
            "max_tool_turns": of(st.integers(1, 100)),
            "input_guardrails": of(st.lists(st.sampled_from(["pii", "g", "ghost"]),
                                            max_size=2)),
            "output_guardrails": of(st.lists(st.sampled_from(["pii", "g"]), max_size=2)),
            "description": of(st.text(max_size=20)),
            "name": of(st.text(max_size=5)),
            "bogus_field": JUNK,
        }

    def agent(self) -> st.SearchStrategy[Any]:
        return self.of(st.fixed_dictionaries(
            {"instructions": self.of(st.sampled_from(["Do the work.", "é" * 3, " "]))},
            optional=self.agent_fields()))

    def team(self) -> st.SearchStrategy[Any]:
        return _team_spec(self)

    def tables(self) -> dict[str, st.SearchStrategy[Any]]:
        of = self.of
        tool = st.fixed_dictionaries(
            {"name": st.sampled_from(["lookup", "lookup", "lookup", "bad name", "", "t" * 70]),
             "description": st.text(max_size=10),
             "parameters": st.just({"type": "object", "properties": {}})},
            optional={"timeout_s": st.floats(1, 86_400), "max_attempts": st.integers(1, 100),
                      "approval": st.sampled_from(["never", "always", "policy"]),
                      "max_result_chars": st.integers(100, 1_000_000)})
        return {
            "teams": of(st.dictionaries(st.sampled_from(TEAM_NAMES) | WEIRD_NAMES,
                                        self.team(), max_size=3)),
            "defaults": of(st.fixed_dictionaries({}, optional=self.agent_fields())),
            # Only module names that are safe to import (or fail to): never random text.
            "app": st.sampled_from(["tests.fuzz_app"] * 12 + [
                "", "no_such_module_xyz", ["no_such_module_xyz"], 1, [1], {"a": 1}, None, [],
                "json", ["tests.fuzz_app", "tests.fuzz_app"]]),
            "tools": of(st.dictionaries(st.sampled_from(["lookup", "other"]) | WEIRD_NAMES,
                                        of(tool), max_size=2)),
            "guardrails": of(st.dictionaries(st.sampled_from(["g", "g"]) | WEIRD_NAMES,
                                             of(st.fixed_dictionaries({}, optional={
                "kind": st.sampled_from(["agent", "agent", "function", "x"]),
                "agent": self.agent_names, "parallel": st.booleans(),
                "timeout_s": st.floats(1, 3600)})), max_size=2)),
            "providers": of(st.dictionaries(st.sampled_from(["local"]) | WEIRD_NAMES,
                                            of(st.fixed_dictionaries(
                {"kind": st.sampled_from(["openai", "anthropic", "offline", "grpc"])},
                optional={"base_url": st.sampled_from(["http://localhost:1/v1"] * 3
                                                      + ["not a url", ""]),
                          "api_key_env": st.sampled_from(["MY_KEY"] * 3 + ["1BAD", "A B"])})),
                max_size=2)),
            "prices": of(st.dictionaries(MODEL_STRINGS, of(st.fixed_dictionaries(
                {"input_per_mtok": st.floats(0, 100), "output_per_mtok": st.floats(0, 100)})),
                max_size=2)),
            "breakers": of(st.dictionaries(MODEL_STRINGS | st.just("default"), of(
                st.fixed_dictionaries({}, optional={"failures": st.integers(1, 1000),
                                                    "window_s": st.floats(1, 86_400)})),
                max_size=2)),
            "budget": of(st.fixed_dictionaries({}, optional={
                "max_calls": st.integers(1, 10**20), "max_usd": st.floats(1e-6, 1e6),
                "max_seconds": st.floats(1, 1e8)})),
            "bogus_table": JUNK,
        }


@st.composite
def _team_spec(draw: st.DrawFn, fuzzer: Fuzzer) -> Any:
    of, names, agents = fuzzer.of, fuzzer.names, fuzzer.agent_names
    pattern = draw(st.sampled_from(["triage", "fanout", "supervisor", "pipeline"] * 3
                                   + ["swarm", None]))
    members = st.lists(names, min_size=1, max_size=3)
    fields: dict[str, st.SearchStrategy[Any]] = {
        "triage": {"router": agents, "nest_handoff_history": st.booleans()},
        "fanout": {"branches": members, "synthesizer": agents,
                   "planner": agents | st.none(), "members": members,
                   "map_member": names | st.none(),
                   "policy": st.sampled_from(["all", "quorum", "best_effort"]),
                   "quorum": st.integers(1, 5) | st.none(),
                   "max_branches": st.integers(1, 2000),
                   "branch_runs": st.sampled_from(["child", "activity", "auto"])},
        "supervisor": {"supervisor": agents, "workers": members,
                       "max_rounds": st.integers(1, 50),
                       "approve_acceptance": st.booleans()},
        "pipeline": {"stages": st.lists(st.fixed_dictionaries({"agent": names}, optional={
            "gate_field": st.sampled_from(["approved", "ok", "title", ""]),
            "loop_back_to": names, "approval": st.booleans()}), min_size=1, max_size=3),
            "max_attempts": st.integers(1, 20)},
    }.get(pattern or "", {})
    required = {"triage": ["router"], "fanout": ["synthesizer"],
                "supervisor": ["supervisor", "workers"], "pipeline": ["stages"]}
    spec = draw(st.fixed_dictionaries(
        {k: of(v) for k, v in fields.items() if k in required.get(pattern or "", [])},
        optional={k: of(v) for k, v in fields.items()
                  if k not in required.get(pattern or "", [])}))
    if pattern is not None:
        spec["pattern"] = pattern
    spec.update(draw(st.fixed_dictionaries({}, optional={
        "input_guardrails": of(st.lists(st.sampled_from(["pii", "g"]), max_size=2)),
        "description": of(st.text(max_size=10)),
        "output_guardrails": of(st.lists(st.sampled_from(["pii", "ghost"]),
                                         max_size=2))})))
    return draw(of(st.just(spec)))


def _catalogue_strategy(rate: int) -> st.SearchStrategy[dict[str, Any]]:
    fuzzer = Fuzzer(rate)
    agents = fuzzer.of(st.dictionaries(fuzzer.agent_names, fuzzer.agent(), min_size=1,
                                       max_size=4))
    return st.fixed_dictionaries({"agents": agents}, optional=fuzzer.tables())


# Built once: making hypothesis strategies is slow, drawing from them is not.
CATALOGUE_DATA = st.one_of(*(_catalogue_strategy(rate) for rate in (0, 0, 0, 2, 10, 40)))


@st.composite
def catalogue_data(draw: st.DrawFn) -> dict[str, Any]:
    return dict(draw(CATALOGUE_DATA))


def _paths(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every path to a dict entry or list item inside `value`."""
    found: list[tuple[Any, ...]] = []
    items = (value.items() if isinstance(value, dict)
             else enumerate(value) if isinstance(value, list) else [])
    for key, inner in items:
        found.append((*prefix, key))
        found += _paths(inner, (*prefix, key))
    return found


@st.composite
def mutated_catalogue(draw: st.DrawFn) -> dict[str, Any]:
    """A valid catalogue with every pattern and a composition, then a few mutations."""
    raw: dict[str, Any] = {
        "app": "tests.fuzz_app",
        "agents": {
            "r": {"instructions": "Route.", "handoffs": ["a", "b", "t_fan"],
                  "default_handoff": "a"},
            "a": {"instructions": "A.", "tools": ["lookup"]},
            "b": {"instructions": "B.", "model": "offline:standard",
                  "fallback_models": ["offline:backup"]},
            "s": {"instructions": "Synthesize."},
            "p": {"instructions": "Plan.", "contract": "Plan"},
            "w": {"instructions": "Write.", "contract": "Draft"},
            "j": {"instructions": "Edit.", "contract": "EditedDraft"},
            "g": {"instructions": "Guard.", "contract": "GuardrailVerdict"},
        },
        "teams": {
            "t_tri": {"pattern": "triage", "router": "r", "input_guardrails": ["pii"]},
            "t_fan": {"pattern": "fanout", "branches": ["a", "b"], "synthesizer": "s",
                      "policy": "quorum"},
            "t_plan": {"pattern": "fanout", "planner": "p", "members": ["a", "b"],
                       "synthesizer": "s", "max_branches": 3},
            "t_map": {"pattern": "fanout", "map_member": "a", "synthesizer": "s"},
            "t_sup": {"pattern": "supervisor", "supervisor": "s", "workers": ["a", "t_fan"]},
            "t_pipe": {"pattern": "pipeline", "stages": [
                {"agent": "w"}, {"agent": "j", "gate_field": "approved", "loop_back_to": "w"}]},
        },
        "guardrails": {"judge": {"kind": "agent", "agent": "g"}},
        "budget": {"max_calls": 50},
    }
    raw["agents"]["s"]["output_guardrails"] = draw(st.sampled_from([[], ["judge"]]))
    for _ in range(draw(st.integers(0, 3))):
        paths = _paths(raw)
        path = paths[draw(st.integers(0, len(paths) - 1))]
        parent = raw
        for key in path[:-1]:
            parent = parent[key]
        key = path[-1]
        action = draw(st.sampled_from(["delete", "junk", "name", "rename", "number"]))
        if action == "delete":
            del parent[key]
        elif action == "junk":
            parent[key] = draw(JUNK)
        elif action == "name":
            parent[key] = draw(st.sampled_from(["a", "r", "t_fan", "t_tri", "ghost", "",
                                                "judge", "pii", "Plan", "x y"]))
        elif action == "number":
            parent[key] = draw(st.sampled_from([0, -1, 1, 10**9, 0.5, math.inf, math.nan]))
        elif isinstance(parent, dict):
            parent[draw(WEIRD_NAMES | st.sampled_from(["a", "t_tri"]))] = parent.pop(key)
    return raw


@fuzz(200)
@given(raw=mutated_catalogue())
def test_mutated_catalogues_load_or_raise_catalogue_error(raw: dict[str, Any]) -> None:
    check_catalogue_loads_or_refuses(lambda: parse_catalogue(copy.deepcopy(raw)))


def check_catalogue_loads_or_refuses(load: Callable[[], Catalogue]) -> Catalogue | None:
    try:
        catalogue = load()
    except CatalogueError as err:
        assert str(err).strip(), "a CatalogueError says what is wrong"
        assert "Traceback" not in str(err)
        return None
    check_usable(catalogue)
    return catalogue


def check_usable(catalogue: Catalogue) -> None:
    """What loads can run: every member's input reaches a worker intact, and the
    catalogue survives the dump-and-parse that `App.catalogue` and `with_model` do."""
    reparsed = parse_catalogue(catalogue.model_dump(mode="json"))
    assert reparsed.model_dump() == catalogue.model_dump()
    for member in [*catalogue.teams, *catalogue.agents]:
        planned = launch.plan_run(catalogue, member, [Message(role="user", content="hi")],
                                  RunOptions(), items=["one"])
        decoded = round_trip(planned.input, RunInput)
        assert decoded.model_dump(mode="json") == planned.input.model_dump(mode="json")
    try:
        catalogue.with_model("offline:fast")
    except ValueError as err:
        assert str(err)


@fuzz(150)
@given(raw=catalogue_data())
def test_catalogue_data_loads_or_raises_catalogue_error(raw: dict[str, Any]) -> None:
    check_catalogue_loads_or_refuses(lambda: parse_catalogue(copy.deepcopy(raw)))


DEFAULT_TOML = (ROOT / "baton" / "default_catalogue.toml").read_text().splitlines()
TOML_TOKENS = st.sampled_from([
    "[agents.x]", "[teams.t]", 'pattern = "triage"', "router = 1", "[[teams.t.stages]]",
    "instructions = \"\"", "model = \"offline\"", "handoffs = [\"ghost\"]", "= 1", "[",
    "max_calls = -1", "[budget]", "app = \"no_such_module_xyz\"", "defaults = 3",
    "timeout_s = inf", "timeout_s = nan", "retry = { max_attempts = 0 }", "x = 1979-05-27",
    "contract = \"Plan\"", "[prices.\"offline:fast\"]", "input_per_mtok = -1",
    'tools = ["lookup"]', "\ufeff", "\x00", "a = \"\\ud800\""])


@st.composite
def mutated_toml(draw: st.DrawFn) -> str:
    lines = list(DEFAULT_TOML)
    for _ in range(draw(st.integers(1, 4))):
        at = draw(st.integers(0, len(lines)))
        action = draw(st.sampled_from(["delete", "duplicate", "insert", "replace_value"]))
        if action == "delete" and lines:
            del lines[min(at, len(lines) - 1)]
        elif action == "duplicate" and lines:
            lines.insert(at, lines[min(at, len(lines) - 1)])
        elif action == "insert":
            lines.insert(at, draw(TOML_TOKENS | st.text(max_size=20)))
        elif lines:
            line = lines[min(at, len(lines) - 1)]
            key, sep, _ = line.partition("=")
            if sep:
                value = draw(st.sampled_from(['""', "0", "-1", "[]", "{}", "true", "1e400",
                                              '"offline:fast"', '"ghost"', "[1, 2]"]))
                lines[min(at, len(lines) - 1)] = f"{key}= {value}"
    return "\n".join(lines) + "\n"


@fuzz(100)
@given(text=mutated_toml())
def test_catalogue_toml_loads_or_raises_catalogue_error(text: str) -> None:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "catalogue.toml"
        path.write_text(text, encoding="utf-8", errors="surrogatepass")
        check_catalogue_loads_or_refuses(lambda: load_catalogue(path))


@pytest.mark.parametrize("raw", [
    {"agents": {"a": {"instructions": "x"}}, "defaults": 3},
    {"agents": {"a": {"instructions": "x"}}, "prices": [1]},
    {"agents": {"a": {"instructions": "x"}}, "app": "tests.fuzz_app", "tools": [1]},
    {"agents": {"a": {"instructions": "x", "input_guardrails": ["g h"]}},
     "guardrails": {"g h": {"kind": "function"}}},
    {"agents": {"a": {"instructions": "x"}},
     "teams": {"t": {"pattern": "fanout", "planner": "", "members": ["a"], "synthesizer": "a"}}},
    {"agents": {"a": {"instructions": "x"}},
     "teams": {"t": {"pattern": "fanout", "map_member": "", "synthesizer": "a"}}},
])
def test_catalogue_found_cases(raw: dict[str, Any]) -> None:
    """Catalogues the fuzzer found."""
    check_catalogue_loads_or_refuses(lambda: parse_catalogue(copy.deepcopy(raw)))


# --- 3. @baton.tool signatures and baton.Agent keywords ---------------------------------

class FuzzOrder(BaseModel):
    order_id: str
    quantity: int = 1


@dataclasses.dataclass
class FuzzPoint:
    x: int
    y: int = 0


class FuzzColor(enum.Enum):
    RED = "red"
    BLUE = "blue"


class FuzzPlain:
    """Not a type pydantic can make a schema of."""


T = typing.TypeVar("T")
# What a parameter may be annotated with, as written in source (all resolvable in
# TOOL_NAMESPACE except 'Undefined', a forward reference to nothing).
ANNOTATIONS = [
    "int", "str", "float", "bool", "None", "type(None)", "list[int]", "dict[str, int]",
    "dict[int, str]", "Any", "object", "bytes", "complex", "set[int]", "tuple[int, ...]",
    "int | None", "Literal['a', 'b']", "Annotated[int, Field(ge=0)]",
    "Annotated[str, Field(description='the text')]", "FuzzOrder", "FuzzPoint", "FuzzColor",
    "datetime.datetime", "Callable[[int], int]", "FuzzPlain", "'Undefined'", "ToolContext",
    "T", "list", "type", "Iterator[int]", "list[FuzzPlain]", "'int'", "list[FuzzOrder]",
    "Annotated[int, 'meta']", "typing.Optional[str]", "frozenset[str]",
]
DEFAULTS = ["1", "'x'", "None", "[]", "Field(default=1)", "Field(description='d')",
            "object()", "float('nan')", "lambda: 1", "FuzzColor.RED", "b'raw'",
            "Field(default_factory=list)", "...", "float('inf')"]
TOOL_NAMESPACE = {
    "Any": Any, "Literal": Literal, "Annotated": Annotated, "Field": Field,
    "FuzzOrder": FuzzOrder, "FuzzPoint": FuzzPoint, "FuzzColor": FuzzColor,
    "FuzzPlain": FuzzPlain, "datetime": datetime, "Callable": Callable,
    "ToolContext": ToolContext, "T": T, "Iterator": Iterator, "typing": typing,
}
IDENTIFIERS = st.from_regex(r"[a-z_][a-z0-9_]{0,8}", fullmatch=True).filter(
    lambda n: n not in {"if", "in", "is", "or", "as", "def", "for", "and", "not", "del",
                        "try", "None", "pass", "with", "from", "else", "elif", "while",
                        "break", "class", "raise", "yield", "async", "await", "global",
                        "lambda", "return", "assert", "import", "except", "finally",
                        "continue", "nonlocal", "match", "case", "_"})


@st.composite
def tool_sources(draw: st.DrawFn) -> str:
    """The source of a function with a generated signature (and docstring)."""
    names = draw(st.lists(IDENTIFIERS, max_size=4, unique=True))
    parts: list[str] = []
    defaulted = False
    for index, name in enumerate(names):
        kind = draw(st.sampled_from(["plain"] * 6 + ["var", "kw", "pos_only", "kw_only"]))
        annotation = draw(st.sampled_from(ANNOTATIONS[:4] * 3 + ANNOTATIONS + [""]))
        text = f"{name}: {annotation}" if annotation else name
        if kind == "var":
            parts.append(f"*{text}")
            continue
        if kind == "kw" and index == len(names) - 1:
            parts.append(f"**{text}")
            continue
        if kind == "pos_only" and parts and "/" not in parts and "*" not in str(parts):
            parts.append("/")
        if kind == "kw_only" and not any(p.startswith("*") for p in parts):
            parts.append("*")
            defaulted = False
        if draw(st.booleans()) or (defaulted and not any(p.startswith("*") for p in parts)):
            default = draw(st.sampled_from(DEFAULTS))
            text += f" = {default}" if annotation else f"={default}"
            defaulted = True
        parts.append(text)
    doc = draw(st.sampled_from([
        "", '"""Look something up."""',
        '"""Look it up.\n\n    Args:\n        ' + (names[0] if names else "x")
        + ': what to look up\n    """',
        '""":param ' + (names[0] if names else "x") + ': sphinx style"""', '"""\\u2603"""']))
    prefix = draw(st.sampled_from(["def", "def", "async def"]))
    fname = draw(IDENTIFIERS)
    return f"{prefix} {fname}({', '.join(parts)}) -> Any:\n    {doc}\n    return None\n"


TOOL_OPTIONS = st.fixed_dictionaries({}, optional={
    "name": st.sampled_from(["ok_name", "bad name", "", "n" * 65, "émoji", "a-b_c"]),
    "description": st.sampled_from(["Does things.", "", "x" * 5000]),
    "timeout": st.sampled_from([1, 0.5, 0, -1, math.nan, math.inf, 86_401, "10"]),
    "max_attempts": st.sampled_from([1, 3, 0, -2, 101, 2.5]),
    "heartbeat": st.sampled_from([None, 1.0, 0, 3601]),
    "local": st.booleans(),
    "on_failure": st.sampled_from(["report", "fail_agent", "explode"]),
    "max_result_chars": st.sampled_from([100, 99, 1_000_000, 1_000_001]),
    "approval": st.sampled_from([False, True, "yes", 1, None]) | st.just(lambda **_: True),
    "approval_timeout": st.sampled_from([1.0, 0, -5, 365 * 86_400 + 1]),
    "approval_default": st.sampled_from(["approve", "reject", "maybe"]),
})


def define(source: str) -> Callable[..., Any]:
    namespace = dict(TOOL_NAMESPACE)
    exec(compile(source, "<fuzz tool>", "exec"), namespace)  # our own generated source
    [fn] = [v for k, v in namespace.items() if k not in TOOL_NAMESPACE
            and k != "__builtins__"]
    return typing.cast(Callable[..., Any], fn)


@pytest.mark.filterwarnings("ignore::pydantic.json_schema.PydanticJsonSchemaWarning")
@fuzz(200)
@given(source=tool_sources(), options=TOOL_OPTIONS)
def test_tool_signatures_make_a_valid_schema_or_a_tool_definition_error(
        source: str, options: dict[str, Any]) -> None:
    check_tool(source, options)


def check_tool(source: str, options: dict[str, Any]) -> None:
    try:
        fn = define(source)
    except SyntaxError:
        return  # not a Python function (e.g. a non-default parameter after a default)
    try:
        made = baton.tool(**options)(fn) if options else baton.tool(fn)
    except ToolDefinitionError as err:
        assert str(err).startswith(("tool ", "@tool")), err
        return
    schema = made.definition.parameters
    jsonschema.Draft202012Validator.check_schema(schema)
    json.dumps(schema, allow_nan=False)  # providers take strict JSON
    assert schema.get("type") == "object"
    parameters = [p for p in inspect.signature(fn).parameters.values()
                  if typing.get_type_hints(fn, include_extras=True).get(p.name)
                  is not ToolContext]
    assert set(schema.get("properties", {})) == {p.name for p in parameters}
    assert set(schema.get("required", [])) <= {p.name for p in parameters}
    # The model's schema and the tool's own validation agree on calling it bare.
    schema_accepts = jsonschema.Draft202012Validator(schema).is_valid({})
    try:
        made.validate({})
        tool_accepts = True
    except ValidationError:
        tool_accepts = False
    assert schema_accepts == tool_accepts, (schema, tool_accepts)
    # A tool an agent can use, whose definition reaches the worker intact.
    agent = baton.Agent("fuzz_agent", "Use the tool.", tools=[made])
    check_usable(agent.catalogue())


@pytest.mark.parametrize("source", [
    "def f(x: int = float('nan')) -> Any:\n    return x\n",
    "def f(x: float = float('inf')) -> Any:\n    return x\n",
])
def test_tool_found_cases(source: str) -> None:
    """Signatures the fuzzer found."""
    check_tool(source, {})


@baton.tool
def fuzz_lookup(order_id: str) -> str:
    """Look an order up."""
    return order_id


class FuzzAnswer(BaseModel):
    text: str
    ok: bool = True


FRIEND = baton.Agent("friend", "Help.")
AGENT_KWARGS = st.fixed_dictionaries({}, optional={
    "model": st.sampled_from(["offline:fast", "openai:gpt-5-nano", "gpt", ":x", "mystery:m",
                              "", None, 1]),
    "description": st.sampled_from(["", "Helps.", None, 3]),
    "tools": st.lists(st.sampled_from([fuzz_lookup, "fuzz_lookup", 1, None, len]),
                      max_size=2),
    "output": st.sampled_from([None, FuzzAnswer, dict, "FuzzAnswer", int, FuzzAnswer(text="x"),
                               BaseModel]),
    "handoffs": st.lists(st.sampled_from([FRIEND, "friend", None, 1]), max_size=2),
    "default_handoff": st.sampled_from([None, FRIEND, "friend"]),
    "fallback_models": st.sampled_from([[], ["offline:backup"], "offline:fast", ["gpt"],
                                        [None], None]),
    "timeout_s": st.sampled_from([1, 60.0, 0, -1, math.nan, math.inf, 3601, "5", None]),
    "heartbeat_s": st.sampled_from([1, 0, 601, math.nan]),
    "retry": st.sampled_from([None, {}, {"max_attempts": 2}, {"max_attempts": 0},
                              {"bogus": 1}, 3, baton.RetrySpec(max_attempts=5)]),
    "max_output_tokens": st.sampled_from([1, 1024, 0, -1, 200_001, 2.5, True]),
    "temperature": st.sampled_from([None, 0.0, 2.0, 2.1, -0.1, math.nan, "hot"]),
    "max_repairs": st.sampled_from([0, 2, -1, 11]),
    "max_tool_turns": st.sampled_from([1, 0, 101]),
    "input_guardrails": st.lists(st.sampled_from(["pii", FRIEND, None]), max_size=2),
    "output_guardrails": st.lists(st.sampled_from(["pii", FRIEND]), max_size=1),
})


@fuzz(300)
@given(name=st.sampled_from(["agent", "a b", "", "ü", "friend", "n" * 300]) | st.text(
    max_size=10), instructions=st.sampled_from(["Do it.", "", " ", "x" * 10_000]),
    kwargs=AGENT_KWARGS)
def test_agent_keywords_make_an_agent_or_a_clear_error(name: str, instructions: str,
                                                       kwargs: dict[str, Any]) -> None:
    known = dict(CONTRACTS)  # an agent's output model registers as a contract
    try:
        try:
            agent = baton.Agent(name, instructions, **kwargs)
        except (ValueError, TypeError) as err:
            assert str(err).strip(), f"{type(err).__name__} without a message"
            return
        try:
            catalogue = agent.catalogue()
        except ValueError as err:
            assert str(err).strip()
            return
        check_usable(catalogue)
    finally:
        CONTRACTS.clear()
        CONTRACTS.update(known)


# --- 4. run inputs sent straight to the workflows ----------------------------------------

# A run that has neither finished nor failed a workflow task by then is stuck.
RUN_TIMEOUT_S = 90
# Temporal refuses any payload above 2 MB; Baton's must stay far below it.
PAYLOAD_LIMIT = 2 * 1024 * 1024

WORKFLOW_CATALOGUE = fast_catalogue()
RUNNABLE = [*WORKFLOW_CATALOGUE.teams, *WORKFLOW_CATALOGUE.agents]


@dataclasses.dataclass
class Case:
    """One input sent to one workflow type."""

    workflow: str
    arg: Any
    note: str
    workflow_id: str | None = None

    def describe(self) -> str:
        shown = self.arg.model_dump(mode="json") if isinstance(self.arg, BaseModel) \
            else self.arg
        text = json.dumps(shown, default=str)
        return f"{self.workflow} <- {self.note}: {text[:600]}"


SHORT_PROMPTS = st.sampled_from([
    "My invoice is wrong", "héllo wörld 🌍🚀", "\u202eRTL override\u202c then text",
    "nul \x00 inside", "e\u0301\u0301\u0301 combining", "line\r\nbreaks\n\n\t", "\ufeffBOM",
    "a" * 5000, "日本語のテキスト", "   padded   ", "{\"json\": true}", "</conversation_history>",
]) | st.text(min_size=1, max_size=50).filter(lambda t: t.strip() != "" and all(
    not 0xD800 <= ord(c) <= 0xDFFF for c in t))


@st.composite
def conversations(draw: st.DrawFn) -> list[Message]:
    """Conversations that RunInput accepts, with odd earlier turns."""
    earlier: list[Message] = []
    for index in range(draw(st.integers(0, 3))):
        role = draw(st.sampled_from(["user", "assistant", "tool"]))
        content = draw(st.sampled_from(["", " ", "earlier turn", "x" * 300]) | SHORT_PROMPTS)
        if role == "tool":
            earlier.append(Message(role="tool", content=content,
                                   tool_call_id=draw(st.sampled_from(["call_1", "nope", "é"]))))
        elif role == "assistant":
            calls = draw(st.lists(st.builds(
                ToolCall, id=st.sampled_from(["call_1", "", "c" * 100]),
                name=st.sampled_from(["lookup", "", "delegate_to_ghost"]),
                arguments=st.sampled_from([{}, {"q": 1}, {"nested": {"a": [1, None]}}])),
                max_size=2))
            earlier.append(Message(role="assistant", content=content, tool_calls=calls,
                                   agent=draw(st.sampled_from([None, "router", "ghost", ""]))))
        else:
            earlier.append(Message(role="user", content=content or f"turn {index}"))
    return [*earlier, Message(role="user", content=draw(SHORT_PROMPTS))]


BUDGETS = st.sampled_from([
    Budget(), Budget(), Budget(max_calls=1), Budget(max_tokens=1), Budget(max_usd=1e-9),
    Budget(max_tool_calls=1), Budget(max_seconds=0.001), Budget(max_seconds=2),
    Budget(max_tokens=10**30, max_calls=10**30), Budget(max_calls=3, max_tokens=50),
])
CHAOS = st.sampled_from([
    None, None, None, Chaos(failure_rate=1.0), Chaos(malformed_rate=1.0, seed=3),
    Chaos(rejection_rate=1.0), Chaos(failure_rate=0.5, malformed_rate=0.5, seed=11),
    Chaos(down_models=["offline:fast", "offline:standard"]), Chaos(latency_s=0.05),
])


@st.composite
def valid_cases(draw: st.DrawFn) -> Case:
    """Inputs RunInput accepts, mostly to the member's own workflow."""
    member = draw(st.sampled_from(RUNNABLE))
    own = PATTERN_WORKFLOWS[WORKFLOW_CATALOGUE.pattern_of(member)]
    workflow = draw(st.sampled_from([own] * 6 + sorted(PATTERN_WORKFLOWS.values())))
    team = WORKFLOW_CATALOGUE.teams.get(member)
    items = draw(st.sampled_from([None, ["one"], ["", "two"], ["x" * 2000] * 3])) \
        if getattr(team, "map_member", None) else None
    run = RunInput(member=member, messages=draw(conversations()),
                   catalogue=WORKFLOW_CATALOGUE.closure(member),
                   options=RunOptions(budget=draw(BUDGETS), chaos=draw(CHAOS),
                                      model_override=draw(st.sampled_from([None, "x", ""]))),
                   path=draw(st.sampled_from(["", "a/b", "ü"])), items=items)
    return Case(workflow, run, f"{member} via {workflow}")


def _valid_dump(member: str = "writer") -> dict[str, Any]:
    return RunInput(member=member, messages=[Message(role="user", content="hi")],
                    catalogue=WORKFLOW_CATALOGUE.closure(member)).model_dump(mode="json")


def _with(data: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    data = copy.deepcopy(data)
    *parents, last = path.split(".")
    target: Any = data
    for key in parents:
        target = target[int(key)] if isinstance(target, list) else target[key]
    if isinstance(target, list):
        target[int(last)] = value
    else:
        target[last] = value
    return data


# Inputs RunInput refuses (a client of another language, an older or newer Baton, a
# hand-written `temporal workflow start --input`) and members no workflow can run.
UNUSABLE = [
    ("unknown member", _with(_valid_dump(), "member", "ghost")),
    ("empty member", _with(_valid_dump(), "member", "")),
    ("system role", _with(_valid_dump(), "messages.0.role", "system")),
    ("empty last message", _with(_valid_dump(), "messages.0.content", "")),
    ("no messages", _with(_valid_dump(), "messages", [])),
    ("prompt over the limit", _with(_valid_dump(), "messages.0.content",
                                    "x" * (MAX_PROMPT_BYTES + 1))),
    ("zero call budget", _with(_valid_dump(), "options.budget.max_calls", 0)),
    ("unknown pattern", _with(_valid_dump("support_desk"), "catalogue.teams.support_desk.pattern",
                              "swarm")),
    ("dangling handoff", _with(_valid_dump("support_desk"),
                               "catalogue.agents.router.handoffs", ["ghost"])),
    ("no catalogue", {k: v for k, v in _valid_dump().items() if k != "catalogue"}),
    ("member is a number", _with(_valid_dump(), "member", 5)),
    ("a string", "just a prompt"),
    ("null", None),
]


def generate(strategy: st.SearchStrategy[Case], count: int) -> list[Case]:
    """`count` distinct, reproducible draws (hypothesis as a generator: the runs are
    then started together, which a one-example-at-a-time search cannot do; it draws
    near-duplicates often, so it draws more and keeps distinct ones)."""
    drawn: dict[str, Case] = {}

    @fuzz(count * 5)
    @given(case=strategy)
    def collect(case: Case) -> None:
        drawn.setdefault(case.describe(), case)

    collect()
    return list(drawn.values())[:count]


async def settle(client: Client, handle: WorkflowHandle[Any, Any],
                 timeout_s: float = RUN_TIMEOUT_S) -> tuple[str, Any]:
    """('completed', result), ('failed', cause) or ('stuck', why): a workflow task that
    fails is found within a second or so, not after the timeout."""
    result = asyncio.ensure_future(handle.result())
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    try:
        while True:
            done, _ = await asyncio.wait({result}, timeout=1.0)
            if done:
                try:
                    return "completed", result.result()
                except WorkflowFailureError as err:
                    return "failed", err.cause
            stuck = [f for h in await related_histories(client, handle.id)
                     for f in failing_tasks(h)]
            if stuck:
                return "stuck", "; ".join(stuck)
            if loop.time() > deadline:
                return "stuck", f"no result after {timeout_s} s"
    finally:
        if not result.done():
            result.cancel()
            with contextlib.suppress(Exception):
                await handle.terminate("test_fuzz: stuck")


async def run_case(client: Client, task_queue: str, case: Case) -> tuple[str, str | None]:
    """(how the run ended, None when it behaved or else what went wrong)."""
    handle = await client.start_workflow(
        case.workflow, case.arg, id=case.workflow_id or f"fuzz-{uuid.uuid4().hex[:10]}",
        task_queue=task_queue)
    kind, detail = await settle(client, handle)
    if kind == "stuck":
        return "stuck", f"STUCK ({detail})"
    if kind == "failed":
        if not isinstance(detail, ApplicationError) or not detail.type:
            return "failed", f"failed without a type: {type(detail).__name__}: {detail}"
        # The SDK fails a run whose input (or a result) cannot be decoded with the
        # ValidationError as it is (see baton.runtime.temporal.workflow_failure_types): typed,
        # not marked non-retryable, which only matters to a workflow retry policy
        # (Baton sets none).
        if not detail.non_retryable and detail.type != "ValidationError":
            return "failed", f"failed with a retryable {detail.type}: {detail}"
        return f"failed {detail.type}", None
    status = "completed"
    if case.workflow in PATTERN_WORKFLOWS.values():
        status = f"completed {RunResult.model_validate(detail).status}"
    for history in await related_histories(client, handle.id):
        if (size := largest_payload(history)) > PAYLOAD_LIMIT // 4:
            return status, f"a payload of {size} bytes in {history.workflow_id}"
    return status, None


async def check_cases(env: WorkflowEnvironment, task_queue: str, cases: list[Case],
                      *, at_once: int = 6, **worker_options: Any) -> None:
    gate = asyncio.Semaphore(at_once)

    async def one(case: Case) -> tuple[str, str | None]:
        async with gate:
            ended, problem = await run_case(env.client, task_queue, case)
            return ended, None if problem is None else f"{problem}\n    input: {case.describe()}"

    async with worker(env.client, task_queue, **worker_options):
        outcomes = await asyncio.gather(*(one(c) for c in cases))
    print(f"{len(cases)} runs:", dict(Counter(ended for ended, _ in outcomes)))
    problems = [p for _, p in outcomes if p]
    assert not problems, f"{len(problems)} of {len(cases)} runs misbehaved:\n" + "\n".join(
        problems)


async def test_valid_inputs_to_any_workflow_complete_or_fail_typed(
        env: WorkflowEnvironment, task_queue: str) -> None:
    cases = await asyncio.to_thread(generate, valid_cases(), max(1, int(32 * _SCALE)))
    await check_cases(env, task_queue, cases)


async def test_unusable_inputs_fail_the_run_not_its_workflow_task(
        env: WorkflowEnvironment, task_queue: str) -> None:
    cases = [Case(own, arg, note) for note, arg in UNUSABLE
             for own in (["TriageWorkflow"] if isinstance(arg, dict)
                         and arg.get("member") == "support_desk" else ["AgentWorkflow"])]
    cases.append(Case("FanOutWorkflow", _valid_dump("support_desk"), "triage team to fan-out"))
    cases.append(Case("AgentWorkflow", _valid_dump("support_desk"), "team to AgentWorkflow"))
    # Baton's other workflows, given a run's input
    cases += [Case(name, _valid_dump(), f"run input to {name}")
              for name in ("FanOutShardWorkflow", "SessionWorkflow", "BreakerReportWorkflow")]
    await check_cases(env, task_queue, cases)


ODD_NAMES = ["🚀" * 100, "n" * 101, "a/b/c", "", "nul\x00", "new\nline 日本語",
             "'quote\" %2F..%2F"]


def odd_name_cases() -> list[Case]:
    """Teams whose members have odd names: every name becomes part of a child workflow
    id, an activity summary, a search attribute."""
    cases = []
    for name in ODD_NAMES:
        raw = {
            "agents": {name: {"instructions": "Answer."},
                       "router": {"instructions": "Route.", "handoffs": [name]},
                       "synth": {"instructions": "Merge."}},
            "teams": {"fan": {"pattern": "fanout", "branches": [name, name],
                              "synthesizer": "synth", "branch_runs": "child"},
                      "desk": {"pattern": "triage", "router": "router"},
                      "boss": {"pattern": "supervisor", "supervisor": "synth",
                               "workers": [name, "fan"]}},
        }
        try:
            catalogue = parse_catalogue(raw)
        except CatalogueError:
            continue  # refused where it is loaded: fine
        # (the supervisor, which nests the fan-out, once: it is the slowest)
        for member in ("fan", "desk", name, *(["boss"] if name == ODD_NAMES[0] else [])):
            run = RunInput(member=member, messages=[Message(role="user", content="hi")],
                           catalogue=catalogue.closure(member))
            cases.append(Case(PATTERN_WORKFLOWS[catalogue.pattern_of(member)], run,
                              f"member {member!r} with an agent named {name[:20]!r}"))
    # Child ids grow with nesting: a caller's long id leaves no room for the members'.
    fan = WORKFLOW_CATALOGUE.closure("project_team")
    cases.append(Case("SupervisorWorkflow", RunInput(
        member="project_team", messages=[Message(role="user", content="hi")],
        catalogue=fan), "a workflow id of 1000 bytes",
        workflow_id=f"long-{uuid.uuid4().hex[:8]}-".ljust(1000, "x")))
    return cases


async def test_odd_member_names_complete_or_fail_typed(env: WorkflowEnvironment,
                                                       task_queue: str) -> None:
    await check_cases(env, task_queue, odd_name_cases())


# --- 5. oversized inputs -----------------------------------------------------------------

def test_prompts_at_the_limit_are_accepted_and_over_it_refused_clearly() -> None:
    catalogue = WORKFLOW_CATALOGUE.closure("writer")
    for unit in ("x", "é", "🙂"):  # 1, 2 and 4 bytes in UTF-8
        width = len(unit.encode())
        at_limit = unit * (MAX_PROMPT_BYTES // width)
        RunInput(member="writer", messages=[Message(role="user", content=at_limit)],
                 catalogue=catalogue)
        with pytest.raises(ValueError, match=(
                rf"the conversation is {len(at_limit.encode()) + width} bytes; "
                rf"at most {MAX_PROMPT_BYTES} are accepted")):
            RunInput(member="writer", messages=[Message(role="user", content=at_limit + unit)],
                     catalogue=catalogue)
    # The limit counts the whole conversation, not only its last turn.
    half = "x" * (MAX_PROMPT_BYTES // 2 + 1)
    with pytest.raises(ValueError, match=f"at most {MAX_PROMPT_BYTES} are accepted"):
        RunInput(member="writer", catalogue=catalogue, messages=[
            Message(role="assistant", content=half), Message(role="user", content=half)])


async def test_prompts_near_the_limit_run_with_a_healthy_history(
        env: WorkflowEnvironment, task_queue: str) -> None:
    near = MAX_PROMPT_BYTES - 4096
    cases = [
        Case("AgentWorkflow", RunInput(
            member="writer", catalogue=WORKFLOW_CATALOGUE.closure("writer"),
            messages=[Message(role="user", content="x" * near)]), "writer, ASCII"),
        Case("TriageWorkflow", RunInput(
            member="support_desk", catalogue=WORKFLOW_CATALOGUE.closure("support_desk"),
            messages=[Message(role="user", content="invoice " + "🙂" * (near // 4 - 4))]),
            "support desk, emoji"),
        Case("TriageWorkflow", RunInput(
            member="support_desk", catalogue=WORKFLOW_CATALOGUE.closure("support_desk"),
            messages=[Message(role="assistant", content="é" * (near // 4)),
                      Message(role="user", content="refund " + "x" * (near // 2))]),
            "support desk, history"),
    ]
    await check_cases(env, task_queue, cases)


FIVE_MB = 5 * 1024 * 1024


@baton.tool
def huge_report(topic: str) -> str:
    """Write an enormous report on a topic."""
    return ("x" * 1023 + "\n") * (FIVE_MB // 1024)


@baton.tool
def huge_rows(topic: str) -> list[dict[str, str]]:
    """Return an enormous table."""
    return [{"row": str(i), "text": "é" * 100} for i in range(FIVE_MB // 200)]


@baton.tool(max_result_chars=1_000_000)
def wide_report_a(topic: str) -> str:
    """A report cut at the largest result a tool may keep."""
    return "🙂" * (FIVE_MB // 4)


@baton.tool(max_result_chars=1_000_000)
def wide_report_b(topic: str) -> str:
    """Another report cut at the largest result a tool may keep."""
    return "🙂" * (FIVE_MB // 4)


async def run_tool_agent(env: WorkflowEnvironment, task_queue: str,
                         *tools: baton.Tool) -> tuple[str, Any, list[Any]]:
    agent = baton.Agent("reporter", "Report on the topic.", model="offline:standard",
                        tools=list(tools), retry={"max_attempts": 2, "initial_interval_s": 0.1,
                                                  "backoff": 1.0, "max_interval_s": 0.1})
    async with worker(env.client, task_queue, tools=list(tools)):
        handle = await baton.start(agent, "Report on durable execution", client=env.client,
                                   task_queue=task_queue)
        kind, detail = await settle(env.client, handle.handle)
        histories = await related_histories(env.client, handle.workflow_id)
    return kind, detail, histories


@pytest.mark.parametrize("tool", [huge_report, huge_rows], ids=["text", "json"])
async def test_a_5mb_tool_result_is_cut_with_a_note_and_history_stays_small(
        env: WorkflowEnvironment, task_queue: str, tool: baton.Tool) -> None:
    kind, result, histories = await run_tool_agent(env, task_queue, tool)
    assert kind == "completed", result
    assert result.status == "ok"
    text = history_text(histories[0])
    assert f"[truncated: {FIVE_MB if tool is huge_report else ''}" in text
    assert "only the first 32000 are shown]" in text
    largest = max(largest_payload(h) for h in histories)
    assert largest < 300_000, f"largest payload {largest} bytes"


@baton.tool(max_result_chars=1_000_000)
def wide_ascii_a(topic: str) -> str:
    """A plain-text report cut at the largest result a tool may keep."""
    return "x" * FIVE_MB


@baton.tool(max_result_chars=1_000_000)
def wide_ascii_b(topic: str) -> str:
    """Another plain-text report cut at the largest result a tool may keep."""
    return "y" * FIVE_MB


@baton.tool(max_result_chars=1_000_000)
def wide_ascii_c(topic: str) -> str:
    """A third plain-text report cut at the largest result a tool may keep."""
    return "z" * FIVE_MB


@pytest.mark.parametrize("tools", [(wide_report_a, wide_report_b), (wide_ascii_a, wide_ascii_b),
                                   (wide_ascii_a, wide_ascii_b, wide_ascii_c)],
                         ids=["4-byte", "ascii", "ascii-x3"])
async def test_tool_results_at_the_largest_limit_still_fit_the_history(
        env: WorkflowEnvironment, task_queue: str, tools: tuple[baton.Tool, ...]) -> None:
    """Two tools each keeping 1,000,000 characters: 4-byte text makes each result ~4 MB
    of UTF-8, past Temporal's 2 MB payload limit; ASCII makes the next model call carry
    ~2 MB of tool results. Both are kept in the payload store, never inline."""
    kind, detail, histories = await run_tool_agent(env, task_queue, *tools)
    largest = max(largest_payload(h) for h in histories)
    assert largest < PAYLOAD_LIMIT, f"largest payload {largest} bytes"
    assert kind != "stuck", detail
    # Each result is cut to fit (the tool runs once, its result is kept) ...
    text = history_text(histories[0])
    assert "PayloadsTooLarge" not in text
    assert text.count("[truncated: ") >= len(tools)
    # ... and the model call carrying them all, past Temporal's limit inline, goes
    # through the payload store: the agent answers.
    assert kind == "completed", detail
    assert detail.status == "ok", detail.reasons
