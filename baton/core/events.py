"""Live progress: the events a run publishes while it happens (`starter.py watch`).

Each pattern workflow carries a Temporal Workflow Stream
(`temporalio.contrib.workflow_streams`): an offset-addressed log a watcher
long-polls with Updates, so a watcher that disconnects resumes from its offset and
nothing is polled from the history. Every workflow of a run (children included)
has its own stream; a watcher merges them, namespaced by the nested run's path.
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field

from baton.core.usage import Usage

EVENTS_TOPIC = "events"
EventKind = Literal["step", "phase", "status", "progress", "result"]


class RunEvent(BaseModel):
    """One thing that happened in a run, with its spending so far."""

    kind: EventKind
    # For steps: model_call, tool_call, handoff, approval, ... (baton.core.runs.StepKind).
    step: str | None = None
    agent: str = ""
    detail: str = ""
    ok: bool = True
    # The nested run it happened in ("" for the top-level run).
    path: str = ""
    status: str | None = None
    # Branches finished and planned (fan-outs).
    done: int | None = None
    total: int | None = None
    spent: Usage = Field(default_factory=Usage)
    # Seconds since this workflow started, and when (workflow time, UTC).
    at_s: float = 0.0
    at: datetime | None = None
