"""A research team: a coordinator splits a question into subtasks, members research in parallel.

The planner writes a plan (subtasks, each for one member); every subtask runs as its
own child workflow, so a failed branch is retried or inspected on its own and never
re-runs its siblings. Members search a folder of markdown notes (examples/notes/)
with a tool; the synthesizer answers from what they found.

    python examples/research_team.py "Should our agents use durable execution?"
    python worker.py --app examples.research_team     # or: a worker, and the starter
    python starter.py run research_team "How do we cope with rate limits?" \\
        --app examples.research_team
"""

from __future__ import annotations

import asyncio
import os
import re
import sys
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field

import baton

# offline:* needs no key; e.g. BATON_EXAMPLE_MODEL=openai:gpt-5-nano with OPENAI_API_KEY set.
MODEL = os.environ.get("BATON_EXAMPLE_MODEL", "offline:standard")
NOTES = Path(__file__).parent / "notes"
STOPWORDS = {"the", "and", "for", "with", "that", "this", "what", "which", "when", "where",
             "how", "why", "are", "was", "our", "your", "you", "can", "should", "does",
             "about", "into", "from", "they", "them", "their", "its", "use", "using", "focus"}


def terms(text: str) -> set[str]:
    words = {w for w in re.findall(r"[a-z0-9]+", text.lower()) if len(w) > 2}
    return {w.rstrip("s") for w in words - STOPWORDS}


@baton.tool(timeout=10)
def search_notes(query: str) -> list[dict[str, Any]] | str:
    """Search the team's research notes; the best-matching paragraphs, with their note.

    Args:
        query: What to look for, in a few words or a question.
    """
    wanted = terms(query)
    hits = []
    for path in sorted(NOTES.glob("*.md")):
        title, *paragraphs = path.read_text().split("\n\n")
        for paragraph in paragraphs:
            score = len(wanted & terms(paragraph)) + 2 * len(wanted & terms(title))
            if score:
                hits.append((score, path.name, title.lstrip("# "), " ".join(paragraph.split())))
    hits.sort(key=lambda hit: -hit[0])
    if not hits:
        names = ", ".join(sorted(path.name for path in NOTES.glob("*.md")))
        return f"No note matches {query!r}. The notes are: {names}"
    return [{"note": note, "title": title, "excerpt": text}
            for _, note, title, text in hits[:3]]


class NoteFindings(BaseModel):
    """What one member found in the notes for its subtask."""

    summary: str = Field(min_length=1)
    key_points: list[str] = Field(min_length=1, max_length=6)
    sources: list[str] = Field(description="The notes used, e.g. 'vector-databases.md'.")


class ResearchBrief(BaseModel):
    """The team's answer."""

    answer: str = Field(min_length=1)
    sources: list[str]
    open_questions: list[str] = Field(description="What the notes do not settle.")


planner = baton.Agent(
    "planner", "Split the question into 2-4 independent subtasks, each for the member "
    "best suited to it.", model=MODEL)
researcher = baton.Agent(
    "researcher", "Find what the notes say on your subtask. Search, then report only what "
    "the notes support, citing each note you used.",
    description="Finds the facts and practices the notes describe.",
    model=MODEL, tools=[search_notes], output=NoteFindings)
critic = baton.Agent(
    "critic", "Find the costs, risks and limits the notes mention for your subtask. "
    "Search, then report only what the notes support, citing each note you used.",
    description="Finds costs, risks and trade-offs.",
    model=MODEL, tools=[search_notes], output=NoteFindings)
synthesizer = baton.Agent(
    "synthesizer", "Answer the question from the members' findings only. Cite the notes; "
    "say what remains open.", model=MODEL, output=ResearchBrief)
research_team = baton.Coordinator(
    "research_team", planner=planner, members=[researcher, critic],
    synthesizer=synthesizer, max_branches=4)


async def main(question: str) -> None:
    async with baton.worker(research_team):  # an in-process worker with the team's tools
        outcome = await baton.run(research_team, question)
    for branch in outcome.result.branches:  # one child workflow per subtask
        print(f"- {branch.branch}: {branch.task}")
    print(f"status:     {outcome.status}")
    print(f"answer:     {outcome.output.answer if outcome.output else outcome.answer}")
    print(f"output:     {outcome.output!r}")  # a ResearchBrief, validated
    print(f"usage:      {outcome.usage.calls} model calls, {outcome.usage.tool_calls} tool "
          f"calls, {outcome.usage.total_tokens} tokens")
    print(f"Web UI:     {outcome.link}")


if __name__ == "__main__":
    asyncio.run(main(" ".join(sys.argv[1:]) or "Should our agent platform use durable "
                     "execution, and where do vector databases fit in?"))
