"""An airline customer-service desk whose agents hand the conversation around, as a flow.

A triage agent sends each customer message to the FAQ agent or the seat-booking
agent (or answers itself); both specialists hand the conversation back to triage
when a message is not theirs, and the next message goes to whoever answered the
last one. The booking is a typed run context: the seat agent's instructions read
it, its tool changes the seat, and a hook on the handoff to it looks up the
flight; every change is durable and part of the result. (The scenario of the
OpenAI Agents SDK's customer-service example and Google ADK's multi-agent
documentation, in Baton's own code.)

    python examples/flow_desk.py "What is the baggage allowance?" "Please change my seat to 12A"
    python worker.py --app examples.flow_desk          # or: a worker, and the starter
    python starter.py run desk '{"messages": ["Is there wifi?"]}' --app examples.flow_desk
"""

from __future__ import annotations

import asyncio
import os
import re
import sys

from pydantic import BaseModel

import baton

# offline:* needs no key; e.g. BATON_EXAMPLE_MODEL=openai:gpt-5-nano with OPENAI_API_KEY set.
MODEL = os.environ.get("BATON_EXAMPLE_MODEL", "offline:standard")


class Booking(BaseModel):
    """The run's context: the customer's booking, shared by tools, hooks and instructions."""

    passenger: str = "Ada Lovelace"
    confirmation_number: str = "BTN-4821"
    seat: str | None = None
    flight_number: str | None = None


FAQ = {
    ("bag", "bags", "baggage", "luggage"):
        "One carry-on bag (up to 8 kg) and one checked bag (up to 23 kg) per passenger.",
    ("seat", "seats", "plane"):
        "The plane has 120 seats: rows 1-4 business, 5-30 economy; exit rows 12 and 13.",
    ("wifi", "internet"): "Wifi is free on board: join the network 'Baton-Air'.",
    ("meal", "meals", "food"): "A light meal is served on flights over two hours.",
}
# Flights by confirmation number: what the handoff hook looks up.
FLIGHTS = {"BTN-4821": "BA-117"}
SEAT = re.compile(r"\b([1-9]\d?[A-F])\b")


@baton.tool
def faq_lookup(question: str) -> str:
    """Look up the answer to a frequently asked question.

    Args:
        question: The customer's question, in their words.
    """
    words = set(re.findall(r"[a-z]+", question.lower()))
    answers = [answer for keys, answer in FAQ.items() if words & set(keys)]
    return " ".join(answers) or "I don't know the answer to that question."


@baton.tool
def update_seat(seat_request: str, ctx: baton.ToolContext) -> str:
    """Move the passenger on this booking to the seat they ask for.

    Args:
        seat_request: The seat asked for, e.g. "12A", or the customer's words naming it.
    """
    booking = ctx.context
    found = SEAT.search(seat_request.upper())
    if found is None:
        return (f"No seat in {seat_request!r}; a seat is a row 1-30 and a letter A-F, "
                "e.g. 12A. Ask the customer which seat they want.")
    booking.seat = found.group(1)
    return f"Booking {booking.confirmation_number}: seat changed to {booking.seat}."


def on_seat_booking(booking: Booking, reason: str) -> Booking:
    """Look the flight up before the seat agent takes over (it runs inside the workflow:
    deterministic, no I/O)."""
    return booking.model_copy(update={"flight_number": FLIGHTS.get(
        booking.confirmation_number, "unknown")})


def seat_instructions(booking: Booking) -> str:
    """You are a seat-booking agent: change the passenger's seat with update_seat."""
    return (f"You are a seat-booking agent for {booking.passenger}, booking "
            f"{booking.confirmation_number} on flight {booking.flight_number}, now in seat "
            f"{booking.seat or 'none yet'}. Ask for the seat they want if they did not say, "
            "change it with update_seat and confirm it. For anything else, transfer back "
            "to the triage agent.")


faq = baton.Agent(
    "faq", "You answer frequently asked questions with the faq_lookup tool, never from "
    "memory. For anything else, transfer back to the triage agent.",
    description="Answers frequently asked questions: baggage allowance, wifi, meals.",
    model=MODEL, tools=[faq_lookup])
seat_booking = baton.Agent(
    "seat_booking", seat_instructions, description="Changes the seat on a passenger's booking.",
    model=MODEL, tools=[update_seat])
triage = baton.Agent(
    "triage", "You are the airline's front desk. Send each customer message to the agent "
    "for it; answer greetings yourself.",
    description="Front desk of the airline: sends each customer to the right agent.",
    model=MODEL, handoffs=[faq, baton.handoff(seat_booking, on_handoff=on_seat_booking)])
# The specialists hand back to triage (declared once triage exists).
faq.add_handoffs(baton.handoff(
    triage, description="Anything that is not a frequently asked question: seat changes, "
                        "bookings and other requests."))
seat_booking.add_handoffs(baton.handoff(
    triage, description="Anything else: questions about baggage, wifi, meals, or other "
                        "requests."))
DESK = {agent.name: agent for agent in (triage, faq, seat_booking)}


class DeskTurn(BaseModel):
    message: str
    handled_by: str
    answer: str


class DeskReport(BaseModel):
    turns: list[DeskTurn]
    booking: Booking


@baton.flow
async def desk(messages: list[str]) -> DeskReport:
    """An airline desk conversation: each message goes to the agent who answered the last."""
    booking, current = Booking(), triage
    history: list[baton.Message] = []
    turns: list[DeskTurn] = []
    for text in messages:
        result = await current.run([*history, baton.Message(role="user", content=text)],
                                   context=booking)
        turns.append(DeskTurn(message=text, handled_by=result.handled_by, answer=result.text))
        history, current = result.messages, DESK[result.handled_by]
    return DeskReport(turns=turns, booking=booking)


async def main(messages: list[str]) -> None:
    async with baton.worker(desk):  # an in-process worker for this module's flows
        outcome = await baton.run(desk, {"messages": messages})
    report = outcome.output
    assert isinstance(report, DeskReport), outcome.answer
    for turn in report.turns:
        print(f"customer: {turn.message}\n{turn.handled_by}: {turn.answer}\n")
    print(f"booking: {report.booking!r}")
    print(f"status:  {outcome.status}, {outcome.usage.calls} model calls")
    print(f"Web UI:  {outcome.link}")


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1:] or ["What is the baggage allowance?",
                                      "Please change my seat to 12A",
                                      "Is there wifi on board?"]))
