"""Every failure Baton raises, each a class with its Temporal `ApplicationError` type name.

A failure that crosses an activity or workflow boundary arrives as an
`ApplicationError` whose `type` is the class's `TYPE`; code that inspects a failure
compares `err.type == AgentFailed.TYPE`, never substrings of a message. All are
non-retryable unless marked otherwise: retrying the same input cannot fix them.
Provider failures (rate limits, timeouts, 4xx) are made in
`activities/providers/errors.py`, whose type names are listed in `MODEL_ERROR_TYPES`.
"""

from __future__ import annotations

from temporalio.exceptions import ApplicationError

# The key under which a failed run's ApplicationError details carry what it spent
# ({agent: Usage as a dict}), so a parent's totals include a failed child's spending.
SPENT_DETAIL = "baton_spent"


class BatonError(ApplicationError):
    """Base of Baton's typed failures; `TYPE` is the ApplicationError type name."""

    TYPE = "BatonError"
    RETRYABLE = False

    def __init__(self, message: str) -> None:
        super().__init__(message, type=self.TYPE, non_retryable=not self.RETRYABLE)


class AgentFailed(BatonError):
    """An agent (or nested team) produced no acceptable answer on any of its models."""

    TYPE = "AgentFailed"

    def __init__(self, agent: str, reason: str) -> None:
        super().__init__(f"agent {agent!r} failed: {reason}")
        self.agent = agent
        self.reason = reason


class ContractViolation(AgentFailed):
    """Every model of an agent kept breaking its contract, repairs included."""

    TYPE = "ContractViolation"

    def __init__(self, agent: str, contract: str, problem: str) -> None:
        super().__init__(agent, f"{contract} violated: {problem}")
        self.contract = contract


class BudgetExhausted(BatonError):
    """The run's token, call, USD, tool-call or time budget is spent; partial results."""

    TYPE = "BudgetExhausted"

    def __init__(self, limit: str) -> None:
        super().__init__(f"budget exhausted ({limit})")
        self.limit = limit


class HandoffLimitReached(BudgetExhausted):
    """Agents handed a conversation on more than `max_handoffs` times (a cycle, most
    often). A budget of handoffs: the run ends with what it completed, as for any
    budget, and the stop names the chain and the limit."""

    TYPE = "HandoffLimitReached"

    def __init__(self, chain: list[str], limit: int) -> None:
        super().__init__(f"max_handoffs={limit} reached: {' -> '.join(chain)}")
        self.chain = chain
        self.max_handoffs = limit


class FanOutPolicyNotMet(BatonError):
    """Fewer branches succeeded than the fan-out's policy requires."""

    TYPE = "FanOutPolicyNotMet"


class PlanFailed(BatonError):
    """A fan-out's planner gave no usable subtasks."""

    TYPE = "PlanFailed"


class UnknownHook(BatonError):
    """A run names a function of yours that a team calls (a plan, a prompt, a stage's
    input) which this worker has not registered: it imports the module defining the team."""

    TYPE = "UnknownHook"


class HookFailed(BatonError):
    """A function of yours that a team calls inside its run raised, or returned what it
    does not accept."""

    TYPE = "HookFailed"


class CircuitOpen(BatonError):
    """The model's circuit breaker is open: the call was refused without reaching it."""

    TYPE = "CircuitOpen"


class UnknownProvider(BatonError):
    """No adapter on this worker serves the request's provider."""

    TYPE = "UnknownProvider"


class ToolUnavailable(BatonError):
    """No live worker serves the tool with the schema its model was offered (or has the
    contract it needs); `detail` says what the workers do serve."""

    TYPE = "ToolUnavailable"

    def __init__(self, what: str, task_queue: str, *, detail: str = "") -> None:
        super().__init__(
            f"{what} cannot run on task queue {task_queue!r}: {detail}" if detail else
            f"{what} is not registered on any worker of task queue {task_queue!r}; start a "
            f"worker with the module that defines it: python worker.py --app MODULE (a "
            f"worker that is running may be a stale one, started before the tool was added "
            f"or changed: restart it)")
        self.what = what


class ApprovalMissing(BatonError):
    """A tool whose worker says a person must approve this call was asked to run without
    a granted approval (a run's catalogue may not waive the worker's policy)."""

    TYPE = "ApprovalMissing"

    def __init__(self, tool: str) -> None:
        super().__init__(
            f"tool {tool!r} needs a person's approval for these arguments on this worker, and "
            "the call carries none (or only a timeout the worker's policy does not approve "
            "on); it did not run. Its approval policy is the worker's "
            "(@baton.tool(approval=...)), whatever the run's catalogue declares")


class FlowFailed(BatonError):
    """A flow's own code raised, or returned a value its return type does not accept."""

    TYPE = "FlowFailed"

    def __init__(self, flow: str, reason: str) -> None:
        super().__init__(f"flow {flow!r} failed: {reason}")
        self.flow = flow


class ToolFailed(AgentFailed):
    """A tool that declares `on_failure="fail_agent"` failed after its retries: its agent
    fails (and the agent's callers apply their fallbacks, as for any failed agent)."""

    TYPE = "ToolFailed"

    def __init__(self, agent: str, tool: str, reason: str) -> None:
        super().__init__(agent, f"tool {tool!r} failed: {reason}")
        self.tool = tool


class MCPUnavailable(AgentFailed):
    """An agent's MCP server could not give its tools: not declared on the worker, did not
    start or answer in time, or listed its tools in a form that is no tool list. The
    agent does not run without them (its callers apply their fallbacks)."""

    TYPE = "MCPUnavailable"

    def __init__(self, agent: str, server: str, reason: str) -> None:
        super().__init__(agent, f"MCP server {server!r}: {reason}")
        self.server = server


class GuardrailTripped(BatonError):
    """A guardrail refused a run's (or an agent's) input or output: the run is blocked."""

    TYPE = "GuardrailTripped"

    def __init__(self, guardrail: str, where: str, reason: str, refusal: str = "") -> None:
        super().__init__(f"blocked by guardrail {guardrail!r} on the {where}: {reason}")
        self.guardrail = guardrail
        self.where = where
        self.reason = reason
        # What the blocked run answers, when the guardrail declares it.
        self.refusal = refusal


class UnknownContract(BatonError):
    """A run names an output contract this process has not registered."""

    TYPE = "UnknownContract"


class InvalidRunInput(BatonError):
    """A run's input names no member of its catalogue, or one another workflow runs."""

    TYPE = "InvalidRunInput"



class UndecryptablePayload(BatonError):
    """A payload encrypted with a key this process does not hold, or altered since.

    Raised by the payload codec (baton/runtime/codec.py) while a worker decodes a task; as a
    non-retryable ApplicationError it fails the run instead of retrying a workflow task
    that can never decode, and `starter.py reset` resumes the run once the key is given.
    """

    TYPE = "UndecryptablePayload"

    def __init__(self, message: str, key_id: str) -> None:
        super().__init__(message)
        self.key_id = key_id


class PlaintextRefused(BatonError):
    """A worker that requires encryption was handed a payload in plain text (a run's
    input, an Update's or a signal's argument): it was not acted on (baton/runtime/codec.py)."""

    TYPE = "PlaintextRefused"


class MisboundPayload(BatonError):
    """An encrypted payload bound to another workflow (copied from another run's
    history) was handed to this one: it was not acted on (baton/runtime/codec.py)."""

    TYPE = "MisboundPayload"


class PayloadStoreError(BatonError):
    """A payload could not be stored or read back (baton/runtime/payload_store.py,
    activities/conversations.py); the message names the object and the store."""

    TYPE = "PayloadStoreError"


class PayloadTooLarge(PayloadStoreError):
    TYPE = "PayloadTooLarge"


class StoredPayloadMissing(PayloadStoreError):
    TYPE = "StoredPayloadMissing"


class StoredPayloadCorrupt(PayloadStoreError):
    TYPE = "StoredPayloadCorrupt"


class PayloadStoreUnavailable(PayloadStoreError):
    TYPE = "PayloadStoreUnavailable"


# Provider failure types (activities/providers/errors.py); listed for readers and tests.
MODEL_ERROR_TYPES = (
    "ModelRateLimited", "ModelUnavailable", "ModelTimeout", "ModelBadResponse",
    "ModelBadRequest", "ModelAuthError", "ModelPermissionDenied", "ModelNotFound",
    "ModelRequestTooLarge", "ModelUnprocessable", "ModelRequestRejected", "ModelRefusal",
    "ModelContentFiltered",
)
