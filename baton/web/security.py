"""Who may talk to `serve`: a bearer token beyond loopback, CORS only when asked for.

`serve` refuses to bind anything but a loopback address without BATON_HTTP_TOKEN
(`token_problem`); with a token set, every API request must carry
`Authorization: Bearer <token>`, compared in constant time. The console's static
files carry no data and need no token (the page asks for it and sends it).
"""

from __future__ import annotations

import hmac
import ipaddress
import json
from collections.abc import Sequence
from urllib.parse import urlparse

from starlette.types import ASGIApp, Receive, Scope, Send

TOKEN_ENV = "BATON_HTTP_TOKEN"
# What needs the token: everything but the console's own files.
PROTECTED_PREFIX = "/api/"


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False  # a name: it may resolve to anything


def token_problem(host: str, token: str | None) -> str | None:
    """Why `serve` must not start with these settings, in one line; None when it may."""
    if token is not None and len(token) < 16:
        return f"{TOKEN_ENV} is too short ({len(token)} characters); use at least 16"
    if token is None and not is_loopback(host):
        return (f"refusing to listen on {host} without a token: set {TOKEN_ENV} (clients "
                "send `Authorization: Bearer <token>`), or bind 127.0.0.1")
    return None


def _host_name(host_header: str) -> str:
    """The name in a Host header, without its port ("[::1]:8765" -> "::1")."""
    if host_header.startswith("["):
        return host_header[1:].partition("]")[0]
    return host_header.rpartition(":")[0] if host_header.count(":") == 1 else host_header


class OtherPagesRefused:
    """ASGI middleware: other web pages in the operator's browser cannot drive the API.

    - With `loopback_only` (`serve` on 127.0.0.1 without a token), a request naming
      any host but a loopback one is refused: a page that points its own domain at
      127.0.0.1 (DNS rebinding) sends its own name.
    - A POST whose `Origin` is neither this server nor one of `cors_origins` is
      refused: a cross-site form or `text/plain` fetch needs no CORS preflight, so
      CORS alone would let it start runs and sign decisions with the server's key.
    Clients that are not browsers send no Origin and are unaffected.
    """

    def __init__(self, app: ASGIApp, *, loopback_only: bool,
                 cors_origins: Sequence[str] = ()) -> None:
        self.app = app
        self.loopback_only = loopback_only
        self.cors_origins = {o.rstrip("/") for o in cors_origins}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and (problem := self._problem(scope)) is not None:
            body = json.dumps({"error": {"status": 403, "message": problem}}).encode()
            await send({"type": "http.response.start", "status": 403,
                        "headers": [(b"content-type", b"application/json")]})
            await send({"type": "http.response.body", "body": body})
            return
        await self.app(scope, receive, send)

    def _problem(self, scope: Scope) -> str | None:
        headers = {k.decode("latin-1"): v.decode("latin-1")
                   for k, v in scope.get("headers", [])}
        host = headers.get("host", "")
        if self.loopback_only and not is_loopback(_host_name(host)):
            return (f"host {host!r} is not served: this console listens on loopback "
                    "without a token; open it as http://127.0.0.1:<port>/")
        origin = headers.get("origin")
        # The origin's host, not its scheme: behind a TLS proxy the page is https and
        # the request reaching this server is http.
        if (scope["method"] == "POST" and origin is not None
                and urlparse(origin).netloc != host
                and origin.rstrip("/") not in self.cors_origins):
            return (f"a POST from origin {origin!r} is refused: only this console's own "
                    "pages and --cors-origin origins may change runs")
        return None


class BearerToken:
    """ASGI middleware: API requests without the right bearer token get a 401 JSON error."""

    def __init__(self, app: ASGIApp, token: str | None) -> None:
        self.app = app
        self.token = token.encode() if token else None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (self.token is None or scope["type"] != "http"
                or not scope["path"].startswith(PROTECTED_PREFIX)
                or scope["method"] == "OPTIONS"  # CORS preflights carry no credentials
                or self._authorized(scope)):
            await self.app(scope, receive, send)
            return
        body = json.dumps({"error": {"status": 401, "message": (
            "missing or wrong bearer token: send `Authorization: Bearer <token>` "
            f"with the token the server was started with ({TOKEN_ENV})")}}).encode()
        await send({"type": "http.response.start", "status": 401, "headers": [
            (b"content-type", b"application/json"),
            (b"www-authenticate", b'Bearer realm="baton"')]})
        await send({"type": "http.response.body", "body": body})

    def _authorized(self, scope: Scope) -> bool:
        assert self.token is not None
        for name, value in scope.get("headers", []):
            if name == b"authorization":
                scheme, _, given = value.partition(b" ")
                return scheme.lower() == b"bearer" and hmac.compare_digest(given.strip(),
                                                                           self.token)
        return False
