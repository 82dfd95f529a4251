"""A research bot whose planner answers its own plan model, as a flow.

The planner returns `SearchPlan` (a model of this file, not a built-in one); each
search runs in parallel with `baton.gather` (a failed search is reported, the others
kept); a writer turns the findings into a report. The scenario of the peers'
"research bot" examples.

    python examples/flow_research.py "Should our agents use durable execution?"
    python starter.py run research "Is durable execution worth it?" \\
        --app examples.flow_research
"""

from __future__ import annotations

import asyncio
import os
import sys

from pydantic import BaseModel, Field

import baton

MODEL = os.environ.get("BATON_EXAMPLE_MODEL", "offline:standard")


class SearchItem(BaseModel):
    query: str
    reason: str


class SearchPlan(BaseModel):
    searches: list[SearchItem] = Field(min_length=1, max_length=5)


class Report(BaseModel):
    summary: str
    findings: list[str]
    failed_searches: int = 0


planner = baton.Agent("search_planner", "Plan up to five web searches that together answer "
                      "the question; say why each matters.", model=MODEL, output=SearchPlan)
searcher = baton.Agent("searcher", "Summarise in three sentences what a search for the query "
                       "would find.", model=MODEL)
reporter = baton.Agent("reporter", "Write a short report answering the question from the "
                       "findings only.", model=MODEL)


@baton.flow
async def research(question: str) -> Report:
    """Plan searches, run them in parallel, write a report from what they found."""
    plan = (await planner.run(question)).output
    results = await baton.gather(
        *(searcher.run(f"{s.query} ({s.reason})") for s in plan.searches),
        return_failures=True)
    found = [r.text for r in results if not isinstance(r, baton.BranchFailure)]
    failed = len(results) - len(found)
    report = await reporter.run(f"Question: {question}\nFindings:\n"
                                + "\n".join(f"- {f}" for f in found))
    return Report(summary=report.text, findings=found, failed_searches=failed)


async def main(question: str) -> None:
    async with baton.worker(research):
        outcome = await baton.run(research, question)
    print(f"status: {outcome.status}; {len(outcome.output.findings)} findings, "
          f"{outcome.output.failed_searches} failed searches\n{outcome.output.summary}\n"
          f"Web UI: {outcome.link}")


if __name__ == "__main__":
    asyncio.run(main(" ".join(sys.argv[1:]) or "Should our agents use durable execution?"))
