"""`starter.py list`: find runs by team, status and age, through the server's visibility.

    python starter.py list                               # the latest top-level runs
    python starter.py list --team support_desk --status degraded --since 1d
    python starter.py list --status waiting_approval --json
    python starter.py list --all --limit 100             # nested runs too

It reads the search attributes every run upserts (baton/telemetry/search.py), the same ones a
Web UI query uses, so it shows what the server knows without asking any worker.
"""

from __future__ import annotations

import argparse
import re
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from temporalio.client import Client, WorkflowExecution, WorkflowExecutionStatus
from temporalio.service import RPCError

from baton.cli.common import UsageError, connect_or_explain, print_json
from baton.cli.output import usd
from baton.core.runs import PATTERN_WORKFLOWS, RUN_STATUSES
from baton.runtime.temporal import Settings
from baton.telemetry.search import COST_USD, MODELS, PATTERN, STATUS, TEAM, TOKENS, quoted

_AGO = re.compile(r"(\d+)\s*([mhdw])")
_UNITS = {"m": "minutes", "h": "hours", "d": "days", "w": "weeks"}
# Statuses a run reports only while it lives: a run that ended without saying more
# (terminated, timed out by its deadline, worker code gone) shows how it ended instead.
_LIVE = ("running", "waiting_approval")


def register(sub: Any, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser("list", parents=[common],
                       help="list runs by team, status and age (newest first)")
    p.add_argument("--team", help="runs of this team or agent")
    p.add_argument("--status", help=f"runs with this status: {', '.join(RUN_STATUSES)}")
    p.add_argument("--since", metavar="AGE|DATE",
                   help="runs started in the last 30m, 12h, 7d, 2w, or since an ISO date "
                        "(2026-11-20, 2026-11-20T09:00:00+01:00; UTC if no offset)")
    p.add_argument("--limit", type=int, default=20, metavar="N",
                   help="at most N runs (default 20)")
    p.add_argument("--all", action="store_true", help="include nested runs (ids with '/')")
    p.set_defaults(handler=list_runs)


@dataclass
class ListedRun:
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


def parse_since(text: str, now: datetime) -> datetime:
    """The start of the window `--since` names; UsageError if it names none."""
    if match := _AGO.fullmatch(text.strip()):
        return now - timedelta(**{_UNITS[match[2]]: int(match[1])})
    try:
        since = datetime.fromisoformat(text.strip())
    except ValueError:
        raise UsageError(f"--since {text!r} is neither an age (30m, 12h, 7d, 2w) nor an ISO "
                         "date (2026-11-20 or 2026-11-20T09:00:00Z)") from None
    return since if since.tzinfo else since.replace(tzinfo=UTC)


def build_query(team: str | None, status: str | None, since: datetime | None,
                nested: bool) -> str:
    """The visibility query for the filters (the Web UI takes the same text)."""
    types = ", ".join(quoted(t) for t in PATTERN_WORKFLOWS.values())
    # A flow's workflow type is its own name: flows are found by their pattern.
    clauses = [f"(WorkflowType IN ({types}) OR {PATTERN.name} = 'flow')"]
    if not nested:
        clauses.append("ParentWorkflowId IS NULL")
    if team:
        clauses.append(f"{TEAM.name} = {quoted(team)}")
    if status:
        clauses.append(f"{STATUS.name} = {quoted(status)}")
        if status in _LIVE:
            clauses.append("ExecutionStatus = 'Running'")
    if since:
        clauses.append(f"StartTime >= {quoted(since.astimezone(UTC).isoformat())}")
    return " AND ".join(clauses)


async def list_runs(args: argparse.Namespace) -> int:
    if args.status is not None and args.status not in RUN_STATUSES:
        raise UsageError(f"unknown --status {args.status!r}; accepted: "
                         f"{', '.join(RUN_STATUSES)}")
    if args.limit < 1:
        raise UsageError("--limit must be at least 1")
    since = parse_since(args.since, datetime.now(UTC)) if args.since else None
    query = build_query(args.team, args.status, since, args.all)
    settings = Settings.from_env()
    client = await connect_or_explain(settings)
    try:
        executions = await newest(client, query, args.limit, nested=args.all)
    except RPCError as err:
        raise UsageError(f"Temporal refused the query {query!r}: {err.message}\n"
                         "Are Baton's search attributes registered? Starting "
                         "`python worker.py` registers them.") from None
    runs = [_listed(execution, settings) for execution in executions]
    if args.json:
        print_json([asdict(r) for r in runs])
    elif not runs:
        print("no runs match")
    else:
        print(_table(runs))
    return 0


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


def _listed(execution: WorkflowExecution, settings: Settings) -> ListedRun:
    attrs = execution.typed_search_attributes
    status = attrs.get(STATUS)
    closed = execution.status not in (None, WorkflowExecutionStatus.RUNNING)
    if closed and status in (None, *_LIVE):
        status = execution.status.name.lower() if execution.status else "unknown"
    return ListedRun(
        workflow_id=execution.id, team=attrs.get(TEAM), pattern=attrs.get(PATTERN),
        status=status or "running", cost_usd=attrs.get(COST_USD), tokens=attrs.get(TOKENS),
        models=list(attrs.get(MODELS) or []), start_time=execution.start_time.isoformat(),
        close_time=execution.close_time.isoformat() if execution.close_time else None,
        link=settings.workflow_link(execution.id))


def _table(runs: list[ListedRun]) -> str:
    header = ("WORKFLOW ID", "TEAM", "PATTERN", "STATUS", "COST", "TOKENS", "STARTED (UTC)",
              "WEB UI")
    rows = [header] + [(
        r.workflow_id, r.team or "-", r.pattern or "-", r.status,
        "-" if r.tokens is None else usd(r.cost_usd),
        "-" if r.tokens is None else str(r.tokens),
        datetime.fromisoformat(r.start_time).astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S"),
        r.link) for r in runs]
    widths = [max(len(row[i]) for row in rows) for i in range(len(header) - 1)]
    numeric = {4, 5}
    return "\n".join(
        "  ".join((cell.rjust(w) if i in numeric else cell.ljust(w))
                  for i, (cell, w) in enumerate(zip(row, widths, strict=False)))
        + "  " + row[-1] for row in rows)

