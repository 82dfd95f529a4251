"""A deterministic chain that stops on a checker's verdict, as a flow.

An outliner drafts a story outline, a checker decides whether it is a story at all,
and only then a writer writes it: plain Python decides, every model call is a
durable step (the scenario of the peers' "deterministic flow" examples).

    python examples/flow_story.py "a lighthouse keeper who collects lost letters"
    python worker.py --app examples.flow_story          # or: a worker, and the starter
    python starter.py run story "a lighthouse keeper" --app examples.flow_story
"""

from __future__ import annotations

import asyncio
import os
import sys

from pydantic import BaseModel, Field

import baton

# offline:* needs no key; e.g. BATON_EXAMPLE_MODEL=openai:gpt-5-nano with OPENAI_API_KEY set.
MODEL = os.environ.get("BATON_EXAMPLE_MODEL", "offline:standard")


class StoryPlan(BaseModel):
    title: str
    beats: list[str] = Field(min_length=3, max_length=6)


class StoryCheck(BaseModel):
    is_story: bool
    problem: str = ""


class Story(BaseModel):
    title: str
    text: str


outliner = baton.Agent("outliner", "Outline a very short story on the user's topic: a title "
                       "and three to six beats.", model=MODEL, output=StoryPlan)
checker = baton.Agent("checker", "Is this outline a story (characters, a change, an end)? "
                      "If not, say what is missing.", model=MODEL, output=StoryCheck)
writer = baton.Agent("writer", "Write the story from the outline, one paragraph per beat.",
                     model=MODEL)


@baton.flow
async def story(topic: str) -> Story:
    """Outline a story, check it is one, and only then write it."""
    outline = await outliner.run(topic)
    check = await checker.run(outline.text)
    if not check.output.is_story:
        return Story(title=outline.output.title, text=f"Stopped: {check.output.problem}")
    draft = await writer.run(outline.text)
    return Story(title=outline.output.title, text=draft.text)


async def main(topic: str) -> None:
    async with baton.worker(story):  # an in-process worker for this module's flows
        outcome = await baton.run(story, topic)
    print(f"status: {outcome.status}")
    print(f"title:  {outcome.output.title}\n\n{outcome.output.text}\n")
    print(f"usage:  {outcome.usage.calls} model calls, {outcome.usage.total_tokens} tokens")
    print(f"Web UI: {outcome.link}")


if __name__ == "__main__":
    asyncio.run(main(" ".join(sys.argv[1:]) or "a lighthouse keeper who collects lost letters"))
