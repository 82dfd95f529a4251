"""Loading a catalogue file (TOML) into a validated `Catalogue`, with readable errors.

A catalogue may name Python modules (`app = "my_tools"` or a list): they are
imported as with `--app`, and their `@baton.tool` functions and pydantic models
become tools and contracts its agents can name.
"""

from __future__ import annotations

import tomllib
from collections.abc import Sequence
from importlib import resources
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from baton.core.pricing import packaged_prices
from baton.core.specs import Catalogue

DEFAULT_CATALOGUE = "default_catalogue.toml"


class CatalogueError(ValueError):
    """The catalogue file is unreadable or describes an invalid set of agents and teams."""


def load_catalogue(path: str | Path | None = None,
                   apps: Sequence[str] = ()) -> Catalogue:
    """Read and validate a catalogue; the packaged default when `path` is None.

    `apps` are modules (the starter's --app) whose tools and contracts the
    catalogue's agents may use besides those of its own `app` key.
    """
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
    if apps:
        names = raw.get("app", [])
        raw["app"] = [*([names] if isinstance(names, str) else names), *apps]
    return parse_catalogue(raw, source)


def parse_catalogue(raw: dict[str, Any], source: str = "catalogue") -> Catalogue:
    """Validate a catalogue given as plain data ([defaults] apply to every agent)."""
    for table in ("defaults", "tools", "guardrails", "prices"):
        if not isinstance(raw.get(table, {}), dict):
            raise CatalogueError(f"{source} is invalid:\n  - {table}: must be a table, not "
                                 f"{type(raw[table]).__name__} {raw[table]!r:.60}")
    defaults = raw.pop("defaults", {})
    modules = raw.pop("app", [])
    if modules:
        tools, guardrails = _app_parts(modules, source)
        raw["tools"] = {**tools, **raw.get("tools", {})}
        raw["guardrails"] = {**guardrails, **raw.get("guardrails", {})}
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


def _app_parts(modules: str | list[str],
               source: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """Tool and guardrail definitions of the modules a catalogue names (importing them
    registers their contracts too)."""
    from baton.define.app import AppError, load_app

    if isinstance(modules, str):
        modules = [modules]
    if not isinstance(modules, list) or not all(isinstance(m, str) for m in modules):
        raise CatalogueError(f"{source}: `app` must be a module name or a list of them")
    tools: dict[str, Any] = {}
    guardrails: dict[str, Any] = {}
    for module in modules:
        try:
            app = load_app(module)
        except AppError as err:
            raise CatalogueError(f"{source}: {err}") from None
        tools.update({t.name: t.definition.model_dump() for t in app.tools})
        guardrails.update({g.name: g.definition.model_dump() for g in app.guardrails})
    return tools, guardrails


def describe_errors(exc: ValidationError) -> str:
    """One line per problem: where it is and what is wrong."""
    lines = []
    for error in exc.errors():
        parts = [str(part) for part in error["loc"] if not str(part).startswith("function-")]
        where = ".".join(parts)
        message = error["msg"].removeprefix("Value error, ")
        lines.append(f"  - {where or 'catalogue'}: {message}")
    return "\n".join(lines)
