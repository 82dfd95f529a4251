"""Functions of yours that a built-in team calls inside its run, and what they receive.

Where a pattern used to fix the behaviour, a team may take code: the subtasks a
planner's own model stands for (`FanOut(planner=..., plan=fn)`), the synthesizer's
prompt and the reducer (`synthesizer_prompt=fn`, `reducer=fn`), a pipeline stage's
input (`Stage(agent, input=fn)`). Like gates (`baton.core.specs.GATES`) they are code,
so they never travel: each is registered in this process under a name made from
its team ("research/plan"), the catalogue and the run's input carry only that
name, and the worker that runs the team calls its own copy (it imports the module
that defines the team: `python worker.py --app MODULE`); a name it lacks fails the
run with `UnknownHook`. They run inside the workflow, so they must be
deterministic: no I/O, clock or random numbers, only their arguments.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal, TypeVar

from baton.core.errors import BatonError, HookFailed, UnknownHook
from baton.core.model_io import MAX_PROMPT_BYTES, Message


@dataclass(frozen=True)
class Finding:
    """One fan-out branch's result, as a synthesizer prompt or a reducer is given it."""

    # The member (agent or team) that ran the branch.
    branch: str
    status: Literal["ok", "failed"]
    # The branch's output as its contract's model, else its answer text; None if failed.
    output: Any
    # Its answer as text ("" when it failed).
    text: str
    # The subtask or item it was given; None when it was given the run's request.
    task: str | None = None
    # Why it failed.
    error: str | None = None


@dataclass(frozen=True)
class StageContext:
    """What a pipeline stage's input function (`Stage(agent, input=fn)`) is given."""

    # The run's request (its last user message).
    request: str
    # The stage about to run, and its attempt (above 1 after a gate sent the run back).
    stage: str
    attempt: int
    # The latest output of every stage that has run so far, by stage name: its
    # contract's model, else its answer text. On a loop back this holds the previous
    # draft and the judge's verdict.
    outputs: dict[str, Any]
    # The run's conversation, then each stage run's answer (an assistant message
    # whose `agent` is the stage), in the order they ran.
    transcript: list[Message]
    # Why a gate sent the pipeline back to this stage; None otherwise.
    feedback: str | None = None


# The functions, by the name a team's spec carries.
PLANS: dict[str, Callable[[Any], Any]] = {}
SYNTHESIZER_PROMPTS: dict[str, Callable[[str, list[Finding]], Any]] = {}
REDUCERS: dict[str, Callable[[list[Finding]], Any]] = {}
STAGE_INPUTS: dict[str, Callable[[StageContext], Any]] = {}

F = TypeVar("F", bound=Callable[..., Any])


def register(table: dict[str, F], name: str, function: object, role: str) -> str:
    """Keep `function` in `table` as `name` (what the team's spec carries)."""
    if not callable(function):
        raise TypeError(f"{role} must be a function; got {function!r}")
    table[name] = function  # type: ignore[assignment]
    return name


def call_hook(table: dict[str, F], name: str, role: str, *args: Any,
              failure: Callable[[str], BatonError] = HookFailed) -> Any:
    """`table[name](*args)`: `UnknownHook` when this worker lacks it, `failure` (by
    default `HookFailed`) when it raises; both say "{role} {name!r}"."""
    function = table.get(name)
    if function is None:
        raise UnknownHook(f"{role} {name!r} is not registered on this worker: start it with "
                          "the module that defines the team (python worker.py --app MODULE)")
    try:
        return function(*args)
    except Exception as err:  # the user's code: a typed failure of the run, naming it
        raise failure(f"{role} {name!r} raised {type(err).__name__}: {err}") from None


def text_of(value: object, role: str, name: str) -> str:
    """`value` when it is a non-empty string, else `HookFailed` saying what is accepted."""
    if not isinstance(value, str) or not value.strip():
        raise HookFailed(f"{role} {name!r} returned {value!r:.80}; accepted: a non-empty "
                         "string")
    return value


def messages_of(value: object, role: str, name: str) -> list[Message]:
    """A stage input function's answer as messages: a string is one user message; a
    list of `Message`s must end with a non-empty user message. Either within the size
    a run's prompt may have."""
    messages: list[Message] | None = None
    if isinstance(value, str) and value.strip():
        messages = [Message(role="user", content=value)]
    elif (isinstance(value, list) and value and all(isinstance(m, Message) for m in value)
            and value[-1].role == "user" and value[-1].content.strip()):
        messages = list(value)
    if messages is None:
        raise HookFailed(f"{role} {name!r} returned {value!r:.80}; accepted: a non-empty "
                         "string, or a list of baton.Message ending with a non-empty user "
                         "message")
    size = sum(len(m.content.encode()) for m in messages)
    if size > MAX_PROMPT_BYTES:
        raise HookFailed(f"{role} {name!r} returned {size} bytes of messages; accepted: at "
                         f"most {MAX_PROMPT_BYTES}")
    return messages
