"""What a worker running Baton registers beside the workflows, assembled once for both
ways of building one: `build_worker` (Baton's own worker, baton/runtime/temporal.py)
and `BatonPlugin` (your own workers, baton/runtime/plugin.py).

The parts: the model activity with this worker's circuit breakers and providers, the
function guardrails, the approver check; the worker plugins that serve each tool and
the MCP servers' calls on queues of their own beside the worker (started and stopped
with it, MCP connections pooled and closed when it stops: activities/tools.py,
activities/mcp.py); and the interceptor that checks approvers' signed decisions.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from temporalio.worker import Interceptor
from temporalio.worker import Plugin as WorkerPlugin

from baton.activities.guardrails import guardrail_activities
from baton.activities.mcp import MCPConnections
from baton.activities.model import ModelCalls
from baton.activities.providers import WorkerProviders
from baton.activities.tools import ToolWorkers
from baton.core.guardrails import Guardrail
from baton.core.mcp import MCPServerConfig
from baton.core.model_io import ProviderConfig
from baton.core.tools import Tool
from baton.runtime.approver_keys import ApproverKeys, approver_activities, approver_interceptor


@dataclass(frozen=True)
class WorkerParts:
    """What to give a worker: activities for its own task queue, plugins to apply to it
    (in this order), interceptors to add to its own."""

    activities: list[Callable[..., Any]]
    plugins: list[WorkerPlugin]
    interceptors: list[Interceptor]


def worker_parts(*, tools: Sequence[Tool] = (), guardrails: Sequence[Guardrail] = (),
                 providers: Mapping[str, ProviderConfig] | None = None,
                 mcp: Mapping[str, MCPServerConfig] | None = None) -> WorkerParts:
    """The parts of a worker serving `tools`, `guardrails`, the named `providers` besides
    the built-in ones and the MCP servers `mcp` (by name; baton.core.mcp.declared).

    Raises ApproverKeyError (a ValueError) for an unusable BATON_APPROVER_KEYS, so a
    worker refuses to start before it polls.
    """
    # This worker's circuit breakers, shared by all its runs, and its providers.
    calls = ModelCalls(providers=WorkerProviders(providers))
    # Who may decide approvals: with BATON_APPROVER_KEYS, only signed decisions, sent as
    # Updates or signals.
    approvers = ApproverKeys.from_env()
    # Each tool is served on the task queue of its name and schema, by a worker of its
    # own beside this one (a plugin, so they start and stop with it).
    plugins: list[WorkerPlugin] = [ToolWorkers(tools)]
    if mcp:
        # A plugin, so the worker closes every MCP connection when it stops.
        plugins.append(MCPConnections(mcp).plugin())
    return WorkerParts(
        activities=[calls.call_model, calls.breaker_states,
                    *guardrail_activities(guardrails), *approver_activities(approvers)],
        plugins=plugins,
        interceptors=[approver_interceptor(approvers)])


__all__ = ["WorkerParts", "worker_parts"]
