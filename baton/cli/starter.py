"""Start Baton runs and print what happened.

    python starter.py triage "My invoice shows the wrong amount"
    python starter.py fanout "Is durable execution worth it for LLM agents?"
    python starter.py supervisor "Write a function that parses ISO dates"
    python starter.py pipeline "Durable execution for AI agents"
    python starter.py composed "Research and compare vector databases"
    python starter.py run <team-or-agent> "<prompt>"
    python starter.py demo [--chaos 0.3 --seed 7]
    python starter.py catalogue | breakers
    python starter.py history <workflow-id> [--raw | -o run.json]
    python starter.py replay <workflow-id> | --file run.json
    python starter.py reset <workflow-id> [--force]
    python starter.py list [--team T] [--status S] [--since 1d] [--all] [--limit N]
    python starter.py codec-server [--port 8081] [--origin URL]   # Web UI decryption
        [--token T] [--tls-cert PEM --tls-key PEM] [--allowed-host H] [--allow-encode]

Flags: --no-wait, --model PROVIDER:MODEL, --json, --catalogue FILE, --app MODULE|FILE.py,
--team NAME, --budget-tokens/--budget-calls/--budget-usd, --deadline, --chaos/--seed/--latency
(`COMMAND --help` lists a command's own). Each run prints its answer (a contract's as
fields), who handled what, its tool calls, usage, incidents and its Web UI link.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import uuid
from collections.abc import Awaitable, Sequence
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from types import ModuleType
from typing import Any

from temporalio.client import Client, WorkflowFailureError, WorkflowHandle
from temporalio.exceptions import ApplicationError
from temporalio.service import RPCError

from baton.cli import approvals, chat, codec_server, runs
from baton.cli import watch as watch_commands
from baton.cli.common import (
    UsageError,
    catalogue_flags,
    connect_or_explain,
    limit_flags,
    output_flags,
    start_flags,
    unknown_member,
)
from baton.cli.output import answer_lines, clean_output, decoded_answer, usd
from baton.cli.run_options import load_for_run, run_options
from baton.cli.tokens import print_tokens
from baton.cli.watch import watch
from baton.core.errors import CircuitOpen
from baton.core.model_io import BreakerState, Message
from baton.core.runs import (
    FanOutResult,
    PipelineResult,
    RunOptions,
    RunResult,
    SupervisorResult,
    TriageResult,
)
from baton.core.specs import Catalogue
from baton.core.text import shorten
from baton.define.flows import FLOWS
from baton.runtime import launch, recovery
from baton.runtime.codec import KEY_ENV, OLD_KEYS_ENV, client_key_problem
from baton.runtime.recovery import readable
from baton.runtime.temporal import Settings, SettingsError, exit_now
from baton.web import commands as web_commands

# What each command runs from the catalogue unless --team says otherwise.
COMMAND_TEAMS = {
    "triage": "support_desk",
    "fanout": "research_panel",
    "supervisor": "dev_team",
    "pipeline": "article_pipeline",
    "composed": "concierge_desk",
}
DEMO_PROMPTS = {
    "triage": "My invoice shows the wrong amount after I upgraded my plan",
    "fanout": "Is durable execution worth it for production LLM agents?",
    "supervisor": "Write a small function that parses ISO 8601 dates, with tests",
    "pipeline": "Why multi-agent systems need durable execution",
    "composed": "Please research and compare open-source vector databases for our product",
}


@dataclass
class PlannedRun:
    """A run the starter validated, with the command that asked for it."""

    command: str
    planned: launch.PlannedRun | launch.PlannedFlow

    @property
    def member(self) -> str:
        """The team, agent or flow the run runs."""
        if isinstance(self.planned, launch.PlannedFlow):
            return self.planned.flow.name
        return self.planned.input.member

    @property
    def options(self) -> RunOptions:
        return self.planned.input.options

    @property
    def workflow_id(self) -> str:
        return self.planned.workflow_id


def plan_run(command: str, prompt: str, catalogue: Catalogue, member: str,
             options: RunOptions, items: list[str] | None = None) -> PlannedRun:
    """Validate everything about a run before anything is started."""
    try:
        return PlannedRun(command, launch.plan_run(
            catalogue, member, [Message(role="user", content=prompt)], options, items=items))
    except launch.RunRefused as err:
        raise UsageError(str(err)) from None


async def start(client: Client, settings: Settings, planned: PlannedRun,
                wait: bool, streamed: bool = False) -> RunResult | None:
    """Start one run; wait for its result unless the caller only wants the id;
    `streamed`: print its text as it comes meanwhile."""
    handle: WorkflowHandle[Any, RunResult]
    if isinstance(planned.planned, launch.PlannedFlow):
        handle = await launch.start_flow(client, settings.task_queue, planned.planned)
    else:
        handle = await launch.start_run(client, settings.task_queue, planned.planned)
    if streamed:
        print(f"streaming {handle.id}: text as the models write it", flush=True)
        await print_tokens(client, handle.id)
        print(flush=True)
    return await handle.result() if wait else None


def render(planned: PlannedRun, result: RunResult, settings: Settings) -> str:
    lines = [f"== {planned.command}: {planned.member} ({result.pattern}) "
             f"status={result.status}"]
    if isinstance(result, TriageResult):
        lines.append(f"handled by: {result.handled_by} — {result.route_reason}")
    elif isinstance(result, FanOutResult):
        for branch in result.branches:
            lines.append(f"branch {branch.branch}: {'ok' if branch.ok else branch.error}")
    elif isinstance(result, SupervisorResult):
        lines.append(f"rounds: {result.rounds}")
        for d in result.delegations:
            lines.append(f"delegated to {d.worker}: {d.verdict}")
    elif isinstance(result, PipelineResult):
        lines.append("stages: " + " -> ".join(f"{s.stage} x{s.attempts}" for s in result.stages))
    if (incidents := _incidents(result)):
        lines.append(f"incidents: {incidents}")
    if result.reasons:
        lines += ["reasons:", *(f"  - {r}" for r in result.reasons)]
    lines += _tool_call_lines(result)
    lines.append("answer:")
    lines += [f"  {line}" for line in answer_lines(result.answer)]
    total = result.total_usage
    lines.append(f"usage: {total.calls} calls, {total.input_tokens} in / "
                 f"{total.output_tokens} out tokens ({total.cached_tokens} cached), "
                 f"cost {usd(total.cost_usd)}")
    for agent, usage in sorted(result.usage.items()):
        lines.append(f"  {agent:<14} {usage.calls:>3} calls {usage.total_tokens:>7} tokens "
                     f"{usd(usage.cost_usd):>10}")
    lines.append(f"web ui: {settings.workflow_link(planned.workflow_id)}")
    return "\n".join(lines)


# How much of a tool call's arguments and result the run summary shows.
SHOWN_ARGUMENTS = 60
SHOWN_RESULT = 60


def _tool_call_lines(result: RunResult) -> list[str]:
    """The run's tool calls, one line each: who, which tool, short arguments, status."""
    calls = result.tool_calls
    if not calls:
        return []
    lines = [f"tool calls ({len(calls)}):"]
    for call in calls:
        where = f"{call.path}: " if call.path else ""
        outcome = ("ok" if call.status == "ok"
                   else f"FAILED: {shorten(call.result, SHOWN_RESULT)}")
        lines.append(f"  {where}{call.agent} · {call.tool}"
                     f"({shorten(call.arguments, SHOWN_ARGUMENTS)}) {outcome}")
    return lines


def _incidents(result: RunResult) -> str:
    """What went wrong on the way, from the trace: retries, repairs, fallbacks, open circuits."""
    steps = result.trace
    retries = sum(s.usage.calls - 1 for s in steps if s.usage and s.usage.calls > 1)
    counts = {
        "retried attempts": retries,
        "failed calls": sum(s.kind == "error" and s.error_type != CircuitOpen.TYPE
                            for s in steps),
        "calls refused by an open circuit": sum(s.error_type == CircuitOpen.TYPE
                                                for s in steps),
        "contract repairs": sum(s.kind == "repair" for s in steps),
        "fallbacks": sum(s.kind == "fallback" for s in steps),
        "gate rejections": sum(s.kind == "gate" and not s.ok for s in steps),
    }
    return ", ".join(f"{n} {what}" for what, n in counts.items() if n)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="starter.py", description=__doc__.split("\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    common = output_flags()
    runs = [common, catalogue_flags(), start_flags(), limit_flags()]
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for command, team in COMMAND_TEAMS.items():
        p = sub.add_parser(command, parents=runs, help=f"run a {command} team ({team})")
        p.add_argument("prompt", help="the request ('-' reads it from standard input)")
        p.add_argument("--team", default=team, help=f"team to run (default: {team})")
    p = sub.add_parser("run", parents=runs, help="run any team, agent or flow by name")
    p.add_argument("team", help="team, agent or flow name from the catalogue or an --app")
    p.add_argument("prompt", help="the request ('-' reads it from standard input)")
    sub.add_parser("demo", parents=runs, help="run every pattern once")
    sub.add_parser("catalogue", parents=[common, catalogue_flags()],
                   help="list agents and teams")
    sub.add_parser("breakers", parents=[common],
                   help="circuit breaker states of a worker on the task queue")
    p = sub.add_parser("history", help="print a run's event history, payloads decoded")
    p.add_argument("workflow_id")
    p.add_argument("-o", "--output", metavar="FILE",
                   help="export the history as recorded (what `replay --file` reads) to FILE")
    p.add_argument("--raw", action="store_true",
                   help="print the history as recorded: payloads as base64, as encrypted")
    p = sub.add_parser("replay", parents=[common],
                       help="replay a run (and its nested runs) against today's code")
    p.add_argument("workflow_id", nargs="?")
    p.add_argument("--file", metavar="FILE", help="replay an exported history instead")
    p.add_argument("--app", metavar="MODULE|FILE.py", action="append", default=[],
                   help="the module or file defining the run's flows (a flow replays "
                        "against its own code; repeatable)")
    p = sub.add_parser("reset", parents=[common],
                       help="restart a failed run after its last completed model call")
    p.add_argument("workflow_id")
    p.add_argument("--force", action="store_true", help="also reset a run still running")
    for commands in COMMAND_MODULES:
        commands.register(sub, common)
    return parser


def plan(args: argparse.Namespace) -> list[PlannedRun]:
    catalogue = load_for_run(args.catalogue, args.model, args.app)
    options = run_options(args, catalogue)
    if args.command == "demo":
        return [plan_run(c, DEMO_PROMPTS[c], catalogue, COMMAND_TEAMS[c], options)
                for c in COMMAND_TEAMS]
    prompt = sys.stdin.read() if args.prompt == "-" else args.prompt
    if args.command == "run" and args.team in FLOWS:  # a flow of an --app module
        try:
            return [PlannedRun(args.command, launch.plan_flow(FLOWS[args.team], prompt, options))]
        except launch.RunRefused as err:
            raise UsageError(str(err)) from None
    if args.team not in catalogue.agents and args.team not in catalogue.teams:
        known = (f"teams: {', '.join(sorted(catalogue.teams))}; agents: "
                 f"{', '.join(sorted(catalogue.agents))}")
        if args.command != "run":
            raise unknown_member("team or agent", args.team, known, args.app)
        raise unknown_member("team, agent or flow", args.team,
                             f"{known}; flows: {', '.join(sorted(FLOWS)) or 'none'}", args.app)
    return [plan_run(args.command, prompt, catalogue, args.team, options, args.items)]


def show_catalogue(args: argparse.Namespace) -> None:
    catalogue = load_for_run(args.catalogue, args.model, args.app)
    if args.json:
        print(catalogue.model_dump_json(indent=2))
        return
    print("teams:")
    for name, team in catalogue.teams.items():
        print(f"  {name:<18} {team.pattern:<10} {', '.join(catalogue.members_of(name))}")
    print("agents:")
    for name, agent in catalogue.agents.items():
        contract = f" -> {agent.contract}" if agent.contract else ""
        tools = f"  tools: {', '.join(agent.tools)}" if agent.tools else ""
        print(f"  {name:<18} {agent.model:<22}{contract}{tools}")
    if FLOWS:
        print("flows:")
        for name, flow in sorted(FLOWS.items()):
            about = flow.description.splitlines()[0] if flow.description else ""
            print(f"  {name:<18} ({flow.describe_parameters()}) {about}")
    if catalogue.tools:
        print("tools:")
        for name, tool in catalogue.tools.items():
            where = "local activity" if tool.local else "activity"
            print(f"  {name:<18} {where}, timeout {tool.timeout_s:g} s, "
                  f"{tool.max_attempts} attempts: {tool.description.splitlines()[0]}")


async def execute(args: argparse.Namespace, runs: Sequence[PlannedRun]) -> int:
    settings = Settings.from_env()
    client = await connect_or_explain(settings)
    chaos = runs[0].options.chaos if runs else None
    if chaos is not None and not args.json:
        print(f"chaos: {chaos.failure_rate:.0%} failures, {chaos.malformed_rate:.0%} malformed, "
              f"{chaos.rejection_rate:.0%} judge rejections per call (seed {chaos.seed}); "
              f"down for this run: {', '.join(chaos.down_models) or 'none'}\n")
    if args.stream and not args.no_wait and not args.json:
        # One run's text at a time: several runs' words interleaved would not read.
        outcomes = [await _outcome(start(client, settings, p, True, streamed=True))
                    for p in runs]
    else:
        outcomes = await asyncio.gather(
            *(start(client, settings, p, not args.no_wait) for p in runs),
            return_exceptions=True)
    status = 0
    collected: list[dict[str, Any]] = []
    for planned, outcome in zip(runs, outcomes, strict=True):
        link = settings.workflow_link(planned.workflow_id)
        if isinstance(outcome, WorkflowFailureError):
            if problem := client_key_problem(outcome, client.data_converter.payload_codec):
                raise UsageError(problem)  # the workers refused what this client sent
            status = 1
            cause = outcome.cause
            error_type = cause.type if isinstance(cause, ApplicationError) else None
            message = cause.message if isinstance(cause, ApplicationError) else str(cause)
            collected.append({"workflow_id": planned.workflow_id, "member": planned.member,
                              "status": "failed", "error": {"type": error_type,
                                                            "message": message},
                              "link": link})
            if not args.json:
                reason = f"{error_type}: {message}" if error_type else message
                print(f"== {planned.member}: FAILED — {reason}\nweb ui: {link}")
        elif isinstance(outcome, RPCError):
            raise UsageError(f"Temporal refused the run {planned.workflow_id}: {outcome}")
        elif isinstance(outcome, BaseException):
            raise outcome
        elif outcome is None:
            collected.append({"workflow_id": planned.workflow_id, "link": link})
            if not args.json:
                print(f"started {planned.workflow_id}\nweb ui: {link}")
        else:
            collected.append(result_json(outcome) | {
                "workflow_id": planned.workflow_id, "link": link})
            if not args.json:
                print(render(planned, outcome, settings) + "\n")
    if args.json and not args.follow:
        print(json.dumps(collected if len(collected) != 1 else collected[0], indent=2))
    if args.follow and args.no_wait:
        for planned in runs:
            followed = argparse.Namespace(**{**vars(args), "workflow_id": planned.workflow_id,
                                             "from_start": True})
            status = max(status, await watch(followed))
    return status


async def _outcome(run: Awaitable[RunResult | None]) -> RunResult | BaseException | None:
    """What `asyncio.gather(..., return_exceptions=True)` gives for one run."""
    try:
        return await run
    except Exception as err:
        return err


def result_json(result: RunResult) -> dict[str, Any]:
    """A run's result for --json: a contract answer as JSON (not a string of escaped JSON),
    and its tool calls."""
    return result.model_dump(mode="json") | {
        "answer": decoded_answer(result.answer),
        "tool_calls": [call.model_dump(mode="json") for call in result.tool_calls]}


async def show_breakers(args: argparse.Namespace) -> int:
    settings = Settings.from_env()
    client = await connect_or_explain(settings)
    states: list[BreakerState] = await client.execute_workflow(
        "BreakerReportWorkflow", id=f"breakers-{uuid.uuid4().hex[:8]}",
        task_queue=settings.task_queue, result_type=list[BreakerState],
        execution_timeout=timedelta(seconds=30),
        static_summary="circuit breaker report")
    if args.json:
        print(json.dumps([s.model_dump(mode="json") for s in states], indent=2))
        return 0
    if not states:
        print("no model has been called on the worker that answered yet")
    for s in states:
        since = f", open for {s.opened_for_s:.0f} s" if s.opened_for_s is not None else ""
        print(f"{s.model:<32} {s.state:<10} {s.recent_failures} recent failures "
              f"(opens at {s.policy.failures} in {s.policy.window_s:.0f} s, "
              f"cool-down {s.policy.cooldown_s:.0f} s){since}")
    return 0


async def recover(args: argparse.Namespace) -> int:
    """history, replay and reset (see recovery.py)."""
    if args.command == "replay" and args.app:
        load_for_run(None, None, args.app)  # registers its flows with the replayer
    if args.command == "replay" and args.file:
        try:
            text = Path(args.file).read_text()
        except OSError as err:
            raise UsageError(f"cannot read {args.file}: {err.strerror}") from None
        histories = [recovery.load_history(args.file, text)]
        return _print_replays(await recovery.replay(histories), args.json)
    if not args.workflow_id:
        raise UsageError("name a workflow id, or --file with an exported history")
    settings = Settings.from_env()
    client = await connect_or_explain(settings)
    if args.command == "history":
        return await show_history(client, args)
    if args.command == "replay":
        histories = await recovery.run_histories(client, args.workflow_id)
        return _print_replays(await recovery.replay(histories), args.json)
    report = await recovery.reset(client, args.workflow_id, force=args.force)
    if args.json:
        print(json.dumps(vars(report) | {"link": settings.workflow_link(args.workflow_id)}))
    else:
        print(f"reset {report.workflow_id} to event {report.reset_event_id}, keeping "
              f"{report.kept_completions} completed calls and nested runs\n"
              f"new run: {report.new_run_id}\n"
              f"web ui: {settings.workflow_link(args.workflow_id)}")
    return 0


async def show_history(client: Client, args: argparse.Namespace) -> int:
    """The run's history: exported as recorded (-o FILE), printed as recorded (--raw), or
    printed with its payloads decoded by this client's data converter."""
    history = await recovery.fetch_history(client, args.workflow_id)
    if args.output:
        Path(args.output).write_text(history.to_json())
        print(f"wrote {len(history.events)} events of {args.workflow_id} to {args.output}")
        return 0
    if args.raw:
        print(history.to_json())
        return 0
    shown = await readable(history, client.data_converter)
    print(json.dumps(shown.history, indent=2))
    if shown.undecoded:
        print(f"note: {shown.undecoded} payload(s) are shown as recorded: this client cannot "
              f"decode them (encrypted with a key it does not hold? set {KEY_ENV} or "
              f"{OLD_KEYS_ENV} as the workers have it)", file=sys.stderr)
    return 0


def _print_replays(reports: list[recovery.ReplayReport], as_json: bool) -> int:
    if as_json:
        print(json.dumps([vars(r) for r in reports], indent=2))
    for r in reports if not as_json else []:
        verdict = ("deterministic" if r.ok
                   else f"NOT REPLAYED, its code is missing here (give --app MODULE): {r.error}"
                   if MISSING_FLOW in (r.error or "") else f"NONDETERMINISTIC: {r.error}")
        print(f"{r.workflow_id}: {r.events} events replayed, {verdict}")
    return 0 if all(r.ok for r in reports) else 1


# What a replay of a flow reports when the flow's module was not loaded (workflows/flow.py).
MISSING_FLOW = "no flow or workflow named"
# Modules adding subcommands of their own (see baton/cli/common.py).
COMMAND_MODULES: list[ModuleType] = [approvals, watch_commands, chat, runs, codec_server,
                                     web_commands]


def main(argv: Sequence[str] | None = None) -> int:
    try:
        with clean_output():  # what runs say never drives the terminal
            return _main(argv)
    except BrokenPipeError:  # the reader left (`| head`): nothing more goes to it
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1


def _main(argv: Sequence[str] | None) -> int:
    args = build_parser().parse_args(argv)
    try:
        handler = getattr(args, "handler", None)
        if handler is not None:
            return int(asyncio.run(handler(args)))
        if args.command == "catalogue":
            show_catalogue(args)
            return 0
        if args.command == "breakers":
            return asyncio.run(show_breakers(args))
        if args.command in ("history", "replay", "reset"):
            return asyncio.run(recover(args))
        return asyncio.run(execute(args, plan(args)))
    except (UsageError, recovery.RecoveryError, SettingsError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    except Exception as err:
        # A client without the key (or with another) fails deep in the SDK's decoding:
        # one line naming the key, not a traceback.
        if (problem := client_key_problem(err)) is None:
            raise
        print(f"error: {problem}", file=sys.stderr)
        return 2


def run() -> None:
    """Console script `baton` and `python starter.py`."""
    exit_now(main())
