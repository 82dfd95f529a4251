"""An --app module for tests: tools that log every execution, an agent and a team.

Each tool appends a JSON line to BATON_TEST_TOOL_LOG (when set) as it starts and
as it finishes, so a test can count executions across worker processes.
"""

from __future__ import annotations

import json
import os
import time
from typing import Annotated

from pydantic import BaseModel, Field

import baton


def _log(event: str, tool: str, **fields: object) -> None:
    path = os.environ.get("BATON_TEST_TOOL_LOG")
    if path:
        with open(path, "a") as log:
            log.write(json.dumps({"event": event, "tool": tool, **fields,
                                  "at": round(time.time(), 3), "pid": os.getpid()}) + "\n")


@baton.tool(heartbeat=1.0, timeout=30)
def lookup_order(order_id: Annotated[str, Field(description="The order's id, e.g. A-1001.")],
                 context: baton.ToolContext) -> dict[str, str]:
    """Look up an order's status."""
    _log("start", "lookup_order", key=context.idempotency_key, attempt=context.attempt)
    _log("end", "lookup_order", key=context.idempotency_key, attempt=context.attempt)
    return {"order_id": order_id, "status": "shipped"}


@baton.tool(heartbeat=1.0, timeout=60)
def slow_report(topic: str, context: baton.ToolContext) -> str:
    """Write a slow report on a topic (takes BATON_TEST_SLOW_S seconds)."""
    _log("start", "slow_report", key=context.idempotency_key, attempt=context.attempt)
    time.sleep(float(os.environ.get("BATON_TEST_SLOW_S", "0")))
    _log("end", "slow_report", key=context.idempotency_key, attempt=context.attempt)
    return f"report on {topic}"


class OrderAnswer(BaseModel):
    """The support agent's structured answer."""

    order_id: str
    status: str
    answer: str = Field(min_length=1)


support = baton.Agent(
    "support", "Answer questions about orders using your tools.",
    model="offline:standard", tools=[lookup_order, slow_report], output=OrderAnswer,
    retry={"max_attempts": 2, "initial_interval_s": 0.1, "backoff": 1.0, "max_interval_s": 0.1})
