"""`starter.py pending | approve | reject`: people deciding on runs that wait for them."""

from __future__ import annotations

import argparse
import json
import os
from typing import Any

from baton.approvals import ApprovalError, decide, pending
from baton.cli.common import UsageError, connect_or_explain, print_json
from baton.runs import ApprovalRecord, Decision
from baton.temporal import Settings


def register(sub: Any, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser("pending", parents=[common], help="list runs waiting for a person")
    p.set_defaults(handler=show_pending)
    p = sub.add_parser("approve", parents=[common], help="approve what a run waits for")
    p.add_argument("workflow_id")
    p.add_argument("--request", metavar="ID", help="one request (default: all pending)")
    p.add_argument("--note", default="", help="a note kept with the decision")
    p.set_defaults(handler=send_decision, approve=True)
    p = sub.add_parser("reject", parents=[common], help="reject what a run waits for")
    p.add_argument("workflow_id")
    p.add_argument("--request", metavar="ID", help="one request (default: all pending)")
    p.add_argument("--reason", required=True, help="why (the agent is told)")
    p.set_defaults(handler=send_decision, approve=False)


async def show_pending(args: argparse.Namespace) -> int:
    settings = Settings.from_env()
    client = await connect_or_explain(settings)
    runs = await pending(client)
    if args.json:
        print_json([{"workflow_id": w.workflow_id, "link": settings.workflow_link(w.workflow_id),
                     "requests": [r.model_dump(mode="json") for r in w.requests]}
                    for w in runs])
        return 0
    if not runs:
        print("no run is waiting for a person")
    for waiting in runs:
        print(f"{waiting.workflow_id}  {settings.workflow_link(waiting.workflow_id)}")
        for r in waiting.requests:
            where = "" if r.workflow_id == waiting.workflow_id else f" (in {r.workflow_id})"
            print(f"  {r.request_id:<20} {r.agent} · {r.subject}({json.dumps(r.arguments)})"
                  f"{where}\n  {'':<20} {r.why}; asked {r.asked_at:%Y-%m-%d %H:%M:%S} UTC, "
                  f"default {r.default} after {r.timeout_s:g} s")
    return 0


async def send_decision(args: argparse.Namespace) -> int:
    if not args.approve and not args.reason.strip():
        raise UsageError("--reason must say why (it is what the agent is told)")
    decision = Decision(request_id=args.request, approve=args.approve,
                        note=args.note if args.approve else "",
                        reason="" if args.approve else args.reason,
                        by=os.environ.get("USER", ""))
    client = await connect_or_explain()
    try:
        records = await decide(client, args.workflow_id, decision)
    except ApprovalError as err:
        raise UsageError(str(err)) from None
    if args.json:
        print_json([r.model_dump(mode="json") for r in records])
    for record in [] if args.json else records:
        print(describe(record))
    return 0


def describe(record: ApprovalRecord) -> str:
    verdict = "approved" if record.approved else f"rejected ({record.reason})"
    request = record.request
    return (f"{request.request_id} in {request.workflow_id}: {request.agent} · "
            f"{request.subject} {verdict}")
