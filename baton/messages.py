"""What crosses the workflow/activity boundary on a model call.

`ModelRequest` is everything a provider adapter needs to make one call, and
`ModelResponse` everything it learned. Both are recorded in Temporal history, so
they carry no secrets: keys live only in the worker's environment.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Literal

from pydantic import BaseModel, Field, HttpUrl, StrictFloat, StrictInt, model_validator

# Temporal refuses payloads above 2 MB; we refuse prompts well before that so a
# single request never comes close once instructions and history are added.
MAX_PROMPT_BYTES = 256 * 1024


class ProviderConfig(BaseModel):
    """A named endpoint, e.g. an Ollama server speaking the OpenAI wire format."""

    kind: Literal["offline", "openai", "anthropic"]
    base_url: HttpUrl | None = None
    # Name of the worker's environment variable holding the key; never the key itself.
    api_key_env: str | None = Field(default=None, pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")


Amount = StrictFloat | StrictInt


class Price(BaseModel):
    """USD per million tokens for one model."""

    input_per_mtok: Amount = Field(ge=0)
    output_per_mtok: Amount = Field(ge=0)
    # Prompt-cache reads; the input price when not given. Cache writes are charged
    # at the input price (Anthropic bills them at 1.25x: a slight under-estimate).
    cached_input_per_mtok: Amount | None = Field(default=None, ge=0)

    def cost(self, usage: Usage) -> float:
        cached_rate = (self.cached_input_per_mtok if self.cached_input_per_mtok is not None
                       else self.input_per_mtok)
        uncached = max(usage.input_tokens - usage.cached_tokens, 0)
        return (uncached * self.input_per_mtok + usage.cached_tokens * cached_rate
                + usage.output_tokens * self.output_per_mtok) / 1_000_000


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


class ModelRequest(BaseModel):
    """One model call, provider-neutral."""

    agent: str
    model: str  # "provider:model", already validated by the catalogue
    instructions: str
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
    # Seconds the provider's own HTTP timeout may use; kept below start-to-close.
    timeout_s: float = 60.0
    chaos: Chaos | None = None
    # Where to send the call when the provider is a named endpoint (no secrets here).
    endpoint: ProviderConfig | None = None
    # What the model costs, to price the call; None when unknown.
    price: Price | None = None
    breaker: BreakerPolicy = Field(default_factory=BreakerPolicy)

    @property
    def kind(self) -> str:
        """Which adapter serves this call: the endpoint's wire API or the provider name."""
        return self.endpoint.kind if self.endpoint is not None else self.provider

    @property
    def provider(self) -> str:
        return self.model.split(":", 1)[0]

    @property
    def model_name(self) -> str:
        return self.model.split(":", 1)[1]


class Usage(BaseModel):
    """Tokens and money one or more calls cost. cost_usd is None when unknown, never 0."""

    calls: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    cached_tokens: int = 0
    cost_usd: float | None = None

    @property
    def total_tokens(self) -> int:
        return self.input_tokens + self.output_tokens

    @staticmethod
    def sum(usages: Iterable[Usage]) -> Usage:
        total = Usage()
        for usage in usages:
            total = total.plus(usage)
        return total

    def plus(self, other: Usage) -> Usage:
        cost: float | None
        if self.cost_usd is None and other.cost_usd is None:
            cost = None
        else:
            cost = (self.cost_usd or 0.0) + (other.cost_usd or 0.0)
        return Usage(
            calls=self.calls + other.calls,
            input_tokens=self.input_tokens + other.input_tokens,
            output_tokens=self.output_tokens + other.output_tokens,
            cached_tokens=self.cached_tokens + other.cached_tokens,
            cost_usd=cost,
        )


class Budget(BaseModel):
    """What one run may spend; None means no limit. Nested runs get a share."""

    max_tokens: int | None = Field(default=None, gt=0)
    max_calls: int | None = Field(default=None, gt=0)
    max_usd: float | None = Field(default=None, gt=0)
    # Whole-run deadline, from the run's start; nested runs get what is left.
    max_seconds: float | None = Field(default=None, gt=0)

    def remaining(self, spent: Usage, elapsed_s: float = 0.0) -> Budget:
        """What is left after `spent`; call only while `exceeded_by(spent)` is None."""
        return Budget(
            max_tokens=None if self.max_tokens is None
            else max(self.max_tokens - spent.total_tokens, 1),
            max_calls=None if self.max_calls is None else max(self.max_calls - spent.calls, 1),
            max_usd=None if self.max_usd is None
            else max(self.max_usd - (spent.cost_usd or 0.0), 1e-9),
            max_seconds=None if self.max_seconds is None
            else max(self.max_seconds - elapsed_s, 0.001),
        )

    def share(self, parts: int) -> Budget:
        """An equal part for one of `parts` concurrent nested runs (at least 1 of each)."""
        return Budget(
            max_tokens=None if self.max_tokens is None else max(self.max_tokens // parts, 1),
            max_calls=None if self.max_calls is None else max(self.max_calls // parts, 1),
            max_usd=None if self.max_usd is None else self.max_usd / parts,
            max_seconds=self.max_seconds,  # concurrent runs share the clock, not split it
        )

    def exceeded_by(self, spent: Usage, elapsed_s: float = 0.0) -> str | None:
        """Which limit `spent` (or the time elapsed) has reached, if any."""
        if self.max_seconds is not None and elapsed_s >= self.max_seconds:
            return f"time: {elapsed_s:.1f} s of {self.max_seconds:g} s"
        if self.max_calls is not None and spent.calls >= self.max_calls:
            return f"calls: {spent.calls} of {self.max_calls}"
        if self.max_tokens is not None and spent.total_tokens >= self.max_tokens:
            return f"tokens: {spent.total_tokens} of {self.max_tokens}"
        if self.max_usd is not None and (spent.cost_usd or 0.0) >= self.max_usd:
            return f"USD: {spent.cost_usd:.6f} of {self.max_usd}"
        return None


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
