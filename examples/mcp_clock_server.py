"""A small MCP server of ours (the official `mcp` package's MCPServer, once FastMCP): the
time in a few cities and a temperature conversion. Any MCP client can use it; Baton's
worker starts it over stdio for examples/mcp_clock.py.

    python -m examples.mcp_clock_server          # speaks MCP on stdin and stdout
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal
from zoneinfo import ZoneInfo

from mcp.server.mcpserver import MCPServer

server: MCPServer[Any] = MCPServer("clock")

Zone = Literal["UTC", "Europe/Paris", "America/New_York", "Asia/Tokyo"]


@server.tool()
def current_time(timezone: Zone = "UTC") -> str:
    """The current date and time in a time zone."""
    now = datetime.now(ZoneInfo(timezone))
    return f"{now:%Y-%m-%d %H:%M} in {timezone}"


@server.tool()
def celsius_to_fahrenheit(celsius: float) -> str:
    """Convert a temperature from degrees Celsius to degrees Fahrenheit."""
    return f"{celsius:g} °C = {celsius * 9 / 5 + 32:g} °F"


if __name__ == "__main__":
    server.run("stdio")
