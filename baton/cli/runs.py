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
from dataclasses import asdict
from datetime import UTC, datetime
from typing import Any

from baton.cli.common import UsageError, baton_client, print_json
from baton.cli.output import usd
from baton.core.runs import RUN_STATUSES
from baton.runtime.listing import ListedRun, ListRefused, RunQuery, RunQueryError


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


async def list_runs(args: argparse.Namespace) -> int:
    try:  # checked before connecting: a bad filter is the user's to fix
        query = RunQuery(team=args.team, status=args.status, since=args.since,
                         nested=args.all, limit=args.limit)
    except RunQueryError as err:
        raise UsageError(err.naming(f"--{err.parameter}")) from None
    client = await baton_client()
    try:
        runs = await client.list_runs(query)
    except ListRefused as err:
        raise UsageError(f"{err}\nAre Baton's search attributes registered? Starting "
                         "`python worker.py` registers them.") from None
    if args.json:
        print_json([asdict(r) for r in runs])
    elif not runs:
        print("no runs match")
    else:
        print(_table(runs))
    return 0


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

