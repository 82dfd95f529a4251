"""Talking to a session from anywhere: one call per turn, no connection kept.

`send_turn` is one update-with-start: it starts the session's workflow when the
session id is new (conflict policy USE_EXISTING otherwise) and delivers the turn
in the same request, so a web handler, a chat bot or the starter can carry a
conversation on with nothing but the session id. A closed session's id is never
started again (reuse policy REJECT_DUPLICATE): a turn sent to an ended session is
refused with an error instead of quietly opening a new, empty conversation.
"""

from __future__ import annotations

import contextlib
from typing import Any

from temporalio.client import (
    Client,
    WithStartWorkflowOperation,
    WorkflowExecutionStatus,
    WorkflowFailureError,
    WorkflowHandle,
    WorkflowUpdateFailedError,
)
from temporalio.common import WorkflowIDConflictPolicy, WorkflowIDReusePolicy
from temporalio.exceptions import ApplicationError, WorkflowAlreadyStartedError
from temporalio.service import RPCError, RPCStatusCode

from baton.core.runs import RunOptions
from baton.core.session_io import (
    MAX_MESSAGE_CHARS,
    SESSION_ENDED,
    SESSION_TOO_LONG,
    SESSION_WORKFLOW,
    EndRequest,
    SessionInput,
    SessionLimits,
    SessionState,
    SessionSummary,
    TurnAnswer,
    TurnRequest,
    check_session_id,
    session_workflow_id,
)
from baton.core.specs import Catalogue
from baton.define.api import Member
from baton.define.catalogue import load_catalogue
from baton.runtime.codec import client_key_problem
from baton.runtime.temporal import Settings, connect

# Failure types of a refused turn: validator errors and the session's own refusals.
REFUSALS = ("ValueError", SESSION_ENDED, SESSION_TOO_LONG)


class SessionError(ValueError):
    """A turn or an end the session refused; the message says why, nothing changed."""


class TurnFailed(Exception):
    """A turn the session accepted but could not answer (e.g. every model failed)."""

    def __init__(self, message: str, type: str | None) -> None:
        super().__init__(message)
        self.type = type


async def send_turn(client: Client | None, session_id: str, team: str | Member, message: str,
                    catalogue: Catalogue | None = None, task_queue: str | None = None, *,
                    options: RunOptions | None = None,
                    limits: SessionLimits | None = None) -> TurnAnswer:
    """Send one user message to session `session_id` of `team`, starting it if new.

    `team` is a name in `catalogue` (default: the packaged catalogue) or a
    `baton.Agent`/team object. `options` (budget: per turn) and `limits` apply when
    this call starts the session; an existing session keeps its own.
    """
    try:
        check_session_id(session_id)
    except ValueError as err:
        raise SessionError(str(err)) from None
    if not message.strip():
        raise SessionError("a turn needs a non-empty message")
    if len(message) > MAX_MESSAGE_CHARS:
        raise SessionError(f"the message has {len(message)} characters; at most "
                           f"{MAX_MESSAGE_CHARS} are accepted per turn")
    member, catalogue = _resolve(team, catalogue)
    settings = Settings.from_env()
    client = client or await connect(settings)
    session = SessionInput(session_id=session_id, member=member,
                           catalogue=catalogue.closure(member),
                           options=options or RunOptions(budget=catalogue.budget),
                           limits=limits or SessionLimits())
    description = (catalogue.teams[member].description if member in catalogue.teams
                   else catalogue.agents[member].description)
    start: WithStartWorkflowOperation[Any, SessionSummary] = WithStartWorkflowOperation(
        SESSION_WORKFLOW, session, id=session_workflow_id(session_id),
        task_queue=task_queue or settings.task_queue,
        id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
        id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
        result_type=SessionSummary, static_summary=f"session · {member}: {session_id}",
        static_details=description or None)
    try:
        answer: TurnAnswer = await client.execute_update_with_start_workflow(
            "turn", TurnRequest(message=message, member=member),
            start_workflow_operation=start, result_type=TurnAnswer)
    except WorkflowUpdateFailedError as err:
        cause = err.cause
        if isinstance(cause, ApplicationError) and cause.type not in REFUSALS:
            raise TurnFailed(cause.message, cause.type) from None
        raise SessionError(_reason(err)) from None
    except WorkflowAlreadyStartedError:
        with contextlib.suppress(WorkflowAlreadyStartedError):
            await start.workflow_handle()  # the same failure; read, so it is not logged
        raise SessionError(f"session {session_id!r} has ended; start a new session id "
                           "to talk again") from None
    except RPCError as err:
        with contextlib.suppress(RPCError):
            await start.workflow_handle()  # the same failure; read, so it is not logged
        raise await _why_closed(client, session_id, err) from None
    return answer


async def end_session(client: Client | None, session_id: str,
                      reason: str = "") -> SessionSummary:
    """End a session once the turns it already accepted are answered."""
    client, handle = await _handle(client, session_id)
    try:
        summary: SessionSummary = await handle.execute_update(
            "end", EndRequest(reason=reason), result_type=SessionSummary)
    except WorkflowUpdateFailedError as err:
        raise SessionError(_reason(err)) from None
    except RPCError as err:
        raise await _missing(client, session_id, err) from None
    return summary


async def session_state(client: Client | None, session_id: str) -> SessionState:
    """A live session's memory, spending and history size."""
    client, handle = await _handle(client, session_id)
    try:
        state: SessionState = await handle.query("state", result_type=SessionState)
    except RPCError as err:
        raise await _missing(client, session_id, err) from None
    return state


def _resolve(team: str | Member, catalogue: Catalogue | None) -> tuple[str, Catalogue]:
    if not isinstance(team, str):
        return team.name, catalogue or team.catalogue()
    if catalogue is None:
        catalogue = load_catalogue()
    if team not in catalogue.teams and team not in catalogue.agents:
        raise SessionError(f"unknown team or agent {team!r}; teams: "
                           f"{', '.join(sorted(catalogue.teams))}; agents: "
                           f"{', '.join(sorted(catalogue.agents))}")
    return team, catalogue


async def _handle(client: Client | None,
                  session_id: str) -> tuple[Client, WorkflowHandle[Any, SessionSummary]]:
    client = client or await connect()
    return client, client.get_workflow_handle(session_workflow_id(session_id),
                                              result_type=SessionSummary)


def _reason(err: WorkflowUpdateFailedError) -> str:
    cause = err.cause
    return cause.message if isinstance(cause, ApplicationError) else str(cause or err)


async def _why_closed(client: Client, session_id: str, err: RPCError) -> Exception:
    """For a turn aborted because its session failed meanwhile (a worker refused the
    session's input, say), a SessionError saying why; else `err`."""
    handle = client.get_workflow_handle(session_workflow_id(session_id))
    try:
        if (await handle.describe()).status != WorkflowExecutionStatus.FAILED:
            return err
        await handle.result()
    except WorkflowFailureError as failed:
        cause = failed.cause
        reason = client_key_problem(failed, client.data_converter.payload_codec) or (
            cause.message if isinstance(cause, ApplicationError) else str(cause))
        return SessionError(f"session {session_id!r} failed: {reason}")
    except RPCError:
        pass
    return err


async def _missing(client: Client, session_id: str, err: RPCError) -> Exception:
    """The error for an RPC that found no running session: unknown, or ended."""
    if err.status != RPCStatusCode.NOT_FOUND:
        return err
    try:
        await client.get_workflow_handle(session_workflow_id(session_id)).describe()
    except RPCError:
        return SessionError(f"no session {session_id!r} in namespace {client.namespace!r}")
    return SessionError(f"session {session_id!r} has ended")
