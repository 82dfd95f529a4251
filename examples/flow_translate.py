"""An orchestrator that uses other agents as tools, as a flow (agents as tools).

The orchestrator decides which translators to call; each translator is an agent
offered as a tool (`agent.as_tool(...)`), answering in the orchestrator's workflow.
A checker reviews the result. The scenario of the peers' "agents as tools" examples.

    python examples/flow_translate.py "Good morning, the shipment left today"
    python starter.py run translate "Good morning" --app examples.flow_translate
"""

from __future__ import annotations

import asyncio
import os
import sys

from pydantic import BaseModel

import baton

MODEL = os.environ.get("BATON_EXAMPLE_MODEL", "offline:standard")


class Translation(BaseModel):
    language: str
    text: str


spanish = baton.Agent("spanish_translator", "Translate the user's message into Spanish.",
                      model=MODEL, output=Translation)
french = baton.Agent("french_translator", "Translate the user's message into French.",
                     model=MODEL, output=Translation)
orchestrator = baton.Agent(
    "translation_orchestrator", "You are a translation agent. Use the tools to translate; "
    "call each relevant tool, then give all the translations.", model=MODEL,
    tools=[spanish.as_tool("translate_to_spanish", "Translate the message to Spanish",
                           output_extractor=lambda result: result.output.text),
           french.as_tool("translate_to_french", "Translate the message to French",
                          output_extractor=lambda result: result.output.text)])
synthesizer = baton.Agent("translation_checker", "Check the translations and give the final "
                          "answer, one line per language.", model=MODEL)


@baton.flow
async def translate(message: str) -> str:
    """Translate with agents as tools, then check the translations."""
    translated = await orchestrator.run(message)
    checked = await synthesizer.run(translated.messages)
    return checked.text


async def main(message: str) -> None:
    async with baton.worker(translate):
        outcome = await baton.run(translate, message)
    tools = [s.detail.split("(")[0] for s in outcome.result.trace if s.kind == "tool_call"]
    print(f"status: {outcome.status}; tools called: {', '.join(tools)}\n{outcome.answer}\n"
          f"Web UI: {outcome.link}")


if __name__ == "__main__":
    asyncio.run(main(" ".join(sys.argv[1:]) or "Good morning, the shipment left today"))
