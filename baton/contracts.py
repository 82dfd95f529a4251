"""Output contracts: the typed data agents hand to each other.

An agent spec names its contract (`contract = "Outline"`); the workflow asks the
model for that JSON schema and validates the answer with pydantic before anything
downstream sees it. Add a contract by defining a model here and listing it in
`CONTRACTS`.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field


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


CONTRACTS: dict[str, type[BaseModel]] = {
    model.__name__: model
    for model in (RouteDecision, Findings, Review, Outline, Draft, EditedDraft, Article)
}


def contract_schema(name: str) -> dict[str, Any]:
    """The JSON schema a model is asked to follow for contract `name`."""
    return CONTRACTS[name].model_json_schema()


def route_schema(targets: list[str]) -> dict[str, Any]:
    """RouteDecision's schema with `route` limited to `targets` (an enum)."""
    schema = RouteDecision.model_json_schema()
    schema["properties"]["route"]["enum"] = list(targets)
    return schema
