"""Child processes in tests: Ctrl-C reaches them, and none outlives its test.

A test run started as a background job (`make test &`) inherits SIGINT ignored, and
so would its children: `spawn` gives each child the default SIGINT, so a test that
stops one with Ctrl-C behaves the same either way. `ended` (for a `finally`) and
`stop` end a child whatever happened: the signal asked for, then SIGTERM, then SIGKILL.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
from typing import Any

Process = asyncio.subprocess.Process

# How long a child gets to stop on each signal before the next, harder one.
GRACE_S = 30.0
TERMINATE_GRACE_S = 5.0


def _default_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)


async def spawn(*argv: str, **options: Any) -> Process:
    """`asyncio.create_subprocess_exec(*argv, **options)`, the child's SIGINT its default."""
    return await asyncio.create_subprocess_exec(*argv, preexec_fn=_default_sigint, **options)


async def stop(process: Process, sig: int = signal.SIGTERM,
               grace: float = GRACE_S) -> tuple[bytes, bytes]:
    """Ask the child to stop with `sig` and return what it wrote; a child still there
    after `grace` seconds is terminated, then killed (its output is then lost)."""
    if process.returncode is None:
        with contextlib.suppress(ProcessLookupError):
            process.send_signal(sig)
    try:
        out, err = await asyncio.wait_for(process.communicate(), grace)
    except TimeoutError:
        await ended(process)
        return b"", b""
    return out or b"", err or b""


async def ended(process: Process) -> None:
    """The child is gone when this returns: SIGTERM, then SIGKILL if it lingers."""
    if process.returncode is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        process.terminate()
    try:
        await asyncio.wait_for(process.wait(), TERMINATE_GRACE_S)
    except TimeoutError:
        with contextlib.suppress(ProcessLookupError):
            process.kill()
        await process.wait()
