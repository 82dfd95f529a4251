"""Test fixtures: one real Temporal dev server per session, a fresh task queue per test."""

from __future__ import annotations

import atexit
import os
import shutil
import sys
import tempfile
import uuid
from collections.abc import AsyncIterator, Iterator

import pytest
from temporalio.testing import WorkflowEnvironment

from baton.runtime.temporal import start_dev_environment
from tests.fake_llm import FakeLLMServer
from tests.helpers import KEY_ENV

# Payloads stored outside histories (baton/runtime/payload_store.py) go to a directory
# of this session, not the checkout's .temporal/; processes the tests start inherit it.
if "BATON_PAYLOAD_DIR" not in os.environ:
    os.environ["BATON_PAYLOAD_DIR"] = tempfile.mkdtemp(prefix="baton-test-payloads-")
    atexit.register(shutil.rmtree, os.environ["BATON_PAYLOAD_DIR"], ignore_errors=True)


@pytest.fixture(scope="session")
async def env() -> AsyncIterator[WorkflowEnvironment]:
    environment = await start_dev_environment()
    yield environment
    await environment.shutdown()


@pytest.fixture
def task_queue() -> str:
    return f"test-{uuid.uuid4().hex[:10]}"


@pytest.fixture
def fake() -> Iterator[FakeLLMServer]:
    """A local OpenAI/Anthropic wire-format server (tests/fake_llm.py)."""
    with FakeLLMServer() as server:
        yield server


@pytest.fixture
def provider_key(monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv(KEY_ENV, "test-key-123")
    return "test-key-123"


_exit_status: int | None = None


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    global _exit_status
    _exit_status = int(exitstatus)


@pytest.hookimpl(trylast=True)
def pytest_unconfigure(config: pytest.Config) -> None:
    # A process that used a Temporal client aborts at interpreter exit about half the
    # time here (sdk-python issue 300); leave now, with pytest's own status, once
    # every report is written.
    if _exit_status is not None and not os.environ.get("BATON_NORMAL_EXIT"):
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(_exit_status)
