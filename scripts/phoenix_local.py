"""`make traces`: Arize Phoenix with its UI and both OTLP receivers on one host.

Phoenix binds its UI and OTLP/HTTP receiver to PHOENIX_HOST, but its OTLP/gRPC
receiver to every interface: `[::]:PHOENIX_GRPC_PORT` in phoenix/server/grpc_server.py,
with no setting to change it (arize-phoenix 20.26). A local viewer runs without a
login, so anyone on the network could write spans into it. Run with Phoenix's own
interpreter (`.venv/phoenix/bin/python scripts/phoenix_local.py serve`), this script
puts the gRPC receiver on PHOENIX_HOST too (default 127.0.0.1), then hands over to
Phoenix's command line unchanged.
"""

from __future__ import annotations

import os
import sys
from typing import Any

DEFAULT_HOST = "127.0.0.1"
ALL_INTERFACES = ("[::]:", "0.0.0.0:")


def on_host(address: str, host: str) -> str:
    """`address` ("[::]:4317") with its all-interfaces host replaced by `host`;
    any other address unchanged."""
    for everywhere in ALL_INTERFACES:
        if address.startswith(everywhere):
            port = address[len(everywhere):]
            return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    return address


def bind_grpc_to(host: str) -> None:
    """Make every gRPC server created from now on listen on `host` instead of everywhere."""
    # grpc and phoenix live in Phoenix's virtualenv, not Baton's (no stubs there either).
    import grpc.aio  # type: ignore[import-untyped,import-not-found,unused-ignore]

    make_server = grpc.aio.server

    def server(*args: Any, **kwargs: Any) -> Any:
        made = make_server(*args, **kwargs)
        for name in ("add_insecure_port", "add_secure_port"):
            bind = getattr(made, name)

            def rebound(address: str, *rest: Any, _bind: Any = bind) -> Any:
                return _bind(on_host(address, host), *rest)

            setattr(made, name, rebound)
        return made

    grpc.aio.server = server


def main() -> int:
    host = os.environ.get("PHOENIX_HOST") or DEFAULT_HOST
    os.environ["PHOENIX_HOST"] = host  # the UI and the OTLP/HTTP receiver
    bind_grpc_to(host)
    from phoenix.server.main import (  # type: ignore[import-not-found,unused-ignore]
        main as phoenix_main,
    )

    sys.argv = ["phoenix", *sys.argv[1:]]
    status = phoenix_main()
    return status if isinstance(status, int) else 0


if __name__ == "__main__":
    sys.exit(main())
