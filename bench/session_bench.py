"""A 20-turn support conversation as a session: context size, history size, turn latency.

One session of `support_desk` (sticky triage) on the offline models, the same
twenty user messages each time, in three set-ups: turns as child workflows with
compression (the default), the same without compression (every turn verbatim),
and agents answering inside the session workflow (`inline_agents`). Figures:

- the specialist's input tokens at turn 20, compressed against verbatim, and what
  compression lost (turns summarised, characters kept, turns dropped);
- history bytes per turn: the session's own history (its size after each turn,
  from the `state` query) and, for child turns, the children's histories;
- the time from sending a turn (one update-with-start) to its answer, p50 and p95.

Prints JSON lines {"bench": "session", "figure": ..., ...}.

    python bench/session_bench.py [--turns 20]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import time
import uuid
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from temporalio.client import Client  # noqa: E402

from baton.core.session_io import (  # noqa: E402
    SessionLimits,
    SessionState,
    TurnAnswer,
    session_workflow_id,
)
from baton.define.catalogue import load_catalogue  # noqa: E402
from baton.runtime.sessions import send_turn, session_state  # noqa: E402
from baton.runtime.temporal import build_worker, exit_now  # noqa: E402
from bench.common import bench_environment  # noqa: E402

# A support conversation with the length and drift of a real one: billing, a detour
# to a technical problem, follow-ups that fit nowhere in particular.
MESSAGES = [
    "Hi, my invoice INV-2291 for October shows 480 USD but my plan is the 240 USD team plan. "
    "I upgraded on the 12th from the starter plan, so I expected a prorated amount, not a "
    "doubled one. Can you check what happened and tell me what I actually owe?",
    "Thanks. The upgrade was done by my colleague Dana from the admin console, if that "
    "matters. We also added two seats on the 20th, which I assume should be prorated too.",
    "So what would the corrected amount be, roughly? I need to tell our finance team today "
    "because they close the month on Friday and they will not pay an invoice that is wrong.",
    "Can you issue a corrected invoice, or do I have to pay this one and get a refund for "
    "the difference later? A refund to the same card would be fine if that is simpler.",
    "ok, and how long does that usually take?",
    "While I have you: the API returns error 500 when our integration uploads files larger "
    "than about 20 MB. Smaller files work. It started yesterday around 14:00 UTC, stack "
    "trace says 'upstream timeout' from your gateway. Our client retries three times.",
    "We use the Python SDK, version 4.2.1, on Ubuntu 22.04, calling the upload endpoint "
    "with multipart form data. Nothing changed on our side since last week's deployment.",
    "Is there a way to raise the timeout on our side, or is the limit on your gateway?",
    "I tried chunked uploads as the docs suggest, and the 500 error went away for 30 MB "
    "files, but a 120 MB file still fails after exactly 60 seconds with the same trace.",
    "ok thanks, I will try that.",
    "Back to the invoice: finance asks whether the corrected invoice will have the same "
    "number INV-2291 or a new number, because their system rejects duplicates.",
    "And will the two seats we added on the 20th show as separate lines on the invoice?",
    "One more billing question: can we switch from monthly to annual billing now and get "
    "the annual discount applied to the rest of this year, or only from the next renewal?",
    "what about the refund, will it be on the same card?",
    "Got it. Also, our receipts go to Dana's email, but Dana is leaving the company next "
    "month. How do we change the billing contact to finance@example.com?",
    "thanks, that's clear",
    "Another technical thing: the webhook for 'invoice.paid' fires twice for some "
    "payments, with the same event id. Our handler is idempotent, but is this a known bug?",
    "It happens for maybe 1 in 50 events, mostly for card payments, not bank transfers.",
    "ok. Last question: can you summarise what we agreed about the invoice and the refund "
    "so I can forward it to finance?",
    "Thank you, that is everything for today.",
]


def pct(values: list[float], q: int) -> float:
    return statistics.quantiles(values, n=100)[q - 1] if len(values) > 1 else values[0]


async def children_bytes(client: Client, workflow_id: str) -> tuple[int, int]:
    """(bytes, events) of every turn child of the session."""
    total = events = 0
    async for child in client.list_workflows(f"WorkflowId STARTS_WITH '{workflow_id}/'"):
        history = await client.get_workflow_handle(child.id, run_id=child.run_id) \
            .fetch_history()
        total += sum(e.ByteSize() for e in history.events)
        events += len(history.events)
    return total, events


async def conversation(client: Client, task_queue: str, turns: int,
                       limits: SessionLimits) -> dict[str, Any]:
    catalogue = load_catalogue()
    session_id = f"bench-{uuid.uuid4().hex[:8]}"
    latencies, sizes, answers = [], [], []
    for index in range(turns):
        message = MESSAGES[index % len(MESSAGES)]
        started = time.perf_counter()
        answer = await send_turn(client, session_id, "support_desk", message, catalogue,
                                 task_queue, limits=limits)
        latencies.append((time.perf_counter() - started) * 1000)
        answers.append(answer)
        state = await session_state(client, session_id)
        sizes.append((state.history_bytes, state.history_events))
    state = await session_state(client, session_id)
    return {"session_id": session_id, "latencies": latencies, "sizes": sizes,
            "answers": answers, "state": state}


def losses(state: SessionState, answers: list[TurnAnswer]) -> dict[str, Any]:
    """What the specialist no longer sees at the last turn, against the full transcript."""
    folded = range(state.folded_turns)
    users = [line for line in state.summary if line.startswith("user: ")]
    original = sum(len(MESSAGES[i % len(MESSAGES)]) + len(answers[i].answer) for i in folded)
    limits = SessionLimits()
    cut_short = sum(1 for line in users[1:] if len(line) <= len("user: ") + limits.old_turn_chars)
    # The folded turn whose request lost the most, as the summary keeps it.
    worst = max(folded[1:], key=lambda i: len(MESSAGES[i % len(MESSAGES)]), default=0)
    dropped = state.dropped_turns
    kept = users[worst - dropped] if worst > dropped or worst == 0 else "(dropped)"
    return {"turns_verbatim": len(state.recent), "turns_summarised": state.folded_turns,
            "turns_cut_to_old_turn_chars": cut_short,
            "turns_dropped_from_summary": dropped,
            "chars_of_summarised_turns": original,
            "chars_kept_in_summary": sum(len(line) for line in state.summary),
            "example_turn": worst + 1, "example_original": MESSAGES[worst % len(MESSAGES)],
            "example_kept": kept}


def per_turn(sizes: list[tuple[int, int]]) -> dict[str, Any]:
    """Growth of the session's own history per turn: first, middle and last turns."""
    deltas = [b - a for (a, _), (b, _) in zip([(0, 0), *sizes[:-1]], sizes, strict=True)]
    events = [b - a for (_, a), (_, b) in zip([(0, 0), *sizes[:-1]], sizes, strict=True)]
    return {"bytes_per_turn_p50": int(statistics.median(deltas[1:] or deltas)),
            "bytes_turn_2": deltas[1] if len(deltas) > 1 else deltas[0],
            "bytes_last_turn": deltas[-1], "events_per_turn_p50": statistics.median(events),
            "bytes_by_turn": deltas,
            "history_bytes": sizes[-1][0], "history_events": sizes[-1][1]}


async def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--turns", type=int, default=20)
    args = parser.parse_args()
    env = await bench_environment()
    client = env.client
    task_queue = f"bench-session-{uuid.uuid4().hex[:8]}"
    # No continue-as-new inside the measured conversation: one history to weigh.
    big = {"continue_after_events": 40_000, "continue_after_bytes": 40 * 1024 * 1024}
    setups = {
        "child turns, compressed": SessionLimits(**big),
        "child turns, verbatim": SessionLimits(compress=False, **big),
        "inline agents, compressed": SessionLimits(inline_agents=True, **big),
    }
    try:
        async with build_worker(client, task_queue):
            await conversation(client, task_queue, 2, SessionLimits())  # warm up
            runs = {name: await conversation(client, task_queue, args.turns, limits)
                    for name, limits in setups.items()}
            for name, run in runs.items():
                child_bytes, child_events = (await children_bytes(
                    client, session_workflow_id(run["session_id"]))
                    if not name.startswith("inline") else (0, 0))
                lat = run["latencies"][1:]  # the first turn also starts the workflow
                print(json.dumps({
                    "bench": "session", "figure": f"history and latency: {name}",
                    "turns": args.turns, **per_turn(run["sizes"]),
                    "child_bytes_per_turn": child_bytes // args.turns,
                    "child_events_per_turn": child_events // args.turns,
                    "update_ms_p50": round(statistics.median(lat), 1),
                    "update_ms_p95": round(pct(lat, 95), 1),
                    "first_turn_ms": round(run["latencies"][0], 1)}), flush=True)
            compressed, verbatim = runs["child turns, compressed"], runs["child turns, verbatim"]
            last_c, last_v = compressed["answers"][-1], verbatim["answers"][-1]
            tokens_c = last_c.usage[last_c.handled_by].input_tokens
            tokens_v = last_v.usage[last_v.handled_by].input_tokens
            print(json.dumps({
                "bench": "session", "figure": f"specialist input tokens at turn {args.turns}",
                "specialist": last_c.handled_by, "compressed": tokens_c, "verbatim": tokens_v,
                "reduction_pct": round(100 * (1 - tokens_c / tokens_v), 1)}), flush=True)
            state = compressed["state"]
            print(json.dumps({"bench": "session", "figure": "what compression loses",
                              **losses(state, compressed["answers"])}), flush=True)
    finally:
        await env.shutdown()
    return 0


if __name__ == "__main__":
    exit_now(asyncio.run(main()))
