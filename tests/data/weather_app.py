"""An --app module for tests/test_tool_identity.py: another app's `get_weather`.

Its tool has the name of the test module's own `get_weather` and another schema;
each call appends a JSON line to BATON_TEST_WEATHER_LOG (when set), so a test can
see which process ran which call.
"""

from __future__ import annotations

import json
import os

import baton


@baton.tool
def get_weather(query: str) -> str:
    """The weather, searched by free text."""
    path = os.environ.get("BATON_TEST_WEATHER_LOG")
    if path:
        with open(path, "a") as log:
            log.write(json.dumps({"query": query, "pid": os.getpid()}) + "\n")
    return f"sunny, for {query!r}"
