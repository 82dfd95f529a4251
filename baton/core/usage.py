"""Tokens, money and limits: what calls cost (`Usage`), what models cost (`Price`), and
what a run may spend (`Budget`). Pure data shared by workflows and activities."""

from __future__ import annotations

from collections.abc import Iterable

from pydantic import BaseModel, Field, StrictFloat, StrictInt

Amount = StrictFloat | StrictInt
# The longest whole-run deadline: ten years.
MAX_DEADLINE_S = 10 * 365 * 86_400


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


class Usage(BaseModel):
    """Tokens and money one or more calls cost. cost_usd is None when unknown, never 0."""

    calls: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    cached_tokens: int = 0
    cost_usd: float | None = None
    # Function-tool calls started and the seconds they ran (activity time, retries in).
    tool_calls: int = 0
    tool_seconds: float = 0.0

    @property
    def total_tokens(self) -> int:
        return self.input_tokens + self.output_tokens

    @staticmethod
    def sum(usages: Iterable[Usage]) -> Usage:
        total = Usage()
        for usage in usages:
            total = total.plus(usage)
        return total

    def minus(self, earlier: Usage) -> Usage:
        """What was spent since `earlier` (a snapshot of the same running total)."""
        cost = (None if self.cost_usd is None
                else self.cost_usd - (earlier.cost_usd or 0.0))
        return Usage(
            calls=self.calls - earlier.calls,
            input_tokens=self.input_tokens - earlier.input_tokens,
            output_tokens=self.output_tokens - earlier.output_tokens,
            cached_tokens=self.cached_tokens - earlier.cached_tokens,
            cost_usd=cost,
            tool_calls=self.tool_calls - earlier.tool_calls,
            tool_seconds=self.tool_seconds - earlier.tool_seconds,
        )

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
            tool_calls=self.tool_calls + other.tool_calls,
            tool_seconds=self.tool_seconds + other.tool_seconds,
        )


class Budget(BaseModel):
    """What one run may spend; None means no limit. Nested runs get a share."""

    max_tokens: int | None = Field(default=None, gt=0)
    max_calls: int | None = Field(default=None, gt=0)
    # Finite: JSON has no NaN or infinity (they would arrive as null, i.e. no limit).
    max_usd: float | None = Field(default=None, gt=0, allow_inf_nan=False)
    max_tool_calls: int | None = Field(default=None, gt=0)
    # Whole-run deadline, from the run's start; nested runs get what is left. At most
    # MAX_DEADLINE_S: it becomes the run's execution timeout (a timedelta).
    max_seconds: float | None = Field(default=None, gt=0, le=MAX_DEADLINE_S,
                                      allow_inf_nan=False)

    def limited(self, **limits: float | None) -> Budget:
        """This budget with the limits given (None leaves a field as it is), validated:
        pydantic's ValidationError names a limit out of range."""
        return Budget.model_validate(
            {**self.model_dump(), **{k: v for k, v in limits.items() if v is not None}})

    def remaining(self, spent: Usage, elapsed_s: float = 0.0) -> Budget:
        """What is left after `spent`; call only while `exceeded_by(spent)` is None."""
        return Budget(
            max_tokens=None if self.max_tokens is None
            else max(self.max_tokens - spent.total_tokens, 1),
            max_calls=None if self.max_calls is None else max(self.max_calls - spent.calls, 1),
            max_usd=None if self.max_usd is None
            else max(self.max_usd - (spent.cost_usd or 0.0), 1e-9),
            max_tool_calls=None if self.max_tool_calls is None
            else max(self.max_tool_calls - spent.tool_calls, 1),
            max_seconds=None if self.max_seconds is None
            else max(self.max_seconds - elapsed_s, 0.001),
        )

    def share(self, parts: int) -> Budget:
        """An equal part for one of `parts` concurrent nested runs (at least 1 of each)."""
        return Budget(
            max_tokens=None if self.max_tokens is None else max(self.max_tokens // parts, 1),
            max_calls=None if self.max_calls is None else max(self.max_calls // parts, 1),
            max_usd=None if self.max_usd is None else self.max_usd / parts,
            max_tool_calls=None if self.max_tool_calls is None
            else max(self.max_tool_calls // parts, 1),
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
        if self.max_tool_calls is not None and spent.tool_calls >= self.max_tool_calls:
            return f"tool calls: {spent.tool_calls} of {self.max_tool_calls}"
        if self.max_usd is not None and (spent.cost_usd or 0.0) >= self.max_usd:
            return f"USD: {spent.cost_usd:.6f} of {self.max_usd}"
        return None
