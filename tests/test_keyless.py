"""Clients without the key: every starter command that reads what an encrypting worker
wrote says, in one line naming BATON_ENCRYPTION_KEY, what is missing (exit status 2),
never a traceback; `pending` lists the runs it can read and counts those it cannot."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest
from temporalio.testing import WorkflowEnvironment

import baton
from baton.cli import starter
from baton.core.runs import TriageResult
from baton.runtime.approvals import pending_in_tree
from baton.runtime.codec import KEY_ENV, REQUIRE_ENV
from tests.helpers import finish, start, worker
from tests.test_codec import KEY_A, KEY_B, MARKER, PROMPT, encrypted_client, use_keys
from tests.test_integrity import CLERK, waiting_refund
from tests.test_starter import run_starter


@dataclass
class Namespace:
    """Runs a keyless client finds: encrypted ones (key A) and one in plain text."""

    address: str
    encrypted_queue: str  # a worker with key A, refusing plain payloads (the default)
    waiting: str  # an encrypted run waiting for an approval
    finished: str  # an encrypted run that has ended
    plain_waiting: str  # a run of a worker without a key, waiting for an approval


@pytest.fixture(scope="module")
async def namespace(env: WorkflowEnvironment) -> AsyncIterator[Namespace]:
    plain_queue, encrypted_queue = (f"keyless-{uuid.uuid4().hex[:8]}" for _ in range(2))
    with pytest.MonkeyPatch.context() as mp:
        use_keys(mp, None)
        mp.delenv(REQUIRE_ENV, raising=False)
        plain = await encrypted_client(env)  # no key: a plain converter
        async with worker(plain, plain_queue, tools=CLERK.tools()):
            plain_waiting, _ = await waiting_refund(plain, plain_queue, "P-1")
            use_keys(mp, KEY_A)
            client = await encrypted_client(env)
            async with worker(client, encrypted_queue, tools=CLERK.tools()):
                waiting, _ = await waiting_refund(client, encrypted_queue, "K-1")
                done = await start(client, encrypted_queue, "support_desk", PROMPT,
                                   result_type=TriageResult)
                await finish(done)
                yield Namespace(env.client.service_client.config.target_host,
                                encrypted_queue, waiting, done.id, plain_waiting)
                await baton.approve(waiting, client=client)
            use_keys(mp, None)
            await baton.approve(plain_waiting, client=plain)


def as_client(monkeypatch: pytest.MonkeyPatch, key: str | None, ns: Namespace) -> None:
    """This process as a client without key A: none at all, or another one."""
    use_keys(monkeypatch, key)
    monkeypatch.setenv("TEMPORAL_ADDRESS", ns.address)
    monkeypatch.setenv("BATON_TASK_QUEUE", ns.encrypted_queue)


def one_line_naming_the_key(err: str) -> str:
    assert "Traceback" not in err, err
    [line] = err.strip().splitlines()
    assert line.startswith("error: ") and KEY_ENV in line, line
    return line


async def starter_main(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    """starter.main in this process (as `starter.py` runs it, less the process exit)."""
    code = await asyncio.to_thread(starter.main, list(argv))
    out, err = capsys.readouterr()
    return code, out, err


KEYS = pytest.mark.parametrize("key", [None, KEY_B], ids=["no-key", "another-key"])


@KEYS
async def test_approve_and_reject_say_which_key_is_missing(
        env: WorkflowEnvironment, namespace: Namespace, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str], key: str | None) -> None:
    as_client(monkeypatch, key, namespace)
    for argv in (["approve", namespace.waiting], ["reject", namespace.waiting, "--reason", "no"]):
        code, _, err = await starter_main(capsys, *argv)
        assert code == 2, err
        one_line_naming_the_key(err)
    use_keys(monkeypatch, KEY_A)  # nothing was decided
    assert await pending_in_tree(await encrypted_client(env), namespace.waiting)


@KEYS
async def test_pending_lists_what_it_can_read_and_counts_the_rest(
        namespace: Namespace, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str], key: str | None) -> None:
    as_client(monkeypatch, key, namespace)
    code, out, err = await starter_main(capsys, "pending")
    assert code == 2  # the listing is incomplete
    line = one_line_naming_the_key(err)
    assert line.startswith("error: skipped ") and "waiting run(s) this client cannot " \
        "decrypt" in line and namespace.waiting in line
    assert namespace.plain_waiting in out and "pay_refund" in out  # one run hides no other
    assert namespace.waiting not in out


@KEYS
async def test_watch_and_breakers_say_which_key_is_missing(
        namespace: Namespace, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str], key: str | None) -> None:
    as_client(monkeypatch, key, namespace)
    for argv in (["watch", namespace.finished, "--from-start"], ["breakers"],
                 ["replay", namespace.finished]):
        code, _, err = await asyncio.wait_for(starter_main(capsys, *argv), 60)
        assert code == 2, (argv, err)
        one_line_naming_the_key(err)


@KEYS
async def test_a_run_or_session_started_without_the_key_says_so(
        namespace: Namespace, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str], key: str | None) -> None:
    """Without a key the worker refuses the plain input; with another key it cannot
    read it: either way the run fails at once and the starter names the key."""
    as_client(monkeypatch, key, namespace)
    session = f"keyless-{uuid.uuid4().hex[:8]}"
    for argv in (["triage", PROMPT], ["chat", "support_desk", "--session", session, PROMPT]):
        code, out, err = await starter_main(capsys, *argv)
        assert code == 2, err
        line = one_line_naming_the_key(err)
        assert ("refused this client's plain ones" if key is None else
                "the workers do not hold this client's key") in line
        assert MARKER not in out + err


async def test_commands_that_decode_nothing_still_work(
        namespace: Namespace, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    """`list` reads search attributes and `history` exports ciphertext: no key needed."""
    as_client(monkeypatch, None, namespace)
    code, out, err = await starter_main(capsys, "list", "--all", "--limit", "200")
    assert code == 0, err
    assert namespace.finished in out
    code, out, err = await starter_main(capsys, "history", namespace.finished)
    assert code == 0, err
    assert "binary/encrypted" in out or "YmluYXJ5L2VuY3J5cHRlZA" in out
    assert MARKER not in out


@pytest.mark.parametrize("argv", [["approve"], ["pending"], ["triage", PROMPT]],
                         ids=["approve", "pending", "triage"])
async def test_the_starter_process_exits_2_without_a_crash(
        env: WorkflowEnvironment, namespace: Namespace, monkeypatch: pytest.MonkeyPatch,
        argv: list[str]) -> None:
    """As a process: the exit status is the starter's, not an abort at interpreter exit."""
    use_keys(monkeypatch, None)
    if argv == ["approve"]:
        argv = ["approve", namespace.waiting]
    code, _, err = await run_starter(env, namespace.encrypted_queue, *argv)
    assert code == 2, err
    one_line_naming_the_key(err)
