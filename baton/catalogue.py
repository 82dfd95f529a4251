"""Loading a catalogue file (TOML) into a validated `Catalogue`, with readable errors."""

from __future__ import annotations

import tomllib
from importlib import resources
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from baton.pricing import packaged_prices
from baton.specs import Catalogue

DEFAULT_CATALOGUE = "default_catalogue.toml"


class CatalogueError(ValueError):
    """The catalogue file is unreadable or describes an invalid set of agents and teams."""


def load_catalogue(path: str | Path | None = None) -> Catalogue:
    """Read and validate a catalogue; the packaged default when `path` is None."""
    if path is None:
        source = "the default catalogue"
        text = resources.files("baton").joinpath(DEFAULT_CATALOGUE).read_text()
    else:
        source = str(path)
        try:
            text = Path(path).read_text()
        except OSError as exc:
            raise CatalogueError(f"cannot read catalogue {source}: {exc.strerror}") from None
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise CatalogueError(f"catalogue {source} is not valid TOML: {exc}") from None
    return parse_catalogue(raw, source)


def parse_catalogue(raw: dict[str, Any], source: str = "catalogue") -> Catalogue:
    """Validate a catalogue given as plain data ([defaults] apply to every agent)."""
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
        return Catalogue.model_validate(raw)
    except ValidationError as exc:
        raise CatalogueError(f"{source} is invalid:\n{describe_errors(exc)}") from None


def describe_errors(exc: ValidationError) -> str:
    """One line per problem: where it is and what is wrong."""
    lines = []
    for error in exc.errors():
        parts = [str(part) for part in error["loc"] if not str(part).startswith("function-")]
        where = ".".join(parts)
        message = error["msg"].removeprefix("Value error, ")
        lines.append(f"  - {where or 'catalogue'}: {message}")
    return "\n".join(lines)
