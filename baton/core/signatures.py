"""The parameters of a user's function that becomes a tool or a flow: each named and
typed, since the types become the JSON schema or the check of its input."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any


def typed_parameters(fn: Callable[..., Any], hints: dict[str, Any], *, owner: str,
                     called_how: str, typed_why: str,
                     error: Callable[[str], Exception]) -> list[tuple[inspect.Parameter, Any]]:
    """(parameter, annotation) for each parameter of `fn`, in order.

    Raises `error(message)` for a *args, **kwargs or positional-only parameter (the
    message says `called_how`) or one without an annotation (it says `typed_why`);
    `owner` names the function, e.g. "tool 'lookup'".
    """
    found = []
    for parameter in inspect.signature(fn).parameters.values():
        if parameter.kind in (parameter.VAR_POSITIONAL, parameter.VAR_KEYWORD,
                              parameter.POSITIONAL_ONLY):
            raise error(f"{owner}: parameter {parameter.name!r} must be a plain named "
                        f"parameter ({called_how})")
        annotation = hints.get(parameter.name)
        if annotation is None:
            raise error(f"{owner}: parameter {parameter.name!r} has no type annotation; "
                        f"annotate it, e.g. `{parameter.name}: str` ({typed_why})")
        found.append((parameter, annotation))
    return found


def default_of(parameter: inspect.Parameter) -> Any:
    """The parameter's default as pydantic's create_model takes it (`...`: required)."""
    return ... if parameter.default is inspect.Parameter.empty else parameter.default
