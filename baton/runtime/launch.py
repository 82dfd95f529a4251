"""Starting a run: validate everything first, then one `start_workflow` call.

The starter and `baton.run` both start runs here, so a run built from TOML and
one built in Python take the same road: a `RunInput` (the member, the
conversation, the smallest catalogue that runs it, the options) to the pattern's
workflow, with a readable id (`triage-my-invoice-is-wrong-1a2b3c4d`; from the team,
`triage-support-desk-1a2b3c4d`, when payloads are encrypted or tracing is on), a summary
for the Web UI, and the deadline enforced by the server as the execution timeout.
"""

from __future__ import annotations

import json
import re
import uuid
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from pydantic import ValidationError
from temporalio.client import Client, WorkflowHandle
from temporalio.service import RPCError

from baton.core.model_io import Message
from baton.core.runs import (
    DEADLINE_GRACE_S,
    PATTERN_WORKFLOWS,
    PATTERNS,
    RunInput,
    RunOptions,
    RunResult,
)
from baton.core.specs import Catalogue, FanOutTeam
from baton.core.waiting import starting_memo
from baton.define.catalogue import describe_errors
from baton.define.flows import Flow, FlowArgumentsError, FlowInput, FlowResult
from baton.runtime.codec import encrypting
from baton.telemetry.observability import tracing_enabled
from baton.telemetry.search import starting_attributes, unknown_search_attributes

RESULT_TYPES: dict[str, type[RunResult]] = {name: p.result for name, p in PATTERNS.items()}


class RunRefused(ValueError):
    """A run that cannot start: the message says what is wrong; nothing was started."""


@dataclass
class PlannedRun:
    input: RunInput
    pattern: str
    workflow_id: str


def slug(text: str, words: int = 5) -> str:
    parts = re.findall(r"[a-z0-9]+", text.lower())[:words]
    return "-".join(parts)[:40].strip("-") or "run"


def prompt_kept_out_of_ids() -> bool:
    """Whether workflow ids are built from the team's name rather than the prompt's
    first words. Ids are stored and shown in plain text and go on every span and SDK
    log line: with payloads encrypted they would be the one part of the prompt left
    readable on the server, and with tracing on they would carry it to the trace
    backend (spans keep prompts out unless BATON_TRACE_CONTENT=1)."""
    return encrypting() or tracing_enabled()


def plan_run(catalogue: Catalogue, member: str, messages: list[Message], options: RunOptions,
             *, items: list[str] | None = None, workflow_id: str | None = None) -> PlannedRun:
    """Validate everything about a run before anything is started."""
    if member not in catalogue.agents and member not in catalogue.teams:
        raise RunRefused(
            f"unknown team or agent {member!r}; teams: {', '.join(sorted(catalogue.teams))}; "
            f"agents: {', '.join(sorted(catalogue.agents))}")
    team = catalogue.teams.get(member)
    if isinstance(team, FanOutTeam) and team.mode == "map" and not items:
        raise RunRefused(f"team {member!r} runs {team.map_member!r} over a list of items; "
                         "give them (--item TEXT, repeatable, or items=[...] in Python)")
    try:
        run_input = RunInput(member=member, messages=messages, catalogue=catalogue.closure(member),
                             options=options, items=items)
    except ValidationError as err:
        raise RunRefused(f"cannot start {member}:\n{describe_errors(err)}") from None
    pattern = catalogue.pattern_of(member)
    label = slug(member) if prompt_kept_out_of_ids() else slug(run_input.prompt)
    workflow_id = workflow_id or f"{pattern}-{label}-{uuid.uuid4().hex[:8]}"
    return PlannedRun(run_input, pattern, workflow_id)


def describe(catalogue: Catalogue, member: str) -> str:
    team = catalogue.teams.get(member)
    if team is not None:
        return team.description
    return catalogue.agents[member].description


async def start_run(client: Client, task_queue: str,
                    planned: PlannedRun) -> WorkflowHandle[Any, RunResult]:
    """Start a planned run; its handle's result is the pattern's typed result."""
    deadline = planned.input.options.budget.max_seconds
    description = describe(planned.input.catalogue, planned.input.member)
    options: dict[str, Any] = dict(
        id=planned.workflow_id,
        task_queue=task_queue,
        static_summary=f"{planned.pattern} · {planned.input.member}: "
                       f"{planned.input.prompt[:80]}",
        static_details=description or None,
        memo=starting_memo(),
        result_type=RESULT_TYPES[planned.pattern],
        execution_timeout=(timedelta(seconds=deadline + DEADLINE_GRACE_S)
                           if deadline else None),
    )
    workflow = PATTERN_WORKFLOWS[planned.pattern]
    try:
        return await client.start_workflow(
            workflow, planned.input, **options,
            search_attributes=starting_attributes(planned.input.member, planned.pattern))
    except RPCError as err:
        if not unknown_search_attributes(err):
            raise
    # A namespace without Baton's search attributes (nothing was started): the run
    # starts without them, and its worker decides whether it upserts them.
    return await client.start_workflow(workflow, planned.input, **options)


@dataclass
class PlannedFlow:
    flow: Flow[Any]
    input: FlowInput
    workflow_id: str


def plan_flow(flow: Flow[Any], given: str | dict[str, Any], options: RunOptions, *,
              workflow_id: str | None = None) -> PlannedFlow:
    """Validate a flow's arguments before anything is started (RunRefused says what the
    flow takes)."""
    try:
        arguments = given if isinstance(given, dict) else flow.arguments_from_text(given)
        flow.validate_arguments(arguments)
    except FlowArgumentsError as err:
        raise RunRefused(str(err)) from None
    prompt = given if isinstance(given, str) else json.dumps(arguments, default=str)
    label = slug(flow.name) if prompt_kept_out_of_ids() else slug(prompt)
    workflow_id = workflow_id or f"{slug(flow.name, 3)}-{label}-{uuid.uuid4().hex[:8]}"
    return PlannedFlow(flow, FlowInput(arguments=arguments, options=options,
                                       prompt=prompt[:2000]), workflow_id)


async def start_flow(client: Client, task_queue: str,
                     planned: PlannedFlow) -> WorkflowHandle[Any, FlowResult]:
    """Start a planned flow: the workflow type is the flow's name."""
    deadline = planned.input.options.budget.max_seconds
    options: dict[str, Any] = dict(
        id=planned.workflow_id, task_queue=task_queue, result_type=FlowResult,
        static_summary=f"flow · {planned.flow.name}: {planned.input.prompt[:80]}",
        static_details=planned.flow.description or None, memo=starting_memo(),
        execution_timeout=(timedelta(seconds=deadline + DEADLINE_GRACE_S)
                           if deadline else None))
    try:
        return await client.start_workflow(
            planned.flow.name, planned.input, **options,
            search_attributes=starting_attributes(planned.flow.name, "flow"))
    except RPCError as err:
        if not unknown_search_attributes(err):
            raise
    return await client.start_workflow(planned.flow.name, planned.input, **options)
