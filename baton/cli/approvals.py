"""`starter.py pending | approve | reject | approver-key`: people deciding on runs that
wait for them, and the Ed25519 key pair that lets workers check who decided."""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Any

from baton.cli.common import UsageError, baton_client, print_json
from baton.core.runs import ApprovalRecord, Decision
from baton.core.waiting import DecisionOutcome
from baton.runtime.approvals import ApprovalError, Delivery, Recorded, Waiting
from baton.runtime.approver_keys import KEY_ENV, KEYS_ENV, ApproverKeyError, SigningKey
from baton.runtime.codec import KEY_ENV as ENCRYPTION_KEY_ENV
from baton.runtime.codec import OLD_KEYS_ENV


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
    p = sub.add_parser("approver-key", parents=[common],
                       help=f"make an approver's key pair ({KEYS_ENV} / {KEY_ENV})")
    p.add_argument("name", help="the approver's name, as the worker will know the key")
    p.set_defaults(handler=make_key)


async def show_pending(args: argparse.Namespace) -> int:
    client = await baton_client()
    unreadable: list[str] = []
    runs = await client.pending(unreadable=unreadable)
    if unreadable:
        # On stderr, so --json stays a list; exit 2 says the listing is incomplete.
        print(f"error: skipped {len(unreadable)} waiting run(s) this client cannot "
              f"decrypt ({', '.join(unreadable)}): set {ENCRYPTION_KEY_ENV} (and "
              f"{OLD_KEYS_ENV} for older keys) as the workers have it", file=sys.stderr)
    if args.json:
        print_json([{"workflow_id": w.workflow_id, "link": client.link(w.workflow_id),
                     "requests": [r.model_dump(mode="json") for r in w.requests],
                     "refused": [o.model_dump(mode="json") for o in refused(w)]}
                    for w in runs])
        return 2 if unreadable else 0
    if not runs and not unreadable:
        print("no run is waiting for a person")
    for waiting in runs:
        print(f"{waiting.workflow_id}  {client.link(waiting.workflow_id)}")
        for r in waiting.requests:
            where = "" if r.workflow_id == waiting.workflow_id else f" (in {r.workflow_id})"
            print(f"  {r.request_id:<20} {r.agent} · {r.subject}({json.dumps(r.arguments)})"
                  f"{where}\n  {'':<20} {r.why}; asked {r.asked_at:%Y-%m-%d %H:%M:%S} UTC, "
                  f"default {r.default} after {r.timeout_s:g} s")
        for outcome in refused(waiting):
            print(f"  {outcome.request_id or '':<20} a decision was refused at "
                  f"{outcome.at:%Y-%m-%d %H:%M:%S} UTC: {outcome.reason}")
        if not waiting.known:
            print(f"  {'':<20} (it started waiting before Baton recorded what runs wait for: "
                  f"`approve {waiting.workflow_id}` decides it while a worker runs it)")
    return 2 if unreadable else 0


def refused(waiting: Waiting) -> list[DecisionOutcome]:
    """The refused decisions on requests that still wait: what the sender should know."""
    still = {r.request_id for r in waiting.requests}
    return [o for o in waiting.outcomes if o.outcome == "refused" and o.request_id in still]


async def send_decision(args: argparse.Namespace) -> int:
    if not args.approve and not args.reason.strip():
        raise UsageError("--reason must say why (it is what the agent is told)")
    decision = Decision(request_id=args.request, approve=args.approve,
                        note=args.note if args.approve else "",
                        reason="" if args.approve else args.reason,
                        by=os.environ.get("USER", ""))
    try:
        key = SigningKey.from_env()
    except ApproverKeyError as err:
        raise UsageError(str(err)) from None
    client = await baton_client()
    try:
        delivery = await client.decide(args.workflow_id, decision, key=key)
    except ApprovalError as err:
        raise UsageError(str(err)) from None
    if args.json:
        print_json(delivery_json(delivery))
        return 0
    for record in delivery.applied:
        print(describe(record))
    for recorded in delivery.recorded:
        print(describe_recorded(recorded))
    return 0


def delivery_json(delivery: Delivery) -> list[dict[str, Any]]:
    """Each decision as JSON: an applied record, or one recorded until a worker runs."""
    return ([{"status": "applied", **r.model_dump(mode="json")} for r in delivery.applied]
            + [{"status": "recorded", "workflow_id": r.workflow_id,
                "request_id": r.request_id, "approved": r.approve}
               for r in delivery.recorded])


async def make_key(args: argparse.Namespace) -> int:
    try:
        key = SigningKey.generate(args.name)
    except ApproverKeyError as err:
        raise UsageError(str(err)) from None
    if args.json:
        print_json({"approver": key.signer, KEYS_ENV: key.public_entry(),
                    KEY_ENV: key.private_entry()})
        return 0
    print(f"# on every worker (public; join several approvers with commas):\n"
          f"{KEYS_ENV}={key.public_entry()}\n"
          f"# for {key.signer} only, where they approve (private: keep it secret):\n"
          f"{KEY_ENV}={key.private_entry()}")
    return 0


def describe_recorded(recorded: Recorded) -> str:
    verdict = "approval" if recorded.approve else "rejection"
    return (f"{recorded.request_id} in {recorded.workflow_id}: {verdict} recorded; it "
            "takes effect when a worker runs the run (`pending` says if the run refuses it)")


def describe(record: ApprovalRecord) -> str:
    verdict = "approved" if record.approved else f"rejected ({record.reason})"
    request = record.request
    signed = f", signed by {record.signed_by}" if record.signed_by else ""
    return (f"{request.request_id} in {request.workflow_id}: {request.agent} · "
            f"{request.subject} {verdict}{signed}")
