"""An --app module for the kill -9 test of tests/test_mcp.py: an agent whose stateful MCP
server (tests/mcp_servers/counter.py over stdio) has a slow tool to kill its worker in.

The server's calls heartbeat every second, so a call on a killed worker is noticed
within about a second; its retry waits 2 s (session_wait_s) on the killed worker's
session queue before the run opens a new session on a live worker. Import-time work
is definitions only: the worker imports this module, and so does every replay.
"""

from __future__ import annotations

import sys
from pathlib import Path

import baton

ROOT = Path(__file__).resolve().parents[2]

keeper = baton.MCPServer(
    "keeper", command=sys.executable, args=["-m", "tests.mcp_servers.counter", "stdio"],
    cwd=str(ROOT), env={"MCP_TEST_LOG": "${MCP_TEST_LOG}",
                        "MCP_TEST_SLOW_S": "${MCP_TEST_SLOW_S}"},
    stateful=True, heartbeat_s=1.0, timeout_s=30, max_attempts=5, session_wait_s=2.0)

crash_keeper = baton.Agent(
    "crash_keeper", "Keep a note, echo it slowly, then read the notes back.",
    mcp=[keeper.only("remember", "slow_echo", "recall")], heartbeat_s=1.0,
    retry={"max_attempts": 5, "initial_interval_s": 0.1, "backoff": 1.0,
           "max_interval_s": 0.1})
