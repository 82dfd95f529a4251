"""`starter.py serve` (the HTTP front and console) and `starter.py report` (a run as a
page a person would rather look at than read).

    python starter.py serve [--host 127.0.0.1] [--port 8765] [--cors-origin URL]
    python starter.py report WORKFLOW_ID --html run.html [--png run.png]
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import Any

from baton.cli.common import UsageError, catalogue_flags, connect_or_explain
from baton.cli.run_options import load_for_run
from baton.runtime.temporal import Settings
from baton.web.app import ServeConfig, create_app
from baton.web.report import ReportError, render_html, write_png
from baton.web.security import TOKEN_ENV, is_loopback, token_problem
from baton.web.tree import TreeError, run_tree


def register(sub: Any, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser("serve", parents=[common, catalogue_flags()],
                       help="the HTTP front (AG-UI events) and the web console")
    p.add_argument("--host", default="127.0.0.1",
                   help=f"address to listen on (beyond loopback only with {TOKEN_ENV})")
    p.add_argument("--port", type=int, default=8765)
    p.add_argument("--cors-origin", metavar="URL", action="append", default=[],
                   help="let pages of this origin call the API (repeatable; default: none)")
    p.add_argument("--latency", type=float, default=0.0, metavar="SECONDS",
                   help="simulated latency of offline models in runs started here, so "
                        "their answers stream visibly (default: 0)")
    p.set_defaults(handler=serve)
    p = sub.add_parser("report", parents=[common],
                       help="a run as an HTML page (and a PNG picture of it)")
    p.add_argument("workflow_id")
    p.add_argument("--html", metavar="FILE", help="write the page here")
    p.add_argument("--png", metavar="FILE", help="and a picture of it (headless Chromium)")
    p.set_defaults(handler=report)


async def serve(args: argparse.Namespace) -> int:
    import uvicorn  # the HTTP server, loaded only by the command that serves

    token = os.environ.get(TOKEN_ENV) or None
    if (problem := token_problem(args.host, token)) is not None:
        raise UsageError(problem)
    if not 0 < args.port < 65536:
        raise UsageError(f"--port {args.port}: give a port from 1 to 65535")
    if not 0 <= args.latency <= 60:
        raise UsageError(f"--latency {args.latency:g}: give seconds from 0 to 60")
    catalogue = load_for_run(args.catalogue, args.model, args.app)
    settings = Settings.from_env()
    client = await connect_or_explain(settings)
    app = create_app(ServeConfig(catalogue=catalogue, settings=settings, client=client,
                                 token=token, cors_origins=args.cors_origin,
                                 loopback_only=token is None and is_loopback(args.host),
                                 offline_latency_s=args.latency))
    shown = f"[{args.host}]" if ":" in args.host else args.host
    print(f"Baton console: http://{shown}:{args.port}/  (API under /api/, "
          f"{'token required' if token else 'no token: loopback only'})", flush=True)
    server = uvicorn.Server(uvicorn.Config(app, host=args.host, port=args.port,
                                           log_level="warning", lifespan="on"))
    await server.serve()
    return 0


async def report(args: argparse.Namespace) -> int:
    if not args.html and not args.png:
        raise UsageError("say where to write the report: --html FILE and/or --png FILE")
    settings = Settings.from_env()
    client = await connect_or_explain(settings)
    try:
        tree = await run_tree(client, args.workflow_id, link=settings.workflow_link)
    except TreeError as err:
        raise UsageError(str(err)) from None
    html = render_html(tree)
    written = []
    if args.html:
        Path(args.html).write_text(html)
        written.append(args.html)
    if args.png:
        try:
            await write_png(html, Path(args.png))
        except ReportError as err:
            raise UsageError(str(err)) from None
        written.append(args.png)
    print(f"wrote {' and '.join(written)} ({args.workflow_id}: {tree.root.status}, "
          f"{len(list(_walk(tree.root)))} steps)")
    return 0


def _walk(node: Any) -> Any:
    yield node
    for child in node.children:
        yield from _walk(child)
