"""What crosses the workflow/activity boundary on a model call.

`ModelRequest` is everything a provider adapter needs to make one call, and
`ModelResponse` everything it learned. Both are recorded in Temporal history, so
they carry no secrets: keys live only in the worker's environment.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any, Literal, NamedTuple

from pydantic import BaseModel, Field, HttpUrl, model_validator

from baton.core.usage import Price, Usage

# Temporal refuses payloads above 2 MB, but Baton's data converter keeps every payload
# of 512 KiB or more in the payload store (baton/runtime/payload_store.py), whose
# default limit is 64 MiB. A run's conversation (a document, say) may hold this much,
# so a model call carrying it, its instructions and tool results stays under
# MAX_CALL_BYTES; a call over that fails its agent, typed, rather than leave a
# workflow task the store refuses on every retry.
MAX_PROMPT_BYTES = 32 * 1024 * 1024
MAX_CALL_BYTES = 48 * 1024 * 1024


MAX_MODEL_CHARS = 100
# Providers every worker serves at their standard endpoints, without any declaration.
BUILTIN_PROVIDERS = ("offline", "openai", "anthropic")


class ModelRef(NamedTuple):
    """A model written "provider:model", parsed once."""

    provider: str
    name: str

    @staticmethod
    @lru_cache(maxsize=1024)
    def parse(text: str) -> ModelRef:
        """Raises ValueError naming what is accepted."""
        if len(text) > MAX_MODEL_CHARS:
            # Model names go into search attributes, whose values the server caps.
            raise ValueError(f"model {text[:40]!r}... is {len(text)} characters long; "
                             f"at most {MAX_MODEL_CHARS}")
        provider, sep, name = text.partition(":")
        if not sep or not provider or not name.strip():
            raise ValueError(
                f"model {text!r} must be written 'provider:model', e.g. 'offline:fast', "
                "'openai:gpt-5-nano' or 'anthropic:claude-haiku-4-5'")
        return ModelRef(provider, name)

    def __str__(self) -> str:
        return f"{self.provider}:{self.name}"


class ProviderConfig(BaseModel):
    """A named endpoint, e.g. an Ollama server speaking the OpenAI wire format.

    Worker configuration only (the operator's catalogue or `build_worker(providers=)`):
    a run's input may name a provider but never carry one, or whoever can start a
    workflow could point the worker's keys at a URL of their choosing.
    """

    kind: Literal["offline", "openai", "anthropic"]
    base_url: HttpUrl | None = None
    # Name of the worker's environment variable holding the key; never the key itself.
    api_key_env: str | None = Field(default=None, pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")
    # Extra HTTP headers sent with every call (e.g. a gateway's routing header).
    headers: dict[str, str] = Field(default_factory=dict)


class BreakerPolicy(BaseModel):
    """When a model's circuit opens, and for how long it stays open."""

    failures: int = Field(default=5, ge=1, le=1000)  # failures within the window that open it
    window_s: float = Field(default=60.0, gt=0, le=86_400)
    cooldown_s: float = Field(default=30.0, gt=0, le=86_400)  # open -> half-open probe


class BreakerState(BaseModel):
    """One circuit breaker as a worker sees it (`starter.py breakers`)."""

    model: str
    state: Literal["closed", "open", "half_open"]
    recent_failures: int
    policy: BreakerPolicy
    opened_for_s: float | None = None
    transitions: int = 0


class ToolCall(BaseModel):
    """A model's request to run one tool (in Baton, to delegate to a worker)."""

    id: str
    name: str
    arguments: dict[str, Any] = Field(default_factory=dict)


class Message(BaseModel):
    """One turn of a conversation, in a provider-neutral shape."""

    role: Literal["user", "assistant", "tool"]
    content: str
    # Which agent wrote an assistant turn; lets a specialist see who said what.
    agent: str | None = None
    tool_calls: list[ToolCall] = Field(default_factory=list)
    # For role == "tool": the id of the ToolCall this message answers.
    tool_call_id: str | None = None

    @model_validator(mode="after")
    def _tool_messages_answer_a_call(self) -> Message:
        if self.role == "tool" and not self.tool_call_id:
            raise ValueError("a tool message needs the tool_call_id it answers")
        return self


class ToolSpec(BaseModel):
    """A tool offered to the model: name, what it does, JSON schema of its arguments."""

    name: str
    description: str
    parameters: dict[str, Any]


class Chaos(BaseModel):
    """Fault and latency injection for the offline provider, recorded in the run's input.

    Rates are probabilities drawn from a generator seeded by `seed` and the call's
    identity, so the same run misbehaves the same way every time.
    """

    latency_s: float = Field(default=0.0, ge=0.0, le=600.0)
    failure_rate: float = Field(default=0.0, ge=0.0, le=1.0)
    timeout_rate: float = Field(default=0.0, ge=0.0, le=1.0)
    malformed_rate: float = Field(default=0.0, ge=0.0, le=1.0)
    # A judge's yes/no fields come back "no" (a quality-gate rejection, not bad JSON).
    rejection_rate: float = Field(default=0.0, ge=0.0, le=1.0)
    seed: int = 0
    # Restrict chaos to these agents and/or models; None means all of them.
    agents: list[str] | None = None
    models: list[str] | None = None
    # Models that fail every call, like a provider outage (the breaker's case).
    down_models: list[str] = Field(default_factory=list)
    # Only an agent's first N tries in a run may misbehave, counting repairs and
    # Temporal retries (latency still applies): "fails once, then recovers".
    faulty_tries: int | None = Field(default=None, ge=0)

    def applies_to(self, agent: str, model: str) -> bool:
        return ((self.agents is None or agent in self.agents)
                and (self.models is None or model in self.models))


class StreamTarget(BaseModel):
    """Where a streamed call publishes its text (baton/runtime/streaming.py): the run's top-level
    workflow, as the server recorded it, never a value taken from a run's input."""

    workflow_id: str
    # One per model call, the same across its retries.
    message_id: str
    path: str = ""


class ConversationRef(BaseModel):
    """A conversation a model call already carried, kept in the payload store.

    A model call's activity stores the messages of a call that asked for tools, and
    the agent's next call sends only the messages after them with this reference
    (activities/conversations.py), so a long tool loop's history grows with new
    tokens rather than with calls times context. The claim names the object by the
    SHA-256 of its bytes, so a retry or replay reads exactly what was stored.
    """

    driver: str
    claim: dict[str, str]
    # How many messages the stored conversation holds: the first this many of the
    # next call's conversation.
    messages: int = Field(ge=1)


class ModelRequest(BaseModel):
    """One model call, provider-neutral.

    With `prefix`, `messages` holds only what came after the stored conversation the
    prefix names; the activity reads it and calls the model with the whole.
    """

    agent: str
    model: str  # "provider:model", already validated by the catalogue
    instructions: str
    # What the agent is for (its catalogue description): the offline model weighs it
    # against its transfer targets' descriptions before answering itself.
    description: str = ""
    messages: list[Message]
    output_schema: dict[str, Any] | None = None
    output_schema_name: str | None = None
    tools: list[ToolSpec] = Field(default_factory=list)
    max_output_tokens: int = 1024
    temperature: float | None = None
    # How many calls this agent has made earlier in this run (repairs included).
    call_index: int = 0
    # Where the call sits in its run's tree of workflows ("" for the top-level one,
    # "project_team/research_panel-2" for a nested one): seeds chaos, so the same seed
    # misbehaves the same way in every run, whatever its workflow id.
    call_key: str = ""
    # The member whose run made the call (its team, or the agent run on its own): the
    # activity cannot tell it from a top-level workflow id, and metrics label by it.
    team: str = ""
    # Seconds the provider's own HTTP timeout may use; kept below start-to-close.
    timeout_s: float = 60.0
    chaos: Chaos | None = None
    # What the model costs, to price the call; None when unknown.
    price: Price | None = None
    breaker: BreakerPolicy = Field(default_factory=BreakerPolicy)
    # Set when the run streams (RunOptions.stream): the text goes there as it comes.
    stream: StreamTarget | None = Field(default=None, exclude_if=lambda target: target is None)
    prefix: ConversationRef | None = Field(default=None,
                                           exclude_if=lambda prefix: prefix is None)

    @property
    def provider(self) -> str:
        return ModelRef.parse(self.model).provider

    @property
    def model_name(self) -> str:
        return ModelRef.parse(self.model).name


class ModelResponse(BaseModel):
    """What one model call returned."""

    model: str
    text: str = ""
    # The JSON object the model produced for an output schema, if it parsed as JSON.
    # Validation against the contract happens in the workflow, not here.
    parsed: dict[str, Any] | None = None
    tool_calls: list[ToolCall] = Field(default_factory=list)
    usage: Usage = Field(default_factory=lambda: Usage(calls=1))
    finish_reason: str = "stop"
    # The call's whole conversation, stored when the model asked for tools and the
    # conversation was large enough to be worth not sending again.
    conversation: ConversationRef | None = Field(
        default=None, exclude_if=lambda conversation: conversation is None)


def assistant_turn(agent: str, response: ModelResponse) -> Message:
    """The message a response that asked for tools adds to its agent's conversation:
    built here alone, because the activity stores it and the workflow must hold the
    very same message to send only what follows it."""
    return Message(role="assistant", content=response.text, agent=agent,
                   tool_calls=response.tool_calls)
