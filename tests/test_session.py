"""Conversations that last (workflows/session.py, baton/runtime/sessions.py, baton/cli/chat.py):
turns as updates, memory compressed and carried across continue-as-new, sticky triage,
refusals that leave the session unchanged, worker restarts, idle ends, replay."""

from __future__ import annotations

import asyncio
import json
import os
import sys
import uuid
from typing import Any

import pytest
from temporalio.client import Client, WorkflowHistory, WorkflowUpdateFailedError
from temporalio.testing import WorkflowEnvironment
from temporalio.workflow import NondeterminismError

from baton.core.model_io import Chaos
from baton.core.runs import RunOptions
from baton.core.session_io import (
    SessionLimits,
    SessionMemory,
    SessionState,
    SessionSummary,
    Turn,
    TurnAnswer,
    TurnRequest,
    context,
    fold,
    session_workflow_id,
)
from baton.define.catalogue import load_catalogue
from baton.runtime.sessions import SessionError, TurnFailed, end_session, send_turn, session_state
from baton.runtime.temporal import build_replayer
from tests.helpers import activity_inputs, fast_catalogue, worker
from tests.processes import ended
from tests.test_starter import ROOT, run_starter, starter

FIRST = "My invoice shows the wrong amount"


def new_id() -> str:
    return f"t-{uuid.uuid4().hex[:8]}"


async def say(client: Client, task_queue: str, session_id: str, message: str,
              team: str = "support_desk", **limits: Any) -> TurnAnswer:
    answer = await send_turn(client, session_id, team, message, load_catalogue(), task_queue,
                             limits=SessionLimits(**limits))
    return answer


async def executions(client: Client, workflow_id: str) -> list[WorkflowHistory]:
    """Every run of a workflow id's continue-as-new chain, oldest first."""
    runs = [w async for w in client.list_workflows(f"WorkflowId = '{workflow_id}'")]
    runs.sort(key=lambda w: w.start_time)
    return [await client.get_workflow_handle(workflow_id, run_id=w.run_id).fetch_history()
            for w in runs]


# --- memory (pure) ------------------------------------------------------------------

def turns(count: int, size: int = 50) -> list[Turn]:
    return [Turn(number=n, user=f"question {n} " + "x" * size, answer=f"answer {n}",
                 handled_by="billing") for n in range(1, count + 1)]


def test_fold_keeps_recent_turns_verbatim_and_a_bounded_summary() -> None:
    limits = SessionLimits(keep_recent_turns=3, turn_chars=40, summary_chars=400)
    memory = fold(SessionMemory(recent=turns(12), turns=12), limits)
    assert [t.number for t in memory.recent] == [10, 11, 12]
    assert memory.folded_turns == 9
    assert sum(len(line) + 1 for line in memory.summary) <= 400
    assert memory.summary[0].startswith("user: question 1 ")  # the opening request stays
    assert memory.dropped_turns > 0
    assert all(len(line) <= len("billing: ") + 40 for line in memory.summary)
    messages = context(memory, "next")
    assert messages[0].content.startswith("<conversation_history>\nSummary of turns 1-9")
    assert f"[{memory.dropped_turns} turns after the first omitted]" in messages[0].content
    assert [m.role for m in messages[1:]] == ["user", "assistant"] * 3 + ["user"]
    assert messages[2].agent == "billing" and messages[-1].content == "next"


def test_older_turns_lose_detail_before_any_turn_is_dropped() -> None:
    limits = SessionLimits(keep_recent_turns=3, turn_chars=100, old_turn_chars=20,
                           summary_chars=600)
    memory = fold(SessionMemory(recent=turns(12, size=200), turns=12), limits)
    assert memory.dropped_turns == 0 and memory.folded_turns == 9
    opening, *middle, newest = [line for line in memory.summary if line.startswith("user")]
    assert len(opening) == len(newest) == len("user: ") + 100  # the frame and the latest
    assert all(len(line) == len("user: ") + 20 for line in middle)


def test_without_compression_every_turn_stays_verbatim() -> None:
    memory = fold(SessionMemory(recent=turns(12), turns=12), SessionLimits(compress=False))
    assert len(memory.recent) == 12 and memory.summary == []
    assert len(context(memory, "next")) == 25


def test_long_answers_fold_sooner() -> None:
    limits = SessionLimits(keep_recent_turns=10, keep_recent_chars=1_000)
    memory = fold(SessionMemory(recent=turns(5, size=400), turns=5), limits)
    assert len(memory.recent) == 2 and memory.folded_turns == 3


# --- sessions on a real server --------------------------------------------------------

async def test_twenty_turns_across_continue_as_new_stay_consistent(
        env: WorkflowEnvironment, task_queue: str) -> None:
    session_id = new_id()
    limits = {"continue_after_turns": 7, "keep_recent_turns": 3, "summary_chars": 8_000}
    async with worker(env.client, task_queue):
        answers = [await say(env.client, task_queue, session_id, FIRST, **limits)]
        for n in range(2, 21):
            answers.append(await say(env.client, task_queue, session_id,
                                     f"follow-up number {n} on the amount", **limits))
        state = await session_state(env.client, session_id)
        child = env.client.get_workflow_handle(f"{session_workflow_id(session_id)}/turn-20")
        [last_request] = await activity_inputs(child)
    assert [a.turn for a in answers] == list(range(1, 21))
    assert {a.handled_by for a in answers} == {"billing"}
    for n, answer in enumerate(answers[1:], start=2):
        # The specialist saw every earlier turn (verbatim or summarised), across runs.
        plural = "s" if n > 2 else ""
        assert f"I see {n - 1} earlier user turn{plural}; the conversation began with " \
               f'"{FIRST}"' in answer.answer, (n, answer.answer)
        assert f"follow-up number {n} on the amount" in answer.answer
    assert state.run == 3 and state.turns == 20  # continued as new after turns 7 and 14
    assert state.folded_turns == 17 and [t.number for t in state.recent] == [18, 19, 20]
    # The 20th turn's input: one summary message, three turns verbatim, the new message.
    assert len(last_request["messages"]) == 1 + 3 * 2 + 1
    assert last_request["messages"][0]["content"].startswith("<conversation_history>")
    assert state.usage["billing"].calls == 20 and state.usage["router"].calls == 20


async def test_triage_keeps_the_specialist_until_the_router_names_another(
        env: WorkflowEnvironment, task_queue: str) -> None:
    session_id = new_id()
    script = [
        (FIRST, "billing", ""),
        ("ok, and when will I hear back?", "billing", "stays with billing"),
        ("The API returns error 500 when I upload", "technical",
         "moved from billing to technical"),
        ("thanks, that helps", "technical", "stays with technical"),
        ("I was charged twice for my subscription", "billing",
         "moved from technical to billing"),
    ]
    async with worker(env.client, task_queue):
        for message, expected, reason in script:
            answer = await say(env.client, task_queue, session_id, message)
            assert answer.handled_by == expected, (message, answer.route_reason)
            assert answer.route_reason.startswith(reason)
            assert answer.status == "ok" and f"{expected}:" in answer.answer
        state = await session_state(env.client, session_id)
    assert state.specialist == "billing"
    assert state.usage["router"].calls == 5


async def test_refused_turns_leave_the_session_unchanged(env: WorkflowEnvironment,
                                                        task_queue: str) -> None:
    session_id = new_id()
    async with worker(env.client, task_queue):
        await say(env.client, task_queue, session_id, FIRST)
        handle = env.client.get_workflow_handle(session_workflow_id(session_id),
                                                result_type=SessionSummary)
        with pytest.raises(WorkflowUpdateFailedError) as refused:  # the update's validator
            await handle.execute_update("turn", TurnRequest(message="   "),
                                        result_type=TurnAnswer)
        assert "a turn needs a non-empty message" in str(refused.value.cause)
        with pytest.raises(SessionError, match="a turn needs a non-empty message"):
            await say(env.client, task_queue, session_id, "")
        with pytest.raises(SessionError, match=r"is a conversation with 'support_desk', "
                                               r"not 'research_panel'; use another session"):
            await say(env.client, task_queue, session_id, "Rust or Go?", team="research_panel")
        with pytest.raises(SessionError, match="session id 'no spaces' must be"):
            await say(env.client, task_queue, "no spaces", "hi")
        state = await session_state(env.client, session_id)
        assert state.turns == 1 and state.status == "waiting"
        summary = await end_session(env.client, session_id, "done")
        assert (summary.turns, summary.ended_by, summary.reason) == (1, "user", "done")
        with pytest.raises(SessionError, match=f"session '{session_id}' has ended"):
            await say(env.client, task_queue, session_id, "one more thing")
        with pytest.raises(SessionError, match="has ended"):
            await end_session(env.client, session_id)
        with pytest.raises(SessionError, match="no session 'ghost-1'"):
            await end_session(env.client, "ghost-1")
        result = await asyncio.wait_for(handle.result(), 30)
    assert result.turns == 1
    history = await handle.fetch_history()
    accepted = [e for e in history.events
                if e.HasField("workflow_execution_update_accepted_event_attributes")]
    assert len(accepted) == 2  # the one turn and the end: refusals left no trace


async def test_concurrent_turns_are_answered_in_order_across_continue_as_new(
        env: WorkflowEnvironment, task_queue: str) -> None:
    session_id = new_id()
    async with worker(env.client, task_queue):
        answers = await asyncio.gather(*(
            say(env.client, task_queue, session_id, f"invoice question {i}",
                continue_after_turns=2) for i in range(6)))
        state = await session_state(env.client, session_id)
    # One at a time: each turn saw every turn answered before it.
    assert sorted(a.turn for a in answers) == list(range(1, 7))
    for answer in [a for a in answers if a.turn > 1]:
        assert f"I see {answer.turn - 1} earlier user turn" in answer.answer
    assert state.turns == 6 and state.run >= 2


async def test_a_failed_turn_is_not_remembered_but_its_spending_is(
        env: WorkflowEnvironment, task_queue: str) -> None:
    session_id = new_id()
    chaos = RunOptions(chaos=Chaos(failure_rate=1.0))
    async with worker(env.client, task_queue):
        with pytest.raises(TurnFailed, match="agent 'general' failed") as failed:
            await send_turn(env.client, session_id, "support_desk", FIRST, fast_catalogue(),
                            task_queue, options=chaos)
        state = await session_state(env.client, session_id)
    assert failed.value.type == "AgentFailed"
    assert state.turns == 0 and state.recent == [] and state.status == "waiting"
    assert state.usage["router"].calls == 2 and state.usage["general"].calls == 2


async def test_team_guardrails_apply_to_every_turn(env: WorkflowEnvironment,
                                                  task_queue: str) -> None:
    session_id = new_id()
    async with worker(env.client, task_queue):
        await say(env.client, task_queue, session_id, FIRST, team="safe_desk")
        blocked = await say(env.client, task_queue, session_id,
                            "Refund me, my card is 4111 1111 1111 1111", team="safe_desk")
        after = await say(env.client, task_queue, session_id, "and when?", team="safe_desk")
    assert blocked.status == "blocked" and blocked.turn == 2
    assert "blocked by guardrail 'pii' on the input: contains a card number" in blocked.answer
    assert "router" not in blocked.usage  # refused before routing
    # The blocked message never entered the conversation.
    assert after.turn == 2 and after.handled_by == "billing"
    assert "I see 1 earlier user turn;" in after.answer


async def test_session_survives_a_worker_restart(env: WorkflowEnvironment,
                                                 task_queue: str) -> None:
    session_id = new_id()
    async with worker(env.client, task_queue):
        await say(env.client, task_queue, session_id, FIRST)
        await say(env.client, task_queue, session_id, "and the second invoice?")
    # A new worker with no cache rebuilds the session from its history.
    async with worker(env.client, task_queue, max_cached_workflows=0):
        answer = await say(env.client, task_queue, session_id, "and the third one?")
    assert answer.turn == 3 and answer.handled_by == "billing"
    assert f'I see 2 earlier user turns; the conversation began with "{FIRST}"' in answer.answer


async def test_idle_session_ends_itself(env: WorkflowEnvironment, task_queue: str) -> None:
    session_id = new_id()
    async with worker(env.client, task_queue):
        await say(env.client, task_queue, session_id, FIRST, idle_timeout_s=1.0)
        handle = env.client.get_workflow_handle(session_workflow_id(session_id),
                                                result_type=SessionSummary)
        summary = await asyncio.wait_for(handle.result(), 30)
        assert summary.ended_by == "idle" and summary.turns == 1
        with pytest.raises(SessionError, match="has ended"):
            await say(env.client, task_queue, session_id, "still there?")


async def test_inline_agents_answer_inside_the_session(env: WorkflowEnvironment,
                                                       task_queue: str) -> None:
    session_id = new_id()
    async with worker(env.client, task_queue):
        for message in ("Hello there", "What did I say first?"):
            answer = await say(env.client, task_queue, session_id, message, team="general",
                               inline_agents=True)
        workflow_id = session_workflow_id(session_id)
        children = [w async for w in env.client.list_workflows(
            f"WorkflowId STARTS_WITH '{workflow_id}/'")]
    assert children == [] and answer.workflow_id == workflow_id
    assert 'I see 1 earlier user turn; the conversation began with "Hello there"' \
        in answer.answer


async def test_a_session_that_continued_as_new_replays(env: WorkflowEnvironment,
                                                       task_queue: str) -> None:
    session_id = new_id()
    async with worker(env.client, task_queue, max_cached_workflows=0,
                      workflow_failure_exception_types=[NondeterminismError]):
        for message in (FIRST, "ok", "The API returns error 500", "thanks", "and the refund?"):
            await say(env.client, task_queue, session_id, message, continue_after_turns=2)
        await end_session(env.client, session_id)
        chain = await executions(env.client, session_workflow_id(session_id))
    assert len(chain) == 3
    replayer = build_replayer()
    for history in chain:
        await replayer.replay_workflow(history)
    carried = json.loads(chain[-1].events[0].workflow_execution_started_event_attributes
                         .input.payloads[0].data)
    assert carried["memory"]["turns"] == 4 and carried["memory"]["run"] == 3
    assert carried["memory"]["specialist"] == "technical"


async def test_state_query_reports_history_size(env: WorkflowEnvironment,
                                                task_queue: str) -> None:
    session_id = new_id()
    async with worker(env.client, task_queue):
        await say(env.client, task_queue, session_id, FIRST)
        first = await session_state(env.client, session_id)
        await say(env.client, task_queue, session_id, "and then?")
        second = await session_state(env.client, session_id)
    assert isinstance(second, SessionState)
    assert 0 < first.history_bytes < second.history_bytes
    assert first.history_events < second.history_events


# --- starter commands -------------------------------------------------------------------

async def test_chat_command_one_turn_json_and_end(env: WorkflowEnvironment,
                                                  task_queue: str) -> None:
    session_id = new_id()
    async with worker(env.client, task_queue):
        code, out, err = await run_starter(env, task_queue, "chat", "support_desk",
                                           "--session", session_id, FIRST)
        assert code == 0, err
        assert "billing · turn 1" in out and f"session: {session_id}" in out
        code, out, err = await run_starter(env, task_queue, "chat", "support_desk",
                                           "--session", session_id, "and when?", "--json")
        assert code == 0, err
        fields = json.loads(out)
        assert fields["turn"] == 2 and fields["handled_by"] == "billing"
        code, out, err = await run_starter(env, task_queue, "chat", "dev_team",
                                           "--session", session_id, "hi")
        assert code == 2 and "is a conversation with 'support_desk'" in err
        code, out, err = await run_starter(env, task_queue, "end", session_id)
        assert code == 0 and f"ended session {session_id} (support_desk) after 2 turns" in out
        code, out, err = await run_starter(env, task_queue, "chat", "support_desk",
                                           "--session", session_id, "hello?")
        assert code == 2 and "has ended" in err and "Traceback" not in err
        code, out, err = await run_starter(env, task_queue, "end", session_id)
        assert code == 2 and "has ended" in err


async def test_interactive_chat(env: WorkflowEnvironment, task_queue: str) -> None:
    session_id = new_id()
    address = env.client.service_client.config.target_host
    async with worker(env.client, task_queue):
        process = await asyncio.create_subprocess_exec(
            sys.executable, "starter.py", "chat", "support_desk", "--session", session_id,
            cwd=ROOT, env={**os.environ, "TEMPORAL_ADDRESS": address,
                           "BATON_TASK_QUEUE": task_queue},
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE)
        try:
            out, err = await asyncio.wait_for(process.communicate(
                f"{FIRST}\n\nand the refund?\n/end\n".encode()), 120)
        finally:
            await ended(process)
    text = out.decode()
    assert process.returncode == 0, err.decode()
    assert "billing · turn 1" in text and "billing · turn 2" in text
    assert f"ended session {session_id} after 2 turns" in text


@pytest.mark.parametrize(("args", "expected"), [
    (["chat", "ghost", "hi"], "unknown team or agent 'ghost'"),
    (["chat", "support_desk", "  "], "the message is empty"),
    (["chat", "support_desk", "--session", "bad id", "hi"], "session id 'bad id' must be"),
    (["chat", "support_desk", "--idle-timeout", "0", "hi"], "must be greater than 0"),
])
def test_chat_usage_errors_exit_2_before_connecting(args: list[str], expected: str) -> None:
    result = starter(*args)
    assert result.returncode == 2
    assert expected in result.stderr and "Traceback" not in result.stderr
