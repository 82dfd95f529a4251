"""The offline provider: a deterministic, network-free stand-in for a model.

It behaves like a small, literal-minded model so every pattern does something
meaningful without a key: offered transfer tools, it hands the conversation to the
target whose name and description the latest request fits better than its own (or
answers itself, saying why); asked for a route, it picks one by keywords; it fills any
requested JSON schema with readable values that quote the request, delegates to
each offered tool once (its arguments read from the user's latest message by name
and type: offline_arguments.py) and then answers, and reports estimated token usage. Every
answer says it is offline. `Chaos` in the request adds seeded latency, failures,
timeouts, malformed output and judge rejections. Streamed, an answer comes in
word-sized deltas paced by that latency.
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

from baton.activities.providers.base import TextSink, priced
from baton.activities.providers.offline_arguments import tool_arguments
from baton.activities.providers.schema_instance import build_instance
from baton.core.handoffs import TRANSFER_PREFIX, is_transfer
from baton.core.model_io import (
    Chaos,
    ModelRequest,
    ModelResponse,
    ProviderConfig,
    ToolCall,
    ToolSpec,
)
from baton.core.text import shorten
from baton.core.usage import Price, Usage

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
# A streamed answer's pieces: a word with the spaces after it (they join back exactly).
DELTA = re.compile(r"\S+\s*|\s+")
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
        return await self._respond(request, _latency(request))

    async def stream(self, request: ModelRequest, on_text: TextSink) -> ModelResponse:
        """The same answer in word-sized deltas, paced like a model writing: half the
        configured latency before the first, the other half spread between them."""
        latency = _latency(request)
        response = await self._respond(request, latency / 2)
        pieces = DELTA.findall(response.text)
        for piece in pieces:
            on_text(piece)
            if latency:
                await asyncio.sleep(latency / 2 / len(pieces))
        return response

    async def _respond(self, request: ModelRequest, wait_s: float) -> ModelResponse:
        chaos = _chaos(request)
        rng = random.Random(_seed(request))
        if wait_s:
            await asyncio.sleep(wait_s)
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
        transfers = [t for t in request.tools if is_transfer(t.name)]
        if fault == "malformed" and transfers and request.output_schema is None:
            return self._response(request, "", tool_calls=[_undeclared_transfer(request)],
                                  finish="tool_calls")
        if fault == "malformed":
            text = _malformed_output(request, rng)
            return self._response(request, text, parsed=_try_json(text))
        if request.tools:
            # A request that fits another agent better is handed on at once; else the
            # agent's own tools, each once.
            own = [t for t in request.tools if not is_transfer(t.name)]
            next_call = _transfer_call(request, transfers) if transfers else None
            if next_call is None:
                next_call = _next_tool_call(request.model_copy(update={"tools": own}))
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
        kept = _why_answered_myself(request, transfers) if transfers else ""
        return self._response(request, _answer(request, prompt) + kept)

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


def _chaos(request: ModelRequest) -> Chaos | None:
    chaos = request.chaos
    return chaos if chaos is not None and chaos.applies_to(request.agent, request.model) \
        else None


def _latency(request: ModelRequest) -> float:
    chaos = _chaos(request)
    return chaos.latency_s if chaos is not None else 0.0


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
        # Malformed: JSON that breaks the schema, or a transfer nobody declared.
        ("malformed", chaos.malformed_rate if request.output_schema
         or any(is_transfer(t.name) for t in request.tools) else 0.0),
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


# User messages the harness itself adds to a conversation (workflows/agent_call.py): a
# contract repair and the tool-limit note. They correct or stop a reply; no request.
HARNESS_NOTES = ("Your reply did not match the ", "The tool limit is reached.")


def _requests(request: ModelRequest) -> list[str]:
    """The user's own messages, oldest first (the harness's notes left out)."""
    return [m.content for m in request.messages
            if m.role == "user" and not m.content.startswith(HARNESS_NOTES)]


def _request_text(request: ModelRequest) -> str:
    """The latest user message that is a request: in a session, the turn being
    answered, whatever this agent answered before; never a repair note."""
    requests = _requests(request)
    return requests[-1] if requests else _last_user_text(request)


def _latest_request(request: ModelRequest) -> str:
    """The latest request itself, without a transcript folded in before it."""
    return HISTORY_BLOCK.sub("", _request_text(request)).strip()


def _user_turns(request: ModelRequest) -> list[str]:
    """What the user wrote, newest first: the latest request, the earlier messages, then
    the transcripts folded into them (a nested handoff history, a session summary)."""
    earlier = _requests(request)[-2::-1]  # all but the latest, newest first
    folded = [block.group(1) for text in [_request_text(request), *earlier]
              if (block := HISTORY_BLOCK.search(text)) is not None]
    return [_latest_request(request), *(HISTORY_BLOCK.sub("", t).strip() for t in earlier),
            *folded]


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
    if base not in templates and (found := _field_from_request(base, request)) is not None:
        return found
    text = templates.get(base, f"[offline] {request.agent} on {base}: \"{topic}\"")
    results = [m.content for m in request.messages if m.role == "tool"]
    if results and base not in templates:
        text += f"; tools said: {shorten(' | '.join(results), 160)}"
    if "[" in name and base != "task":
        text = f"{base} {index + 1}: {text}"
    while len(text) < min_len:
        text += " (offline)"
    return text


# Contract fields that name a value the request holds (an order id, an email, a city,
# a date): filled from the request as a tool argument of that name would be.
EXTRACTED_FIELDS = re.compile(r"(^|_)(id|email|city|date|day)$")


def _field_from_request(field: str, request: ModelRequest) -> str | None:
    """The value a field like `order_id` names, found in what the user wrote, or None."""
    if not EXTRACTED_FIELDS.search(field):
        return None
    found = tool_arguments({"properties": {field: {"type": "string"}}},
                           _user_turns(request), tool=request.agent).get(field)
    return found if isinstance(found, str) and found and not found.startswith("[") else None


# --- handoffs: whether to transfer, and to whom --------------------------------------

# Words too common to tell one target from another.
STOPWORDS = frozenset((
    "a", "about", "after", "all", "also", "am", "an", "and", "any", "are", "as", "at", "be",
    "been", "but", "by", "can", "could", "did", "do", "does", "for", "from", "get", "got", "had",
    "has", "have", "hello", "hi", "how", "i", "if", "in", "into", "is", "it", "its", "just", "me",
    "my", "no", "not", "now", "of", "ok", "okay", "on", "or", "our", "please", "so", "some",
    "than", "thank", "thanks", "that", "the", "their", "them", "then", "there", "these", "they",
    "this", "to", "too", "up", "us", "was", "we", "were", "what", "when", "where", "which", "who",
    "why", "will", "with", "would", "you", "your",
))


def _stem(word: str) -> str:
    """A crude stem, so "invoices" meets "invoice" and "changed" meets "change"."""
    for suffix in ("ing", "ed", "es", "s"):
        if word.endswith(suffix) and len(word) - len(suffix) >= 3:
            word = word[:-len(suffix)]
            break
    return word.removesuffix("e") if len(word) > 3 else word


def _terms(text: str) -> set[str]:
    return {_stem(w) for w in re.findall(r"[a-z0-9]+", text.lower()) if w not in STOPWORDS}


def _routing_text(request: ModelRequest) -> str:
    """The latest request itself: without a nested transcript before it, and the quoted
    request when the prompt frames one ("Request: ..." on its own line)."""
    prompt = HISTORY_BLOCK.sub("", _request_text(request))
    quoted = re.search(r"^Request: (.+)$", prompt, re.M)
    return quoted.group(1) if quoted else prompt


def _fit(text: str, name: str, description: str) -> tuple[int, int]:
    """How well `text` fits a member: words it shares with the member's name (its
    words split at spaces and underscores) and description, then, to break ties,
    routing keywords for the member's name."""
    shared = len(_terms(text) & _terms(f"{name} {description}"))
    keywords = {w for key, words in ROUTING_KEYWORDS.items() if key in name.lower()
                for w in words}
    return shared, len(_words(text) & keywords)


def _transfer_call(request: ModelRequest, transfers: list[ToolSpec]) -> ToolCall | None:
    """A transfer to the target the latest request fits best, when it fits that target
    better than this agent's own name and description; None: answer myself."""
    text = _routing_text(request)
    best, best_fit = None, _fit(text, request.agent, request.description)
    for tool in transfers:
        fit = _fit(text, tool.name.removeprefix(TRANSFER_PREFIX), tool.description)
        if fit > best_fit:
            best, best_fit = tool, fit
    if best is None:
        return None
    target = best.name.removeprefix(TRANSFER_PREFIX)
    matched = sorted(_terms(text) & _terms(f"{target} {best.description}"))
    why = (f"the words {', '.join(matched)}" if matched
           else "keywords of its kind of request")
    return ToolCall(id=f"call_{request.call_index}_transfer", name=best.name, arguments={
        "reason": f"[offline] the request shares {why} with {target}, more than with "
                  f"{request.agent}."})


def _why_answered_myself(request: ModelRequest, transfers: list[ToolSpec]) -> str:
    targets = ", ".join(t.name.removeprefix(TRANSFER_PREFIX) for t in transfers)
    return (f" (Offline routing: the request fits none of {targets} better than it fits "
            f"me, {request.agent}, so I answered myself.)")


def _undeclared_transfer(request: ModelRequest) -> ToolCall:
    """A malformed turn of an agent that may hand off: a transfer nobody declared."""
    return ToolCall(id=f"call_{request.call_index}_transfer",
                    name=f"{TRANSFER_PREFIX}undeclared-agent-9000",
                    arguments={"reason": "a malformed reply"})


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


def _next_tool_call(request: ModelRequest) -> ToolCall | None:
    """Call each offered tool once, in order, with arguments taken from what the user
    wrote, newest message first (offline_arguments.py); None when every tool has
    answered."""
    called = {c.name for m in request.messages for c in m.tool_calls}
    for index, tool in enumerate(request.tools):
        if tool.name in called:
            continue
        arguments = tool_arguments(tool.parameters, _user_turns(request), tool=tool.name)
        return ToolCall(id=f"call_{request.call_index}_{index}", name=tool.name,
                        arguments=arguments)
    return None


def _answer(request: ModelRequest, prompt: str) -> str:
    results = [m for m in request.messages if m.role == "tool"]
    header = f"[offline {request.model_name} model; no LLM was called] {request.agent}:"
    latest = _latest_request(request) or prompt
    if results:
        lines = "\n".join(f"- {shorten(m.content, 160)}" for m in results)
        return f"{header} for \"{shorten(latest, 100)}\", the team reports:\n{lines}"
    answer = f"{header} regarding \"{shorten(latest, 160)}\", here is my answer as {request.agent}."
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
    users = _requests(request)
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
