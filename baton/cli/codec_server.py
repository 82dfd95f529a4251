"""`starter.py codec-server`: lets the Temporal Web UI show encrypted payloads in clear.

The Web UI never holds Baton's key. Pointed at a codec server (Settings -> Codec
Server, or `temporal server start-dev --ui-codec-endpoint URL`), the browser posts
the payloads it is about to show to `<endpoint>/decode` and displays what comes
back. The body both ways is protobuf JSON of `Payloads`, `{"payloads": [{"metadata":
{"encoding": "<base64>"}, "data": "<base64>"}]}`; `/encode` does the reverse for
payloads typed into the UI (signals, updates, resets with input).

Whoever reaches this server can decrypt, so it listens on 127.0.0.1 unless --host
says otherwise, and answers browsers on the Web UI's origin only (CORS).
"""

from __future__ import annotations

import argparse
import asyncio
import json
from collections.abc import Callable, Iterable, Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

from google.protobuf import json_format
from temporalio.api.common.v1 import Payload, Payloads

from baton.cli.common import UsageError
from baton.codec import KEY_ENV, OLD_KEYS_ENV, EncryptionCodec, EncryptionKeyError
from baton.errors import UndecryptablePayload
from baton.temporal import Settings

DEFAULT_PORT = 8081
# One UI request carries the payloads of one history page; Temporal caps a payload at
# 2 MB and a history at 50 MB, so a bigger body is not the Web UI's.
MAX_BODY_BYTES = 64 * 1024 * 1024
# The UI sends its namespace, and a bearer token when "pass access token" is on: a
# preflight that leaves either out makes the browser drop the request.
ALLOWED_HEADERS = "content-type,x-namespace,authorization"


def register(sub: Any, common: argparse.ArgumentParser) -> None:
    # Not the run flags of `common`: this command starts no run.
    p = sub.add_parser("codec-server",
                       help="serve the Web UI's codec endpoint: decrypt payloads for display")
    p.add_argument("--port", type=int, default=DEFAULT_PORT,
                   help=f"port to listen on (default {DEFAULT_PORT}; 0 picks a free one)")
    p.add_argument("--host", default="127.0.0.1",
                   help="address to listen on (default 127.0.0.1: this machine only)")
    p.add_argument("--origin", type=_origin, action="append", metavar="URL",
                   help="the Web UI's origin, allowed by CORS (repeatable; default "
                        "TEMPORAL_UI_URL or http://localhost:8233)")
    p.set_defaults(handler=serve)


def _origin(text: str) -> str:
    parts = urlsplit(text)
    if parts.scheme not in ("http", "https") or not parts.netloc or parts.path not in ("", "/"):
        raise argparse.ArgumentTypeError(
            f"{text!r} is not an origin; give scheme, host and port, e.g. http://localhost:8233")
    return f"{parts.scheme}://{parts.netloc}"


class CodecServer(ThreadingHTTPServer):
    daemon_threads = True  # a browser's stalled connection must not block shutdown

    def __init__(self, address: tuple[str, int], codec: EncryptionCodec,
                 origins: Iterable[str]) -> None:
        super().__init__(address, CodecRequestHandler)
        self.codec = codec
        self.origins = frozenset(origins)

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        return f"http://{host!s}:{port}"


class CodecRequestHandler(BaseHTTPRequestHandler):
    server: CodecServer

    def do_OPTIONS(self) -> None:
        self.send_response(204)
        self._cors()
        self.send_header("Access-Control-Allow-Methods", "POST, OPTIONS")
        self.send_header("Access-Control-Allow-Headers", ALLOWED_HEADERS)
        self.send_header("Access-Control-Max-Age", "600")
        self.send_header("Content-Length", "0")
        self.end_headers()

    def do_POST(self) -> None:
        action = urlsplit(self.path).path.rstrip("/").rsplit("/", 1)[-1]
        apply: Callable[[Sequence[Payload]], list[Payload]] | None = {
            "decode": self.server.codec.decode_payloads,
            "encode": self.server.codec.encode_payloads}.get(action)
        if apply is None:
            self._reply(404, {"message": "POST /decode or /encode"})
            return
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            length = -1
        if not 0 <= length <= MAX_BODY_BYTES:
            self._reply(413, {"message": f"a body of 0 to {MAX_BODY_BYTES} bytes, "
                                         "with Content-Length"})
            return
        try:
            payloads = json_format.Parse(self.rfile.read(length) or b"{}", Payloads())
            result = Payloads(payloads=apply(payloads.payloads))
        except json_format.ParseError as err:
            self._reply(400, {"message": f"not protobuf JSON of Payloads: {err}"})
            return
        except UndecryptablePayload as err:
            self._reply(422, {"message": err.message, "key_id": err.key_id})
            return
        self._reply(200, json_format.MessageToDict(result))

    def _cors(self) -> None:
        origin = self.headers.get("Origin")
        if origin in self.server.origins:
            self.send_header("Access-Control-Allow-Origin", origin)
            self.send_header("Access-Control-Allow-Credentials", "true")
            self.send_header("Vary", "Origin")

    def _reply(self, status: int, body: dict[str, Any]) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self._cors()
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


def make_server(codec: EncryptionCodec, host: str, port: int,
                origins: Iterable[str]) -> CodecServer:
    """A bound codec server (port 0: a free one); the caller runs `serve_forever`."""
    return CodecServer((host, port), codec, origins)


async def serve(args: argparse.Namespace) -> int:
    try:
        codec = EncryptionCodec.from_env()
    except EncryptionKeyError as err:
        raise UsageError(str(err)) from None
    if codec is None:
        raise UsageError(f"set {KEY_ENV} (and {OLD_KEYS_ENV} for older keys) as the workers "
                         "have them: the codec server decrypts with the same keys")
    origins = args.origin or [Settings.from_env().ui_url]
    try:
        server = make_server(codec, args.host, args.port, origins)
    except OSError as err:
        raise UsageError(f"cannot listen on {args.host}:{args.port}: {err.strerror}") from None
    print(f"codec server at {server.url} for {', '.join(origins)}\n"
          f"in the Web UI: Settings -> Codec Server -> {server.url}", flush=True)
    # The standard library's threaded server, not aiohttp: a handful of requests from
    # one browser need no framework, and workers should not install one for this.
    try:
        await asyncio.to_thread(server.serve_forever)
    finally:
        server.shutdown()  # on Ctrl-C: ends serve_forever so its thread can be joined
        server.server_close()
    return 0
