"""`starter.py codec-server`: lets the Temporal Web UI show encrypted payloads in clear.

The Web UI never holds Baton's key. Pointed at a codec server (Settings -> Codec
Server, or `temporal server start-dev --ui-codec-endpoint URL`), the browser posts
the payloads it is about to show to `<endpoint>/decode` and displays what comes
back. The body both ways is protobuf JSON of `Payloads`, `{"payloads": [{"metadata":
{"encoding": "<base64>"}, "data": "<base64>"}]}`; `/encode` does the reverse for
payloads typed into the UI (signals, updates, resets with input).

Whoever reaches this server can read every run, so it defends itself:

- It listens on 127.0.0.1 unless --host says otherwise, and refuses to listen
  beyond loopback without a token.
- With a token (`BATON_CODEC_TOKEN`, or --token, which `ps` shows to other users),
  every request but the browser's CORS preflight must carry `Authorization: Bearer
  <token>`; anything else gets 401.
- It answers only requests whose Host header names it (the --host it listens on,
  localhost, 127.0.0.1, ::1, or an --allowed-host), so a web page whose domain an
  attacker re-points at 127.0.0.1 (DNS rebinding) gets 421, not plaintext.
- It answers browsers on the Web UI's origin only (CORS).
- `/encode` is off unless --allow-encode: an encoder makes ciphertext that workers
  accept as Baton's own, so it is a forging tool for whoever may call it.
- --tls-cert/--tls-key serve HTTPS; a token should not cross a network in clear.
- Every malformed body (not UTF-8, not JSON, the wrong shape, bad base64, a payload
  that is not ciphertext it can read) gets 400 and a JSON message saying what was
  wrong; the connection is never just dropped.

How the Web UI sends a token. With "Pass the user access token" on (Settings ->
Codec Server, or the UI server's `codec.passAccessToken` /
`TEMPORAL_CODEC_PASS_ACCESS_TOKEN`), the UI sends `Authorization: Bearer <access
token>` (and its ID token in `Authorization-Extras`) only to an `https://`
endpoint, and the token is the signed-in user's OIDC access token from the UI's own
login. That token differs per user and expires, so it cannot equal one static
`BATON_CODEC_TOKEN`: for the Web UI, put an HTTPS reverse proxy in front that
authenticates people its own way and sets `Authorization: Bearer
$BATON_CODEC_TOKEN` on what it forwards to this server on 127.0.0.1, and give the
UI the proxy's URL (a proxy that passes the browser's Host header on needs
--allowed-host for that name). The Temporal CLI sends a static header itself:
`temporal workflow show ... --codec-endpoint URL --codec-auth "Bearer $TOKEN"`.

Workflow binding (baton/runtime/codec.py). The Web UI names no workflow, only its namespace
(`X-Namespace`), so this server holds the codec without a serialization context:
/decode reads each payload with the workflow binding written beside it (a binding
altered since fails authentication), and /encode writes unbound payloads, which a
worker accepts for any workflow; one more reason /encode is off by default.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import binascii
import hmac
import ipaddress
import json
import os
import re
import socket
import ssl
import sys
import threading
from collections.abc import Callable, Iterable, Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from google.protobuf import json_format
from google.protobuf.message import DecodeError
from temporalio.api.common.v1 import Payload, Payloads

from baton.cli.common import UsageError
from baton.core.errors import UndecryptablePayload
from baton.runtime.codec import KEY_ENV, OLD_KEYS_ENV, EncryptionCodec, EncryptionKeyError
from baton.runtime.temporal import Settings

DEFAULT_PORT = 8081
TOKEN_ENV = "BATON_CODEC_TOKEN"
MAKE_TOKEN = 'python -c "import secrets;print(secrets.token_urlsafe(32))"'
# 16 characters of a random base64 token are 96 bits; shorter is a password.
MIN_TOKEN_CHARS = 16
# RFC 6750's b64token: what fits in a header unquoted.
TOKEN_SYNTAX = re.compile(r"[A-Za-z0-9\-._~+/]+=*")
# One UI request carries the payloads of one history page; Temporal caps a payload at
# 2 MB and a history at 50 MB, so a bigger body is not the Web UI's.
MAX_BODY_BYTES = 64 * 1024 * 1024
# The UI sends its namespace, and with "pass access token" on an Authorization header
# and its ID token in Authorization-Extras: a preflight that leaves one out makes the
# browser drop the request.
ALLOWED_HEADERS = "content-type,x-namespace,authorization,authorization-extras"
LOOPBACK_NAMES = frozenset({"localhost", "127.0.0.1", "::1"})
HOST_NAME = re.compile(r"[a-z0-9](?:[a-z0-9.\-]*[a-z0-9])?")
# A Host header: a name or IPv4 address, or an IPv6 address in brackets; then a port.
HOST_HEADER = re.compile(r"(?:\[([0-9a-f:.]+)\]|([a-z0-9.\-]+))(?::[0-9]{1,5})?")
# A client that stops sending mid-request frees its thread after this many seconds.
REQUEST_TIMEOUT_SECONDS = 30
PAYLOADS_SHAPE = '{"payloads": [{"metadata": {"encoding": "<base64>"}, "data": "<base64>"}]}'


class CodecServerError(ValueError):
    """A codec server asked to run unsafely or with unusable settings; says why."""


def register(sub: Any, common: argparse.ArgumentParser) -> None:
    # Not the run flags of `common`: this command starts no run.
    p = sub.add_parser("codec-server",
                       help="serve the Web UI's codec endpoint: decrypt payloads for display")
    p.add_argument("--port", type=int, default=DEFAULT_PORT,
                   help=f"port to listen on (default {DEFAULT_PORT}; 0 picks a free one)")
    p.add_argument("--host", default="127.0.0.1",
                   help="address to listen on (default 127.0.0.1: this machine only; "
                        "any other needs a token)")
    p.add_argument("--origin", type=_origin, action="append", metavar="URL",
                   help="the Web UI's origin, allowed by CORS (repeatable; default "
                        "TEMPORAL_UI_URL or http://localhost:8233)")
    p.add_argument("--token", metavar="TOKEN",
                   help=f"bearer token every request must carry (default ${TOKEN_ENV}, "
                        "which other users cannot read in `ps`)")
    p.add_argument("--tls-cert", type=Path, metavar="PEM",
                   help="serve HTTPS with this certificate chain (with --tls-key)")
    p.add_argument("--tls-key", type=Path, metavar="PEM",
                   help="the private key of --tls-cert")
    p.add_argument("--allowed-host", type=_host_name, action="append", metavar="NAME",
                   help="a further name clients reach this server by, accepted in the "
                        "Host header (repeatable; the --host, localhost, 127.0.0.1 and "
                        "::1 always are)")
    p.add_argument("--allow-encode", action="store_true",
                   help="also answer /encode (encrypt what a person types into the Web "
                        "UI); whoever may call it can make payloads workers trust")
    p.set_defaults(handler=serve)


def _origin(text: str) -> str:
    parts = urlsplit(text)
    if parts.scheme not in ("http", "https") or not parts.netloc or parts.path not in ("", "/"):
        raise argparse.ArgumentTypeError(
            f"{text!r} is not an origin; give scheme, host and port, e.g. http://localhost:8233")
    return f"{parts.scheme}://{parts.netloc}"


def _host_name(text: str) -> str:
    name = _normal_host(text.strip().lower().removeprefix("[").removesuffix("]"))
    if name is None:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a host name; give the name or address alone, without scheme, "
            "port or path (any port is accepted), e.g. codec.example.com")
    return name


def _normal_host(name: str) -> str | None:
    """An IP address in its usual form, or a host name without its final dot; None
    for anything else."""
    try:
        return str(ipaddress.ip_address(name))
    except ValueError:
        name = name.rstrip(".")
        return name if HOST_NAME.fullmatch(name) else None


def host_in(header: str | None) -> str | None:
    """The host of a Host header (`name:port`, `[v6]:port`), lower case, without port
    or brackets; None when the header is missing or names no host."""
    found = HOST_HEADER.fullmatch((header or "").strip().lower())
    return _normal_host(found.group(1) or found.group(2)) if found else None


def check_token(token: str, where: str) -> str:
    """The token when it is one a client can send and an attacker cannot guess;
    CodecServerError naming `where` otherwise. The value is never echoed."""
    if len(token) < MIN_TOKEN_CHARS or not TOKEN_SYNTAX.fullmatch(token):
        raise CodecServerError(
            f"{where} takes a random token of at least {MIN_TOKEN_CHARS} characters from "
            "A-Z a-z 0-9 - . _ ~ + / (as sent after 'Bearer '), made with: " + MAKE_TOKEN)
    return token


def tls_context(cert: Path | None, key: Path | None) -> ssl.SSLContext | None:
    """A server TLS context from a PEM certificate chain and key; None for neither."""
    if cert is None and key is None:
        return None
    if cert is None or key is None:
        raise CodecServerError("--tls-cert and --tls-key go together: give the "
                               "certificate chain and its private key, or neither")
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        context.load_cert_chain(cert, key)
    except FileNotFoundError as err:
        raise CodecServerError(f"cannot read {err.filename}: no such file") from None
    except (ssl.SSLError, OSError) as err:
        raise CodecServerError(
            f"cannot use {cert} with {key} for TLS ({err.strerror or err}); --tls-cert takes "
            "a PEM certificate chain, --tls-key the PEM private key that matches it") from None
    return context


class Refusal(Exception):
    """A request answered with an error status and a JSON message."""

    def __init__(self, status: int, message: str, **extra: Any) -> None:
        super().__init__(message)
        self.status = status
        self.body: dict[str, Any] = {"message": message, **extra}
        self.headers: dict[str, str] = {}


class CodecServer(ThreadingHTTPServer):
    daemon_threads = True  # a browser's stalled connection must not block shutdown

    def __init__(self, address: tuple[str, int], codec: EncryptionCodec,
                 origins: Iterable[str], *, token: str | None = None,
                 allowed_hosts: Iterable[str] = (), allow_encode: bool = False,
                 tls: ssl.SSLContext | None = None) -> None:
        if ":" in address[0]:
            self.address_family = socket.AF_INET6
        # Bound but not listening until the loopback check has passed.
        super().__init__(address, CodecRequestHandler, bind_and_activate=False)
        try:
            self.server_bind()
            self.bound = str(self.server_address[0])
            if token is None and not self.loopback:
                raise CodecServerError(
                    f"refusing to listen on {address[0]} without a token: beyond loopback "
                    "anyone who reaches the codec server could read every run; set "
                    f"{TOKEN_ENV} (made with: {MAKE_TOKEN}) or listen on 127.0.0.1")
            self.server_activate()
        except BaseException:
            self.server_close()
            raise
        self.codec = codec
        self.origins = frozenset(origins)
        self.token = token
        self.allow_encode = allow_encode
        self.tls = tls
        self.hosts = LOOPBACK_NAMES | {address[0].lower(), self.bound} | {
            h.lower() for h in allowed_hosts}

    @property
    def loopback(self) -> bool:
        try:
            return ipaddress.ip_address(self.bound).is_loopback
        except ValueError:
            return False

    @property
    def url(self) -> str:
        host = f"[{self.bound}]" if ":" in self.bound else self.bound
        return f"{'https' if self.tls else 'http'}://{host}:{self.server_address[1]}"

    def finish_request(self, request: Any, client_address: Any) -> None:
        if self.tls is None:
            super().finish_request(request, client_address)
            return
        # The handshake runs here, on the connection's own thread: done while
        # accepting, one slow client would hold up every other.
        request.settimeout(REQUEST_TIMEOUT_SECONDS)
        try:
            secured = self.tls.wrap_socket(request, server_side=True)
        except (ssl.SSLError, OSError) as err:
            sys.stderr.write(f"{client_address[0]} - TLS handshake failed: {err}\n")
            return
        try:
            super().finish_request(secured, client_address)
        finally:
            secured.close()


class CodecRequestHandler(BaseHTTPRequestHandler):
    server: CodecServer
    timeout = REQUEST_TIMEOUT_SECONDS
    server_version = "baton-codec-server"
    sys_version = ""

    def do_OPTIONS(self) -> None:
        # The browser's preflight carries no credentials, so only the Host is checked.
        try:
            self._check_host()
        except Refusal as refusal:
            self._refuse(refusal)
            return
        self.send_response(204)
        self._cors()
        self.send_header("Access-Control-Allow-Methods", "POST, OPTIONS")
        self.send_header("Access-Control-Allow-Headers", ALLOWED_HEADERS)
        self.send_header("Access-Control-Max-Age", "600")
        self.send_header("Content-Length", "0")
        self.end_headers()

    def do_POST(self) -> None:
        try:
            self._check_host()
            self._check_token()
            apply = self._route()
            payloads = parse_payloads(self._read_body())
            result = Payloads(payloads=run_codec(apply, payloads.payloads))
        except Refusal as refusal:
            self._refuse(refusal)
            return
        except Exception as err:  # a server answers; it never just hangs up
            self.log_error("%s answering %s", type(err).__name__, self.path)
            self._refuse(Refusal(500, f"the codec server failed ({type(err).__name__}); "
                                      "its log has the time"))
            return
        self._reply(200, json_format.MessageToDict(result))

    def _not_allowed(self) -> None:
        try:
            self._check_host()
            self._check_token()
            refusal = Refusal(405, "POST /decode or /encode")
        except Refusal as earlier:
            refusal = earlier
        refusal.headers["Allow"] = "POST, OPTIONS"
        self._refuse(refusal)

    do_GET = do_PUT = do_PATCH = do_DELETE = _not_allowed

    def _check_host(self) -> None:
        host = host_in(self.headers.get("Host"))
        if host is None:
            raise Refusal(400, "a Host header naming this server is required")
        if host not in self.server.hosts:
            raise Refusal(421, f"this codec server does not answer for host {host!r}; "
                               "start it with --allowed-host NAME for each name clients use")

    def _check_token(self) -> None:
        expected = self.server.token
        if expected is None:
            return
        sent = self.headers.get_all("Authorization") or []
        scheme, _, presented = (sent[0] if len(sent) == 1 else "").strip().partition(" ")
        # Constant time: how much of a guess matched must not show in the reply's timing.
        if scheme.lower() != "bearer" or not hmac.compare_digest(
                presented.strip().encode("latin-1", "replace"), expected.encode()):
            refusal = Refusal(401, "send 'Authorization: Bearer <token>' with the token this "
                                   f"server was started with ({TOKEN_ENV} or --token)"
                              if not sent else "wrong bearer token")
            refusal.headers["WWW-Authenticate"] = 'Bearer realm="baton codec server"'
            raise refusal

    def _route(self) -> Callable[[Sequence[Payload]], list[Payload]]:
        # `/decode`, or `/<namespace>/decode` when the endpoint is templated; the UI
        # adds a query string.
        action = urlsplit(self.path).path.rstrip("/").rsplit("/", 1)[-1]
        if action == "decode":
            return self.server.codec.decode_payloads
        if action == "encode":
            if not self.server.allow_encode:
                raise Refusal(403, "this codec server only decrypts: /encode is off, since "
                                   "whoever may call it can make payloads workers accept; "
                                   "start it with --allow-encode to turn it on")
            return self.server.codec.encode_payloads
        raise Refusal(404, "POST /decode or /encode")

    def parse_request(self) -> bool:
        self.body_read = False  # per request: one connection may carry several
        return super().parse_request()

    def _body_length(self) -> int:
        if "Transfer-Encoding" in self.headers:
            raise Refusal(411, "send the body with a Content-Length, not chunked")
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            length = -1
        if not 0 <= length <= MAX_BODY_BYTES:
            raise Refusal(413, f"a body of 0 to {MAX_BODY_BYTES} bytes, with Content-Length")
        return length

    def _read_body(self) -> bytes:
        length = self._body_length()
        self.body_read = True
        try:
            body = self.rfile.read(length)
        except TimeoutError:
            raise Refusal(408, f"the body did not arrive within {REQUEST_TIMEOUT_SECONDS} s "
                               "of the last byte") from None
        if len(body) < length:
            raise Refusal(400, f"the body ended after {len(body)} of the {length} bytes "
                               "its Content-Length announced")
        return body

    def _skip_body(self) -> None:
        """Reads and drops a body the refusal came before: a socket closed with unread
        bytes is reset, and the client loses the reply with it."""
        if self.body_read:
            return
        self.body_read = True
        try:
            left = self._body_length()
            while left > 0 and (chunk := self.rfile.read(min(left, 1 << 16))):
                left -= len(chunk)
        except (Refusal, OSError):
            pass  # chunked, oversized or stalled: refused and closed all the same

    def _cors(self) -> None:
        origin = self.headers.get("Origin")
        if origin in self.server.origins:
            self.send_header("Access-Control-Allow-Origin", origin)
            self.send_header("Access-Control-Allow-Credentials", "true")
            self.send_header("Vary", "Origin")

    def _refuse(self, refusal: Refusal) -> None:
        self._skip_body()
        # Not kept alive: after a refusal the client starts afresh.
        self.close_connection = True
        self._reply(refusal.status, refusal.body, {**refusal.headers, "Connection": "close"})

    def _reply(self, status: int, body: dict[str, Any],
               headers: dict[str, str] | None = None) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self._cors()
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


def parse_payloads(body: bytes) -> Payloads:
    """`Payloads` from a request body; Refusal(400) saying what is wrong otherwise."""
    def malformed(reason: str) -> Refusal:
        return Refusal(400, f"not protobuf JSON of Payloads, {PAYLOADS_SHAPE}: {reason}")

    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as err:
        raise malformed(f"the body is not UTF-8 (byte {err.start})") from None
    try:
        document = json.loads(text) if text.strip() else {}
    except (ValueError, RecursionError) as err:  # RecursionError: nested too deep
        raise malformed(f"the body is not JSON ({err})") from None
    if not isinstance(document, dict) or not isinstance(document.get("payloads", []), list):
        raise malformed("expected an object whose 'payloads' is a list")
    for number, payload in enumerate(document.get("payloads", [])):
        check_payload(payload, f"payload {number}", malformed)
    try:
        return json_format.ParseDict(document, Payloads())
    except json_format.ParseError as err:
        raise malformed(str(err)) from None


def check_payload(payload: Any, where: str, malformed: Callable[[str], Refusal]) -> None:
    """Refuses a payload whose bytes are not base64: protobuf's parser would take
    them, decode what it can and pass on garbage."""
    if not isinstance(payload, dict):
        raise malformed(f"{where} is not an object")
    metadata = payload.get("metadata", {})
    if not isinstance(metadata, dict):
        raise malformed(f"{where}: 'metadata' is not an object")
    fields = [("data", payload.get("data", ""))] + [
        (f"metadata {name!r}", value) for name, value in metadata.items()]
    for field, value in fields:
        if not is_base64(value):
            raise malformed(f"{where}: {field} is not base64")


def is_base64(value: Any) -> bool:
    """Base64 as protobuf JSON writes bytes: standard or URL-safe alphabet, padding
    optional."""
    if not isinstance(value, str):
        return False
    standard = value.replace("-", "+").replace("_", "/")
    try:
        base64.b64decode(standard + "=" * (-len(standard) % 4), validate=True)
    except (binascii.Error, ValueError):
        return False
    return True


def run_codec(apply: Callable[[Sequence[Payload]], list[Payload]],
              payloads: Sequence[Payload]) -> list[Payload]:
    """The codec over the payloads; Refusal(400) naming what could not be decrypted."""
    try:
        return apply(payloads)
    except UndecryptablePayload as err:
        raise Refusal(400, str(err.message), key_id=err.key_id) from None
    except (ValueError, DecodeError) as err:
        # AES-GCM refuses a nonce cut short before it checks anything; protobuf a
        # decrypted payload that is not one.
        raise Refusal(400, f"a payload marked as encrypted is not ciphertext this server "
                           f"can read ({err})") from None


def make_server(codec: EncryptionCodec, host: str, port: int, origins: Iterable[str], *,
                token: str | None = None, allowed_hosts: Iterable[str] = (),
                allow_encode: bool = False, tls: ssl.SSLContext | None = None) -> CodecServer:
    """A listening codec server (port 0: a free one); the caller runs `serve_forever`.
    CodecServerError when it would listen beyond loopback without a token."""
    return CodecServer((host, port), codec, origins, token=token,
                       allowed_hosts=allowed_hosts, allow_encode=allow_encode, tls=tls)


def _codec_from_env() -> EncryptionCodec:
    try:
        codec = EncryptionCodec.from_env()
    except EncryptionKeyError as err:
        raise UsageError(str(err)) from None
    if codec is None:
        raise UsageError(f"set {KEY_ENV} (and {OLD_KEYS_ENV} for older keys) as the workers "
                         "have them: the codec server decrypts with the same keys")
    return codec


def _token_from(args: argparse.Namespace) -> str | None:
    if args.token is not None:
        return check_token(args.token, "--token")
    text = os.environ.get(TOKEN_ENV, "").strip()
    return check_token(text, TOKEN_ENV) if text else None


async def serve(args: argparse.Namespace) -> int:
    codec = _codec_from_env()
    origins = args.origin or [Settings.from_env().ui_url]
    try:
        token = _token_from(args)
        server = make_server(codec, args.host, args.port, origins, token=token,
                             allowed_hosts=args.allowed_host or (),
                             allow_encode=args.allow_encode,
                             tls=tls_context(args.tls_cert, args.tls_key))
    except CodecServerError as err:
        raise UsageError(str(err)) from None
    except OSError as err:
        raise UsageError(f"cannot listen on {args.host}:{args.port}: {err.strerror}") from None
    print(f"codec server at {server.url} for {', '.join(origins)}\n"
          f"in the Web UI: Settings -> Codec Server -> {server.url}\n"
          f"bearer token: {'required' if token else 'off (loopback only)'}; "
          f"/encode: {'on' if args.allow_encode else 'off (--allow-encode)'}", flush=True)
    if token and not server.loopback and server.tls is None:
        print("warning: the token crosses the network in clear; give --tls-cert and "
              "--tls-key, or put an HTTPS proxy in front", file=sys.stderr, flush=True)
    # The standard library's threaded server, not aiohttp: a handful of requests from
    # one browser need no framework, and workers should not install one for this.
    thread = threading.Thread(target=server.serve_forever, name="codec-server", daemon=True)
    thread.start()
    try:
        await asyncio.to_thread(thread.join)
    finally:
        if thread.is_alive():  # on Ctrl-C; `shutdown` would wait forever for a dead loop
            server.shutdown()
        server.server_close()
    return 0
