"""Prove it survives: Baton's reliability suite.

    .venv/bin/python scripts/reliability.py           # the full suite: docs/reliability.md
    .venv/bin/python scripts/reliability.py --quick     # a few minutes (make reliability-quick)
    .venv/bin/python scripts/reliability.py --seed 7 --kills 5 --only worker_kill,storm_down

Drives the real dev server (`temporal server start-dev`), workers (`worker.py`) and
starters (`starter.py run ... --no-wait`, `starter.py chat`) as separate processes on
127.0.0.1, injects faults, and checks every run against the ground truth of what
was called: the offline provider's call log (BATON_OFFLINE_CALL_LOG: one line per
answered call, with its workflow, run, activity and attempt), the test tools' log
(BATON_TEST_TOOL_LOG: start and end of every execution, with its idempotency key and
attempt), the fake providers' own count of the answers they gave, and each
workflow's history (the completed activities, with the attempt that completed them).

Every scenario runs each target: the four patterns (support_desk, research_panel,
dev_team, article_pipeline), the composed team (concierge_desk), the tool-using
`support` agent of tests/data/tool_app.py and a two-turn session with support_desk.
Scenarios (see SCENARIOS): a worker killed with SIGKILL at seeded random moments,
the dev server killed and restarted on its database file, two workers with one
killed, a worker that joins only after runs have waited, provider storms through
tests/fake_llm.py on the `openai:` and `anthropic:` adapters, and budgets and
deadlines running out during a storm. Every process started here is killed at the
end, also on an error or Ctrl-C.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import os
import random
import re
import shutil
import signal
import socket
import statistics
import struct
import sys
import tempfile
import threading
import time
import tomllib
import traceback
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TextIO, TypeVar

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from temporalio.api.workflowservice.v1 import DescribeNamespaceRequest  # noqa: E402
from temporalio.client import (  # noqa: E402
    Client,
    WorkflowExecutionStatus,
    WorkflowFailureError,
)
from temporalio.exceptions import ApplicationError  # noqa: E402
from temporalio.runtime import LoggingConfig, Runtime, TelemetryConfig, TelemetryFilter  # noqa: E402
from temporalio.service import RPCError, RPCStatusCode  # noqa: E402

from baton.runtime.temporal import (  # noqa: E402
    Settings,
    connect,
    dev_server_args,
    exit_now,
    temporal_binary,
)
from tests.fake_llm import FakeLLMServer, Fault  # noqa: E402

PYTHON = sys.executable
TOOL_APP = "tests.data.tool_app"
DOC = ROOT / "docs" / "reliability.md"

# Offline latency per model call in the process-fault scenarios: a run then lasts a
# few seconds, which gives a kill a window to land in the middle of it.
LATENCY_S = 0.5
SLOW_TOOL_S = 1.5        # how long the test app's slow_report tool works
RUN_TIMEOUT_S = 240.0    # a run not ended this long after its cycle's fault is lost
STARTER_TIMEOUT_S = 90.0

# Storm catalogue: short timeouts and a small retry budget, so a storm plays out in
# seconds; every agent falls back to the offline model.
STORM_MODELS = ("openai:gpt-5-nano", "anthropic:claude-haiku-4-5")
STORM_TIMEOUT_S = 4.0    # the agent's start-to-close timeout (its HTTP timeout is 3.6 s)
HANG_S = 6.0             # a hung response: longer than the call's timeout
STORM_RETRY = {"max_attempts": 3, "initial_interval_s": 0.5, "backoff": 2.0,
               "max_interval_s": 2.0}
STORM_BREAKER = {"failures": 4, "window_s": 20, "cooldown_s": 5}
RESET = 599              # a storm "status": reset the connection, answer nothing
MALFORMED = '{"id": "chatcmpl-storm", "choices": [{"message": {"role": "assis'


class SuiteError(RuntimeError):
    """The suite could not do what it set out to (a process would not start...)."""


# --------------------------------------------------------------------------- targets

@dataclass(frozen=True)
class Target:
    """What one run of a scenario runs."""

    name: str
    member: str
    prompts: tuple[str, ...]
    app: bool = False       # the member is defined by tests/data/tool_app.py (--app)
    session: bool = False   # a conversation: one `starter.py chat` per prompt


TARGETS: tuple[Target, ...] = (
    Target("triage", "support_desk",
           ("My invoice shows the wrong amount after I upgraded my plan",)),
    Target("fanout", "research_panel",
           ("Is durable execution worth it for production LLM agents?",)),
    Target("supervisor", "dev_team",
           ("Write a small function that parses ISO 8601 dates, with tests",)),
    Target("pipeline", "article_pipeline",
           ("Why multi-agent systems need durable execution",)),
    Target("composed", "concierge_desk",
           ("Please research and compare open-source vector databases for our product",)),
    Target("tools", "support", ("Status of A-1001 and a report on it",), app=True),
    Target("session", "support_desk",
           ("My invoice shows the wrong amount", "And when will the refund reach my card?"),
           session=True),
)
# An agent with no fallback model: when its provider is down the run fails, and says why.
NO_FALLBACK = Target("no_fallback", "lonely", ("Say hello to the customer",))


# ------------------------------------------------------------------------- processes

def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Proc:
    name: str
    process: asyncio.subprocess.Process
    log: Path | None

    @property
    def pid(self) -> int:
        return self.process.pid

    @property
    def alive(self) -> bool:
        return self.process.returncode is None


class Cluster:
    """The processes of one suite: a dev server, workers and starters, all on 127.0.0.1.

    Every process is started in its own session and remembered, so `stop` can kill each
    one by its id at the end, whatever happened.
    """

    def __init__(self, work: Path) -> None:
        self.work = work
        (work / "logs").mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.ui_port = free_port()
        self.address = f"127.0.0.1:{self.port}"
        self.db = work / "temporal.db"
        self.server: Proc | None = None
        self.procs: list[Proc] = []
        self._client: Client | None = None
        self._names: Counter[str] = Counter()

    @property
    def client(self) -> Client:
        if self._client is None:
            raise SuiteError("no client: the dev server was never started")
        return self._client

    def env(self, task_queue: str, **extra: str) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items()
               if not k.startswith(("OTEL_", "TEMPORAL_", "BATON_"))}
        return {**env, "TEMPORAL_ADDRESS": self.address, "BATON_TASK_QUEUE": task_queue,
                "TEMPORAL_UI_URL": f"http://127.0.0.1:{self.ui_port}",
                "PYTHONUNBUFFERED": "1", **extra}

    async def spawn(self, name: str, args: Sequence[str], env: dict[str, str], *,
                    logged: bool = True, stdin: int = asyncio.subprocess.DEVNULL) -> Proc:
        self._names[name] += 1
        log = self.work / "logs" / f"{name}-{self._names[name]}.log" if logged else None
        out: int | TextIO = asyncio.subprocess.PIPE
        handle = None
        if log is not None:
            handle = log.open("w")
            out = handle
        try:
            process = await asyncio.create_subprocess_exec(
                *args, cwd=ROOT, env=env, stdout=out,
                stderr=asyncio.subprocess.STDOUT if log else asyncio.subprocess.PIPE,
                stdin=stdin, start_new_session=True)
        finally:
            if handle is not None:
                handle.close()
        proc = Proc(name, process, log)
        self.procs.append(proc)
        return proc

    async def start_server(self) -> None:
        args = [temporal_binary(), "server", "start-dev", "--headless",
                "--ip", "127.0.0.1", "--port", str(self.port), "--ui-port", str(self.ui_port),
                "--db-filename", str(self.db),
                "--sqlite-pragma", "journal_mode=wal", "--sqlite-pragma", "synchronous=normal",
                "--log-level", "warn", *dev_server_args()]
        self.server = await self.spawn("server", args, dict(os.environ))
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            if not self.server.alive:
                raise SuiteError(f"the dev server exited with status "
                                 f"{self.server.process.returncode}; see {self.server.log}")
            with contextlib.suppress(Exception):
                if self._client is None:
                    # Quiet: its retries while the server restarts are expected here.
                    quiet = Runtime(telemetry=TelemetryConfig(logging=LoggingConfig(
                        filter=TelemetryFilter(core_level="ERROR", other_level="ERROR"))))
                    self._client = await connect(Settings(address=self.address), runtime=quiet)
                await self._client.workflow_service.describe_namespace(
                    DescribeNamespaceRequest(namespace="default"))
                return
            await asyncio.sleep(0.25)
        raise SuiteError(f"the dev server did not answer at {self.address} within 90 s")

    async def kill(self, proc: Proc) -> None:
        """kill -9, by the process id we started."""
        if proc.alive:
            with contextlib.suppress(ProcessLookupError):
                os.kill(proc.pid, signal.SIGKILL)
        await proc.process.wait()

    async def start_worker(self, task_queue: str, env: dict[str, str]) -> Proc:
        worker = await self.spawn("worker", [PYTHON, "worker.py", "--app", TOOL_APP],
                                  self.env(task_queue, BATON_LOG_LEVEL="INFO", **env))
        assert worker.log is not None
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if not worker.alive:
                raise SuiteError(f"a worker exited with status {worker.process.returncode}; "
                                 f"see {worker.log}")
            if "worker on " in worker.log.read_text(errors="replace"):
                await asyncio.sleep(0.3)  # its pollers start right after it says so
                return worker
            await asyncio.sleep(0.1)
        raise SuiteError(f"a worker did not start within 60 s; see {worker.log}")

    async def warm_starter(self, task_queue: str, args: Sequence[str]) -> Proc:
        """`starter.py ARGS` with its imports done, waiting to be released by `starter`:
        its entry point (`baton.cli.starter.run`) then runs in a few tenths of a second,
        so a run starts when the seed says, not when the CPU is done importing."""
        proc = await self.spawn("starter", [PYTHON, "-c", WARM_STARTER, *args],
                                self.env(task_queue), logged=False, stdin=asyncio.subprocess.PIPE)
        assert proc.process.stdout is not None
        ready = await asyncio.wait_for(proc.process.stdout.readline(), 60)
        if ready.strip() != b"ready":
            await self.kill(proc)
            raise SuiteError(f"a starter did not start: {ready!r}")
        return proc

    async def starter(self, task_queue: str, args: Sequence[str],
                      timeout: float = STARTER_TIMEOUT_S,
                      warm: Proc | None = None) -> tuple[int, str, str]:
        """Run `starter.py ARGS` (or release `warm`); (exit status, stdout, stderr)."""
        proc = warm or await self.spawn("starter", [PYTHON, "starter.py", *args],
                                        self.env(task_queue), logged=False)
        try:
            out, err = await asyncio.wait_for(
                proc.process.communicate(b"go\n" if warm else None), timeout)
        except TimeoutError:
            await self.kill(proc)
            return -1, "", f"starter {' '.join(args[:2])} did not finish within {timeout:.0f} s"
        self.procs.remove(proc)
        return proc.process.returncode or 0, out.decode(), err.decode()

    async def stop(self) -> None:
        for proc in self.procs:
            await self.kill(proc)
        self.procs.clear()


T = TypeVar("T")


UNREACHABLE = {RPCStatusCode.UNAVAILABLE, RPCStatusCode.DEADLINE_EXCEEDED,
               RPCStatusCode.UNKNOWN, RPCStatusCode.INTERNAL, RPCStatusCode.CANCELLED}
# A starter that waits for a line on its standard input, then runs as `starter.py` does.
WARM_STARTER = ("import sys; import baton.cli.starter as starter; print('ready', flush=True); "
                "sys.stdin.readline(); starter.run()")
# What a starter says when it could not connect: nothing was started, it may try again.
NOT_CONNECTED = "cannot reach Temporal at"


async def rpc(call: Callable[[], Awaitable[T]], timeout: float = 120) -> T:
    """`call()`, retried while the server is unreachable (it may be restarting)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return await call()
        except RPCError as err:
            if err.status not in UNREACHABLE or time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.5)


# ------------------------------------------------------------------------------ runs

@dataclass
class Run:
    """One run of a target in a scenario, and how it ended."""

    target: Target
    expect: frozenset[str]
    cycle: int
    flags: tuple[str, ...] = ()
    workflow_id: str | None = None
    spawned: float | None = None
    started: float | None = None
    ended: float | None = None
    status: str | None = None
    reason: str = ""
    errors: list[str] = field(default_factory=list)
    hit: bool = False        # in flight while a fault was on
    waited_s: float = 0.0    # deliberate time without any worker (late_worker)
    calls: CallStats | None = None

    @property
    def completed(self) -> bool:
        return self.ended is not None and self.status in self.expect

    @property
    def duration(self) -> float | None:
        if self.started is None or self.ended is None:
            return None
        return self.ended - self.started


class Driver:
    """Starts runs through the real starter and waits for them through the server."""

    def __init__(self, cluster: Cluster, task_queue: str, catalogue: Path | None = None):
        self.cluster = cluster
        self.task_queue = task_queue
        self.catalogue = catalogue

    def _member_flags(self, target: Target) -> list[str]:
        if self.catalogue is not None:
            return ["--catalogue", str(self.catalogue)]
        return ["--app", TOOL_APP] if target.app else []

    def _args(self, run: Run, turn: int = 0) -> list[str]:
        target = run.target
        if not target.session:
            return ["run", target.member, target.prompts[0], "--no-wait", "--json",
                    *self._member_flags(target), *run.flags]
        assert run.workflow_id is not None
        # The run's options apply when the first turn starts the session.
        return ["chat", target.member, target.prompts[turn], "--session",
                run.workflow_id.removeprefix("session-"), "--json",
                *self._member_flags(target), *(run.flags if turn == 0 else ())]

    async def warm(self, runs: Sequence[Run]) -> list[Proc]:
        """A ready starter per run (a session's first turn), all at once."""
        for run in runs:
            if run.target.session:
                run.workflow_id = f"session-rel-{run.cycle}-{os.urandom(4).hex()}"
        return list(await asyncio.gather(*(
            self.cluster.warm_starter(self.task_queue, self._args(r)) for r in runs)))

    async def play(self, run: Run, at: float | None = None, timeout: float = RUN_TIMEOUT_S,
                   warm: Proc | None = None) -> Run:
        """Start `run` (at wall time `at`) and wait until it ends or `timeout` passes."""
        if at is not None:
            await asyncio.sleep(max(0.0, at - time.time()))
        run.spawned = time.time()
        try:
            if run.target.session:
                await asyncio.wait_for(self._conversation(run, warm), timeout)
            else:
                await self._start(run, warm)
                await asyncio.wait_for(self._wait(run), timeout)
        except TimeoutError:
            run.errors.append(f"did not end within {timeout:.0f} s")
        except Exception as err:  # recorded, not raised: one run's trouble is its own
            run.errors.append(f"{type(err).__name__}: {err}")
        if warm is not None and warm.alive:
            await self.cluster.kill(warm)
        return run

    async def _starter(self, run: Run, args: list[str], warm: Proc | None,
                       timeout: float = STARTER_TIMEOUT_S) -> tuple[int, str, str]:
        """The starter's answer; a starter that could not connect (the server is
        restarting) started nothing, and is run again."""
        deadline = time.monotonic() + 60
        while True:
            code, out, err = await self.cluster.starter(self.task_queue, args, timeout, warm)
            warm = None
            if code == 0 or NOT_CONNECTED not in err or time.monotonic() > deadline:
                return code, out, err
            run.errors.append(f"starter retried after exit {code}: not connected")
            await asyncio.sleep(1.0)

    async def _start(self, run: Run, warm: Proc | None) -> None:
        code, out, err = await self._starter(run, self._args(run), warm)
        if code != 0:
            raise SuiteError(f"starter failed ({code}): {err.strip()[-300:]}")
        run.workflow_id = _json(out)["workflow_id"]

    async def _wait(self, run: Run) -> None:
        assert run.workflow_id is not None
        handle = self.cluster.client.get_workflow_handle(run.workflow_id)
        while True:
            desc = await rpc(handle.describe)
            if desc.status != WorkflowExecutionStatus.RUNNING:
                break
            await asyncio.sleep(0.3)
        run.started = desc.start_time.timestamp()
        run.ended = desc.close_time.timestamp() if desc.close_time else time.time()
        if desc.status == WorkflowExecutionStatus.COMPLETED:
            result = await rpc(handle.result)
            run.status = str(result.get("status")) if isinstance(result, dict) else "?"
            if run.status != "ok" and isinstance(result, dict):
                run.reason = "; ".join(map(str, result.get("reasons") or []))[:300]
            return
        run.status = "failed"
        try:
            await rpc(handle.result)
        except WorkflowFailureError as err:
            cause = err.cause
            run.reason = (f"{cause.type}: {cause.message}" if isinstance(cause, ApplicationError)
                          else f"{desc.status.name if desc.status else '?'}: {cause}")[:300]

    async def _conversation(self, run: Run, warm: Proc | None) -> None:
        """A session: one `starter.py chat --session ID` per prompt, one after another."""
        if run.workflow_id is None:
            run.workflow_id = f"session-rel-{run.cycle}-{os.urandom(4).hex()}"
        run.started = run.spawned
        statuses: list[str] = []
        for turn in range(len(run.target.prompts)):
            code, out, err = await self._starter(run, self._args(run, turn), warm,
                                                 timeout=RUN_TIMEOUT_S)
            warm = None
            if code == 0:
                statuses.append(str(_json(out).get("status")))
                continue
            reason = err.strip() or out.strip()
            with contextlib.suppress(ValueError):
                answer = _json(out)
                reason = f"{answer.get('type')}: {answer.get('error')}"
            statuses.append("failed")
            run.reason = f"turn {turn + 1}: exit {code}: {reason[-300:]}"
            break
        run.ended = time.time()
        unexpected = [s for s in statuses if s not in run.expect]
        run.status = unexpected[0] if unexpected else statuses[-1]
        if len(statuses) == len(run.target.prompts) and not unexpected:
            run.reason = run.reason or f"{len(statuses)} turns: {', '.join(statuses)}"


def _json(text: str) -> dict[str, Any]:
    """The JSON object a starter printed with --json, from the line it begins on (the
    SDK's warnings while the server restarts may come first, braces and all)."""
    found = re.search(r"^\{", text, re.M)
    if found is None:
        raise ValueError(f"no JSON in the starter's output: {text[:200]!r}")
    value = json.loads(text[found.start():])
    if not isinstance(value, dict):
        raise ValueError(f"the starter printed {text[:200]!r}")
    return value


# ------------------------------------------------------------------------- the checks

def read_jsonl(path: Path) -> list[dict[str, Any]]:
    """A JSON-lines log; a line cut short by a kill -9 is skipped."""
    if not path.exists():
        return []
    entries = []
    for line in path.read_text().splitlines():
        with contextlib.suppress(json.JSONDecodeError):
            entries.append(json.loads(line))
    return entries


@dataclass
class Activity:
    workflow_id: str
    run_id: str
    activity_id: str
    type: str
    input: dict[str, Any] | None
    attempt: int = 0
    state: str = "scheduled"


CallKey = tuple[str, str, str]  # workflow id, run id, activity id


@dataclass
class CallStats:
    """What the logs and histories say about the calls of some runs."""

    model_calls: int = 0      # call_model activities completed (their result is in history)
    answered: int = 0         # offline answers logged
    repeated: int = 0         # completed model calls made again: must stay 0
    rerun_model: int = 0      # attempts of model calls that did not complete (a worker
    #                           died, a provider failed) and were made again: at least once
    answered_twice: int = 0   # of which the provider had answered, but the worker died
    #                           before the result was recorded
    tool_calls: int = 0       # tool activities completed
    tool_repeated: int = 0    # completed tool calls executed again: must stay 0
    rerun_tool: int = 0       # tool executions in flight at a fault, run again
    fake_completed: int = 0   # completed calls answered by a fake provider
    problems: list[str] = field(default_factory=list)

    def add(self, other: CallStats) -> None:
        for name in ("model_calls", "answered", "repeated", "rerun_model", "answered_twice",
                     "tool_calls",
                     "tool_repeated", "rerun_tool", "fake_completed"):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        self.problems += other.problems


def _belongs(workflow_id: str, top: str) -> bool:
    return workflow_id == top or workflow_id.startswith(top + "/")


async def _activities(client: Client, workflow_id: str, run_id: str | None,
                      ) -> tuple[str, list[Activity], list[tuple[str, str]]]:
    """(run id, the activities of one workflow run, the runs it started or continued as)."""
    handle = client.get_workflow_handle(workflow_id, run_id=run_id)
    if run_id is None:
        run_id = (await rpc(handle.describe)).run_id or ""
        handle = client.get_workflow_handle(workflow_id, run_id=run_id)
    history = await rpc(handle.fetch_history)
    scheduled: dict[int, Activity] = {}
    children: list[tuple[str, str]] = []
    for event in history.events:
        if event.HasField("activity_task_scheduled_event_attributes"):
            attrs = event.activity_task_scheduled_event_attributes
            payloads = attrs.input.payloads
            data = json.loads(payloads[0].data) if payloads else None
            scheduled[event.event_id] = Activity(
                workflow_id, run_id, attrs.activity_id, attrs.activity_type.name,
                data if isinstance(data, dict) else None)
        elif event.HasField("activity_task_started_event_attributes"):
            started = event.activity_task_started_event_attributes
            scheduled[started.scheduled_event_id].attempt = started.attempt
        elif event.HasField("activity_task_completed_event_attributes"):
            scheduled[event.activity_task_completed_event_attributes.scheduled_event_id
                      ].state = "completed"
        elif event.HasField("activity_task_failed_event_attributes"):
            scheduled[event.activity_task_failed_event_attributes.scheduled_event_id
                      ].state = "failed"
        elif event.HasField("activity_task_timed_out_event_attributes"):
            scheduled[event.activity_task_timed_out_event_attributes.scheduled_event_id
                      ].state = "timed_out"
        elif event.HasField("child_workflow_execution_started_event_attributes"):
            child = event.child_workflow_execution_started_event_attributes.workflow_execution
            children.append((child.workflow_id, child.run_id))
        elif event.HasField("workflow_execution_continued_as_new_event_attributes"):
            attrs_can = event.workflow_execution_continued_as_new_event_attributes
            children.append((workflow_id, attrs_can.new_execution_run_id))
    return run_id, list(scheduled.values()), children


async def check_calls(client: Client, top: str, calls: list[dict[str, Any]],
                      tools: list[dict[str, Any]]) -> CallStats:
    """Every model and tool call of run `top` (and its nested runs), from the logs
    against the histories: was a completed call ever made again?"""
    stats = CallStats()
    mine = [e for e in calls if _belongs(str(e.get("run")), top)]
    tool_runs = [e for e in tools if _belongs(str(e.get("key", "")).rsplit("/", 1)[0], top)]
    todo: list[tuple[str, str | None]] = [(top, None)]
    todo += sorted({(str(e["run"]), str(e["run_id"])) for e in mine if e.get("run_id")})
    seen: set[tuple[str, str]] = set()
    acts: dict[CallKey, Activity] = {}
    while todo:
        workflow_id, run_id = todo.pop()
        if run_id is not None and (workflow_id, run_id) in seen:
            continue
        try:
            run_id, found, children = await _activities(client, workflow_id, run_id)
        except RPCError as err:
            stats.problems.append(f"no history for {workflow_id}: {err}")
            continue
        if (workflow_id, run_id) in seen:
            continue
        seen.add((workflow_id, run_id))
        todo += children
        # One logical call: the agent, its call index and what it was asked (a session
        # counts calls per turn, so the index alone repeats from turn to turn).
        asked: Counter[tuple[str, int, str]] = Counter()
        for act in found:
            acts[(act.workflow_id, act.run_id, act.activity_id)] = act
            if act.type == "call_model" and act.input is not None:
                asked[(str(act.input.get("agent")), int(act.input.get("call_index", 0)),
                       json.dumps(act.input.get("messages"), sort_keys=True))] += 1
                stats.rerun_model += max(0, act.attempt - 1)
                if act.state == "completed":
                    stats.model_calls += 1
                    if not str(act.input.get("model", "")).startswith("offline:"):
                        stats.fake_completed += 1
            elif act.type != "call_model" and act.state == "completed":
                stats.tool_calls += 1
        for (agent, index, _), count in asked.items():
            if count > 1:  # the workflow asked again for a call it had asked for
                stats.repeated += count - 1
                stats.problems.append(f"{workflow_id}: {agent} call {index} scheduled "
                                      f"{count} times")
    _check_answers(stats, acts, mine)
    _check_tool_runs(stats, acts, tool_runs)
    return stats


@dataclass
class Executions:
    """How the logged executions of some calls compare with their histories."""

    completed: Counter[CallKey] = field(default_factory=Counter)  # of the recorded attempt
    unrecorded: int = 0  # attempts that never completed (in flight at a fault, or failed)
    repeated: int = 0    # executions after the call had completed: must stay 0


def _executions(stats: CallStats, acts: dict[CallKey, Activity],
                logged: list[tuple[CallKey, int]], what: str) -> Executions:
    """Each logged (call, attempt) against the call's activity in the histories."""
    seen = Executions()
    for key, attempt in logged:
        found = acts.get(key)
        if found is None:
            stats.problems.append(f"{what} {key} is in no history")
        elif found.state != "completed" or attempt < found.attempt:
            seen.unrecorded += 1  # at least once: retried after a fault
        elif attempt == found.attempt:
            seen.completed[key] += 1
        else:
            seen.repeated += 1
            stats.problems.append(f"{what} {key} ran again (attempt {attempt}) after "
                                  f"completing at attempt {found.attempt}")
    for key, count in seen.completed.items():
        if count > 1:
            seen.repeated += count - 1
            stats.problems.append(f"{what} {key}: its completed attempt ran {count} times")
    return seen


def _check_answers(stats: CallStats, acts: dict[CallKey, Activity],
                   entries: list[dict[str, Any]]) -> None:
    """Model calls: each log line is one answer, keyed by its activity."""
    stats.answered += len(entries)
    seen = _executions(stats, acts, [
        ((str(e["run"]), str(e.get("run_id")), str(e.get("activity"))),
         int(e.get("attempt", 1))) for e in entries], "answered call")
    stats.answered_twice += seen.unrecorded  # answered, but lost with its worker
    stats.repeated += seen.repeated
    for act in acts.values():
        model = str((act.input or {}).get("model", ""))
        if (act.type == "call_model" and act.state == "completed" and model.startswith("offline:")
                and seen.completed[(act.workflow_id, act.run_id, act.activity_id)] == 0):
            stats.problems.append(f"{act.workflow_id} activity {act.activity_id} completed "
                                  "with no answer in the call log")


def _check_tool_runs(stats: CallStats, acts: dict[CallKey, Activity],
                     entries: list[dict[str, Any]]) -> None:
    """Tool calls: each "start" line is one execution, keyed by its idempotency key
    (`<workflow id>/<run id>/<activity id>`)."""
    logged: list[tuple[CallKey, int]] = []
    for entry in entries:
        if entry.get("event") == "start":
            workflow_id, run_id, activity_id = str(entry["key"]).rsplit("/", 2)
            logged.append(((workflow_id, run_id, activity_id), int(entry.get("attempt", 1))))
    seen = _executions(stats, acts, logged, "tool call")
    stats.rerun_tool += seen.unrecorded
    stats.tool_repeated += seen.repeated


# --------------------------------------------------------------------------- storms

class StormServer(FakeLLMServer):
    """tests/fake_llm.py's server with a fault policy instead of a fault queue, connection
    resets, and a count of what it answered (an answer = a 200 the client could use)."""

    def __init__(self, name: str) -> None:
        super().__init__()
        self.name = name
        self.policy: Callable[[], Fault | None] = lambda: None
        self.answered = 0
        self.faulted: Counter[str] = Counter()
        self._lock = threading.Lock()
        self._local = threading.local()
        self.faults = _PolicyFaults(self)  # type: ignore[assignment]

    def use(self, policy: Callable[[], Fault | None]) -> None:
        with self._lock:
            self.policy = policy
            self.answered = 0
            self.faulted.clear()
            self.requests.clear()

    def _record(self, status: int) -> None:
        fault: Fault | None = getattr(self._local, "fault", None)
        with self._lock:
            if fault is None and status == 200:
                self.answered += 1
            elif fault is not None and fault.status == 200 and fault.body is None:
                self.faulted["hang"] += 1
            elif fault is not None and fault.status == 200:
                self.faulted["malformed"] += 1
            else:
                self.faulted["reset" if status == RESET else str(status)] += 1

    def _handler(self) -> Any:
        base = super()._handler()
        storm = self

        class Handler(base):  # type: ignore[misc, valid-type]
            def do_POST(self) -> None:
                storm._local.fault = None
                with contextlib.suppress(OSError, ValueError):
                    super().do_POST()

            def _send(self, status: int, text: str, headers: dict[str, str]) -> None:
                storm._record(status)
                if status == RESET:  # RST instead of an answer
                    self.close_connection = True
                    with contextlib.suppress(OSError):
                        self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                                                   struct.pack("ii", 1, 0))
                        self.rfile.close()
                        self.connection.close()
                    return
                super()._send(status, text, headers)

            def handle_one_request(self) -> None:
                with contextlib.suppress(OSError, ValueError):
                    super().handle_one_request()

            def finish(self) -> None:
                with contextlib.suppress(OSError, ValueError):
                    super().finish()

        return Handler


class _PolicyFaults:
    """Stands in for FakeLLMServer.faults: asks the policy once per request."""

    def __init__(self, server: StormServer) -> None:
        self.server = server

    def __bool__(self) -> bool:
        fault = self.server.policy()
        self.server._local.fault = fault
        return fault is not None

    def popleft(self) -> Fault:
        fault: Fault = self.server._local.fault
        return fault

    def extend(self, faults: Iterable[Fault]) -> None:
        raise SuiteError("a storm server takes a policy, not queued faults")


def storm_policy(kind: str, rng: random.Random, anthropic: bool) -> Callable[[], Fault | None]:
    """The faults of one storm, drawn per request (seeded; thread-safe)."""
    lock = threading.Lock()
    began = time.monotonic()

    def draw() -> float:
        with lock:
            return rng.random()

    def rate_limits() -> Fault | None:
        if (time.monotonic() - began) % 5.0 >= 1.5:  # bursts: 1.5 s of every 5
            return None
        wait = {"retry-after-ms": "800"} if anthropic else {"retry-after": "1"}
        return Fault(status=429, headers=wait)

    def server_errors() -> Fault | None:
        x = draw()
        if x < 0.15:
            return Fault(status=500)
        if x < 0.30:
            return Fault(status=503)
        return Fault(status=RESET) if x < 0.42 else None

    def hangs_and_garbage() -> Fault | None:
        x = draw()
        if x < 0.2:
            return Fault(delay_s=HANG_S)
        return Fault(status=200, body=MALFORMED) if x < 0.4 else None

    policies: dict[str, Callable[[], Fault | None]] = {
        "none": lambda: None,
        "rate_limits": rate_limits,
        "server_errors": server_errors,
        "hangs_and_garbage": hangs_and_garbage,
        "down": lambda: Fault(status=503),
        "hang_all": lambda: Fault(delay_s=HANG_S),
    }
    return policies[kind]


def toml_text(data: dict[str, Any]) -> str:
    """A catalogue as TOML (tables of tables as [a.b], anything deeper inline)."""

    def key(name: str) -> str:
        return name if re.fullmatch(r"[A-Za-z0-9_-]+", name) else json.dumps(name)

    def value(v: Any) -> str:
        if isinstance(v, bool):
            return "true" if v else "false"
        if isinstance(v, int | float):
            return repr(v)
        if isinstance(v, str):
            return json.dumps(v)
        if isinstance(v, list):
            return "[" + ", ".join(value(x) for x in v) + "]"
        if isinstance(v, dict):
            return "{ " + ", ".join(f"{key(k)} = {value(x)}" for k, x in v.items()) + " }"
        raise TypeError(f"cannot write {v!r} as TOML")

    lines = [f"{key(k)} = {value(v)}" for k, v in data.items() if not isinstance(v, dict)]
    for name, table in data.items():
        if not isinstance(table, dict):
            continue
        if table and all(isinstance(v, dict) for v in table.values()):
            for sub, body in table.items():
                lines += ["", f"[{key(name)}.{key(sub)}]"]
                lines += [f"{key(k)} = {value(v)}" for k, v in body.items()]
        else:
            lines += ["", f"[{key(name)}]"]
            lines += [f"{key(k)} = {value(v)}" for k, v in table.items()]
    return "\n".join(lines) + "\n"


def storm_catalogue(openai_url: str, anthropic_url: str, *,
                    breakers: bool = True) -> dict[str, Any]:
    """The default catalogue with every agent on the fake servers (alternately the
    OpenAI and the Anthropic adapter), the offline model as fallback, short timeouts,
    plus the tool app's `support` agent and `lonely`, an agent with no fallback.
    Without `breakers` no circuit opens: every call meets the storm (budget and
    deadline scenarios, whose outcome must not depend on when a circuit opened)."""
    raw = tomllib.loads((ROOT / "baton" / "default_catalogue.toml").read_text())
    raw["app"] = [TOOL_APP]
    raw["providers"] = {
        "openai": {"kind": "openai", "base_url": f"{openai_url}/v1"},
        "anthropic": {"kind": "anthropic", "base_url": anthropic_url},
    }
    raw["breakers"] = {"default": dict(STORM_BREAKER) if breakers else
                       {**STORM_BREAKER, "failures": 1000}}
    raw["defaults"] = {**raw.get("defaults", {}), "fallback_models": ["offline:backup"],
                       "timeout_s": STORM_TIMEOUT_S, "heartbeat_s": 2,
                       "retry": dict(STORM_RETRY)}
    raw["agents"]["support"] = {
        "description": "Answers questions about orders using tools.",
        "instructions": "Answer questions about orders using your tools.",
        "tools": ["lookup_order", "slow_report"], "contract": "OrderAnswer"}
    raw["agents"]["lonely"] = {"description": "An agent with no fallback.",
                               "instructions": "Answer briefly.", "fallback_models": []}
    for index, name in enumerate(sorted(raw["agents"])):
        spec = raw["agents"][name]
        spec["model"] = STORM_MODELS[index % 2]
        spec.update(timeout_s=STORM_TIMEOUT_S, heartbeat_s=2, retry=dict(STORM_RETRY))
        spec.setdefault("fallback_models", ["offline:backup"])
    return raw


# ------------------------------------------------------------------------- scenarios

@dataclass
class Options:
    seed: int
    kills: int = 20
    restarts: int = 3
    two_worker_kills: int = 3
    wait_s: float = 60.0
    storm_runs: int = 1
    only: tuple[str, ...] = ()
    latency_s: float = LATENCY_S


@dataclass
class Scenario:
    name: str
    title: str
    expect: str
    seed: str
    runs: list[Run] = field(default_factory=list)
    faults: list[tuple[float, float]] = field(default_factory=list)
    injected: str = ""
    notes: list[str] = field(default_factory=list)
    calls: CallStats = field(default_factory=CallStats)
    storm: bool = False
    fake_answers: int = 0     # answers the fake providers gave (storms)
    seconds: float = 0.0

    @property
    def started(self) -> int:
        return len(self.runs)

    @property
    def completed(self) -> int:
        return sum(r.completed for r in self.runs)

    @property
    def lost(self) -> int:
        return self.started - self.completed

    @property
    def repeated(self) -> int:
        fake_extra = max(0, self.fake_answers - self.calls.fake_completed)
        return self.calls.repeated + self.calls.tool_repeated + fake_extra

    def recovery(self, baselines: dict[str, float]) -> list[float]:
        """Seconds beyond a run's normal length (and beyond a deliberate wait for a
        worker), for the runs a fault hit."""
        extra = []
        for run in self.runs:
            if run.hit and run.duration is not None and run.target.name in baselines:
                extra.append(max(0.0, run.duration - run.waited_s
                                 - baselines[run.target.name]))
        return extra


class Suite:
    """Runs the scenarios on one cluster; each scenario gets its own task queue, logs
    and workers, so nothing of one leaks into the next."""

    def __init__(self, cluster: Cluster, options: Options, say: Callable[[str], None]) -> None:
        self.cluster = cluster
        self.options = options
        self.say = say
        self.baselines: dict[str, float] = {}       # offline, with latency
        self.storm_baselines: dict[str, float] = {}  # storm catalogue, calm providers
        self.starter_lag = 0.8
        self.workers: list[Proc] = []
        self.scenarios: list[Scenario] = []
        self.openai = StormServer("openai")
        self.anthropic = StormServer("anthropic")
        self.storm_file = cluster.work / "storm_catalogue.toml"
        self.steady_file = cluster.work / "storm_catalogue_no_breakers.toml"

    # -- plumbing

    def _rng(self, name: str) -> random.Random:
        return random.Random(f"{self.options.seed}:{name}")

    def _paths(self, name: str) -> tuple[Path, Path]:
        folder = self.cluster.work / name
        folder.mkdir(exist_ok=True)
        return folder / "calls.jsonl", folder / "tools.jsonl"

    def _worker_env(self, name: str) -> dict[str, str]:
        calls, tools = self._paths(name)
        return {"BATON_OFFLINE_CALL_LOG": str(calls), "BATON_TEST_TOOL_LOG": str(tools),
                "BATON_TEST_SLOW_S": str(SLOW_TOOL_S)}

    async def _worker(self, name: str) -> Proc:
        worker = await self.cluster.start_worker(f"rel-{name}", self._worker_env(name))
        self.workers.append(worker)
        return worker

    async def _kill_workers(self) -> None:
        for worker in self.workers:
            await self.cluster.kill(worker)
        self.workers.clear()

    def _latency(self) -> tuple[str, ...]:
        return ("--latency", str(self.options.latency_s))

    def _runs(self, cycle: int, expect: Iterable[str], flags: tuple[str, ...] = (),
              targets: Sequence[Target] = TARGETS) -> list[Run]:
        return [Run(t, frozenset(expect), cycle, flags) for t in targets]

    def _schedule(self, runs: list[Run], kill_at: float, rng: random.Random,
                  baselines: dict[str, float]) -> list[float]:
        """Start times that put the fault at a random point of each run's normal length."""
        times = []
        for run in runs:
            length = baselines.get(run.target.name, 2.0)
            lag = 0.0 if run.target.session else self.starter_lag
            times.append(kill_at - lag - rng.uniform(0.05, 0.95) * length)
        return times

    def _plan(self, runs: list[Run], rng: random.Random) -> tuple[float, list[float]]:
        """When the fault comes, and when each run starts so that it lands at a random
        point of the run's normal length."""
        kill_at = time.time() + max(self.baselines.values()) + self.starter_lag + 0.5
        return kill_at, self._schedule(runs, kill_at, rng, self.baselines)

    def _learn_lag(self, runs: Iterable[Run]) -> None:
        """The starter's lag (process start to workflow start) as the scenarios see it."""
        lags = [r.started - r.spawned for r in runs
                if not r.target.session and r.started is not None and r.spawned is not None]
        if lags:
            self.starter_lag = (self.starter_lag + statistics.median(lags)) / 2

    async def _play_all(self, driver: Driver, runs: list[Run],
                        times: Sequence[float | None] | None = None,
                        timeout: float = RUN_TIMEOUT_S,
                        warm: Sequence[Proc] | None = None) -> list[asyncio.Task[Run]]:
        """Play `runs`, each released at its time (default: now) from a ready starter."""
        warm = warm or await driver.warm(runs)
        times = times or [None] * len(runs)
        return [asyncio.create_task(driver.play(r, t, timeout, w))
                for r, t, w in zip(runs, times, warm, strict=True)]

    async def _finish(self, scenario: Scenario, tasks: list[asyncio.Task[Run]]) -> None:
        runs = await asyncio.gather(*tasks)
        self._learn_lag(runs)
        for run in runs:
            windows = scenario.faults
            if run.started is not None:
                end = run.ended if run.ended is not None else math.inf
                run.hit = run.hit or any(a < end and run.started < b for a, b in windows)
            scenario.runs.append(run)
        if scenario.faults and not scenario.storm:
            fault = scenario.faults[-1][0]
            self.say("     runs around the fault (s): " + ", ".join(
                f"{r.target.name} {_rel(r.started, fault)}..{_rel(r.ended, fault)}"
                for r in runs))

    async def _check(self, scenario: Scenario) -> None:
        calls_path, tools_path = self._paths(scenario.name)
        calls, tools = read_jsonl(calls_path), read_jsonl(tools_path)
        for run in scenario.runs:
            if run.workflow_id is None:
                continue
            run.calls = await check_calls(self.cluster.client, run.workflow_id, calls, tools)
            scenario.calls.add(run.calls)

    async def _scenario(self, name: str, title: str, expect: str,
                        body: Callable[[Scenario], Awaitable[None]]) -> None:
        if self.options.only and name not in self.options.only:
            return
        scenario = Scenario(name, title, expect, seed=f"{self.options.seed}")
        self.say(f"== {name}: {title}")
        began = time.monotonic()
        try:
            await body(scenario)
        finally:
            await self._kill_workers()
        await self._check(scenario)
        scenario.seconds = time.monotonic() - began
        self.scenarios.append(scenario)
        self.say(summary_line(scenario, self.baselines_for(scenario)))
        for run in scenario.runs:
            if not run.completed or (run.calls and run.calls.problems):
                self.say(f"   ! {run.target.name} {run.workflow_id}: status={run.status} "
                         f"{run.reason} {' | '.join(run.errors)} "
                         f"{' | '.join((run.calls.problems if run.calls else [])[:5])}")

    # -- baselines

    def baselines_for(self, scenario: Scenario) -> dict[str, float]:
        """Normal run lengths: on the storm catalogue for storms, else offline."""
        return self.storm_baselines if scenario.storm else self.baselines

    async def measure_baselines(self) -> None:
        """The normal length of each target's run and the starter's lag (release to
        workflow start), measured as the scenarios run: first all targets at once (a
        first estimate), then twice started around a moment as a fault would be, with
        no fault; the median of those two."""
        name = "baseline"
        await self._worker(name)
        driver = Driver(self.cluster, f"rel-{name}")
        rng = self._rng(name)
        lengths: dict[str, list[float]] = {}
        for cycle in range(3):
            runs = self._runs(cycle, {"ok"}, self._latency())
            warm = await driver.warm(runs)
            times = self._plan(runs, rng)[1] if cycle else None
            for run in await asyncio.gather(*await self._play_all(driver, runs, times,
                                                                  warm=warm)):
                if not run.completed or run.duration is None:
                    raise SuiteError(f"a baseline run of {run.target.name} did not end ok: "
                                     f"{run.status} {run.reason} {run.errors}")
                lengths.setdefault(run.target.name, []).append(run.duration)
            self._learn_lag(runs)
            if cycle == 0:
                self.baselines = {k: v[0] for k, v in lengths.items()}
        await self._kill_workers()
        self.baselines = {k: statistics.median(v[1:]) for k, v in lengths.items()}
        self.say("baseline (s): " + ", ".join(f"{k} {v:.1f}" for k, v in self.baselines.items())
                 + f"; starter lag {self.starter_lag:.2f}")

    # -- process faults

    async def worker_kill(self) -> None:
        async def body(scenario: Scenario) -> None:
            rng = self._rng(scenario.name)
            driver = Driver(self.cluster, f"rel-{scenario.name}")
            worker = await self._worker(scenario.name)
            delays = []
            for cycle in range(self.options.kills):
                runs = self._runs(cycle, {"ok"}, self._latency())
                warm = await driver.warm(runs)
                kill_at, times = self._plan(runs, rng)
                tasks = await self._play_all(driver, runs, times, warm=warm)
                await asyncio.sleep(max(0.0, kill_at - time.time()))
                await self.cluster.kill(worker)
                self.workers.remove(worker)
                killed = time.time()
                delay = rng.uniform(0.0, 3.0)
                delays.append(delay)
                await asyncio.sleep(delay)
                worker = await self._worker(scenario.name)
                scenario.faults.append((killed, killed))
                await self._finish(scenario, tasks)
                self.say(f"   kill {cycle + 1}/{self.options.kills}: next worker after "
                         f"{delay:.1f} s; {sum(r.hit for r in scenario.runs[-len(runs):])} "
                         f"of {len(runs)} runs in flight")
            scenario.injected = (f"{self.options.kills} x kill -9 of the only worker; the next "
                                 f"one started {min(delays):.1f}-{max(delays):.1f} s later")

        await self._scenario("worker_kill", "kill -9 of the worker at random moments",
                             "ok", body)

    async def server_restart(self) -> None:
        async def body(scenario: Scenario) -> None:
            rng = self._rng(scenario.name)
            driver = Driver(self.cluster, f"rel-{scenario.name}")
            await self._worker(scenario.name)
            downs = []
            for cycle in range(self.options.restarts):
                runs = self._runs(cycle, {"ok"}, self._latency())
                warm = await driver.warm(runs)
                kill_at, times = self._plan(runs, rng)
                tasks = await self._play_all(driver, runs, times, warm=warm)
                await asyncio.sleep(max(0.0, kill_at - time.time()))
                assert self.cluster.server is not None
                await self.cluster.kill(self.cluster.server)
                killed = time.time()
                down = rng.uniform(1.0, 3.0)
                await asyncio.sleep(down)
                await self.cluster.start_server()
                downs.append(time.time() - killed)
                scenario.faults.append((killed, killed))
                await self._finish(scenario, tasks)
                self.say(f"   restart {cycle + 1}/{self.options.restarts}: server down "
                         f"{downs[-1]:.1f} s")
            scenario.injected = (f"{self.options.restarts} x kill -9 of the dev server, restarted "
                                 f"on the same SQLite file after {min(downs):.1f}-"
                                 f"{max(downs):.1f} s; the worker stays up")

        await self._scenario("server_restart", "the dev server killed and restarted mid-run",
                             "ok", body)

    async def two_workers(self) -> None:
        async def body(scenario: Scenario) -> None:
            rng = self._rng(scenario.name)
            driver = Driver(self.cluster, f"rel-{scenario.name}")
            for cycle in range(self.options.two_worker_kills):
                while len(self.workers) < 2:
                    await self._worker(scenario.name)
                runs = self._runs(cycle, {"ok"}, self._latency())
                warm = await driver.warm(runs)
                kill_at, times = self._plan(runs, rng)
                tasks = await self._play_all(driver, runs, times, warm=warm)
                await asyncio.sleep(max(0.0, kill_at - time.time()))
                victim = self.workers[rng.randrange(2)]
                await self.cluster.kill(victim)
                self.workers.remove(victim)
                survivor = self.workers[0]
                killed = time.time()
                scenario.faults.append((killed, killed))
                await self._finish(scenario, tasks)  # no worker is started meanwhile
                if not survivor.alive:
                    scenario.notes.append(f"cycle {cycle}: the surviving worker died")
            scenario.injected = (f"{self.options.two_worker_kills} x two workers on one task "
                                 "queue, one killed with kill -9 mid-run, no restart")

        await self._scenario("two_workers", "two workers, one killed: the other finishes",
                             "ok", body)

    async def late_worker(self) -> None:
        async def body(scenario: Scenario) -> None:
            driver = Driver(self.cluster, f"rel-{scenario.name}")
            wait = self.options.wait_s
            runs = self._runs(0, {"ok"}, self._latency())
            warm = await driver.warm(runs)
            began = time.time()
            tasks = await self._play_all(driver, runs, timeout=wait + RUN_TIMEOUT_S, warm=warm)
            await asyncio.sleep(wait)
            await self._worker(scenario.name)
            joined = time.time()
            scenario.faults.append((began, joined))
            await self._finish(scenario, tasks)
            for run in runs:
                if run.started is not None:
                    run.waited_s = max(0.0, joined - run.started)
            scenario.injected = (f"no worker for {wait:.0f} s after the runs started; then one "
                                 "joins")

        await self._scenario("late_worker", f"a worker joins after {self.options.wait_s:.0f} s",
                             "ok", body)

    # -- provider storms

    async def _storm(self, name: str, title: str, kind: str, expect: set[str], flags:
                     tuple[str, ...] = (), extra: Sequence[Target] = (),
                     extra_expect: set[str] | None = None, injected: str = "",
                     breakers: bool = True) -> None:
        async def body(scenario: Scenario) -> None:
            rng = self._rng(name)
            driver = Driver(self.cluster, f"rel-{name}",
                            self.storm_file if breakers else self.steady_file)
            await self._worker(name)
            scenario.storm = True
            self._weather(kind, rng)
            runs: list[Run] = []
            for cycle in range(self.options.storm_runs):
                runs += self._runs(cycle, expect, flags)
                runs += self._runs(cycle, extra_expect or expect, flags, extra)
            began = time.time()
            scenario.faults.append((began, math.inf))
            await self._finish(scenario, await self._play_all(driver, runs))
            scenario.fake_answers = self.openai.answered + self.anthropic.answered
            faults = self.openai.faulted + self.anthropic.faulted
            requests = len(self.openai.requests) + len(self.anthropic.requests)
            scenario.injected = injected + (
                f"; {requests} provider requests, {scenario.fake_answers} answered, faults: "
                + (", ".join(f"{k} x{v}" for k, v in sorted(faults.items())) or "none"))
            if kind == "down" and breakers:
                await self._breakers(scenario)
            self._weather("none", rng)

        wanted = " or ".join(sorted(expect)) + "".join(
            f"; `{t.member}`: {' or '.join(sorted(extra_expect or expect))}" for t in extra)
        await self._scenario(name, title, wanted, body)

    def _weather(self, kind: str, rng: random.Random) -> None:
        """Both fake providers misbehave as `kind` says, each with its own random stream."""
        self.openai.use(storm_policy(kind, random.Random(rng.random()), anthropic=False))
        self.anthropic.use(storm_policy(kind, random.Random(rng.random()), anthropic=True))

    async def _breakers(self, scenario: Scenario) -> None:
        code, out, err = await self.cluster.starter(f"rel-{scenario.name}",
                                                    ["breakers", "--json"])
        if code != 0:
            scenario.notes.append(f"starter.py breakers failed: {err.strip()[-200:]}")
            return
        states = {s["model"]: s["state"] for s in json.loads(out)}
        opened = {m: states.get(m) for m in STORM_MODELS}
        scenario.notes.append("circuit breakers after the outage (starter.py breakers): "
                              + ", ".join(f"{m} {s}" for m, s in opened.items()))
        if any(s not in ("open", "half_open") for s in opened.values()):
            scenario.notes.append("UNEXPECTED: a breaker of a down provider is not open")

    async def measure_storm_baselines(self) -> None:
        name = "storm_baseline"
        await self._worker(name)
        driver = Driver(self.cluster, f"rel-{name}", self.storm_file)
        runs = self._runs(0, {"ok"})
        for run in await asyncio.gather(*await self._play_all(driver, runs)):
            if not run.completed or run.duration is None:
                raise SuiteError(f"a calm storm-catalogue run of {run.target.name} did not end "
                                 f"ok: {run.status} {run.reason} {run.errors}")
            self.storm_baselines[run.target.name] = run.duration
        await self._kill_workers()

    async def storms(self) -> None:
        names = ("storm_rate_limits", "storm_server_errors", "storm_hangs", "storm_down",
                 "storm_budget", "storm_deadline")
        if self.options.only and not set(names) & set(self.options.only):
            return
        with self.openai, self.anthropic:
            self.storm_file.write_text(
                toml_text(storm_catalogue(self.openai.url, self.anthropic.url)))
            self.steady_file.write_text(toml_text(storm_catalogue(
                self.openai.url, self.anthropic.url, breakers=False)))
            await self.measure_storm_baselines()
            await self._storm(
                "storm_rate_limits", "bursts of 429 with retry-after", "rate_limits",
                {"ok", "degraded"}, breakers=False,
                injected="429 for 1.5 s of every 5 (retry-after: 1 s on OpenAI, "
                         "retry-after-ms: 800 on Anthropic), no circuit opens: the calls wait "
                         "what the provider asks and try again")
            await self._storm(
                "storm_server_errors", "500, 503 and connection resets", "server_errors",
                {"ok", "degraded"},
                injected="each request: 15 % HTTP 500, 15 % 503, 12 % TCP reset")
            await self._storm(
                "storm_hangs", "hung responses and malformed JSON", "hangs_and_garbage",
                {"ok", "degraded"},
                injected=f"each request: 20 % hang {HANG_S:.0f} s (the call's timeout is "
                         f"{STORM_TIMEOUT_S:.0f} s), 20 % a 200 with malformed JSON")
            await self._storm(
                "storm_down", "both providers down beyond the retry budget", "down",
                {"degraded"}, extra=[NO_FALLBACK], extra_expect={"failed"},
                injected="every request 503 for the whole scenario; `lonely` has no fallback")
            await self._storm(
                "storm_budget", "a call budget runs out during a 503 storm", "down",
                {"budget_exhausted"}, flags=("--budget-calls", "4"), breakers=False,
                injected="every request 503, no circuit opens; --budget-calls 4 (the first "
                         "agent's 3 failed attempts and its fallback's answer fit, then "
                         "nothing does)")
            await self._storm(
                "storm_deadline", "a deadline passes during a storm of hung responses",
                "hang_all", {"budget_exhausted"}, flags=("--deadline", "14"), breakers=False,
                injected=f"every request hangs {HANG_S:.0f} s, no circuit opens; --deadline 14 "
                         "(per turn in the session): a first agent's three attempts time out, "
                         "its fallback answers, the next agent's call runs into the deadline")

    async def run_all(self) -> None:
        await self.cluster.start_server()
        wants_offline = not self.options.only or any(
            n in self.options.only
            for n in ("worker_kill", "server_restart", "two_workers", "late_worker"))
        if wants_offline:
            await self.measure_baselines()
        await self.worker_kill()
        await self.server_restart()
        await self.two_workers()
        await self.late_worker()
        await self.storms()


def summary_line(s: Scenario, baselines: dict[str, float]) -> str:
    extra = s.recovery(baselines)
    statuses = Counter(r.status for r in s.runs)
    return (f"   {s.name}: {s.started} runs, {s.completed} completed, {s.lost} lost; "
            f"{s.calls.model_calls} completed calls, {s.repeated} repeated; in flight re-run: "
            f"{s.calls.rerun_model} model ({s.calls.answered_twice} answered twice), "
            f"{s.calls.rerun_tool} tool; recovery "
            f"{_median(extra)} / {_max(extra)} s; statuses {dict(statuses)}; "
            f"{s.seconds:.0f} s"
            + (f"; fake providers answered {s.fake_answers}, completed on them "
               f"{s.calls.fake_completed}" if s.storm else ""))


def _rel(moment: float | None, origin: float) -> str:
    return "?" if moment is None else f"{moment - origin:+.1f}"


def _median(values: list[float]) -> str:
    return f"{statistics.median(values):.1f}" if values else "-"


def _max(values: list[float]) -> str:
    return f"{max(values):.1f}" if values else "-"


# ---------------------------------------------------------------------------- report

GUARANTEES = """\
## What is guaranteed

**Exactly once: a completed model call is never paid for twice.** Every model call
is a `call_model` activity. Once it has completed, its result is an event in the
run's history, and from then on every replay (a worker that took the run over after
a crash, or after a server restart; a `starter.py reset`, which keeps what completed
before its reset point) reads the result from history instead of calling the model.
The suite checks this for every run: a call is identified by its workflow, run and
activity id; the history says which attempt completed it; the offline provider's
log lists every answer it gave. No
answer may come after the completing attempt, and no workflow may ask twice for the
same agent's same call (`completed calls repeated` must be 0). For the fake
OpenAI and Anthropic servers, the answers they gave must equal the calls completed
on them.

**At least once: an activity in flight at a crash may run again.** A model call
that had not completed (the worker died while the provider was answering, or after
the answer and before the worker could report it) and a tool call that was running
are retried on another worker once their heartbeat timeout notices the loss (10 s
for model calls in the default catalogue, the tool's own `heartbeat=` for tools).
Such a retry is a new *attempt* of the same activity. The model may then be paid
twice for that one call (`in-flight model calls re-run`), and a tool function may
run twice (`in-flight tool calls re-run`). Nothing that had completed runs again.

**What a tool author must make idempotent, and how Baton helps.** Any tool with a
side effect (a payment, an e-mail, a write) must tolerate running again for the
same call. Baton gives each call a `ToolContext.idempotency_key`, made of the workflow
id, the run id and the activity id (`<workflow id>/<run id>/<activity id>`): the same
for every attempt of one call, including the re-run after a crash, and different for
every other call, also across a session's continue-as-new.
Pass it to the payment API as its idempotency key, or keep it as a unique key in
your database and return the stored result when it is already there
(`examples/support_desk.py`'s `issue_refund` does that). A read-only tool needs
nothing.

**What is not covered.**
- A model call in flight at a crash is paid again (above); so is any attempt a
  provider answered after the client had given up on it (a response that arrives
  after the call's timeout).
- Side effects of a tool that does not use its idempotency key.
- A run the starter could not start: while the server is unreachable the starter
  exits with status 2 and starts nothing; whoever called it must try again (the
  suite does). A session turn in progress keeps waiting through a restart.
- The loss of the server's database. The dev server keeps its state in one SQLite
  file (WAL, `synchronous=normal`): a killed server process loses nothing, a power
  cut may lose the last transactions. A production cluster's database has its own
  guarantees.
- Circuit breakers live in each worker's memory: a new worker learns again, after
  a few failed calls, that a provider is down.
- A deadline is enforced by Baton when the next step is checked and by the server
  as the run's execution timeout (deadline + 30 s); a call in flight is bounded by
  the remaining time.
"""

METHOD = """\
## How the suite measures

`scripts/reliability.py` starts a dev server (`temporal server start-dev`, SQLite
file, Baton's dev-server arguments), workers (`worker.py --app tests.data.tool_app`)
and starters (`starter.py run ... --no-wait --json`, and `starter.py chat` for the
session) as separate processes on 127.0.0.1 ports it picks, and kills each with
SIGKILL (`kill -9`) by its process id. A starter is started ahead with its imports
done and released at its moment (then `baton.cli.starter.run`, what `python
starter.py` runs, takes over), so that a run starts when the seed says. Every
scenario runs each target once per cycle: `support_desk` (triage), `research_panel`
(fan-out), `dev_team` (supervisor), `article_pipeline` (pipeline), `concierge_desk`
(composed: triage → supervisor → fan-out), the tool-using `support` agent of
`tests/data/tool_app.py` (its `slow_report` tool works {slow_tool} s) and a two-turn
session with `support_desk`. In the process-fault scenarios every offline call takes
{latency} s, and each run is started so that the fault lands at a random point
(seeded) of its normal length.

- **runs started / completed / lost**: a run is completed when it ended with a
  status the scenario expects; lost otherwise (not ended within {timeout:.0f} s,
  failed, or another status).
- **completed calls**: `call_model` activities completed, from the histories of
  each run and every nested run (children, continue-as-new).
- **completed calls repeated**: answers logged after the attempt that completed a
  call, the same call scheduled twice, tool executions after a completed one, and
  fake-provider answers beyond the calls completed on them. Must be 0.
- **in-flight model calls re-run**: attempts of model calls made again because an
  earlier attempt did not complete: cut off by a crash (worker and server
  scenarios) or failed by the provider (storms, where these are the retries). The
  console also prints how many of them the provider had already answered when the
  worker died (answered twice).
- **in-flight tool calls re-run**: tool executions of an attempt that did not
  complete, run again: the at-least-once part.
- **recovery**: for the runs in flight at the fault (the whole outage in
  `late_worker`, the whole storm in the storms), the run's length minus its normal
  length (the median of two clean runs of the same target, started as in the
  scenarios), and minus the deliberate wait in `late_worker`; it includes the time
  until the next worker started. Median and maximum, in seconds.
"""


def render_report(suite: Suite, options: Options, seconds: float, command: str) -> str:
    lines = [
        "# Reliability",
        "",
        "<!-- Written by scripts/reliability.py (make reliability); do not edit by hand. -->",
        "",
        f"Measured {datetime.now(UTC):%Y-%m-%d %H:%M} UTC by `{command}` in "
        f"{seconds / 60:.1f} minutes on this machine (2 cores, shared). Seed "
        f"**{options.seed}**: the same seed gives the same kill moments, restart delays and "
        "storm draws (`--seed`).",
        "",
        "| scenario | runs started | completed | lost | completed calls | completed calls "
        "repeated | in-flight model calls re-run | in-flight tool calls re-run | recovery "
        "median (s) | recovery max (s) | seed |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for s in suite.scenarios:
        extra = s.recovery(suite.baselines_for(s))
        lines.append(f"| {s.name} | {s.started} | {s.completed} | {s.lost} | "
                     f"{s.calls.model_calls} | {s.repeated} | {s.calls.rerun_model} | "
                     f"{s.calls.rerun_tool} | {_median(extra)} | {_max(extra)} | {s.seed} |")
    lines += ["", "## Scenarios", ""]
    for s in suite.scenarios:
        statuses = ", ".join(f"{k} x{v}" for k, v in sorted(Counter(
            str(r.status) for r in s.runs).items()))
        hit = sum(r.hit for r in s.runs)
        per_target = Counter(r.target.name for r in s.runs if r.hit)
        cycles = Counter(r.target.name for r in s.runs)
        where = ", ".join(f"{name} {per_target[name]}/{cycles[name]}" for name in cycles)
        lines.append(f"- **{s.name}**: {s.title}. Injected: {s.injected}. Expected status: "
                     f"{s.expect}. Ended: {statuses}. In flight at the fault: {hit} runs"
                     + (f" ({where})" if not s.storm else "") + f"; {s.seconds:.0f} s.")
        for run in s.runs:
            if run.status == "failed" and run.completed:
                lines.append(f"  - `{run.target.member}` failed as expected: {run.reason}")
        for run in s.runs:
            if not run.completed:
                lines.append(f"  - LOST `{run.workflow_id}` ({run.target.name}): status "
                             f"{run.status}; {run.reason} {'; '.join(run.errors)}")
        if s.storm:
            lines.append(f"  - the fake providers gave {s.fake_answers} answers; "
                         f"{s.calls.fake_completed} calls completed on them")
        lines += [f"  - {note}" for note in s.notes]
        problems = s.calls.problems[:10]
        lines += [f"  - PROBLEM: {p}" for p in problems]
    if suite.baselines or suite.storm_baselines:
        lines += ["", "Normal length of each target's run (s), no fault: "
                  + ", ".join(f"{k} {v:.1f}" for k, v in suite.baselines.items())
                  + (" (offline, " + f"{options.latency_s} s per call); storm catalogue, calm "
                     "providers: " + ", ".join(f"{k} {v:.1f}"
                                               for k, v in suite.storm_baselines.items())
                     if suite.storm_baselines else "") + "."]
    lines += ["", GUARANTEES,
              METHOD.format(slow_tool=SLOW_TOOL_S, latency=options.latency_s,
                            timeout=RUN_TIMEOUT_S)]
    return "\n".join(lines)


# ----------------------------------------------------------------------------- main

async def run_suite(options: Options, work: Path,
                    say: Callable[[str], None] = print) -> Suite:
    """Every selected scenario on a cluster of its own under `work`; every process it
    started is killed before this returns or raises."""
    cluster = Cluster(work)
    suite = Suite(cluster, options, say)
    try:
        await suite.run_all()
    finally:
        await cluster.stop()
    return suite


def suite_ok(suite: Suite) -> bool:
    return all(s.lost == 0 and s.repeated == 0 and not s.calls.problems
               and not any(n.startswith("UNEXPECTED") for n in s.notes)
               for s in suite.scenarios)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="reliability.py", description=__doc__.split("\n")[0])
    parser.add_argument("--seed", type=int, help="seed of every random choice (default: new)")
    parser.add_argument("--kills", type=int, default=20,
                        help="worker kills per pattern (default 20)")
    parser.add_argument("--restarts", type=int, default=3, help="server restarts (default 3)")
    parser.add_argument("--two-worker-kills", type=int, default=3,
                        help="kills with two workers on the queue (default 3)")
    parser.add_argument("--wait-s", type=float, default=60.0,
                        help="how long runs wait for a late worker (default 60)")
    parser.add_argument("--storm-runs", type=int, default=1,
                        help="runs of each target per storm (default 1)")
    parser.add_argument("--latency", type=float, default=LATENCY_S,
                        help=f"offline seconds per call in process faults (default {LATENCY_S})")
    parser.add_argument("--only", default="",
                        help="comma-separated scenario names (default: all)")
    parser.add_argument("--quick", action="store_true",
                        help="2 kills, 1 restart, 1 two-worker kill, 15 s wait")
    parser.add_argument("--out", type=Path,
                        help="report file (default: docs/reliability.md; with --quick or "
                             "--only, none unless given)")
    parser.add_argument("--keep", action="store_true", help="keep the work folder (logs)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    seed = args.seed if args.seed is not None else random.SystemRandom().randrange(100_000)
    options = Options(seed=seed, kills=args.kills, restarts=args.restarts,
                      two_worker_kills=args.two_worker_kills, wait_s=args.wait_s,
                      storm_runs=args.storm_runs, latency_s=args.latency,
                      only=tuple(n for n in args.only.split(",") if n))
    if args.quick:
        options.kills, options.restarts, options.two_worker_kills = 2, 1, 1
        options.wait_s = 15.0
    out = args.out or (None if args.quick or options.only else DOC)
    work = Path(tempfile.mkdtemp(prefix="baton-reliability-"))
    print(f"reliability suite, seed {seed}; processes' logs in {work}", flush=True)
    began = time.monotonic()
    loop = asyncio.new_event_loop()
    main_task = loop.create_task(run_suite(options, work, lambda s: print(s, flush=True)))
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, main_task.cancel)
    try:
        suite = loop.run_until_complete(main_task)
    except (asyncio.CancelledError, KeyboardInterrupt):
        print("interrupted; every process it started was killed", flush=True)
        return 130
    except SuiteError as err:
        print(f"error: {err}; processes' logs in {work}", flush=True)
        return 1
    except Exception:  # a bug here: say where, with every process already killed
        traceback.print_exc()
        print(f"processes' logs in {work}", flush=True)
        return 1
    seconds = time.monotonic() - began
    command = "scripts/reliability.py " + " ".join(argv if argv is not None else sys.argv[1:])
    report = render_report(suite, options, seconds, command.strip())
    if out is not None:
        out.write_text(report)
        print(f"wrote {out}")
    ok = suite_ok(suite)
    print(f"{'PASS' if ok else 'FAIL'}: {len(suite.scenarios)} scenarios in "
          f"{seconds / 60:.1f} min, seed {seed}", flush=True)
    if ok and not args.keep:
        shutil.rmtree(work, ignore_errors=True)
    return 0 if ok else 1


if __name__ == "__main__":
    exit_now(main())
