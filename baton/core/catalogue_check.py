"""Validating a catalogue given as plain data into a `Catalogue`, with readable errors.

Pure data, so that both what users write (`Agent.catalogue()`, an app's catalogue)
and the catalogue file loader (baton/define/catalogue.py, which also imports the
modules a file names) validate the same way.
"""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError

from baton.core.pricing import packaged_prices
from baton.core.specs import Catalogue

TABLES = ("defaults", "tools", "guardrails", "prices")


class CatalogueError(ValueError):
    """The catalogue file is unreadable or describes an invalid set of agents and teams."""


def check_tables(raw: dict[str, Any], source: str) -> None:
    """Refuse a catalogue whose tables of named entries are not tables."""
    for table in TABLES:
        if not isinstance(raw.get(table, {}), dict):
            raise CatalogueError(f"{source} is invalid:\n  - {table}: must be a table, not "
                                 f"{type(raw[table]).__name__} {raw[table]!r:.60}")


def validate_catalogue(raw: dict[str, Any], source: str = "catalogue") -> Catalogue:
    """Validate a catalogue given as plain data ([defaults] apply to every agent)."""
    check_tables(raw, source)
    defaults = raw.pop("defaults", {})
    agents = raw.get("agents")
    if not isinstance(agents, dict) or not agents:
        raise CatalogueError(f"{source} declares no agents: add at least one [agents.<name>] table")
    raw["prices"] = {**packaged_prices(), **raw.get("prices", {})}
    raw["agents"] = {
        name: {**defaults, **spec} if isinstance(spec, dict) else spec
        for name, spec in agents.items()
    }
    try:
        catalogue = Catalogue.model_validate(raw)
    except ValidationError as exc:
        raise CatalogueError(f"{source} is invalid:\n{describe_errors(exc)}") from None
    if problems := [*catalogue.unknown_providers(), *catalogue.unknown_contracts()]:
        raise CatalogueError(f"{source} is invalid:\n" + "\n".join(f"  - {p}" for p in problems))
    return catalogue


def describe_errors(exc: ValidationError) -> str:
    """One line per problem: where it is and what is wrong."""
    lines = []
    for error in exc.errors():
        parts = [str(part) for part in error["loc"] if not str(part).startswith("function-")]
        where = ".".join(parts)
        message = error["msg"].removeprefix("Value error, ")
        lines.append(f"  - {where or 'catalogue'}: {message}")
    return "\n".join(lines)
