"""`starter.py watch WORKFLOW_ID`: a run as it happens, then its result."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from baton.cli.common import UsageError, baton_client
from baton.cli.output import answer_lines, decoded_answer, usd
from baton.cli.tokens import print_tokens
from baton.core.events import RunEvent
from baton.core.text import shorten
from baton.runtime.streaming import RunNotFound
from baton.runtime.watch import Cursor

BAR_WIDTH = 24


def register(sub: Any, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser("watch", parents=[common],
                       help="show a run (and its nested runs) as it happens")
    p.add_argument("workflow_id")
    p.add_argument("--from-start", action="store_true",
                   help="replay every event, not only those this terminal has not seen")
    p.add_argument("--tokens", action="store_true",
                   help="print the run's text as the models write it (a run started with "
                        "--stream), from its start")
    p.set_defaults(handler=watch)


async def watch(args: argparse.Namespace) -> int:
    client = await baton_client()
    if getattr(args, "tokens", False):
        try:
            return await print_tokens(client.client, args.workflow_id, as_json=args.json)
        except RunNotFound as err:
            raise UsageError(str(err)) from None
    cursor = Cursor(args.workflow_id)
    if args.from_start:
        cursor.offsets = {}
    status = 0
    try:
        async for workflow_id, offset, event in client.watch(args.workflow_id,
                                                             from_offsets=cursor.offsets,
                                                             on_notice=notice):
            cursor.advance(workflow_id, offset)
            if args.json:
                print(json.dumps(event_json(workflow_id, offset, event)), flush=True)
            else:
                print(render(workflow_id == args.workflow_id, event), flush=True)
            if workflow_id == args.workflow_id and event.kind == "status" and \
                    event.status == "failed":
                status = 1
    finally:
        cursor.save()
    if not args.json:
        print(f"web ui: {client.link(args.workflow_id)}")
    return status


def notice(text: str) -> None:
    """What the watcher is told about the run's workers: on stderr, so --json stays
    one event per line on stdout."""
    print(f"note: {text}", file=sys.stderr, flush=True)


def event_json(workflow_id: str, offset: int, event: RunEvent) -> dict[str, Any]:
    """One event as a JSON line; a result's contract answer as JSON, not escaped text."""
    shown = {"workflow_id": workflow_id, "offset": offset, **event.model_dump(mode="json")}
    if event.kind == "result":
        shown["detail"] = decoded_answer(event.detail)
    return shown


def render(top: bool, event: RunEvent) -> str:
    where = f"{event.path}: " if event.path else ""
    spent = event.spent
    cost = "" if spent.cost_usd is None else f" {usd(spent.cost_usd)}"
    money = f"[{spent.calls} calls {spent.total_tokens} tok{cost}]"
    clock = f"{event.at:%H:%M:%S.%f}"[:12] if event.at else f"{event.at_s:7.2f}s"
    if event.kind == "progress" and event.total:
        filled = round(BAR_WIDTH * (event.done or 0) / event.total)
        bar = "#" * filled + "." * (BAR_WIDTH - filled)
        return f"{clock} {where}branches [{bar}] {event.done}/{event.total}"
    if event.kind == "step":
        mark = "  " if event.ok else "! "
        return f"{clock} {mark}{where}{event.step:<10} {event.agent}: {event.detail}  {money}"
    if event.kind == "status":
        return f"{clock} {where}status {event.status}"
    if event.kind == "phase":
        return f"{clock} {where}{event.detail}"
    if not top:
        return f"{clock} {where}finished ({event.status}) {money}: {shorten(event.detail, 120)}"
    return f"{clock} result ({event.status}) {money}:\n" + "\n".join(
        f"    {line}" for line in answer_lines(event.detail))
