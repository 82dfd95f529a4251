"""Agents that hand conversations around, and flows using them (tests/test_handoffs.py).

Import-time work is definitions only: the worker imports this module, and so does
every replay.
"""

from __future__ import annotations

from pydantic import BaseModel, Field

import baton

FAST = {"max_attempts": 2, "initial_interval_s": 0.1, "backoff": 1.0, "max_interval_s": 0.1}


class HandoffTicket(BaseModel):
    """A flow's run context: what on_handoff hooks and tools change."""

    customer: str
    notes: list[str] = Field(default_factory=list)
    escalated: bool = False


class Refund(BaseModel):
    """The billing agent's own answer (its contract)."""

    summary: str
    amount_usd: float = Field(ge=0)


def escalate(ticket: HandoffTicket | None, reason: str) -> HandoffTicket | None:
    """on_handoff: the ticket notes why it went to billing (a triage team's run has no
    context: nothing to note)."""
    if ticket is None:
        return None
    return ticket.model_copy(update={"escalated": True,
                                     "notes": [*ticket.notes, f"to billing: {reason}"]})


def latest_only(messages: list[baton.Message]) -> list[baton.Message]:
    """input_filter: billing sees the latest request only, marked as passed on."""
    return [baton.Message(role="user", content=f"[passed on] {messages[-1].content}")]


billing = baton.Agent("billing", "You handle refunds and invoices.",
                      description="Invoices, payments and refunds.", output=Refund, retry=FAST)
shipping = baton.Agent("shipping", "You track parcels.",
                       description="Parcels, deliveries and tracking.", retry=FAST)
router = baton.Agent(
    "router", "Send the customer to the right desk, or answer greetings yourself.",
    description="Front desk of the shop.", retry=FAST,
    handoffs=[baton.handoff(billing, input_filter=latest_only, on_handoff=escalate),
              shipping])
# Specialists hand back to the router and to each other.
billing.add_handoffs(router, shipping)
shipping.add_handoffs(router, billing)
shop_desk = baton.Triage("shop_desk", router, max_handoffs=4)


class Answered(BaseModel):
    handled_by: str
    text: str
    refund: Refund | None = None
    ticket: HandoffTicket


@baton.flow
async def help_desk(request: str) -> Answered:
    """One request through the desk; the ticket is the run's context."""
    ticket = HandoffTicket(customer="Ada")
    result = await router.run(request, context=ticket)
    refund = result.output if isinstance(result.output, Refund) else None
    return Answered(handled_by=result.handled_by, text=result.text, refund=refund,
                    ticket=ticket)
