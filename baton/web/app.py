"""The HTTP front: runs, sessions and approvals as JSON, each run's AG-UI event stream,
and the web console, in one Starlette app (`create_app`).

    POST /api/runs                          start a run or a flow
    GET  /api/runs?team=&status=&since=     runs, by Baton's search attributes, newest first
    GET  /api/runs/{id}                     status, spending, result
    GET  /api/runs/{id}/events              AG-UI events (SSE), resumable (Last-Event-ID)
    GET  /api/runs/{id}/tree                the run as a tree (baton/web/tree.py)
    POST /api/runs/{id}/decisions           approve or reject what it waits for
    GET  /api/approvals                     every run waiting for a person
    POST /api/sessions/{id}/turns           one chat turn (update-with-start)
    GET  /api/sessions/{id}                 a session's state
    POST /api/sessions/{id}/end             end a session
    GET  /api/catalogue, /api/config        what may run; where the Web UI is
    GET  /                                  the console (baton/web/static/)

Every answer is read from Temporal; the process keeps no state a replica would
miss. Bad input (an unknown id, a malformed body, a decision for nothing pending)
is a JSON error `{"error": {"status", "message"}}` and changes nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel, Field, ValidationError
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response, StreamingResponse
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from temporalio.client import Client, WorkflowExecution, WorkflowExecutionStatus
from temporalio.service import RPCError, RPCStatusCode

from baton.core.model_io import Chaos, Message
from baton.core.runs import Decision, RunOptions
from baton.core.session_io import session_workflow_id
from baton.core.specs import Catalogue
from baton.core.usage import Budget
from baton.define.catalogue import describe_errors
from baton.define.flows import FLOWS, Flow
from baton.runtime import launch
from baton.runtime.approvals import ApprovalError
from baton.runtime.approver_keys import ApproverKeyError, SigningKey
from baton.runtime.client import BatonClient
from baton.runtime.listing import ListRefused, RunQuery, RunQueryError, listed_run
from baton.runtime.sessions import SessionError, TurnFailed
from baton.runtime.temporal import Settings, connect
from baton.web.feeds import FeedError, Feeds, sse, sse_comment
from baton.web.security import BearerToken, OtherPagesRefused
from baton.web.tree import TreeError, run_tree

STATIC = Path(__file__).parent / "static"
KEEPALIVE_S = 15.0
QUERY_TIMEOUT_S = 5.0
B = TypeVar("B", bound=BaseModel)


class HTTPError(Exception):
    """An answer that is an error: its status and a message saying what was wrong."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass
class ServeConfig:
    """What one `serve` process serves."""

    catalogue: Catalogue
    settings: Settings = field(default_factory=Settings.from_env)
    # None: connect with `settings` when the app starts.
    client: Client | None = None
    token: str | None = None
    cors_origins: list[str] = field(default_factory=list)
    # Served on loopback without a token: only loopback host names are answered.
    loopback_only: bool = False
    flows: dict[str, Flow[Any]] = field(default_factory=lambda: FLOWS)
    # Simulated latency of the offline models in runs started here (`serve --latency`),
    # so their answers stream as a real model's would.
    offline_latency_s: float = 0.0

    def run_options(self, budget: Budget) -> RunOptions:
        """Options of a run or session started here: text streaming on (a field the
        worker may not know yet; it then ignores it)."""
        chaos = Chaos(latency_s=self.offline_latency_s) if self.offline_latency_s else None
        return RunOptions.model_validate({"budget": budget, "stream": True, "chaos": chaos})


# --- request bodies ---------------------------------------------------------------

class StartRunBody(BaseModel):
    """POST /api/runs: a team, agent or flow and what to give it."""

    member: str = Field(min_length=1, max_length=200)
    prompt: str | None = None
    messages: list[Message] | None = None
    # A flow's arguments (a flow also takes `prompt`, as `starter.py run` does).
    arguments: dict[str, Any] | None = None
    items: list[str] | None = None
    budget: Budget | None = None


class TurnBody(BaseModel):
    member: str = Field(min_length=1, max_length=200)
    message: str


class EndBody(BaseModel):
    reason: str = Field(default="", max_length=4000)


class DecisionBody(BaseModel):
    request_id: str | None = None
    approve: bool
    note: str = Field(default="", max_length=4000)
    reason: str = Field(default="", max_length=4000)
    by: str = Field(default="", max_length=200)


# --- the app ------------------------------------------------------------------------

def create_app(config: ServeConfig) -> Starlette:
    api = _Api(config)
    routes = [
        Route("/", api.console, methods=["GET"]),
        Route("/api/config", api.show_config, methods=["GET"]),
        Route("/api/catalogue", api.catalogue, methods=["GET"]),
        Route("/api/runs", api.start_run, methods=["POST"]),
        Route("/api/runs", api.list_runs, methods=["GET"]),
        Route("/api/runs/{run_id:path}/events", api.events, methods=["GET"]),
        Route("/api/runs/{run_id:path}/tree", api.tree, methods=["GET"]),
        Route("/api/runs/{run_id:path}/decisions", api.decide, methods=["POST"]),
        Route("/api/runs/{run_id:path}", api.run, methods=["GET"]),
        Route("/api/approvals", api.approvals, methods=["GET"]),
        Route("/api/sessions/{session_id}/turns", api.turn, methods=["POST"]),
        Route("/api/sessions/{session_id}/end", api.end, methods=["POST"]),
        Route("/api/sessions/{session_id}", api.session, methods=["GET"]),
        Mount("/static", StaticFiles(directory=STATIC), name="static"),
    ]
    middleware = [Middleware(OtherPagesRefused, loopback_only=config.loopback_only,
                             cors_origins=config.cors_origins),
                  Middleware(BearerToken, token=config.token)]
    if config.cors_origins:
        middleware.insert(0, Middleware(
            CORSMiddleware, allow_origins=config.cors_origins, allow_credentials=False,
            allow_methods=["GET", "POST"],
            allow_headers=["Authorization", "Content-Type", "Last-Event-ID"]))
    return Starlette(routes=routes, middleware=middleware, lifespan=api.lifespan,
                     exception_handlers={HTTPError: _error, HTTPException: _error,
                                         RPCError: _error})


async def _error(request: Request, exc: Exception) -> Response:
    if isinstance(exc, HTTPError):
        status, message = exc.status, exc.message
    elif isinstance(exc, HTTPException):
        status, message = exc.status_code, (exc.detail if exc.status_code != 404 else
                                            f"no such endpoint: {request.method} "
                                            f"{request.url.path}")
    elif isinstance(exc, RPCError) and exc.status == RPCStatusCode.NOT_FOUND:
        status, message = 404, exc.message
    else:
        status, message = 502, f"Temporal refused the request: {exc}"
    return JSONResponse({"error": {"status": status, "message": message}}, status_code=status)


class _Api:
    def __init__(self, config: ServeConfig) -> None:
        self.config = config
        self._client: BatonClient | None = None
        self._feeds: Feeds | None = None

    @contextlib.asynccontextmanager
    async def lifespan(self, app: Starlette) -> AsyncIterator[None]:
        client = self.config.client or await connect(self.config.settings)
        self._client = BatonClient(client, settings=self.config.settings)
        self._feeds = Feeds(client)
        try:
            yield
        finally:
            await self._feeds.close()

    @property
    def baton(self) -> BatonClient:
        assert self._client is not None, "the app's lifespan connects the client"
        return self._client

    @property
    def client(self) -> Client:
        return self.baton.client

    @property
    def feeds(self) -> Feeds:
        assert self._feeds is not None, "the app's lifespan opens the feeds"
        return self._feeds

    def link(self, workflow_id: str) -> str:
        return self.baton.link(workflow_id)

    # --- console and catalogue ----------------------------------------------------

    async def console(self, request: Request) -> Response:
        return FileResponse(STATIC / "index.html")

    async def show_config(self, request: Request) -> Response:
        settings = self.config.settings
        return JSONResponse({"temporal_ui": settings.ui_url, "namespace": settings.namespace,
                             "task_queue": settings.task_queue,
                             "token_required": self.config.token is not None})

    async def catalogue(self, request: Request) -> Response:
        catalogue = self.config.catalogue
        return JSONResponse({
            "teams": [{"name": name, "pattern": team.pattern,
                       "members": catalogue.members_of(name),
                       "description": team.description}
                      for name, team in sorted(catalogue.teams.items())],
            "agents": [{"name": name, "model": agent.model, "contract": agent.contract,
                        "tools": agent.tools, "description": agent.description}
                       for name, agent in sorted(catalogue.agents.items())],
            "flows": [{"name": name, "parameters": flow.describe_parameters(),
                       "description": flow.description}
                      for name, flow in sorted(self.config.flows.items())],
        })

    # --- runs -------------------------------------------------------------------

    async def start_run(self, request: Request) -> Response:
        body = await _body(request, StartRunBody)
        catalogue = self.config.catalogue
        options = self.config.run_options(body.budget or catalogue.budget)
        settings = self.config.settings
        try:
            if (flow := self.config.flows.get(body.member)) is not None:
                given: str | dict[str, Any] = (body.arguments if body.arguments is not None
                                               else body.prompt or "")
                planned_flow = launch.plan_flow(flow, given, options)
                await launch.start_flow(self.client, settings.task_queue, planned_flow)
                workflow_id = planned_flow.workflow_id
            else:
                messages = body.messages or ([Message(role="user", content=body.prompt)]
                                             if body.prompt else [])
                if not messages:
                    raise HTTPError(422, "give `prompt` (text) or `messages` (a conversation "
                                         "ending with a user message)")
                planned = launch.plan_run(catalogue, body.member, messages, options,
                                          items=body.items)
                await launch.start_run(self.client, settings.task_queue, planned)
                workflow_id = planned.workflow_id
        except launch.RunRefused as err:
            status = 404 if _unknown_member(body.member, catalogue, self.config.flows) else 422
            raise HTTPError(status, str(err)) from None
        return JSONResponse({"workflow_id": workflow_id, "link": self.link(workflow_id),
                             "events": f"/api/runs/{workflow_id}/events"}, status_code=201)

    async def list_runs(self, request: Request) -> Response:
        query = self._runs_query(request)
        try:
            runs = await self.baton.list_runs(query)
        except ListRefused as err:
            raise HTTPError(400, str(err)) from None
        return JSONResponse({"query": query.text(), "runs": [asdict(r) for r in runs]})

    def _runs_query(self, request: Request) -> RunQuery:
        params = request.query_params
        unknown = set(params) - {"team", "status", "pattern", "since", "limit", "all"}
        if unknown:
            raise HTTPError(400, f"unknown query parameters {sorted(unknown)}; accepted: "
                                 "team, status, pattern, since, limit, all")
        try:
            return RunQuery(team=params.get("team") or None,
                            status=params.get("status") or None,
                            pattern=params.get("pattern") or None,
                            since=params.get("since") or None,
                            nested=params.get("all") in ("1", "true", "yes"),
                            limit=_int_param(request, "limit", 20, 1, 500))
        except RunQueryError as err:
            raise HTTPError(400, err.naming(err.parameter)) from None

    def _listed(self, execution: WorkflowExecution) -> dict[str, Any]:
        return asdict(listed_run(execution, self.link))

    async def run(self, request: Request) -> Response:
        run_id = request.path_params["run_id"]
        execution = await self._describe(run_id)
        answer = self._listed(execution)
        handle = self.client.get_workflow_handle(run_id)
        if execution.status == WorkflowExecutionStatus.COMPLETED:
            answer["result"] = _jsonable(await handle.result())
        elif execution.status == WorkflowExecutionStatus.RUNNING:
            with contextlib.suppress(RPCError, TimeoutError):
                state = await asyncio.wait_for(handle.query("state"), QUERY_TIMEOUT_S)
                answer["state"] = _jsonable(state)
        return JSONResponse(answer)

    async def _describe(self, run_id: str) -> WorkflowExecution:
        try:
            return await self.client.get_workflow_handle(run_id).describe()
        except RPCError as err:
            if err.status in (RPCStatusCode.NOT_FOUND, RPCStatusCode.INVALID_ARGUMENT):
                raise HTTPError(404, f"no run {run_id!r} in namespace "
                                     f"{self.client.namespace!r}") from None
            raise

    async def tree(self, request: Request) -> Response:
        run_id = request.path_params["run_id"]
        execution = await self._describe(run_id)
        waiting = []
        if execution.status == WorkflowExecutionStatus.RUNNING:
            with contextlib.suppress(ApprovalError, RPCError, TimeoutError):
                waiting = await asyncio.wait_for(self.baton.pending_requests(run_id),
                                                 QUERY_TIMEOUT_S)
        try:
            tree = await run_tree(self.client, run_id, link=self.link, pending=waiting)
        except TreeError as err:
            raise HTTPError(404, str(err)) from None
        return Response(tree.model_dump_json(), media_type="application/json")

    async def events(self, request: Request) -> Response:
        run_id = request.path_params["run_id"]
        await self._describe(run_id)
        feed = self.feeds.open(run_id)
        start = 0
        if last := request.headers.get("last-event-id"):
            try:
                start = await feed.index_after(last)
            except (ValueError, FeedError) as err:
                raise HTTPError(400, str(err)) from None

        async def body() -> AsyncIterator[bytes]:
            async with self.feeds.watching(feed):
                async for item in feed.subscribe(start, KEEPALIVE_S):
                    yield sse_comment("keep-alive") if item is None else sse(item)

        return StreamingResponse(body(), media_type="text/event-stream", headers={
            "Cache-Control": "no-cache", "X-Accel-Buffering": "no"})

    # --- approvals ----------------------------------------------------------------

    async def approvals(self, request: Request) -> Response:
        unreadable: list[str] = []
        runs = await self.baton.pending(unreadable=unreadable)
        return JSONResponse({
            "runs": [{"workflow_id": w.workflow_id, "link": self.link(w.workflow_id),
                      "requests": [r.model_dump(mode="json") for r in w.requests]}
                     for w in runs],
            "unreadable": unreadable})

    async def decide(self, request: Request) -> Response:
        run_id = request.path_params["run_id"]
        body = await _body(request, DecisionBody)
        if not body.approve and not body.reason.strip():
            raise HTTPError(422, "a rejection needs a `reason` (it is what the agent is told)")
        await self._describe(run_id)
        try:
            key = SigningKey.from_env()
            records = await self.baton.decide(run_id, Decision(
                request_id=body.request_id, approve=body.approve, note=body.note,
                reason=body.reason, by=body.by or "web console"), key=key)
        except ApproverKeyError as err:
            raise HTTPError(500, f"this server's approver key is unusable: {err}") from None
        except ApprovalError as err:
            raise HTTPError(409, str(err)) from None
        return JSONResponse({"records": [r.model_dump(mode="json") for r in records]})

    # --- sessions -----------------------------------------------------------------

    async def turn(self, request: Request) -> Response:
        session_id = request.path_params["session_id"]
        body = await _body(request, TurnBody)
        catalogue = self.config.catalogue
        if body.member not in catalogue.teams and body.member not in catalogue.agents:
            raise HTTPError(404, f"unknown team or agent {body.member!r}; teams: "
                                 f"{', '.join(sorted(catalogue.teams))}; agents: "
                                 f"{', '.join(sorted(catalogue.agents))}")
        options = self.config.run_options(catalogue.budget)
        try:
            answer = await self.baton.send_turn(session_id, body.member, body.message,
                                                catalogue, options=options)
        except SessionError as err:
            raise HTTPError(409 if "ended" in str(err) or "conversation with" in str(err)
                            else 422, str(err)) from None
        except TurnFailed as err:
            raise HTTPError(502, f"the turn failed: {err}") from None
        workflow_id = session_workflow_id(session_id)
        return JSONResponse({**answer.model_dump(mode="json"),
                             "session_workflow_id": workflow_id,
                             "link": self.link(answer.workflow_id)})

    async def session(self, request: Request) -> Response:
        return JSONResponse(_jsonable(await self._session_call(
            request, self.baton.session_state)))

    async def end(self, request: Request) -> Response:
        body = await _body(request, EndBody)
        return JSONResponse(_jsonable(await self._session_call(
            request, lambda sid: self.baton.end_session(sid, body.reason))))

    async def _session_call(self, request: Request,
                            call: Callable[[str], Awaitable[BaseModel]]) -> BaseModel:
        session_id = request.path_params["session_id"]
        try:
            return await call(session_id)
        except SessionError as err:
            raise HTTPError(404 if str(err).startswith("no session") else 409,
                            str(err)) from None


async def _body(request: Request, model: type[B]) -> B:
    """The request's JSON body as `model`; 400/422 saying what is wrong."""
    raw = await request.body()
    try:
        return model.model_validate_json(raw or b"{}")
    except ValidationError as err:
        if any(e["type"] == "json_invalid" for e in err.errors()):
            raise HTTPError(400, f"the body is not JSON: {err.errors()[0]['msg']}") from None
        raise HTTPError(422, f"invalid request body:\n{describe_errors(err)}") from None


def _unknown_member(member: str, catalogue: Catalogue, flows: dict[str, Flow[Any]]) -> bool:
    return member not in catalogue.agents and member not in catalogue.teams \
        and member not in flows


def _int_param(request: Request, name: str, default: int, low: int, high: int) -> int:
    text = request.query_params.get(name)
    if text is None:
        return default
    if not text.isdigit() or not low <= int(text) <= high:
        raise HTTPError(400, f"{name}={text!r}: give a whole number from {low} to {high}")
    return int(text)


def _jsonable(value: Any) -> Any:
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json")
    return value

