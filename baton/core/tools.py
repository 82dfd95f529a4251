"""Function tools: `@baton.tool` turns a typed Python function into a durable tool.

The decorator reads the function's signature once: type hints (and pydantic
`Annotated[..., Field(description=...)]`) become the JSON schema the model sees,
the docstring's first paragraph its description and its `Args:` section the
parameters' descriptions. A parameter annotated `ToolContext` is filled by Baton
(workflow id, agent, attempt, an idempotency key, a heartbeat) and is not part of
the schema.

What travels in a run's input is the `ToolDef` (name, schema, timeouts, retries):
the workflow schedules one activity per call, named after the tool, on the task
queue of the tool's identity: its name and a fingerprint of its argument schema
(`ToolDef.task_queue`; the fingerprint travels as `ToolDef.schema_id`). Every
worker started with the tool (`python worker.py --app MODULE`) serves it there, so
a call only ever reaches a function with the schema its model was offered: not
another app's tool of the same name, nor an older version of this one on a worker
left running. The function itself runs only in `activities/tools.py`.

A value the tool returns as a pydantic `SecretStr` (alone, or as a field of a dict,
dataclass or model) is masked (`"**********"`) before the result is recorded: it
reaches neither the model, nor history, nor traces.
"""

from __future__ import annotations

import asyncio
import hashlib
import inspect
import json
import re
import typing
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Literal, TypeVar, overload

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    TypeAdapter,
    ValidationError,
    create_model,
    model_validator,
)
from temporalio import activity, workflow

from baton.core.model_io import ToolSpec
from baton.core.signatures import default_of, typed_parameters
from baton.core.steps import workflow_steps

# OpenAI and Anthropic both accept tool names of this shape.
TOOL_NAME = r"^[A-Za-z0-9_-]{1,64}$"
# A tool result longer than this is cut, with a note, before it is recorded: every
# result is stored in history and sent back with each later model call, and Temporal
# refuses payloads above 2 MB.
MAX_RESULT_CHARS = 32_000
# And never more than this many bytes of UTF-8, whatever the character limit: a
# result of 1,000,000 four-byte characters would be a 4 MB payload, which Temporal
# refuses (the tool would run again on every retry, and its result be lost).
MAX_RESULT_BYTES = 1_000_000
# What happens when a tool still fails after its retries.
OnFailure = Literal["report", "fail_agent"]
# The activity that runs tools' approval policies (one per worker).
APPROVAL_POLICY_ACTIVITY = "baton_approval_policy"
# The local activity that tells whether a live worker serves a tool's exact schema.
TOOL_CHECK_ACTIVITY = "baton_tool_check"
# The ApplicationError type of a call that reached a worker whose function of that
# name has another schema (or which has none): the workflow sends it elsewhere.
TOOL_NOT_SERVED = "ToolNotServed"
# Keywords that describe a schema without changing what it accepts: a reworded
# docstring does not make a tool another tool.
ANNOTATIONS = frozenset({"title", "description", "examples"})

F = TypeVar("F", bound=Callable[..., Any])


# The output extractors of agents offered as tools, by tool name (agent.as_tool()).
AGENT_TOOL_EXTRACTORS: dict[str, Callable[[Any], str]] = {}


class ToolDefinitionError(ValueError):
    """A function that cannot become a tool; raised when it is decorated."""


class ToolDef(BaseModel):
    """Everything a workflow needs to offer and schedule a tool (recorded in run input)."""

    name: str = Field(pattern=TOOL_NAME)
    description: str
    parameters: dict[str, Any]
    # "agent": another agent of the catalogue answers the call (agent.as_tool()), in the
    # calling workflow; "function": a @baton.tool, its own activity.
    kind: Literal["function", "agent"] = "function"
    agent: str | None = None
    timeout_s: float = Field(default=60.0, gt=0, le=86_400)
    max_attempts: int = Field(default=3, ge=1, le=100)
    # Heartbeat timeout: a worker that died mid-call is noticed within this many
    # seconds (Baton heartbeats for the tool while it runs). None: no heartbeat.
    heartbeat_s: float | None = Field(default=10.0, gt=0, le=3600)
    local: bool = False
    # After its retries: "report" sends the error to the model as the tool's result,
    # "fail_agent" fails the agent (its fallbacks, then the run's, apply).
    on_failure: OnFailure = "report"
    max_result_chars: int = Field(default=MAX_RESULT_CHARS, ge=100, le=1_000_000)
    # "always": a person decides every call; "policy": the tool's policy function
    # decides from the arguments (run as a local activity, so its answer is recorded).
    approval: Literal["never", "always", "policy"] = "never"
    approval_timeout_s: float = Field(default=86_400.0, gt=0, le=365 * 86_400)
    approval_default: Literal["approve", "reject"] = "reject"
    # The fingerprint of `parameters` as @baton.tool computed it: the schema the model
    # is offered. A run whose catalogue carries it has a live worker serving exactly
    # that schema checked before the tool's first call (workflows/tool_calls.py).
    schema_id: str | None = Field(default=None, pattern=r"^[0-9a-f]{12}$")

    @model_validator(mode="after")
    def _schema_id_matches(self) -> ToolDef:
        if self.schema_id is not None and self.schema_id != schema_fingerprint(self.parameters):
            raise ValueError(
                f"tool {self.name!r}: schema_id {self.schema_id} is not the fingerprint of "
                f"its parameters ({schema_fingerprint(self.parameters)}); a catalogue that "
                "changes a tool's parameters must drop its schema_id (the workers serve "
                "the schemas their @baton.tool functions have)")
        return self

    def spec(self) -> ToolSpec:
        return ToolSpec(name=self.name, description=self.description,
                        parameters=self.parameters)

    @property
    def fingerprint(self) -> str:
        """What identifies the schema the model is offered (see schema_fingerprint)."""
        return self.schema_id or schema_fingerprint(self.parameters)

    def task_queue(self, base: str) -> str:
        """The task queue this tool's calls go to from a run on queue `base`."""
        return tool_task_queue(base, self.name, self.fingerprint)


class ToolInvocation(BaseModel):
    """One tool call as the tool's activity receives it."""

    tool: str
    agent: str
    call_id: str
    arguments: dict[str, Any] = Field(default_factory=dict)
    max_result_chars: int = MAX_RESULT_CHARS
    team: str = ""  # as ModelRequest.team
    # The request a person approved for this call; the tool's activity refuses a call
    # its own policy says needs one when this is empty.
    approved_request: str | None = None
    # Approved because nobody decided in time: counts only where the worker's own
    # definition approves by default (the run's catalogue may not say so for it).
    approval_timed_out: bool = False
    # A flow's direct call wants the function's value (as JSON) besides the text.
    want_value: bool = False
    # The run's context as JSON, and the name its model is registered under.
    context: dict[str, Any] | None = None
    context_model: str | None = None
    # The fingerprint of the schema the model was offered (ToolDef.fingerprint): a
    # worker whose function has another schema refuses the call (TOOL_NOT_SERVED).
    # None in calls scheduled before fingerprints existed.
    schema_id: str | None = None


class ToolCheck(BaseModel):
    """Which tool, with which schema, a run is about to call (TOOL_CHECK_ACTIVITY)."""

    tool: str
    parameters: dict[str, Any]


class ToolOutcome(BaseModel):
    """What one tool call returned, already rendered as the text the model will read."""

    content: str
    ok: bool = True
    truncated: bool = False
    elapsed_s: float = 0.0
    # The function's return value as JSON, for a call that asked for it (want_value).
    value: Any = None
    # The run's context as the tool left it, when the tool changed it.
    context: dict[str, Any] | None = None


@dataclass(frozen=True)
class ToolContext:
    """What a tool may ask for besides its arguments (annotate a parameter `ToolContext`).

    `idempotency_key` is the same for every attempt of one call (and for the call
    re-run after a worker crash), and differs between calls: pass it to a payment
    API or use it as a database key so an at-least-once retry never acts twice.
    """

    workflow_id: str
    run_id: str
    agent: str
    tool: str
    call_id: str
    attempt: int
    idempotency_key: str
    # The run's context (a copy of the pydantic model given to agent.run(context=...)),
    # or None. Changes made to it here go back to the run when the call completes.
    context: Any = None

    def heartbeat(self, *details: Any) -> None:
        """Report progress (Baton already heartbeats while the tool runs)."""
        activity.heartbeat(*details)


class Tool:
    """A function the model may call; calling the object calls the function."""

    def __init__(self, fn: Callable[..., Any], *, name: str | None = None,
                 description: str | None = None, timeout: float = 60.0,
                 max_attempts: int = 3, heartbeat: float | None = 10.0, local: bool = False,
                 on_failure: OnFailure = "report",
                 max_result_chars: int = MAX_RESULT_CHARS,
                 approval: bool | Callable[..., bool] = False,
                 approval_timeout: float = 86_400.0,
                 approval_default: Literal["approve", "reject"] = "reject") -> None:
        self.fn = fn
        self.approval_policy = approval if callable(approval) else None
        self.is_async = inspect.iscoroutinefunction(fn)
        tool_name = name or fn.__name__
        self.context_parameter, self.arguments_model = _arguments_model(fn, tool_name)
        summary, described = _parse_docstring(inspect.getdoc(fn) or "")
        schema = self.arguments_model.model_json_schema()
        schema.pop("title", None)
        for parameter, text in described.items():
            prop = schema.get("properties", {}).get(parameter)
            if prop is not None and "description" not in prop:
                prop["description"] = text
        for prop in schema.get("properties", {}).values():
            prop.pop("title", None)
        try:
            self.definition = ToolDef(
                name=tool_name, description=description or summary or f"The {tool_name} tool.",
                parameters=schema, timeout_s=timeout, max_attempts=max_attempts,
                heartbeat_s=heartbeat, local=local, on_failure=on_failure,
                max_result_chars=max_result_chars,
                approval="policy" if callable(approval) else "always" if approval else "never",
                approval_timeout_s=approval_timeout, approval_default=approval_default,
                schema_id=schema_fingerprint(schema))
        except ValidationError as err:
            problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}"
                                 for e in err.errors())
            raise ToolDefinitionError(f"tool {tool_name!r}: {problems}") from None

    @property
    def name(self) -> str:
        return self.definition.name

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        """The function's result; inside a workflow (a flow), an awaitable of it, run as
        the tool's own activity, so the call is durable and never runs twice."""
        if workflow.in_workflow():
            bound = inspect.signature(self.fn).bind_partial(*args, **kwargs)
            return workflow_steps().tool(self, dict(bound.arguments))
        return self.fn(*args, **kwargs)

    def __repr__(self) -> str:
        return f"<baton.tool {self.name}>"

    def validate(self, arguments: dict[str, Any]) -> BaseModel:
        """The arguments as the function's types; ValidationError when they do not fit."""
        return self.arguments_model.model_validate(arguments)

    def needs_approval(self, arguments: BaseModel) -> bool:
        """Whether a person must approve a call with these (validated) arguments."""
        if self.approval_policy is None:
            return self.definition.approval == "always"
        kwargs = {field: getattr(arguments, field) for field in type(arguments).model_fields}
        return bool(self.approval_policy(**kwargs))

    async def invoke(self, arguments: BaseModel, context: ToolContext) -> Any:
        """Call the function (a sync one in a thread, so heartbeats keep flowing)."""
        kwargs = {field: getattr(arguments, field)
                  for field in type(arguments).model_fields}
        if self.context_parameter is not None:
            kwargs[self.context_parameter] = context
        if self.is_async:
            return await typing.cast(Awaitable[Any], self.fn(**kwargs))
        return await asyncio.to_thread(self.fn, **kwargs)


@overload
def tool(fn: F, /) -> Tool: ...


@overload
def tool(*, name: str | None = None, description: str | None = None, timeout: float = 60.0,
         max_attempts: int = 3, heartbeat: float | None = 10.0, local: bool = False,
         on_failure: OnFailure = "report", max_result_chars: int = MAX_RESULT_CHARS,
         approval: bool | Callable[..., bool] = False, approval_timeout: float = 86_400.0,
         approval_default: Literal["approve", "reject"] = "reject") -> Callable[[F], Tool]: ...


def tool(fn: Callable[..., Any] | None = None, /, **options: Any) -> Tool | Callable[[F], Tool]:
    """Make a function a durable tool: bare `@tool`, or `@tool(timeout=30, max_attempts=5)`.

    Keywords: `name`, `description` (default: from the docstring), `timeout` (seconds
    per attempt), `max_attempts`, `heartbeat` (seconds; None for none), `local`
    (a cheap pure tool as a local activity), `on_failure` ("report" or
    "fail_agent"), `max_result_chars`, `approval` (True, or a function of the
    tool's arguments returning whether a person must approve the call),
    `approval_timeout` (seconds) and `approval_default` ("reject" or "approve":
    what happens when nobody decides in time).
    """
    if fn is not None:
        return Tool(fn, **options)

    def decorate(function: F) -> Tool:
        return Tool(function, **options)
    return decorate


def schema_fingerprint(parameters: dict[str, Any]) -> str:
    """12 hex digits naming what a tool's argument schema accepts: equal for schemas
    that differ only in titles, descriptions or examples, different otherwise."""
    canonical = json.dumps(_without_annotations(parameters), sort_keys=True,
                           separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode()).hexdigest()[:12]


def tool_task_queue(base: str, name: str, fingerprint: str) -> str:
    """Where the calls of one tool identity go from runs on task queue `base`."""
    return f"{base}:tool:{name}@{fingerprint}"


def tool_presence_queue(base: str, name: str) -> str:
    """Where every worker serving a tool called `name` for runs on `base` announces the
    schema it serves, whatever that schema (nothing is ever scheduled there)."""
    return f"{base}:tool:{name}"


def describe_parameters(parameters: dict[str, Any]) -> str:
    """A schema as a reader sees a signature: `city: string, days?: integer`."""
    required = set(parameters.get("required", []))
    shown = [f"{name}{'' if name in required else '?'}: {_type_name(node)}"
             for name, node in parameters.get("properties", {}).items()]
    return ", ".join(shown)


def _type_name(node: dict[str, Any]) -> str:
    if "$ref" in node:
        return str(node["$ref"]).rsplit("/", 1)[-1]
    if "enum" in node:
        return " | ".join(json.dumps(v) for v in node["enum"])
    for key in ("anyOf", "oneOf"):
        if key in node:
            return " | ".join(_type_name(option) for option in node[key])
    kind = node.get("type", "any")
    if kind == "array":
        return f"list[{_type_name(node.get('items', {}))}]"
    return "|".join(kind) if isinstance(kind, list) else str(kind)


def _without_annotations(node: Any, *, names: bool = False) -> Any:
    """The schema with ANNOTATIONS dropped; `names`: `node` maps names to schemas (so a
    property called "description" stays)."""
    if isinstance(node, list):
        return [_without_annotations(item) for item in node]
    if not isinstance(node, dict):
        return node
    if names:
        return {key: _without_annotations(value) for key, value in node.items()}
    return {key: value if key in _VALUES else _without_annotations(
                value, names=key in _NAMED_SCHEMAS)
            for key, value in node.items() if key not in ANNOTATIONS}


# Keywords whose value maps names to schemas, and those whose value is data, kept whole.
_NAMED_SCHEMAS = frozenset({"properties", "$defs", "definitions", "patternProperties",
                            "dependentSchemas"})
_VALUES = frozenset({"default", "const", "enum"})


def render_result(value: Any, limit: int) -> tuple[str, bool]:
    """(text for the model, truncated?): strings as they are, anything else as JSON."""
    if isinstance(value, str):
        text = value
    else:
        text = json.dumps(TypeAdapter(Any).dump_python(value, mode="json"), ensure_ascii=False)
    if len(text) <= limit and len(text.encode()) <= MAX_RESULT_BYTES:
        return text, False
    shown = text[:limit]
    if len(shown.encode()) > MAX_RESULT_BYTES:
        shown = shown.encode()[:MAX_RESULT_BYTES].decode(errors="ignore")
    note = f"\n[truncated: {len(text)} characters, only the first {len(shown)} are shown]"
    return shown + note, True


def _arguments_model(fn: Callable[..., Any], name: str) -> tuple[str | None, type[BaseModel]]:
    """(name of the ToolContext parameter, pydantic model of the other parameters)."""
    if not callable(fn):
        raise ToolDefinitionError(f"@tool needs a function; got {fn!r}")
    try:
        hints = typing.get_type_hints(fn, include_extras=True)
    except (NameError, TypeError) as err:
        raise ToolDefinitionError(f"tool {name!r}: cannot read its type hints: {err}") from None
    context: str | None = None
    fields: dict[str, Any] = {}
    for parameter, annotation in typed_parameters(
            fn, hints, owner=f"tool {name!r}", error=ToolDefinitionError,
            called_how="tools are called with named arguments",
            typed_why="types become the tool's schema"):
        if annotation is ToolContext:
            context = parameter.name
            continue
        if parameter.name.startswith("_"):
            # pydantic would take it for a private attribute and leave it out of the
            # schema: the model could never pass it.
            raise ToolDefinitionError(
                f"tool {name!r}: parameter {parameter.name!r} starts with '_'; name it "
                "without the underscore (tool arguments are public)")
        # A default may be a plain value or a pydantic Field(...); both are kept.
        fields[parameter.name] = (annotation, default_of(parameter))
    try:
        model = create_model(f"{name}_arguments", __config__=ConfigDict(extra="forbid"),
                             **fields)
        # Strict JSON, as providers take it (a NaN or infinite default is not).
        json.dumps(model.model_json_schema(), allow_nan=False)
    except Exception as err:  # pydantic raises several kinds for unusable types
        raise ToolDefinitionError(
            f"tool {name!r}: its parameters cannot become a JSON schema: {err}") from None
    return context, model


_ARGS_HEADER = re.compile(r"^(Args|Arguments|Parameters):\s*$")
_ARG_LINE = re.compile(r"^\s+(\*{0,2}\w+)\s*(?:\([^)]*\))?\s*:\s*(.*)$")
_SPHINX_PARAM = re.compile(r"^:param\s+(?:\w+\s+)?(\w+):\s*(.*)$")


def _parse_docstring(doc: str) -> tuple[str, dict[str, str]]:
    """(description, {parameter: description}) from a Google- or Sphinx-style docstring.

    Hand-written because only these two common layouts matter here and a parser
    library would be a dependency for a dozen lines.
    """
    description: list[str] = []
    params: dict[str, str] = {}
    in_args = False
    current: str | None = None
    for line in doc.splitlines():
        if _ARGS_HEADER.match(line.strip()):
            in_args, current = True, None
            continue
        sphinx = _SPHINX_PARAM.match(line.strip())
        if sphinx:
            current = sphinx.group(1)
            params[current] = sphinx.group(2).strip()
            continue
        if in_args:
            match = _ARG_LINE.match(line)
            if match:
                current = match.group(1).lstrip("*")
                params[current] = match.group(2).strip()
            elif line.strip() and current and line.startswith((" ", "\t")):
                params[current] += " " + line.strip()
            elif line.strip() and not line.startswith((" ", "\t")):
                in_args = False
            continue
        if line.strip().startswith(":") or re.match(r"^(Returns|Raises|Yields):", line.strip()):
            current = None
            continue
        if not params:
            description.append(line)
    text = "\n".join(description).strip()
    return text, params
