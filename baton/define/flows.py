"""Durable flows: your own orchestration code, in plain Python, as a Temporal workflow.

    @baton.flow
    async def story(topic: str) -> str:
        \"\"\"Outline, check, then write.\"\"\"
        outline = await outliner.run(topic)
        verdict = await checker.run(outline.text, output=Verdict)
        if not verdict.output.good:
            return f"Stopped: {verdict.output.reason}"
        return (await writer.run(outline.text)).text

`@baton.flow` checks the function when it is decorated (async, every parameter and
the return typed) and registers it by name. A worker that imports the module
(`worker.py --app MODULE`) runs it as the workflow type of that name
(`workflows/flow.py`); `starter.py run NAME "input" --app MODULE` and
`baton.run(flow, input)` start it.

Inside a flow, `agent.run(...)`, `team.run(...)`, a `@baton.tool` function called
directly, `baton.gather`, `baton.approval` and `baton.sleep` are durable steps (an
activity, a child workflow, a timer), recorded in history: a crashed worker's
successor replays them instead of calling the model again. Everything else in the
function is workflow code, replayed on every recovery, so it must be
deterministic: no I/O, no clock (`baton.now()` gives the workflow's), no random
numbers, no threads. The flow's module is imported by the worker like any `--app`
module: keep its top level free of I/O.
"""

from __future__ import annotations

import asyncio
import inspect
import json
import re
import typing
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Generic, TypeVar

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError, create_model
from temporalio import workflow
from temporalio.exceptions import ApplicationError

from baton.core.errors import BudgetExhausted, GuardrailTripped
from baton.core.model_io import Message
from baton.core.runs import RunOptions, RunResult
from baton.core.signatures import default_of, typed_parameters
from baton.core.specs import MAX_NAME_CHARS
from baton.core.steps import client_run, workflow_steps
from baton.core.usage import Usage

R = TypeVar("R")

# A flow's name is its workflow type: readable, and safe in ids and search attributes.
FLOW_NAME = r"^[A-Za-z][A-Za-z0-9_\-]{0,99}$"


class FlowDefinitionError(TypeError):
    """A function that cannot become a flow; raised when it is decorated."""


class FlowInput(BaseModel):
    """What a client sends to start a flow: its arguments by name, and the run's options.

    Nothing here names code, a URL or a file: the flow is the worker's code, looked up
    by its workflow type.
    """

    arguments: dict[str, Any] = Field(default_factory=dict)
    options: RunOptions = Field(default_factory=RunOptions)
    # Shown in the Web UI and lists: what the run is about, in the client's words.
    prompt: str = Field(default="", max_length=2000)


class FlowResult(RunResult):
    """A flow's result: the returned value as text (`answer`), as JSON (`value`), and
    the run's usage, trace, reasons and approvals like any run."""

    pattern: str = "flow"
    value: Any = None


class Flow(Generic[R]):
    """A registered flow; `await flow.run(...)` starts it from outside a workflow."""

    def __init__(self, fn: Callable[..., Awaitable[R]], name: str | None = None) -> None:
        self.fn = fn
        self.name = name or fn.__name__
        if not _valid_name(self.name):
            raise FlowDefinitionError(
                f"flow name {self.name!r} is not usable as a workflow type; use letters, "
                f"digits, '_' and '-', starting with a letter, at most {MAX_NAME_CHARS}")
        self.description = (inspect.getdoc(fn) or "").strip()
        self.arguments_model, self.return_type = _signature(fn, self.name)
        self._returns = TypeAdapter(self.return_type)

    def __repr__(self) -> str:
        return f"<baton.flow {self.name}>"

    def output_model(self, result: RunResult | None = None) -> type[BaseModel] | None:
        """The pydantic model the flow returns, if it returns one."""
        returned = self.return_type
        return returned if isinstance(returned, type) and issubclass(returned, BaseModel) \
            else None

    @property
    def parameters(self) -> list[str]:
        return list(self.arguments_model.model_fields)

    def arguments_from_text(self, text: str) -> dict[str, Any]:
        """The arguments for a command line's one input: the text itself for a flow of
        one required string parameter (the others keep their defaults), else a JSON
        object (or a JSON value, for one required parameter)."""
        fields = self.arguments_model.model_fields
        required = {n: f for n, f in fields.items() if f.is_required()}
        if len(required) == 1 and not text.lstrip().startswith("{"):
            [(name, info)] = required.items()
            if info.annotation is str:
                return {name: text}
            try:
                return {name: json.loads(text)}
            except json.JSONDecodeError:
                return {name: text}  # validation says what the parameter takes
        if not fields:
            return {}
        try:
            value = json.loads(text)
        except json.JSONDecodeError:
            value = None
        if not isinstance(value, dict):
            raise FlowArgumentsError(
                f"flow {self.name!r} takes {', '.join(fields)}: give them as one JSON object, "
                f"e.g. '{json.dumps({k: '...' for k in fields})}'")
        return value

    def validate_arguments(self, arguments: dict[str, Any]) -> dict[str, Any]:
        """The arguments as the function's types (keyword arguments for the call)."""
        try:
            model = self.arguments_model.model_validate(arguments)
        except ValidationError as err:
            problems = "; ".join(f"{'.'.join(map(str, e['loc'])) or 'arguments'}: {e['msg']}"
                                 for e in err.errors())
            raise FlowArgumentsError(
                f"invalid arguments for flow {self.name!r}: {problems}; it takes "
                f"{self.describe_parameters()}") from None
        return {field: getattr(model, field) for field in type(model).model_fields}

    def describe_parameters(self) -> str:
        hints = typing.get_type_hints(self.fn)
        return ", ".join(f"{name}: {_type_name(hints.get(name))}"
                         for name in self.arguments_model.model_fields) or "no arguments"

    def render(self, value: Any) -> tuple[str, Any]:
        """(answer text, JSON value) of what the flow returned, checked against its
        return type."""
        checked = self._returns.validate_python(value)
        as_json = self._returns.dump_python(checked, mode="json")
        if isinstance(checked, str):
            return checked, as_json
        if isinstance(checked, BaseModel):
            return checked.model_dump_json(indent=2), as_json
        return json.dumps(as_json, ensure_ascii=False, indent=2), as_json

    async def run(self, input: str | dict[str, Any], **options: Any) -> Any:
        """Run the flow durably and wait for its outcome (outside a workflow; keywords as
        `baton.run`)."""
        return await client_run()(self, input, **options)


@dataclass
class AgentResult(Generic[R]):
    """What one `agent.run(...)` gave: the output (the contract's model, or the text),
    the text, the transcript to hand on, what it spent and who answered."""

    output: R
    text: str
    messages: list[Message]
    usage: Usage = field(default_factory=Usage)
    handled_by: str = ""


class FlowArgumentsError(ValueError):
    """A flow's arguments do not fit its parameters; says what it takes."""


# Every flow this process defined, by name; the worker runs the one a workflow names.
FLOWS: dict[str, Flow[Any]] = {}


@typing.overload
def flow(fn: Callable[..., Awaitable[R]], /) -> Flow[R]: ...


@typing.overload
def flow(*, name: str | None = None) -> Callable[[Callable[..., Awaitable[R]]], Flow[R]]: ...


def flow(fn: Callable[..., Awaitable[R]] | None = None, /, *,
         name: str | None = None) -> Flow[R] | Callable[[Callable[..., Awaitable[R]]], Flow[R]]:
    """Make an async function a durable flow (see the module's docstring)."""

    def register(function: Callable[..., Awaitable[R]]) -> Flow[R]:
        made = Flow(function, name)
        known = FLOWS.get(made.name)
        if known is not None and _origin(known.fn) != _origin(function):
            raise FlowDefinitionError(
                f"two flows are named {made.name!r}: {_origin(known.fn)} and "
                f"{_origin(function)}; give one another name with @baton.flow(name=...)")
        FLOWS[made.name] = made
        return made

    return register(fn) if fn is not None else register


def _origin(fn: Callable[..., Any]) -> str:
    return f"{fn.__module__}.{fn.__qualname__}"


def _valid_name(name: str) -> bool:
    return re.fullmatch(FLOW_NAME, name) is not None


def _type_name(annotation: Any) -> str:
    if isinstance(annotation, type) and not typing.get_args(annotation):
        return annotation.__name__
    return str(annotation).replace("typing.", "")


def _signature(fn: Callable[..., Any], name: str) -> tuple[type[BaseModel], Any]:
    """(pydantic model of the parameters, return type); FlowDefinitionError naming what
    is wrong and what is accepted."""
    if not inspect.iscoroutinefunction(fn):
        raise FlowDefinitionError(
            f"flow {name!r} must be an async function (`async def {name}(...)`): its steps "
            "are awaited durably")
    try:
        hints = typing.get_type_hints(fn)
    except (NameError, TypeError) as err:
        raise FlowDefinitionError(f"flow {name!r}: cannot read its type hints: {err}") from None
    fields: dict[str, Any] = {}
    for parameter, annotation in typed_parameters(
            fn, hints, owner=f"flow {name!r}", error=FlowDefinitionError,
            called_how="a flow is started with its arguments by name",
            typed_why="the input is checked against it"):
        fields[parameter.name] = (annotation, default_of(parameter))
    if "return" not in hints:
        raise FlowDefinitionError(
            f"flow {name!r} has no return annotation; annotate it, e.g. `-> str` or a "
            "pydantic model (the result is checked against it)")
    try:
        model = create_model(f"{name}_arguments", __config__=ConfigDict(extra="forbid"),
                             **fields)
        TypeAdapter(hints["return"])
    except Exception as err:  # pydantic raises several kinds for unusable types
        raise FlowDefinitionError(
            f"flow {name!r}: its parameters or return type cannot be checked: {err}") from None
    return model, hints["return"]


# --- durable steps a flow (or any workflow) takes besides agents and tools -------------
# Thin: the workflow layer's steps are imported when a step runs, inside the workflow,
# so a sandboxed run uses its own copy of them (this module is passed through).

@dataclass
class BranchFailure:
    """A branch of `baton.gather` that failed: its index and why (the others are kept)."""

    index: int
    error: BaseException

    @property
    def message(self) -> str:
        error = self.error
        cause = getattr(error, "cause", None)
        shown = cause if isinstance(cause, ApplicationError) else error
        return f"{type(shown).__name__}: {shown}"


class BranchesFailed(ApplicationError):
    """Some branches of `baton.gather` failed; `results` holds every branch's value or
    `BranchFailure`, in order, so nothing completed is lost."""

    def __init__(self, results: list[Any]) -> None:
        failures = [r for r in results if isinstance(r, BranchFailure)]
        super().__init__(
            f"{len(failures)} of {len(results)} branches failed: "
            + "; ".join(f"#{f.index}: {f.message}" for f in failures[:3]),
            type="BranchesFailed", non_retryable=True)
        self.results = results


async def gather(*steps: Awaitable[Any], return_failures: bool = False) -> list[Any]:
    """Await `steps` in parallel. Every branch runs to its end; with failures,
    `BranchesFailed` carries each branch's value or failure (or, with
    `return_failures=True`, the list is returned with `BranchFailure` in place)."""
    outcomes = await asyncio.gather(*steps, return_exceptions=True)
    results: list[Any] = []
    for index, outcome in enumerate(outcomes):
        # Run-level stops are the run's, not a branch's: a spent budget or a tripped
        # guardrail ends the run as such; the SDK's own signals pass through.
        if (not isinstance(outcome, Exception) and isinstance(outcome, BaseException)) or \
                isinstance(outcome, workflow.NondeterminismError | BudgetExhausted
                           | GuardrailTripped):
            raise outcome
        results.append(BranchFailure(index, outcome) if isinstance(outcome, BaseException)
                       else outcome)
    if not return_failures and any(isinstance(r, BranchFailure) for r in results):
        raise BranchesFailed(results)
    return results


async def approval(question: str, details: dict[str, Any] | None = None, *,
                   timeout: float = 86_400.0, default: str = "reject") -> Any:
    """A person's decision as a step of the run (`starter.py approve`, `baton.approve`);
    its `ApprovalRecord`: `.approved`, `.reason`, `.note`, who decided."""
    return await workflow_steps().approval(question, details, timeout=timeout, default=default)


async def sleep(seconds: float, *, summary: str | None = None) -> None:
    """Wait durably (a server-side timer: the worker may stop and restart meanwhile)."""
    await workflow.sleep(seconds, summary=summary or f"sleeping {seconds:g} s")


def now() -> datetime:
    """The run's clock, the same on every replay (use it instead of datetime.now())."""
    return workflow.now()
