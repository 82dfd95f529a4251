"""What every starter command shares: the usage error, connecting, flags, JSON output.

Each group of commands lives in its own module under baton/cli/ with a
`register(sub, common)` function that adds its subcommands and sets `handler`, an
async function taking the parsed arguments and returning the exit status. `common`
holds the flags every command takes (`--json`); a command that starts runs adds
the groups it uses (`catalogue_flags`, `limit_flags`, `start_flags`), so each
command's `--help` lists only flags it acts on.
"""

from __future__ import annotations

import argparse
import json
import re
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from temporalio.client import Client

from baton.runtime.client import BatonClient
from baton.runtime.temporal import Settings, connect, data_converter
from baton.telemetry.observability import check_tracing_config

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


async def baton_client(settings: Settings | None = None) -> BatonClient:
    """A BatonClient connected as `connect_or_explain` connects (UsageError if it cannot)."""
    settings = settings or Settings.from_env()
    return BatonClient(await connect_or_explain(settings), settings=settings)


def print_json(value: Any) -> None:
    print(json.dumps(value, indent=2, default=str))


def output_flags() -> argparse.ArgumentParser:
    """The flag every command takes."""
    flags = argparse.ArgumentParser(add_help=False)
    flags.add_argument("--json", action="store_true", help="print JSON instead of text")
    return flags


def catalogue_flags() -> argparse.ArgumentParser:
    """Which agents and teams a command sees, and the model they run on."""
    flags = argparse.ArgumentParser(add_help=False)
    flags.add_argument("--model", metavar="PROVIDER:MODEL",
                       help="run every agent on this model (recorded in the run's input)")
    flags.add_argument("--catalogue", metavar="FILE",
                       help="agent catalogue TOML (default: the packaged one)")
    flags.add_argument("--app", metavar="MODULE|FILE.py", action="append", default=[],
                       help="your module (my_app, pkg.my_app) or file (./my_app.py) of "
                            "@baton.tool functions, agents and teams (repeatable); without "
                            "--catalogue, its agents and teams are the catalogue")
    return flags


def limit_flags() -> argparse.ArgumentParser:
    """A run's budget and deadline, and the offline models' chaos."""
    flags = argparse.ArgumentParser(add_help=False)
    limits = flags.add_argument_group("budget (per run; default: the catalogue's [budget])")
    limits.add_argument("--budget-tokens", type=positive(int), metavar="N")
    limits.add_argument("--budget-calls", type=positive(int), metavar="N")
    limits.add_argument("--budget-usd", type=positive(float), metavar="USD")
    limits.add_argument("--budget-tool-calls", type=positive(int), metavar="N")
    limits.add_argument("--deadline", type=positive(float), metavar="SECONDS",
                        help="whole-run deadline; the server enforces it even without a worker")
    chaos = flags.add_argument_group("chaos (offline models only)")
    chaos.add_argument("--chaos", type=fraction, metavar="RATE", default=0.0,
                       help="chance that a model call misbehaves: half fail, 30%% return "
                            "malformed output, 20%% are judge rejections")
    chaos.add_argument("--seed", type=int, default=0, help="chaos seed (same seed, same run)")
    chaos.add_argument("--latency", type=positive(float), metavar="SECONDS",
                       help="simulated latency of every offline call")
    return flags


def start_flags() -> argparse.ArgumentParser:
    """How a one-off run is started and followed."""
    flags = argparse.ArgumentParser(add_help=False)
    flags.add_argument("--no-wait", action="store_true",
                       help="print the workflow id and link, do not wait for the result")
    flags.add_argument("--follow", action="store_true",
                       help="with --no-wait: watch the run as it happens (see `watch`)")
    flags.add_argument("--stream", action="store_true",
                       help="print the answer as the models write it (`watch --tokens` "
                            "shows it again)")
    flags.add_argument("--item", metavar="TEXT", action="append", dest="items",
                       help="an input of a map fan-out (repeatable)")
    return flags


def positive(kind: type[int] | type[float]) -> Callable[[str], float]:
    """An argparse type: a number of `kind` greater than 0."""

    def parse(text: str) -> float:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a {kind.__name__}") from None
        if value <= 0:
            raise argparse.ArgumentTypeError(f"{text!r}: must be greater than 0")
        return value
    return parse


def fraction(text: str) -> float:
    """An argparse type: a rate from 0 to 1."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not 0 <= value <= 1:
        raise argparse.ArgumentTypeError(f"{text!r}: a rate is between 0 and 1")
    return value


def unknown_member(kind: str, name: str, known: str, apps: list[str]) -> UsageError:
    """An "unknown team" error naming what is known and, without --app, where `name` may
    be defined."""
    if apps:
        return UsageError(f"unknown {kind} {name!r}; {known}")
    hint = " (your own are found with --app MODULE or --app ./file.py"
    if files := files_defining(name):
        hint += f"; {name!r} is defined in {', '.join(files)}: try --app {files[0]}"
    return UsageError(f"unknown {kind} {name!r}; {known}{hint})")


# How many Python files "unknown team" reads looking for the name (it must stay instant).
_MAX_FILES_READ = 200
_MAX_FILE_BYTES = 1_000_000


def files_defining(name: str) -> list[str]:
    """Python files in the current directory (and one level down) that define an agent,
    team or flow called `name`: the --app a user may have forgotten (tests are no apps)."""
    quoted = rf"""["']{re.escape(name)}["']"""
    definition = re.compile(
        rf"\b(?:Agent|Triage|FanOut|Coordinator|Map|Supervisor|Pipeline)\(\s*{quoted}"
        rf"|\bname\s*=\s*{quoted}"
        rf"|@(?:baton\.)?flow\b[^\n]*\n(?:@[^\n]*\n)*(?:async\s+)?def\s+{re.escape(name)}\(")
    found = []
    candidates = [*sorted(Path().glob("*.py")), *sorted(Path().glob("[!._]*/*.py"))]
    apps = [p for p in candidates if not p.name.startswith("test_") and p.name != "conftest.py"]
    for path in apps[:_MAX_FILES_READ]:
        try:
            if path.stat().st_size > _MAX_FILE_BYTES:
                continue
            text = path.read_text(errors="replace")
        except OSError:
            continue
        if "baton" in text and definition.search(text):
            found.append(f"./{path.as_posix()}")
    return found
