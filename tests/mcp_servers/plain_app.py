"""A plain Temporal workflow of a user's own, for tests/test_mcp.py: one of its steps is an
agent using a tool of an MCP server (tests/mcp_servers/counter.py over stdio), run on a
worker built from a client given `BatonPlugin(plain_clerk)`.

Import-time work is definitions only: Temporal's sandbox imports this module again
for the workflow (so no `Path.resolve()` here: the sandbox refuses it).
"""

from __future__ import annotations

import sys
from pathlib import Path

from temporalio import workflow

import baton

ROOT = Path(__file__).parents[2]

plain = baton.MCPServer(
    "plain", command=sys.executable, args=["-m", "tests.mcp_servers.counter", "stdio"],
    cwd=str(ROOT), env={"MCP_TEST_LOG": "${MCP_TEST_LOG}"})

plain_clerk = baton.Agent(
    "plain_clerk", "Use the tools, then answer.", mcp=[plain.only("add")],
    retry={"max_attempts": 2, "initial_interval_s": 0.1, "backoff": 1.0,
           "max_interval_s": 0.1})


@workflow.defn
class PlainSums:
    """A user's own workflow: an agent with an MCP server is one of its steps."""

    @workflow.run
    async def run(self, numbers: list[int]) -> list[str]:
        return [(await plain_clerk.run(f"Add {n} and {n}")).text for n in numbers]
