"""A writer and a judge in a loop until the judge passes, as a flow (LLM as a judge).

The writer sees the previous draft and the judge's feedback on every round; the
loop is bounded by its rounds and by the run's budget. The scenario of the peers'
"LLM as a judge" / "evaluator-optimizer" examples.

    python examples/flow_judge.py "a slogan for a durable agent platform"
    python starter.py run refine "a slogan" --app examples.flow_judge --budget-calls 12
"""

from __future__ import annotations

import asyncio
import os
import sys

from pydantic import BaseModel

import baton

MODEL = os.environ.get("BATON_EXAMPLE_MODEL", "offline:standard")


class Judgement(BaseModel):
    passes: bool
    feedback: str


class Refined(BaseModel):
    draft: str
    rounds: int
    passed: bool


writer = baton.Agent("slogan_writer", "Write one short, concrete slogan for the request. If "
                     "you are given a previous draft and feedback, improve the draft.",
                     model=MODEL)
judge = baton.Agent("slogan_judge", "Judge the slogan: it passes only if it is short, "
                    "concrete and true to the request; otherwise say what to fix.", model=MODEL,
                    output=Judgement)


@baton.flow
async def refine(request: str, max_rounds: int = 3) -> Refined:
    """Draft, judge, and redraft with the feedback until the judge passes."""
    draft = (await writer.run(request)).text
    for round_number in range(1, max_rounds + 1):
        verdict = await judge.run(f"Request: {request}\nSlogan: {draft}")
        if verdict.output.passes:
            return Refined(draft=draft, rounds=round_number, passed=True)
        draft = (await writer.run(
            f"Request: {request}\nPrevious draft: {draft}\n"
            f"Feedback: {verdict.output.feedback}")).text
    return Refined(draft=draft, rounds=max_rounds, passed=False)


async def main(request: str) -> None:
    async with baton.worker(refine):
        outcome = await baton.run(refine, request)
    print(f"status: {outcome.status}; judge passed: {outcome.output.passed} after "
          f"{outcome.output.rounds} round(s)\n{outcome.output.draft}\nWeb UI: {outcome.link}")


if __name__ == "__main__":
    asyncio.run(main(" ".join(sys.argv[1:]) or "a slogan for a durable agent platform"))
