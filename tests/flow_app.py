"""An app of flows for the tests (tests/test_flows.py), as a user would write one.

Import-time work is definitions only: the worker imports this module, and so does
every replay.
"""

from __future__ import annotations

from pydantic import BaseModel, Field

import baton

calls: list[str] = []  # what the tools really did, in this process


class StoryOutline(BaseModel):
    title: str
    points: list[str] = Field(min_length=1)


class StoryVerdict(BaseModel):
    good: bool
    reason: str


class Tale(BaseModel):
    title: str
    text: str


outliner = baton.Agent("outliner", "StoryOutline a short story on the topic.", output=StoryOutline,
                       retry={"max_attempts": 2, "initial_interval_s": 0.1})
checker = baton.Agent("checker", "Judge whether the outline is good.", output=StoryVerdict,
                      retry={"max_attempts": 2, "initial_interval_s": 0.1})
writer = baton.Agent("writer", "Write the story from the outline.",
                     retry={"max_attempts": 2, "initial_interval_s": 0.1})


@baton.tool
def word_count(text: str) -> int:
    """Count the words of a text."""
    calls.append(f"word_count {len(text)}")
    return len(text.split())


@baton.tool
def fails_always(reason: str) -> str:
    """A tool that always fails (for the gather tests)."""
    calls.append("fails_always")
    raise baton.BatonError(f"broken on purpose: {reason}")


@baton.tool(approval=True, approval_timeout=60.0)
def publish(title: str) -> str:
    """Publish a story (a person approves every call)."""
    calls.append(f"publish {title}")
    return f"published {title}"


@baton.flow
async def tale(topic: str) -> Tale:
    """Outline, check, then write: stops on the checker's verdict."""
    outline = await outliner.run(topic)
    verdict = await checker.run(outline.text, output=StoryVerdict)
    if not verdict.output.good:
        return Tale(title=outline.output.title, text=f"Stopped: {verdict.output.reason}")
    draft = await writer.run([*outline.messages,
                              baton.Message(role="user", content="Now write the story.")])
    words = await word_count(draft.text)
    return Tale(title=outline.output.title, text=f"{draft.text} ({words} words)")


@baton.flow
async def fan(topics: list[str], keep_failures: bool = False) -> list[str]:
    """Outline every topic in parallel; one extra branch always fails."""
    steps = [outliner.run(t) for t in topics] + [fails_always("test")]
    results = await baton.gather(*steps, return_failures=keep_failures)
    return [r.output.title if hasattr(r, "output") else f"failed: {r.message}"
            for r in results]


@baton.flow
async def publish_story(title: str) -> str:
    """Call a tool whose worker policy asks a person first."""
    return await publish(title)


@baton.flow
async def ask_first(title: str) -> str:
    """A person's decision as a step of the flow, then a durable sleep."""
    record = await baton.approval(f"publish {title}?", {"title": title})
    await baton.sleep(0.1)
    return "approved" if record.approved else f"not approved: {record.reason}"


@baton.flow
async def broken(topic: str) -> str:
    """Its own code raises."""
    raise KeyError(topic)


class SeatBooking(BaseModel):
    """The airline desk's run context: shared by the agent's tools and instructions."""

    passenger: str
    seat: str = "unassigned"
    changes: int = 0


@baton.tool
def change_seat(seat: str, ctx: baton.ToolContext) -> str:
    """Move the passenger to another seat."""
    booking = ctx.context
    calls.append(f"change_seat {booking.passenger} {booking.seat} -> {seat}")
    booking.seat = seat[:40]
    booking.changes += 1
    return f"{booking.passenger} now sits in {booking.seat}"


def seat_instructions(booking: SeatBooking) -> str:
    """You change seats for a passenger."""
    return f"You help {booking.passenger}, now in seat {booking.seat}. Change seats on request."


seat_agent = baton.Agent("seat_agent", seat_instructions, tools=[change_seat],
                         max_tool_turns=1, retry={"max_attempts": 2, "initial_interval_s": 0.1})


@baton.flow
async def seat_desk(passenger: str) -> SeatBooking:
    """Two requests on one booking: the second sees what the first changed."""
    booking = SeatBooking(passenger=passenger)
    await seat_agent.run("Move me to a window seat", context=booking)
    await seat_agent.run("Now an aisle seat please", context=booking)
    return booking


# An agent offered as a tool whose output extractor raises (a user's bug).
asker = baton.Agent("asker", "Ask the outliner, then answer.", max_tool_turns=1,
                    tools=[outliner.as_tool("ask_outliner",
                                            output_extractor=lambda r: r.output.missing)],
                    retry={"max_attempts": 2, "initial_interval_s": 0.1})


class HomeworkCheck(BaseModel):
    """A guardrail agent's own answer (not a GuardrailVerdict)."""

    is_homework: bool
    reasoning: str


homework_judge = baton.Agent("homework_judge", "Is the user asking you to do their homework?",
                             output=HomeworkCheck, tripwire=lambda check: check.is_homework,
                             retry={"max_attempts": 2, "initial_interval_s": 0.1})
tutor = baton.Agent("tutor", "Help with questions, but never do homework.",
                    input_guardrails=[homework_judge],
                    retry={"max_attempts": 2, "initial_interval_s": 0.1})
