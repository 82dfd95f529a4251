"""A support desk: a router hands each request to a billing, order-status or general agent.

The specialists work through tools over a small JSON store (examples/data/orders.json).
Each tool call is its own Temporal activity: retried on failure, recorded in the run's
history, never repeated once it has succeeded. `issue_refund` writes refunds to a file
keyed by the call's idempotency key, so even a retried call refunds only once.

    python examples/support_desk.py "I was charged twice for order A-1002"
    python worker.py --app examples.support_desk     # or: a worker, and the starter
    python starter.py run support_desk "Where is order A-1001?" --app examples.support_desk
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import tempfile
import threading
from pathlib import Path
from typing import Annotated, Any

from pydantic import BaseModel, Field

import baton

# offline:* needs no key; e.g. BATON_EXAMPLE_MODEL=openai:gpt-5-nano with OPENAI_API_KEY set.
MODEL = os.environ.get("BATON_EXAMPLE_MODEL", "offline:standard")
ORDERS = Path(__file__).parent / "data" / "orders.json"
OrderId = Annotated[str, Field(description="The order's id, e.g. A-1001.")]


def load_order(order_id: str) -> dict[str, Any] | None:
    orders = json.loads(ORDERS.read_text())["orders"]
    return next((o for o in orders if o["order_id"] == order_id.strip().upper()), None)


@baton.tool(local=True)  # a fast read: a local activity, no task queue round trip
def lookup_order(order_id: OrderId) -> dict[str, Any] | str:
    """Look up an order: status, items, charges and refunds so far."""
    order = load_order(order_id)
    if order is None:
        return f"There is no order {order_id!r}; order ids look like A-1001."
    refunds = [r for r in read_refunds().values() if r["order_id"] == order["order_id"]]
    return {k: v for k, v in order.items() if k != "shipment"} | {"refunds": refunds}


@baton.tool(timeout=20)
def track_shipment(order_id: OrderId) -> dict[str, Any] | str:
    """Where an order's parcel is: carrier, tracking number, latest scans."""
    order = load_order(order_id)
    if order is None or order["shipment"] is None:
        return f"Order {order_id} has no shipment yet."
    return order["shipment"]


# The refunds "database": a JSON file. The lock serializes this worker's calls; across
# several workers, use a real database with a unique index on the idempotency key.
_refunds_lock = threading.Lock()


def refunds_file() -> Path:
    default = Path(tempfile.gettempdir()) / "baton-support-desk" / "refunds.json"
    return Path(os.environ.get("SUPPORT_DESK_REFUNDS", default))


def read_refunds() -> dict[str, dict[str, Any]]:
    path = refunds_file()
    return json.loads(path.read_text()) if path.exists() else {}


# Refunds above 100 USD wait for a person: `python starter.py approve WORKFLOW_ID`.
@baton.tool(max_attempts=5, on_failure="fail_agent",  # a failed refund fails the agent
            approval=lambda order_id, amount_usd, reason: amount_usd > 100)
def issue_refund(order_id: OrderId,
                 amount_usd: Annotated[float, Field(gt=0, le=10_000)],
                 reason: str, context: baton.ToolContext) -> dict[str, Any]:
    """Refund part or all of what was charged for an order.

    Args:
        amount_usd: How much to refund, in US dollars.
        reason: Why, in a few words (shown to the customer).
    """
    with _refunds_lock:
        refunds = read_refunds()
        if context.idempotency_key in refunds:  # this very call already ran: same answer
            return refunds[context.idempotency_key]
        order = load_order(order_id)
        if order is None:
            return {"status": "refused", "reason": f"no order {order_id!r}"}
        charged = sum(c["amount_usd"] for c in order["charges"])
        refunded = order.get("refunded_usd", 0) + sum(
            r["amount_usd"] for r in refunds.values() if r["order_id"] == order["order_id"])
        if amount_usd > charged - refunded:
            return {"status": "refused", "reason": f"only {charged - refunded:.2f} USD of "
                    f"{charged:.2f} USD charged is left to refund"}
        refund = {"refund_id": f"R-{len(refunds) + 1:04d}", "order_id": order["order_id"],
                  "amount_usd": amount_usd, "reason": reason, "status": "issued",
                  "workflow_id": context.workflow_id}
        refunds[context.idempotency_key] = refund
        path = refunds_file()
        path.parent.mkdir(parents=True, exist_ok=True)
        path.with_suffix(".tmp").write_text(json.dumps(refunds, indent=2))
        path.with_suffix(".tmp").replace(path)  # all or nothing, even if we crash here
        return refund


class SupportReply(BaseModel):
    """What a specialist tells the customer, and what it did."""

    order_id: str | None = Field(description="The order concerned, if any.")
    reply: str = Field(min_length=1, description="The answer to the customer.")
    actions: list[str] = Field(description="What was done, e.g. 'refunded 25.00 USD'.")


billing = baton.Agent(
    "billing", "You handle charges, invoices and refunds. Look the order up first; refund "
    "only what was charged in error.", description="Charges, invoices, refunds.",
    model=MODEL, tools=[lookup_order, issue_refund], output=SupportReply)
order_status = baton.Agent(
    "order_status", "You tell customers where their order is and when it will arrive.",
    description="Order status, shipping, delivery.",
    model=MODEL, tools=[lookup_order, track_shipment], output=SupportReply)
general = baton.Agent(
    "general", "You answer anything else about the shop, briefly and kindly.",
    description="Everything else.", model=MODEL, output=SupportReply)
router = baton.Agent(
    "router", "Send the customer to the one specialist who can help.", model=MODEL,
    handoffs=[billing, order_status, general], default_handoff=general)
support_desk = baton.Triage("support_desk", router)


async def main(prompt: str) -> None:
    async with baton.worker(support_desk):  # an in-process worker with the desk's tools
        outcome = await baton.run(support_desk, prompt)
    print(f"status:     {outcome.status}, handled by {outcome.result.handled_by}")
    print(f"answer:     {outcome.output.reply if outcome.output else outcome.answer}")
    print(f"output:     {outcome.output!r}")  # a SupportReply, validated
    print(f"usage:      {outcome.usage.calls} model calls, {outcome.usage.tool_calls} tool "
          f"calls, {outcome.usage.total_tokens} tokens")
    print(f"Web UI:     {outcome.link}")


if __name__ == "__main__":
    asyncio.run(main(" ".join(sys.argv[1:])
                     or "I was charged twice for order A-1002. Please refund the extra 25 USD."))
