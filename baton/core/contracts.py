"""Output contracts: the typed data agents hand to each other.

An agent spec names its contract (`contract = "Outline"`, or `output=Outline` in
Python); the workflow asks the model for that JSON schema and validates the answer
with pydantic before anything downstream sees it.

Contracts of your own are any pydantic models: `baton.Agent(output=MyModel)`
registers them, and so does loading a module with `--app` (every pydantic model
defined in it). Outputs travel between workflows as JSON and are validated again
into the model wherever they are read, so the worker that runs a workflow must
have imported the module that defines its contracts (`python worker.py --app M`);
a worker that has not fails the run with a non-retryable `UnknownContract`.

Baton's own contracts are namespaced (`baton.Plan`, `baton.Review`...), so a model
of yours may be called `Plan` or `Review` and the two never collide. A catalogue
written before that (`contract = "Plan"`) still means Baton's where no contract of
yours takes the bare name: `resolve_contract` decides, once, where a spec is built.
"""

from __future__ import annotations

import copy
import functools
from typing import Any, Literal

from pydantic import BaseModel, Field

from baton.core.errors import UnknownContract


class RouteDecision(BaseModel):
    """A router's choice. `route` is narrowed to the declared targets at call time."""

    route: str = Field(description="Name of the specialist that should handle the request.")
    reason: str = Field(min_length=1, description="One sentence on why.")


class Findings(BaseModel):
    """A research branch's result."""

    summary: str = Field(min_length=1)
    key_points: list[str] = Field(min_length=1, max_length=10)
    confidence: float = Field(ge=0.0, le=1.0)


class Review(BaseModel):
    """A supervisor's verdict on one delegated result."""

    verdict: Literal["accept", "revise", "reassign"]
    feedback: str = Field(description="What to change, or why it is accepted.")
    reassign_to: str | None = Field(
        default=None, description="Worker to hand the task to when verdict is reassign."
    )


class Outline(BaseModel):
    title: str = Field(min_length=1)
    sections: list[str] = Field(min_length=2, max_length=12)


class Draft(BaseModel):
    title: str = Field(min_length=1)
    body: str = Field(min_length=20)


class EditedDraft(BaseModel):
    title: str = Field(min_length=1)
    body: str = Field(min_length=20)
    approved: bool = Field(description="True when the draft is ready to publish.")
    feedback: str = Field(description="What the writer must fix when not approved.")


class Article(BaseModel):
    markdown: str = Field(min_length=20)


class Subtask(BaseModel):
    """One piece of a request a coordinator split off, and who should do it."""

    task: str = Field(min_length=1, description="The subtask, written as a request.")
    member: str = Field(description="The member (agent or team) that should do it.")


class Plan(BaseModel):
    """A coordinator's split of a request into independent subtasks."""

    subtasks: list[Subtask] = Field(min_length=1)


class GuardrailVerdict(BaseModel):
    """A guardrail's answer: `allowed` false trips it."""

    allowed: bool = Field(description="True when the text may pass.")
    reason: str = Field(default="", description="Why it may not pass (or why it may).")


BUILTIN_CONTRACTS: tuple[type[BaseModel], ...] = (
    RouteDecision, Findings, Review, Outline, Draft, EditedDraft, Article, Plan, GuardrailVerdict)
# Baton's contracts are known as "baton.<class name>"; a user's by its class name,
# which has no dot, so the two never meet.
BUILTIN_PREFIX = "baton."
# Every contract this process knows by name: the built-ins and the user's own.
CONTRACTS: dict[str, type[BaseModel]] = {
    f"{BUILTIN_PREFIX}{model.__name__}": model for model in BUILTIN_CONTRACTS}


def contract_name(model: type[BaseModel]) -> str:
    """The name `model` is known by: `baton.Plan` for Baton's own, else its class name."""
    prefix = BUILTIN_PREFIX if model in BUILTIN_CONTRACTS else ""
    return f"{prefix}{model.__name__}"


def resolve_contract(name: str) -> str:
    """The registered name `name` stands for: itself, or, for a bare built-in name
    (`"Plan"`, as catalogues said before the namespace) that no contract of the user's
    takes, Baton's (`"baton.Plan"`). An unknown name is returned as it is."""
    if name in CONTRACTS:
        return name
    builtin = f"{BUILTIN_PREFIX}{name}"
    return builtin if builtin in CONTRACTS else name


def is_contract(name: str | None, model: type[BaseModel]) -> bool:
    """Whether contract `name` (as a spec holds it) is `model`."""
    return name is not None and CONTRACTS.get(resolve_contract(name)) is model


def schema_title(name: str) -> str:
    """The name a provider is shown for contract `name`: providers accept only letters,
    digits, `_` and `-` there (OpenAI's schema name, Anthropic's tool name)."""
    return name.removeprefix(BUILTIN_PREFIX)


class ContractError(ValueError):
    """Two different models registered under one contract name."""


def register_contract(model: type[BaseModel]) -> str:
    """Make `model` known as a contract under its class name; returns the name (Baton's
    own are known already, as `baton.<name>`)."""
    if not (isinstance(model, type) and issubclass(model, BaseModel)) or model is BaseModel:
        raise ContractError(f"a contract must be your own pydantic model class (a subclass "
                            f"of BaseModel with fields); got {model!r}")
    if model in BUILTIN_CONTRACTS:
        return contract_name(model)
    name = model.__name__
    known = CONTRACTS.get(name)
    if known is not None and known is not model and (
            known.__module__, known.__qualname__) != (model.__module__, model.__qualname__):
        raise ContractError(
            f"two contracts are named {name!r}: {known.__module__}.{known.__qualname__} and "
            f"{model.__module__}.{model.__qualname__}; rename one (contracts are known by "
            "class name)")
    CONTRACTS[name] = model
    return name


def contract_model(name: str) -> type[BaseModel]:
    """The model registered as `name`; UnknownContract when this process lacks it."""
    model = CONTRACTS.get(resolve_contract(name))
    if model is None:
        raise UnknownContract(
            f"contract {name!r} is not known to this worker; start it with the module that "
            f"defines it (python worker.py --app MODULE). Known: {', '.join(sorted(CONTRACTS))}")
    return model


def model_schema(model: type[BaseModel]) -> dict[str, Any]:
    """`model`'s JSON schema, generated once per model: generating it takes milliseconds,
    and workflows ask for it on every agent call (a busy worker's workflow tasks then
    ran past the SDK's 2 s deadlock detector). Callers get their own copy to change."""
    return copy.deepcopy(_cached_schema(model))


@functools.cache
def _cached_schema(model: type[BaseModel]) -> dict[str, Any]:
    return model.model_json_schema()


def contract_schema(name: str) -> dict[str, Any]:
    """The JSON schema a model is asked to follow for contract `name`."""
    return model_schema(contract_model(name))


def plan_schema(members: list[str], max_subtasks: int) -> dict[str, Any]:
    """Plan's schema with `member` limited to `members` and at most `max_subtasks` items."""
    schema = model_schema(Plan)
    schema["$defs"]["Subtask"]["properties"]["member"]["enum"] = list(members)
    schema["properties"]["subtasks"]["maxItems"] = max_subtasks
    return schema


def route_schema(targets: list[str]) -> dict[str, Any]:
    """RouteDecision's schema with `route` limited to `targets` (an enum)."""
    schema = model_schema(RouteDecision)
    schema["properties"]["route"]["enum"] = list(targets)
    return schema
