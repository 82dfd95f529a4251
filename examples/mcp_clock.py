"""An agent with the tools of an MCP server: two lines of configuration, durable calls.

The server (examples/mcp_clock_server.py) is declared here, on the worker: the worker
starts it once and shares it between runs, lists its tools in an activity (recorded,
so a replay offers the same tools), and runs each call as its own activity
(`mcp:clock/current_time`), retried and heartbeated like a `@baton.tool`. A run only
names the server. Any MCP server works the same way: `command="uvx",
args=["mcp-server-time"]`, or `url="https://..."` with `headers={"Authorization":
"Bearer ${TOKEN}"}` read from the worker's environment (docs/mcp.md).

    python examples/mcp_clock.py "What time is it in Tokyo, and what is 21 C in F?"
    python worker.py --app examples.mcp_clock        # or: a worker, and the starter
    python starter.py run clock_agent "What time is it in Paris?" --app examples.mcp_clock
"""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

import baton

ROOT = Path(__file__).resolve().parent.parent
MODEL = os.environ.get("BATON_EXAMPLE_MODEL", "offline:standard")

clock = baton.MCPServer("clock", command=sys.executable,
                        args=["-m", "examples.mcp_clock_server"], cwd=str(ROOT))
clock_agent = baton.Agent("clock_agent", "Answer with the clock's tools; say which you used.",
                          model=MODEL, mcp=[clock])


async def main(question: str) -> None:
    async with baton.worker(clock_agent):  # declares the agent's MCP server on it
        outcome = await baton.run(clock_agent, question)
    print(outcome.answer)
    print(f"\n{outcome.link}")


if __name__ == "__main__":
    asyncio.run(main(" ".join(sys.argv[1:]) or "What time is it in Tokyo, and what is 21 C in F?"))
