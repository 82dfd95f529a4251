"""`starter.py chat | end`: conversations that last (sessions, see workflows/session.py).

    python starter.py chat support_desk                          # interactive; /quit, /end
    python starter.py chat support_desk --session s1 "message"   # one turn, then exit
    python starter.py end s1

Every turn is one update-with-start (baton/runtime/sessions.py), so a one-turn command
continues a session another process started, and an interactive chat left with
/quit can be picked up again with --session.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import uuid
from typing import Any

from pydantic import ValidationError

from baton.cli.common import (
    UsageError,
    baton_client,
    catalogue_flags,
    limit_flags,
    print_json,
    unknown_member,
)
from baton.cli.output import answer_lines, decoded_answer
from baton.cli.run_options import load_for_run, run_options
from baton.core.session_io import (
    SessionLimits,
    TurnAnswer,
    check_session_id,
    session_workflow_id,
)
from baton.core.specs import Catalogue
from baton.runtime.client import BatonClient
from baton.runtime.sessions import SessionError, TurnFailed
from baton.runtime.temporal import Settings


class _IntermixedParser(argparse.ArgumentParser):
    """Lets the message follow the options (`chat TEAM --session ID "message"`): plain
    argparse gives an optional positional its (empty) value before reading options."""

    _inside = False

    def parse_known_args(self, args: Any = None, namespace: Any = None) -> Any:
        if self._inside:  # parse_known_intermixed_args calls back in here
            return super().parse_known_args(args, namespace)
        self._inside = True
        try:
            return self.parse_known_intermixed_args(args, namespace)
        finally:
            self._inside = False


def register(sub: Any, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser("chat", parents=[common, catalogue_flags(), limit_flags()],
                       help="talk to a team or agent in a session that lasts")
    p.__class__ = _IntermixedParser
    p.add_argument("team", help="team or agent name from the catalogue")
    p.add_argument("message", nargs="?",
                   help="send one turn and exit ('-' reads standard input); without it, "
                        "an interactive chat")
    p.add_argument("--session", metavar="ID",
                   help="the session to start or continue (default: a new one)")
    p.add_argument("--idle-timeout", type=float, metavar="SECONDS",
                   help="a new session ends itself after this long without a turn "
                        "(default: 7 days)")
    p.set_defaults(handler=chat)
    p = sub.add_parser("end", parents=[common], help="end a chat session")
    p.add_argument("session_id")
    p.add_argument("--reason", default="", help="kept in the session's result")
    p.set_defaults(handler=end)


async def chat(args: argparse.Namespace) -> int:
    catalogue = load_for_run(args.catalogue, args.model, args.app)
    if args.team not in catalogue.teams and args.team not in catalogue.agents:
        raise unknown_member("team or agent", args.team,
                             f"teams: {', '.join(sorted(catalogue.teams))}; agents: "
                             f"{', '.join(sorted(catalogue.agents))}", args.app)
    if args.idle_timeout is not None:
        try:
            SessionLimits(idle_timeout_s=args.idle_timeout)
        except ValidationError:  # also NaN and infinity
            raise UsageError("--idle-timeout must be greater than 0 and at most a year "
                             "(in seconds)") from None
    session_id = args.session or f"{args.team}-{uuid.uuid4().hex[:8]}"
    try:
        check_session_id(session_id)
    except ValueError as err:
        raise UsageError(str(err)) from None
    message = None
    if args.message is not None:
        message = sys.stdin.read() if args.message == "-" else args.message
        if not message.strip():
            raise UsageError("the message is empty; say something, or leave it out for an "
                             "interactive chat")
    settings = Settings.from_env()
    conversation = Conversation(args, catalogue, session_id, settings)
    client = await baton_client(settings)
    if message is not None:
        return await conversation.turn(client, message, one_shot=True)
    return await conversation.interactive(client)


class Conversation:
    """One chat session as the terminal sees it."""

    def __init__(self, args: argparse.Namespace, catalogue: Catalogue, session_id: str,
                 settings: Settings) -> None:
        self.args = args
        self.catalogue = catalogue
        self.session_id = session_id
        self.settings = settings
        self.options = run_options(args, catalogue)
        self.limits = (SessionLimits(idle_timeout_s=args.idle_timeout)
                       if args.idle_timeout is not None else SessionLimits())

    @property
    def link(self) -> str:
        return self.settings.workflow_link(session_workflow_id(self.session_id))

    async def turn(self, client: BatonClient, message: str, *, one_shot: bool) -> int:
        try:
            answer = await client.send_turn(self.session_id, self.args.team, message,
                                            self.catalogue, options=self.options,
                                            limits=self.limits,
                                            task_queue=self.settings.task_queue)
        except SessionError as err:
            raise UsageError(str(err)) from None
        except TurnFailed as err:
            if self.args.json:
                print_json({"session_id": self.session_id, "error": str(err),
                            "type": err.type, "link": self.link})
            else:
                print(f"turn failed ({err.type}): {err}\nweb ui: {self.link}", file=sys.stderr)
            return 1
        if self.args.json:
            fields = answer.model_dump(mode="json") | {
                "answer": decoded_answer(answer.answer), "link": self.link}
            print(json.dumps(fields, indent=2 if one_shot else None), flush=True)
        else:
            print(render(answer), flush=True)
            if one_shot:
                print(f"session: {self.session_id} (continue: starter.py chat "
                      f"{self.args.team} --session {self.session_id} \"...\"; end: "
                      f"starter.py end {self.session_id})\nweb ui: {self.link}")
        return 0

    async def interactive(self, client: BatonClient) -> int:
        if not self.args.json:
            print(f"session {self.session_id} with {self.args.team} · /quit leaves (the "
                  f"session waits for you), /end ends it\nweb ui: {self.link}")
        status = 0
        while True:
            try:
                line = await asyncio.to_thread(input, "you> ")
            except EOFError:
                line = "/quit"
            text = line.strip()
            if not text:
                continue
            if text == "/quit":
                if not self.args.json:
                    print(f"left session {self.session_id}; continue with --session "
                          f"{self.session_id}")
                return status
            if text == "/end":
                try:
                    summary = await client.end_session(self.session_id)
                except SessionError as err:
                    raise UsageError(str(err)) from None
                if not self.args.json:
                    print(f"ended session {self.session_id} after {summary.turns} turns")
                return status
            try:
                status = max(status, await self.turn(client, text, one_shot=False))
            except UsageError as err:
                print(f"error: {err}", file=sys.stderr)
                status = 2


def render(answer: TurnAnswer) -> str:
    total = answer.total_usage
    head = f"{answer.handled_by} · turn {answer.turn}"
    if answer.status != "ok":
        head += f" · {answer.status}"
    lines = [head, *(f"  {line}" for line in answer_lines(answer.answer))]
    if answer.route_reason:
        lines.append(f"  ({answer.route_reason})")
    lines.append(f"  [{total.calls} calls, {total.input_tokens} in / {total.output_tokens} "
                 "out tokens]")
    return "\n".join(lines)


async def end(args: argparse.Namespace) -> int:
    client = await baton_client()
    try:
        summary = await client.end_session(args.session_id, args.reason)
    except SessionError as err:
        raise UsageError(str(err)) from None
    link = client.link(session_workflow_id(args.session_id))
    if args.json:
        print_json(summary.model_dump(mode="json") | {"link": link})
        return 0
    total = summary.total_usage
    print(f"ended session {summary.session_id} ({summary.member}) after {summary.turns} "
          f"turns in {summary.runs} run(s); {total.calls} calls, {total.total_tokens} "
          f"tokens\nweb ui: {link}")
    return 0
