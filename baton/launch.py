"""Starting a run: validate everything first, then one `start_workflow` call.

The starter and `baton.run` both start runs here, so a run built from TOML and
one built in Python take the same road: a `RunInput` (the member, the
conversation, the smallest catalogue that runs it, the options) to the pattern's
workflow, with a readable id (`triage-my-invoice-is-wrong-1a2b3c4d`), a summary
for the Web UI, and the deadline enforced by the server as the execution timeout.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from pydantic import ValidationError
from temporalio.client import Client, WorkflowHandle
from temporalio.service import RPCError

from baton.catalogue import describe_errors
from baton.codec import encrypting
from baton.model_io import Message
from baton.runs import (
    DEADLINE_GRACE_S,
    PATTERN_WORKFLOWS,
    FanOutResult,
    PipelineResult,
    RunInput,
    RunOptions,
    RunResult,
    SupervisorResult,
    TriageResult,
)
from baton.search import starting_attributes, unknown_search_attributes
from baton.specs import Catalogue, FanOutTeam

RESULT_TYPES: dict[str, type[RunResult]] = {
    "triage": TriageResult,
    "fanout": FanOutResult,
    "supervisor": SupervisorResult,
    "pipeline": PipelineResult,
    "agent": RunResult,
}


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
    # Ids are stored and shown in plain text: with payloads encrypted, the prompt's
    # first words would be the one part of it left readable on the server.
    label = slug(member) if encrypting() else slug(run_input.prompt)
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
