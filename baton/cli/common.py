"""What every starter command shares: the usage error, connecting, and JSON output.

Each group of commands lives in its own module under baton/cli/ with a
`register(sub, common)` function that adds its subcommands and sets `handler`, an
async function taking the parsed arguments and returning the exit status.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Awaitable, Callable
from typing import Any

from temporalio.client import Client

from baton.observability import check_tracing_config
from baton.temporal import Settings, connect, data_converter

# An async command: parsed arguments in, exit status out.
Handler = Callable[[argparse.Namespace], Awaitable[int]]


class UsageError(Exception):
    """Bad input from the user: printed as one message, exit status 2, nothing changed."""


async def connect_or_explain(settings: Settings | None = None) -> Client:
    settings = settings or Settings.from_env()
    try:
        settings.tls()
        check_tracing_config()
        data_converter()  # a bad BATON_ENCRYPTION_KEY is the user's to fix, not a lost server
    except ValueError as err:
        raise UsageError(str(err)) from None
    try:
        return await connect(settings)
    except RuntimeError as err:
        raise UsageError(
            f"cannot reach Temporal at {settings.address} (namespace {settings.namespace}): "
            f"{err}\nStart the embedded server with `make server`, or set TEMPORAL_ADDRESS."
        ) from None


def print_json(value: Any) -> None:
    print(json.dumps(value, indent=2, default=str))
