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

from baton.core.catalogue_check import (
    CatalogueError,
    check_tables,
    describe_errors,
    validate_catalogue,
)
from baton.core.specs import Catalogue
from baton.define.app import AppError, load_app

DEFAULT_CATALOGUE = "default_catalogue.toml"


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
    """Validate a catalogue given as plain data, with the tools and guardrails of the
    modules its `app` key names ([defaults] apply to every agent)."""
    check_tables(raw, source)
    if modules := raw.pop("app", []):
        tools, guardrails = _app_parts(modules, source)
        raw["tools"] = {**tools, **raw.get("tools", {})}
        raw["guardrails"] = {**guardrails, **raw.get("guardrails", {})}
    return validate_catalogue(raw, source)


def _app_parts(modules: str | list[str],
               source: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """Tool and guardrail definitions of the modules a catalogue names (importing them
    registers their contracts too)."""
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


__all__ = ["DEFAULT_CATALOGUE", "CatalogueError", "describe_errors", "load_catalogue",
           "parse_catalogue"]
