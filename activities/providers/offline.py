"""The offline provider: a deterministic, network-free stand-in for a model.

It behaves like a small, literal-minded model so every pattern does something
meaningful without a key: it routes by keywords to the declared targets, fills any
requested JSON schema with readable values that quote the request, delegates to
each offered tool once and then answers, and reports estimated token usage. Every
answer says it is offline. `Chaos` in the request adds seeded latency, failures,
timeouts, malformed output and judge rejections.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import random
import re
import time
from typing import Any

from temporalio import activity
from temporalio.exceptions import ApplicationError

from baton.activities.providers.base import priced
from baton.activities.providers.schema_instance import build_instance
from baton.model_io import Chaos, ModelRequest, ModelResponse, ProviderConfig, ToolCall
from baton.text import shorten
from baton.usage import Price, Usage

# Words that send a request to a target whose name contains the key.
ROUTING_KEYWORDS: dict[str, tuple[str, ...]] = {
    "billing": ("invoice", "payment", "refund", "charge", "charged", "billing", "bill",
                "subscription", "price", "card", "receipt", "paid", "amount"),
    "technical": ("error", "bug", "api", "crash", "exception", "timeout", "broken",
                  "install", "integration", "500", "stack", "fails", "failing", "code"),
    "project": ("research", "analyze", "analyse", "analysis", "compare", "build",
                "implement", "investigate", "study", "report", "design", "prototype"),
    "research": ("research", "analyze", "analysis", "compare", "investigate", "study"),
}
FALLBACK_ROUTE_HINT = "general"
# What each subtask of an offline plan focuses on.
SUBTASK_ASPECTS = ("the evidence so far", "how teams use it in practice",
                   "recent developments", "risks and open questions", "costs")


def _words(text: str) -> set[str]:
    return set(re.findall(r"[a-z0-9]+", text.lower()))


# Offline answers cost nothing, whatever the provider's name.
FREE = Price(input_per_mtok=0, output_per_mtok=0)


def estimate_tokens(text: str) -> int:
    # ~4 characters per token, the usual rule of thumb for English text.
    return max(1, len(text) // 4)


class OfflineProvider:
    """Adapter for `offline:<name>`; the name only labels answers."""

    def __init__(self, endpoint: ProviderConfig | None = None) -> None:
        del endpoint  # nothing to connect to

    async def complete(self, request: ModelRequest) -> ModelResponse:
        chaos = request.chaos
        if chaos is not None and not chaos.applies_to(request.agent, request.model):
            chaos = None
        rng = random.Random(_seed(request))
        if chaos and chaos.latency_s:
            await asyncio.sleep(chaos.latency_s)
        fault = _draw_fault(chaos, request, rng)
        if fault == "failure":
            raise ApplicationError(
                f"offline provider: simulated outage for {request.agent}",
                type="ModelUnavailable",
            )
        if fault == "timeout":
            # Hang like a stuck connection; Temporal's timeout ends the attempt.
            await asyncio.sleep(request.timeout_s * 10 + 3600)
        if request.model in _outage() or (chaos is not None and request.model in chaos.down_models):
            raise ApplicationError(
                f"offline provider: {request.model} is down (BATON_OFFLINE_OUTAGE)",
                type="ModelUnavailable")

        prompt = _request_text(request)
        if fault == "malformed":
            text = _malformed_output(request, rng)
            return self._response(request, text, parsed=_try_json(text))
        if request.tools:
            next_call = _next_tool_call(request, prompt)
            if next_call is not None:
                return self._response(request, "", tool_calls=[next_call], finish="tool_calls")
        if request.output_schema is not None:
            value = build_instance(
                request.output_schema,
                choose=lambda name, options: _choose(name, options, request),
                write=lambda name, min_len: _write(name, min_len, request, prompt),
                boolean=fault != "rejection",
            )
            if fault == "rejection" and isinstance(value, dict) and "feedback" in value:
                value["feedback"] = "Simulated rejection: tighten the argument and cite sources."
            return self._response(request, json.dumps(value), parsed=value)
        return self._response(request, _answer(request, prompt))

    def _response(
        self,
        request: ModelRequest,
        text: str,
        *,
        parsed: dict[str, Any] | None = None,
        tool_calls: list[ToolCall] | None = None,
        finish: str = "stop",
    ) -> ModelResponse:
        prompt_text = request.instructions + "".join(m.content for m in request.messages)
        output_text = text + "".join(json.dumps(c.arguments) for c in tool_calls or [])
        response = ModelResponse(
            model=request.model,
            text=text,
            parsed=parsed,
            tool_calls=tool_calls or [],
            finish_reason=finish,
            usage=priced(request, Usage(
                calls=1,
                input_tokens=estimate_tokens(prompt_text),
                output_tokens=estimate_tokens(output_text),
            ), unknown=FREE),
        )
        _log_call(request)  # once the answer exists: only answered calls are logged
        return response


def _outage() -> set[str]:
    """Models the worker's environment declares down: a provider outage, outside any run."""
    return {m.strip() for m in os.environ.get("BATON_OFFLINE_OUTAGE", "").split(",") if m}


def _log_call(request: ModelRequest) -> None:
    """Append each answered call to BATON_OFFLINE_CALL_LOG (JSON lines), when set.

    Lets a test (or a curious user) see which calls were made, e.g. that a reset run
    did not call again what it had already paid for. One call is (run, run_id,
    activity): (run, agent, call) alone repeats across a session's turns, whose
    ledgers each count from 0 in the one session workflow, and across
    continue-as-new. `attempt` tells a retry of an unfinished call from a new call.
    """
    path = os.environ.get("BATON_OFFLINE_CALL_LOG")
    if not path:
        return
    info = activity.info() if activity.in_activity() else None
    entry = {"run": info.workflow_id if info else request.call_key,
             "agent": request.agent, "call": request.call_index,
             "model": request.model, "attempt": info.attempt if info else 1,
             "run_id": info.workflow_run_id if info else None,
             "activity": info.activity_id if info else None,
             "at": round(time.time(), 3), "pid": os.getpid()}
    with open(path, "a") as log:  # one write of one line: whole even across processes
        log.write(json.dumps(entry) + "\n")


def _seed(request: ModelRequest) -> int:
    attempt = activity.info().attempt if activity.in_activity() else 1
    seed = request.chaos.seed if request.chaos else 0
    key = f"{seed}|{request.call_key}|{request.agent}|{request.call_index}|{attempt}"
    return int.from_bytes(hashlib.sha256(key.encode()).digest()[:8], "big")


def _draw_fault(chaos: Chaos | None, request: ModelRequest, rng: random.Random) -> str | None:
    if chaos is None:
        return None
    attempt = activity.info().attempt if activity.in_activity() else 1
    tries_so_far = request.call_index + attempt - 1
    if chaos.faulty_tries is not None and tries_so_far >= chaos.faulty_tries:
        return None
    draw = rng.random()
    for fault, rate in (
        ("failure", chaos.failure_rate),
        ("timeout", chaos.timeout_rate),
        ("malformed", chaos.malformed_rate if request.output_schema else 0.0),
        ("rejection", chaos.rejection_rate if request.output_schema else 0.0),
    ):
        if draw < rate:
            return fault
        draw -= rate
    return None


def _last_user_text(request: ModelRequest) -> str:
    for message in reversed(request.messages):
        if message.role == "user":
            return message.content
    return ""


def _request_text(request: ModelRequest) -> str:
    """The latest user turn that is a request, not a correction of this agent's reply."""
    messages = request.messages
    for index in range(len(messages) - 1, -1, -1):
        before = messages[index - 1] if index else None
        # Only contract repairs correct a reply; in a plain conversation (a session)
        # a message after this agent's answer is the user's next request.
        correction = before is not None and before.role == "assistant" \
            and before.agent == request.agent and request.output_schema is not None
        if messages[index].role == "user" and not correction:
            return messages[index].content
    return _last_user_text(request)


def _choose(name: str, options: list[Any], request: ModelRequest) -> Any:
    """Pick an enum value the way a literal-minded model would: by keywords (of the
    quoted request, when the prompt quotes one after listing the options)."""
    prompt = _request_text(request)
    quoted = re.search(r"^Request: (.+)$", prompt, re.M)
    text = _words(quoted.group(1) if quoted else prompt)
    best, best_score = None, 0
    for option in options:
        label = str(option).lower()
        keywords = {label, *label.split("_")}
        for key, words in ROUTING_KEYWORDS.items():
            if key in label:
                keywords.update(words)
        score = len(text & keywords)
        if score > best_score:
            best, best_score = option, score
    if best is not None:
        return best
    if name.endswith("]"):  # one of several items (a plan's subtasks): spread them out
        return options[int(name.rsplit("[", 1)[1].rstrip("]")) % len(options)]
    hinted = [o for o in options if FALLBACK_ROUTE_HINT in str(o).lower()]
    return hinted[0] if hinted else options[0]


def _write(name: str, min_len: int, request: ModelRequest, prompt: str) -> str:
    first_line = prompt.split("\n", 1)[0]
    topic = shorten(re.sub(r"^(request|question|task):\s*", "", first_line, flags=re.I), 80)
    base = name.split("[")[0]
    quoted = re.search(r"^Request: (.+)$", prompt, re.M)
    request_topic = shorten(quoted.group(1), 100) if quoted else topic
    index = int(name.rsplit("[", 1)[1].rstrip("]")) if name.endswith("]") else 0
    templates = {
        "task": f"{request_topic} Focus on {SUBTASK_ASPECTS[index % len(SUBTASK_ASPECTS)]}.",
        "reason": f"The request mentions terms that match this choice: \"{topic}\".",
        "title": f"On {topic}",
        "summary": f"[offline] {request.agent} finds that \"{topic}\" has clear, known answers.",
        "feedback": "Looks complete and accurate.",
        "markdown": f"# On {topic}\n\n[offline] {request.agent} formatted this article.",
        "body": f"[offline] {request.agent} writes about \"{topic}\": it matters, it has "
                "trade-offs, and the evidence points one way.",
    }
    text = templates.get(base, f"[offline] {request.agent} on {base}: \"{topic}\"")
    results = [m.content for m in request.messages if m.role == "tool"]
    if results and base not in templates:
        text += f"; tools said: {shorten(' | '.join(results), 160)}"
    if "[" in name and base != "task":
        text = f"{base} {index + 1}: {text}"
    while len(text) < min_len:
        text += " (offline)"
    return text


def _malformed_output(request: ModelRequest, rng: random.Random) -> str:
    """Output that breaks the contract: unparseable, or JSON in the wrong shape."""
    if rng.random() < 0.5:
        return '{"this is": not json'
    properties = (request.output_schema or {}).get("properties", {})
    broken: dict[str, object] = {key: 12345 for key in properties}
    if "route" in properties:
        broken["route"] = "undeclared-agent-9000"
    return json.dumps(broken)


def _try_json(text: str) -> dict[str, Any] | None:
    try:
        value = json.loads(text)
    except json.JSONDecodeError:
        return None
    return value if isinstance(value, dict) else None


# Parameter names the offline model fills with an id-like token from the request
# ("order A-1001" -> "A-1001"), or with the request itself.
ID_NAMES = ("id", "number", "code", "sku", "ref", "reference")
TEXT_NAMES = ("query", "question", "text", "topic", "prompt", "q", "search", "keywords",
              "message", "request", "reason", "note", "description")
ID_TOKEN = re.compile(r"\b([A-Z]{1,5}-?\d{1,})\b")
NUMBER_ID = re.compile(r"#(\d+)\b")
NUMBER = re.compile(r"(?<![\w.-])(\d+(?:\.\d+)?)(?![\w-])")


def _next_tool_call(request: ModelRequest, prompt: str) -> ToolCall | None:
    """Call each offered tool once, in order, with arguments built from the request and
    valid for the tool's schema; None when every tool has answered."""
    called = {c.name for m in request.messages for c in m.tool_calls}
    original = next((m.content for m in request.messages if m.role == "user"), prompt)
    for index, tool in enumerate(request.tools):
        if tool.name in called:
            continue

        def write(name: str, min_len: int, tool_name: str = tool.name) -> str:
            base = name.split("[")[0].lower()
            if base == "task":  # a supervisor's delegation
                return f"As {tool_name}, handle your part of: {shorten(original, 200)}"
            if base.endswith(ID_NAMES) and (
                    token := ID_TOKEN.search(original) or NUMBER_ID.search(original)):
                return token.group(1)
            if base in TEXT_NAMES:
                return shorten(original, 200)
            return _write(name, min_len, request, prompt)

        def number(name: str, node: dict[str, Any]) -> float | None:
            found = NUMBER.findall(NUMBER_ID.sub(" ", ID_TOKEN.sub(" ", original)))
            if not found:
                return None
            value = float(found[0])
            low = node.get("minimum", node.get("exclusiveMinimum"))
            high = node.get("maximum", node.get("exclusiveMaximum"))
            inside = (low is None or value >= low) and (high is None or value <= high)
            return value if inside else None

        arguments = build_instance(
            tool.parameters, choose=lambda name, options: _choose(name, options, request),
            write=write, number=number)
        return ToolCall(id=f"call_{request.call_index}_{index}", name=tool.name,
                        arguments=arguments if isinstance(arguments, dict) else {})
    return None


def _answer(request: ModelRequest, prompt: str) -> str:
    results = [m for m in request.messages if m.role == "tool"]
    header = f"[offline {request.model_name} model; no LLM was called] {request.agent}:"
    if results:
        lines = "\n".join(f"- {shorten(m.content, 160)}" for m in results)
        original = next((m.content for m in request.messages if m.role == "user"), prompt)
        return f"{header} for \"{shorten(original, 100)}\", the team reports:\n{lines}"
    answer = f"{header} regarding \"{shorten(prompt, 160)}\", here is my answer as {request.agent}."
    earlier, first = _earlier_user_turns(request)
    if earlier:
        # Lets tests and demos see what context a long conversation really reached.
        answer += (f" I see {earlier} earlier user turn{'s' if earlier != 1 else ''}; the "
                   f"conversation began with \"{shorten(first, 80)}\".")
    return answer


HISTORY_BLOCK = re.compile(r"<conversation_history>\n(.*?)\n</conversation_history>", re.S)


def _earlier_user_turns(request: ModelRequest) -> tuple[int, str]:
    """User turns before the current request, counting those inside transcripts (a
    nested handoff history, a session's summary), and the first of them."""
    users = [m.content for m in request.messages if m.role == "user"]
    count, first = 0, ""
    for index, content in enumerate(users):
        block = HISTORY_BLOCK.search(content)
        if block is not None:
            lines = [line.removeprefix("user: ") for line in block.group(1).splitlines()
                     if line.startswith("user: ")]
            count += len(lines)
            first = first or (lines[0] if lines else "")
        elif index < len(users) - 1:
            count += 1
            first = first or content
    return count, first
