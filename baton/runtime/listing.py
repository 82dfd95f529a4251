"""Finding runs: one visibility query by team, pattern, status and age, newest first.

`starter.py list`, `GET /api/runs` and `BatonClient.list_runs` all list through here.
It reads the search attributes every run upserts (baton/telemetry/search.py), the same
ones a Web UI query uses, so it shows what the server knows without asking any worker.
A `RunQuery` is checked when it is built, before anything connects, and its errors
say which filter was wrong in the words of whoever asks (`--status` or `status`).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from temporalio.client import Client, WorkflowExecution, WorkflowExecutionStatus
from temporalio.service import RPCError

from baton.core.runs import PATTERN_WORKFLOWS, RUN_STATUSES
from baton.telemetry.search import COST_USD, MODELS, PATTERN, STATUS, TEAM, TOKENS, quoted

_AGO = re.compile(r"(\d+)\s*([mhdw])")
_UNITS = {"m": "minutes", "h": "hours", "d": "days", "w": "weeks"}
# Statuses a run reports only while it lives: a run that ended without saying more
# (terminated, timed out by its deadline, worker code gone) shows how it ended instead.
LIVE_STATUSES = ("running", "waiting_approval")


class RunQueryError(ValueError):
    """A filter that cannot be used; `naming(...)` says so with the filter spelled as the
    asker spells it (`--since` on the command line, `since` over HTTP)."""

    def __init__(self, parameter: str, before: str, after: str) -> None:
        super().__init__(f"{before}{parameter}{after}")
        self.parameter = parameter
        self._before = before
        self._after = after

    def naming(self, name: str) -> str:
        return f"{self._before}{name}{self._after}"


class ListRefused(Exception):
    """The server refused the visibility query (often: Baton's search attributes are not
    registered on the namespace)."""

    def __init__(self, query: str, message: str) -> None:
        super().__init__(f"Temporal refused the query {query!r}: {message}")
        self.query = query


def parse_since(text: str, now: datetime) -> datetime:
    """The start of the window `since` names: an age (30m, 12h, 7d, 2w) or an ISO date
    (UTC if it has no offset)."""
    if match := _AGO.fullmatch(text.strip()):
        return now - timedelta(**{_UNITS[match[2]]: int(match[1])})
    try:
        since = datetime.fromisoformat(text.strip())
    except ValueError:
        raise RunQueryError("since", "", f" {text!r} is neither an age (30m, 12h, 7d, 2w) "
                            "nor an ISO date (2026-11-20 or 2026-11-20T09:00:00Z)") from None
    return since if since.tzinfo else since.replace(tzinfo=UTC)


@dataclass
class RunQuery:
    """Which runs to list: by team or agent, pattern, status, start (a datetime, or
    text `parse_since` reads), nested runs too or not, at most `limit`."""

    team: str | None = None
    status: str | None = None
    pattern: str | None = None
    since: datetime | str | None = None
    nested: bool = False
    limit: int = 20

    def __post_init__(self) -> None:
        if self.status is not None and self.status not in RUN_STATUSES:
            raise RunQueryError("status", "unknown ", f" {self.status!r}; accepted: "
                                f"{', '.join(RUN_STATUSES)}")
        if self.limit < 1:
            raise RunQueryError("limit", "", " must be at least 1")
        if isinstance(self.since, str):
            self.since = parse_since(self.since, datetime.now(UTC))

    def text(self) -> str:
        """The visibility query (the Web UI takes the same text)."""
        types = ", ".join(quoted(t) for t in PATTERN_WORKFLOWS.values())
        # A flow's workflow type is its own name: flows are found by their pattern.
        clauses = [f"(WorkflowType IN ({types}) OR {PATTERN.name} = 'flow')"]
        if not self.nested:
            clauses.append("ParentWorkflowId IS NULL")
        if self.pattern:
            clauses.append(f"{PATTERN.name} = {quoted(self.pattern)}")
        if self.team:
            clauses.append(f"{TEAM.name} = {quoted(self.team)}")
        if self.status:
            clauses.append(f"{STATUS.name} = {quoted(self.status)}")
            if self.status in LIVE_STATUSES:
                clauses.append("ExecutionStatus = 'Running'")
        if isinstance(self.since, datetime):
            clauses.append(f"StartTime >= {quoted(self.since.astimezone(UTC).isoformat())}")
        return " AND ".join(clauses)


@dataclass
class ListedRun:
    """One listed run, as its search attributes describe it."""

    workflow_id: str
    team: str | None
    pattern: str | None
    status: str
    cost_usd: float | None
    tokens: int | None
    models: list[str]
    start_time: str
    close_time: str | None
    link: str


async def list_runs(client: Client, query: RunQuery,
                    link: Callable[[str], str]) -> list[ListedRun]:
    """The runs `query` matches, newest first; `link(workflow_id)` is each one's Web UI
    link. ListRefused when the server refuses the query."""
    text = query.text()
    try:
        executions = await newest(client, text, query.limit, nested=query.nested)
    except RPCError as err:
        raise ListRefused(text, err.message) from None
    return [listed_run(execution, link) for execution in executions]


async def newest(client: Client, query: str, limit: int, *,
                 nested: bool) -> list[WorkflowExecution]:
    """The `limit` runs matching `query` that started last, newest first.

    Visibility returns runs in an order of its own (the dev server's: running ones
    first, then by close time), so the first `limit` it returns are not the newest.
    They bound the answer, though: the newest `limit` all started no earlier than the
    oldest of them, so a second query from that time on holds every candidate.
    """
    first = await _matching(client, query, limit, nested)
    if len(first) == limit:
        oldest = min(e.start_time for e in first).astimezone(UTC).isoformat()
        first = await _matching(client, f"{query} AND StartTime >= {quoted(oldest)}", None,
                                nested)
    first.sort(key=lambda e: e.start_time, reverse=True)
    return first[:limit]


async def _matching(client: Client, query: str, limit: int | None,
                    nested: bool) -> list[WorkflowExecution]:
    found: list[WorkflowExecution] = []
    async for execution in client.list_workflows(query, page_size=min(limit or 1000, 1000)):
        if not nested and "/" in execution.id:
            continue  # a nested run the server's parent filter did not catch
        found.append(execution)
        if len(found) == limit:
            break
    return found


def listed_run(execution: WorkflowExecution, link: Callable[[str], str]) -> ListedRun:
    """A listed (or described) run as a row."""
    attrs = execution.typed_search_attributes
    status = attrs.get(STATUS)
    closed = execution.status not in (None, WorkflowExecutionStatus.RUNNING)
    if closed and status in (None, *LIVE_STATUSES):
        status = execution.status.name.lower() if execution.status else "unknown"
    return ListedRun(
        workflow_id=execution.id, team=attrs.get(TEAM), pattern=attrs.get(PATTERN),
        status=status or "running", cost_usd=attrs.get(COST_USD), tokens=attrs.get(TOKENS),
        models=list(attrs.get(MODELS) or []), start_time=execution.start_time.isoformat(),
        close_time=execution.close_time.isoformat() if execution.close_time else None,
        link=link(execution.id))
