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
