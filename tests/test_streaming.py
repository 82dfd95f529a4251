"""Token streaming (baton/runtime/streaming.py): text as the models write it, through the offline
model and the real OpenAI and Anthropic SDKs (tests/fake_llm.py streams their wire
formats), retries announced, resumable offsets, a bounded history, the CLI."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import Sequence
from typing import Any

import pytest
from temporalio.api.enums.v1 import EventType
from temporalio.api.history.v1 import HistoryEvent
from temporalio.api.sdk.v1 import WorkflowMetadata
from temporalio.client import Client, WorkflowHandle
from temporalio.testing import WorkflowEnvironment

import baton
from baton.core.model_io import Chaos, Message
from baton.core.runs import PATTERN_WORKFLOWS, RunInput, RunOptions, RunResult
from baton.core.session_io import SessionLimits, session_workflow_id
from baton.core.specs import Catalogue
from baton.define.flows import FlowResult
from baton.runtime.codec import ENCODING
from baton.runtime.sessions import end_session, send_turn
from baton.runtime.streaming import (
    OffsetNotFound,
    RunNotFound,
    StreamEvent,
    text_of,
)
from tests import flow_app
from tests.fake_llm import USAGE, FakeLLMServer, Fault, final
from tests.helpers import catalogue, fake_provider, on_fake, worker
from tests.test_codec import (
    KEY_A,
    MARKER,
    PROMPT,
    encrypted_client,
    stored_bytes,
    use_keys,
)
from tests.test_starter import run_starter


async def start(client: Client, task_queue: str, member: str, prompt: str, *,
                cat: Catalogue | None = None, stream: bool = True,
                latency_s: float = 0.0) -> WorkflowHandle[Any, RunResult]:
    cat = cat or catalogue()
    run = RunInput(member=member, messages=[Message(role="user", content=prompt)],
                   catalogue=cat.closure(member),
                   options=RunOptions(stream=stream, chaos=Chaos(latency_s=latency_s)
                                      if latency_s else None))
    return await client.start_workflow(
        PATTERN_WORKFLOWS[cat.pattern_of(member)], run, task_queue=task_queue,
        id=f"{member}-stream-{uuid.uuid4().hex[:8]}", result_type=RunResult)


async def collect(client: Client, run_id: str, after: int | None = None,
                  limit: int | None = None) -> list[tuple[float, StreamEvent]]:
    """The run's events (at most `limit`), each with when it arrived."""
    got: list[tuple[float, StreamEvent]] = []
    async with asyncio.timeout(60):
        async for event in baton.stream(run_id, client=client, after=after):
            got.append((time.monotonic(), event))
            if limit is not None and len(got) == limit:
                break
    return got


def messages(events: list[StreamEvent]) -> dict[str, list[StreamEvent]]:
    by_id: dict[str, list[StreamEvent]] = {}
    for event in events:
        if message_id := getattr(event, "message_id", None):
            by_id.setdefault(message_id, []).append(event)
    return by_id


async def reassembled(events: list[StreamEvent]) -> dict[str, str]:
    async def feed() -> Any:
        for event in events:
            yield event

    return await text_of(feed())


async def test_offline_text_streams_live_reassembles_exactly_and_resumes(
        env: WorkflowEnvironment, task_queue: str) -> None:
    async with worker(env.client, task_queue):
        handle = await start(env.client, task_queue, "research_panel",
                             "Is durable execution worth it?", latency_s=0.4)
        first = await collect(env.client, handle.id, limit=12)  # then it disconnects
        rest = await collect(env.client, handle.id, after=first[-1][1].offset)
        result = await handle.result()
        whole = [e for _, e in await collect(env.client, handle.id)]
        with pytest.raises(OffsetNotFound, match="ended at"):
            await collect(env.client, handle.id, after=whole[-1].offset + 1)
        with pytest.raises(RunNotFound, match="no run with workflow id 'ghost-run'"):
            await collect(env.client, "ghost-run")
    resumed = [e for _, e in first + rest]
    assert [e.offset for e in resumed] == [e.offset for e in whole]  # nothing lost or twice
    assert resumed == whole
    offsets = [e.offset for e in whole]
    assert offsets == sorted(set(offsets))
    assert whole[-1].kind == "finished" and whole[-1].status == result.status
    assert whole[-1].result["answer"] == result.answer
    # Each call: one start, its deltas, one end; the text is the call's answer.
    texts = await reassembled(whole)
    for events in messages(whole).values():
        kinds = [e.kind for e in events]
        assert kinds[0] == "text_start" and kinds[-1] == "text_end", kinds
        assert set(kinds[1:-1]) == {"text_delta"}
    synthesis = [e for e in whole if e.kind == "text_start" and e.path == ""]
    assert len(synthesis) == 1 and synthesis[0].agent == "synthesizer"
    assert texts[synthesis[0].message_id] == result.answer
    branches = {e.path for e in whole if e.kind == "text_start" and e.path}
    assert branches == {"academic", "industry", "news"}
    assert all(texts[m].startswith("{") for m, evs in messages(whole).items()
               if evs[0].path)  # the branches answer with their contract's JSON
    # The branches' steps join the feed, and the text came while the run went on.
    nested = [e.event for e in whole if e.kind == "step" and e.workflow_id != handle.id]
    assert {"step", "status", "result"} <= {e.kind for e in nested}
    arrived = {id(e): at for at, e in first + rest}
    first_text = next(arrived[id(e)] for _, e in first + rest if e.kind == "text_delta")
    assert arrived[id(resumed[-1])] - first_text > 0.3  # ~0.6 s of writing after it


@pytest.mark.parametrize("kind", ["openai", "anthropic"])
@pytest.mark.usefixtures("provider_key")
async def test_providers_stream_and_a_cut_attempt_is_announced(
        env: WorkflowEnvironment, task_queue: str, fake: FakeLLMServer, kind: str) -> None:
    fake.token_interval_s = 0.01
    # The router hands off; the specialist's first attempt is cut after 4 words.
    fake.fail_next(Fault(), Fault(cut_after=4))
    cat = on_fake(kind, fake)
    async with worker(env.client, task_queue, providers=fake_provider(kind, fake)):
        handle = await start(env.client, task_queue, "support_desk", "Refund my invoice",
                             cat=cat)
        events = [e for _, e in await collect(env.client, handle.id)]
        result = await handle.result()
        outline = await start(env.client, task_queue, "outliner", "Durable agents", cat=cat)
        structured = [e for _, e in await collect(env.client, outline.id)]
        outlined = await outline.result()
    assert all(r.body.get("stream") is True for r in fake.requests)
    if kind == "openai":
        assert fake.requests[0].body["stream_options"] == {"include_usage": True}
    handoff = next(e for e in events if e.kind == "tool_call")
    assert handoff.agent == "router" and handoff.name == "transfer_to_billing"
    texts = await reassembled(events)
    (specialist,) = {e.message_id: e for e in events if e.kind == "text_start"}.values()
    assert specialist.agent == "billing" and specialist.attempt == 2
    assert texts[specialist.message_id] == result.answer
    # The cut attempt's words were announced void before the retry wrote them again.
    theirs = messages(events)[specialist.message_id]
    kinds = [e.kind for e in theirs]
    restarted = kinds.index("attempt_restarted")
    assert kinds[0] == "text_start" and "text_delta" in kinds[:restarted]
    assert kinds[restarted:].count("text_start") == 1 and kinds[-1] == "text_end"
    every_delta = "".join(e.delta for e in theirs if e.kind == "text_delta")
    assert every_delta != result.answer and every_delta.endswith(result.answer)
    end = theirs[-1]
    assert end.kind == "text_end"
    assert (end.usage.input_tokens, end.usage.output_tokens) == (USAGE["input"],
                                                                 USAGE["output"])
    # A structured answer streams as its contract's JSON (Anthropic's comes whole).
    (answer,) = [e for e in structured if e.kind == "text_start"]
    assert answer.contract == "Outline"
    text = (await reassembled(structured))[answer.message_id]
    assert json.loads(text) == json.loads(outlined.answer)


async def test_history_grows_per_batch_not_per_token(
        env: WorkflowEnvironment, task_queue: str, fake: FakeLLMServer,
        provider_key: str) -> None:
    words = " ".join(f"w{i}" for i in range(500))
    fake.token_interval_s = 0.004
    counts, signals = {}, {}
    async with worker(env.client, task_queue, providers=fake_provider("openai", fake)):
        for streamed in (False, True):
            fake.reply_next(final(words))
            handle = await start(env.client, task_queue, "general", "Say 500 words",
                                 cat=on_fake("openai", fake), stream=streamed)
            if streamed:
                texts = await reassembled([e for _, e in await collect(env.client,
                                                                        handle.id)])
                assert list(texts.values()) == [words]
            await handle.result()
            history = (await handle.fetch_history()).events
            counts[streamed] = len(history)
            signals[streamed] = sum(
                e.event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED
                for e in history)
            if not streamed:  # a plain run records nothing of streaming
                scheduled = [e for e in history
                             if e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED]
                request = json.loads(scheduled[0].activity_task_scheduled_event_attributes
                                     .input.payloads[0].data)
                assert "stream" not in request
    # ~2.5 s of writing in batches ever further apart: a signal, a poll and their
    # workflow tasks per batch, a small fraction of the 500 tokens.
    added = counts[True] - counts[False]
    print(f"history events: plain {counts[False]}, streamed 500 tokens {counts[True]}")
    assert signals[False] == 0 and 3 <= signals[True] <= 10
    assert added <= 10 * signals[True]


async def test_session_streams_its_turns_across_continue_as_new(
        env: WorkflowEnvironment, task_queue: str) -> None:
    session_id = f"stream-{uuid.uuid4().hex[:8]}"
    limits = SessionLimits(continue_after_turns=1)
    async with worker(env.client, task_queue):
        one = await send_turn(env.client, session_id, "general", "Hello there",
                              task_queue=task_queue, options=RunOptions(stream=True),
                              limits=limits)
        seen = [e for _, e in await collect(env.client, session_workflow_id(session_id),
                                            limit=4)]
        two = await send_turn(env.client, session_id, "general", "And again",
                              task_queue=task_queue)
        await end_session(env.client, session_id)
        rest = [e for _, e in await collect(env.client, session_workflow_id(session_id),
                                            after=seen[-1].offset)]
    events = seen + rest
    offsets = [e.offset for e in events]
    assert offsets == sorted(set(offsets))  # on across continue-as-new, nothing twice
    texts = await reassembled(events)
    assert list(texts.values())[-2:] == [one.answer, two.answer]
    turns = [e.event for e in events if e.kind == "step" and e.event.kind == "result"
             and e.path == ""]
    assert [t.detail for t in turns] == [one.answer, two.answer]
    assert events[-1].kind == "finished" and events[-1].result["turns"] == 2
    assert events[-1].result["runs"] >= 2  # it did continue as new


async def test_cli_streams_a_run_and_watch_tokens_prints_it_again(
        env: WorkflowEnvironment, task_queue: str) -> None:
    async with worker(env.client, task_queue):
        code, out, err = await run_starter(env, task_queue, "run", "general",
                                           "Hello \x1b]0;pwned\x07\x1b[31mred\x1b[0m world",
                                           "--stream", "--latency", "0.3")
        assert code == 0, err
        workflow_id = out.split("streaming ", 1)[1].split(":", 1)[0]
        code, watched, err = await run_starter(env, task_queue, "watch", workflow_id,
                                               "--tokens")
        assert code == 0, err
        code, _, err = await run_starter(env, task_queue, "watch", "ghost-run", "--tokens")
    assert code == 2 and "no run with workflow id 'ghost-run'" in err
    streamed = out.split("streaming ", 1)[1]
    answer = streamed.split("answer:\n", 1)[1].splitlines()[0].strip()
    for printed in (streamed, watched):
        lines = printed.splitlines()
        header = lines.index("[general · offline:standard]")
        assert lines[header + 1] == answer  # the text, as one line, then the end
        assert "[finished: ok]" in lines
        assert "\x1b" not in printed
        assert "\x07" not in printed
        assert 'regarding "Hello red world"' in lines[header + 1]  # the title never set


async def test_a_flow_streams_its_agents_text(env: WorkflowEnvironment,
                                               task_queue: str) -> None:
    async with worker(env.client, task_queue, tools=[flow_app.word_count]):
        run = await baton.start(flow_app.tale, "a lighthouse keeper", client=env.client,
                                task_queue=task_queue, stream=True)
        events = [e async for e in baton.stream(run, client=env.client)]
        outcome = await run.result()
    starts = [e for e in events if e.kind == "text_start"]
    assert [e.agent for e in starts] == ["outliner", "checker", "writer"]
    texts = await reassembled(events)
    result = FlowResult.model_validate(outcome.result.model_dump())
    assert result.value["text"].startswith(texts[starts[-1].message_id])
    assert events[-1].kind == "finished" and events[-1].result["value"] == result.value


@baton.tool(approval=lambda customer: customer != "nobody", approval_timeout=0.5)
def close_account(customer: str) -> str:
    """Close a customer's account."""
    return f"closed {customer}"


def summaries(history: Sequence[HistoryEvent]) -> list[str]:
    """The Web UI's labels of the history's timers and local activities."""
    return [json.loads(e.user_metadata.summary.data) for e in history
            if e.HasField("user_metadata") and e.user_metadata.HasField("summary")
            and e.event_type in (EventType.EVENT_TYPE_TIMER_STARTED,
                                 EventType.EVENT_TYPE_MARKER_RECORDED)]


async def test_web_ui_labels_timers_local_calls_and_shows_status_and_cost(
        env: WorkflowEnvironment, task_queue: str) -> None:
    clerk = baton.Agent("clerk", "Help customers.", model="offline:standard",
                        tools=[close_account])
    session_id = f"labels-{uuid.uuid4().hex[:8]}"
    async with worker(env.client, task_queue, tools=clerk.tools()):
        run = await baton.start(clerk, "Close the account of customer ann",
                                client=env.client, task_queue=task_queue)
        await run.result()  # nobody decided: rejected when its timer fired
        details = await run.handle.query("__temporal_workflow_metadata",
                                         result_type=WorkflowMetadata)
        await send_turn(env.client, session_id, "general", "Hello", task_queue=task_queue,
                        limits=SessionLimits(idle_timeout_s=0.5))
        session = env.client.get_workflow_handle(session_workflow_id(session_id))
        await session.result()
        session_history = (await session.fetch_history()).events
    labels = summaries((await run.handle.fetch_history()).events)
    assert "approval policy of close_account" in labels
    assert "waiting for approval close_account-1" in labels
    assert "session idle" in summaries(session_history)
    shown = details.current_details  # the rejected tool never ran; offline costs $0
    assert shown.startswith("**ok** - done\n\nspent so far: 2 model calls, ")
    assert shown.endswith(" tokens, 0 tool calls, $0.0000") and shown.isascii()


async def test_stream_payloads_are_encrypted_like_every_payload(
        env: WorkflowEnvironment, task_queue: str, monkeypatch: pytest.MonkeyPatch) -> None:
    use_keys(monkeypatch, KEY_A)
    client = await encrypted_client(env)
    async with worker(client, task_queue):
        handle = await start(client, task_queue, "research_panel", PROMPT)
        events = [e for _, e in await collect(client, handle.id)]
        result = await handle.result()
    texts = await reassembled(events)
    assert result.answer in texts.values() and MARKER in result.answer
    history = await env.client.get_workflow_handle(handle.id).fetch_history()
    signals = [e for e in history.events
               if e.event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED]
    assert signals  # the branches' text and steps, signalled to the top-level run
    for payload in (p for e in signals
                    for p in e.workflow_execution_signaled_event_attributes.input.payloads):
        assert payload.metadata["encoding"] == ENCODING
    stored = stored_bytes(history)
    assert MARKER.encode() not in stored and b"text_delta" not in stored
