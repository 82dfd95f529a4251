"""One activity per function guardrail (`guardrail_<name>`): guardrails may do I/O."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from temporalio import activity

from baton.core.contracts import GuardrailVerdict
from baton.core.guardrails import (
    BUILTIN_GUARDRAILS,
    GUARDRAIL_ACTIVITY_PREFIX,
    Guardrail,
    GuardrailCheck,
)


def guardrail_activities(guardrails: Sequence[Guardrail] = ()) -> list[Callable[..., Any]]:
    """The built-in guardrails' activities and those of `guardrails`."""
    every = {**BUILTIN_GUARDRAILS, **{g.name: g for g in guardrails}}
    return [_activity_for(g) for g in every.values()]


def _activity_for(guard: Guardrail) -> Callable[..., Any]:
    async def check(request: GuardrailCheck) -> GuardrailVerdict:
        return await guard.judge(request.text, request.where)

    check.__name__ = check.__qualname__ = f"guardrail_{guard.name}"
    return activity.defn(name=GUARDRAIL_ACTIVITY_PREFIX + guard.name)(check)
