"""An --app module for tests/test_flow_crash.py: a slow flow of alternating model and
tool steps, for killing its worker with `kill -9` in the middle of it.

`crash_stamp` appends one JSON line per execution to the file named by
BATON_TEST_CRASH_TOOL_LOG (when set), so the test can count executions across worker
processes; the offline model's own call log (BATON_OFFLINE_CALL_LOG) counts the model
calls. Import-time work is definitions only: the worker imports this module, and so
does every replay.
"""

from __future__ import annotations

import json
import os
import time

from pydantic import BaseModel

import baton

TOOL_LOG_ENV = "BATON_TEST_CRASH_TOOL_LOG"
# How long one tool execution works: long enough that a kill lands inside the flow
# rather than after it, short enough that the test stays quick.
STAMP_S = 0.6

# A short heartbeat timeout, so the call in flight on the killed worker is noticed
# and retried on the next worker within about a second rather than the default ten.
crash_scribe = baton.Agent(
    "crash_scribe", "Write one line of notes on the step you are given.",
    heartbeat_s=1.0,
    retry={"max_attempts": 5, "initial_interval_s": 0.1, "backoff": 1.0,
           "max_interval_s": 0.1})


@baton.tool(heartbeat=1.0, timeout=30, max_attempts=5)
def crash_stamp(step: int, note: str, context: baton.ToolContext) -> str:
    """Stamp a step's note (slowly), logging the execution once it is done."""
    time.sleep(STAMP_S)
    path = os.environ.get(TOOL_LOG_ENV)
    if path:
        entry = {"run": context.workflow_id, "step": step, "key": context.idempotency_key,
                 "attempt": context.attempt, "pid": os.getpid(), "at": round(time.time(), 3)}
        with open(path, "a") as log:  # one write of one line: whole even across processes
            log.write(json.dumps(entry) + "\n")
    return f"stamped {step}: {len(note)} characters"


class CrashRelayResult(BaseModel):
    """What the flow returns: one stamp per step, in order."""

    topic: str
    stamps: list[str]


@baton.flow
async def crash_relay(topic: str, steps: int = 5) -> CrashRelayResult:
    """For each step: a model call, then a tool call on its answer."""
    stamps: list[str] = []
    for step in range(steps):
        reply = await crash_scribe.run(f"Step {step} of {steps} on {topic}.")
        stamps.append(await crash_stamp(step=step, note=reply.text))
    return CrashRelayResult(topic=topic, stamps=stamps)
