"""The HTTP front (baton/web/): AG-UI events validated with the protocol's own models,
resumption after a dropped connection on another replica with nothing lost or
repeated, approvals, sessions, run listing, the run tree and report, the token rules,
and bad input answered with JSON errors that change nothing."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx2 as httpx
import pytest
from ag_ui.core import Event
from pydantic import TypeAdapter
from temporalio.testing import WorkflowEnvironment

from baton.runtime.approvals import pending_in_tree
from baton.runtime.temporal import Settings
from baton.web.app import ServeConfig, create_app
from baton.web.security import token_problem
from tests.test_starter import run_starter, starter
from tests.web_app import UI, Served, catalogue, serving

EVENT: TypeAdapter[Event] = TypeAdapter(Event)
TOKEN = "s3cret-token-for-tests"


@pytest.fixture(scope="module")
async def served(env: WorkflowEnvironment) -> AsyncIterator[Served]:
    async with serving(env.client) as front:
        yield front


async def read_events(front: str, run_id: str, *, last_id: str | None = None,
                      stop_after: int | None = None) -> list[tuple[str, dict[str, Any]]]:
    """(id, event) of a run's SSE stream, each validated as an AG-UI event; the
    connection is dropped after `stop_after` events when given."""
    got: list[tuple[str, dict[str, Any]]] = []
    headers = {"Last-Event-ID": last_id} if last_id else {}
    async with httpx.AsyncClient(base_url=front, timeout=60) as http, \
            http.stream("GET", f"/api/runs/{run_id}/events", headers=headers) as response:
        assert response.status_code == 200, await response.aread()
        assert response.headers["content-type"].startswith("text/event-stream")
        event_id = ""
        async for line in response.aiter_lines():
            if line.startswith("id: "):
                event_id = line[4:]
            elif line.startswith("data: "):
                EVENT.validate_json(line[6:])  # the protocol's own models accept it
                got.append((event_id, json.loads(line[6:])))
                if stop_after is not None and len(got) >= stop_after:
                    break
    return got


def types(events: list[tuple[str, dict[str, Any]]]) -> list[str]:
    return [e["type"] for _, e in events]


def customs(events: list[tuple[str, dict[str, Any]]], name: str) -> list[dict[str, Any]]:
    return [e["value"] for _, e in events if e["type"] == "CUSTOM" and e["name"] == name]


async def test_a_run_speaks_ag_ui_and_resumes_on_another_replica_without_loss(
        env: WorkflowEnvironment, served: Served) -> None:
    async with httpx.AsyncClient(base_url=served.url, timeout=60) as http:
        started = await http.post("/api/runs", json={"member": "support_desk",
                                                     "prompt": "My invoice is wrong"})
    assert started.status_code == 201, started.text
    run_id = started.json()["workflow_id"]
    assert started.json()["link"] == f"{UI}/namespaces/default/workflows/{run_id}"
    whole = await read_events(served.url, run_id)
    # Dropped after a few events, resumed from the last id on a second replica.
    first = await read_events(served.url, run_id, stop_after=7)
    async with serving(env.client) as replica:
        rest = await read_events(replica.url, run_id, last_id=first[-1][0])
        after_end = await read_events(replica.url, run_id, last_id=whole[-1][0])
    assert first + rest == whole  # nothing lost, nothing twice, same ids
    assert after_end == []
    kinds = types(whole)
    assert kinds[:2] == ["RUN_STARTED", "STATE_SNAPSHOT"] and kinds[-1] == "RUN_FINISHED"
    assert len({i for i, _ in whole}) == len(whole)
    for needed in ("TEXT_MESSAGE_START", "TEXT_MESSAGE_CONTENT", "TEXT_MESSAGE_END",
                   "TOOL_CALL_START", "TOOL_CALL_ARGS", "TOOL_CALL_END", "TOOL_CALL_RESULT",
                   "STATE_DELTA"):
        assert needed in kinds, needed
    [handoff] = customs(whole, "baton.handoff")
    assert (handoff["agent"], handoff["to"]) == ("router", "billing")
    finished = whole[-1][1]
    text = "".join(e["delta"] for _, e in whole if e["type"] == "TEXT_MESSAGE_CONTENT")
    assert text == finished["result"]["answer"] and "billing" in text
    deltas = [op for _, e in whole if e["type"] == "STATE_DELTA" for op in e["delta"]]
    assert {"op": "add", "path": "/status", "value": "ok"} in deltas
    assert any(op["path"] == "/usage" and op["value"]["calls"] == 2 for op in deltas)


async def test_a_waiting_refund_is_listed_decided_and_the_run_finishes(
        env: WorkflowEnvironment, served: Served) -> None:
    async with httpx.AsyncClient(base_url=served.url, timeout=60) as http:
        started = await http.post("/api/runs", json={
            "member": "clerk", "prompt": "Refund 250 USD on order A-1001"})
        run_id = started.json()["workflow_id"]
        seen = asyncio.create_task(read_events(served.url, run_id))
        waiting = await wait_for_approval(http, run_id)
        request = waiting["requests"][0]
        assert (request["subject"], request["arguments"]) == (
            "issue_refund", {"order_id": "A-1001", "amount_usd": 250.0})
        assert "approval policy of issue_refund" in request["why"]
        refused = [
            await http.post(f"/api/runs/{run_id}/decisions",
                            json={"approve": True, "request_id": "issue_refund-9"}),
            await http.post(f"/api/runs/{run_id}/decisions", json={"approve": False}),
            await http.post(f"/api/runs/{run_id}/decisions", content=b"{not json"),
            await http.post("/api/runs/no-such-run/decisions", json={"approve": True}),
        ]
        assert [r.status_code for r in refused] == [409, 422, 400, 404]
        assert "no pending request 'issue_refund-9'; pending: issue_refund-1" in \
            refused[0].json()["error"]["message"]
        assert "reason" in refused[1].json()["error"]["message"]
        # Nothing changed: the request still waits.
        assert [r.request_id for r in await pending_in_tree(env.client, run_id)] == [
            "issue_refund-1"]
        decided = await http.post(f"/api/runs/{run_id}/decisions", json={
            "approve": True, "request_id": "issue_refund-1", "note": "manager ok",
            "by": "dana"})
        assert decided.status_code == 200, decided.text
        [record] = decided.json()["records"]
        assert record["approved"] and record["decided_by"] == "dana"
        events = await asyncio.wait_for(seen, 60)
        again = await http.post(f"/api/runs/{run_id}/decisions",
                                json={"approve": True, "request_id": "issue_refund-1"})
        run = (await http.get(f"/api/runs/{run_id}")).json()
        tree = (await http.get(f"/api/runs/{run_id}/tree")).json()
    assert again.status_code == 409
    [asked] = customs(events, "baton.approval_requested")
    assert asked["request_id"] == "issue_refund-1" and asked["subject"] == "issue_refund"
    [done] = customs(events, "baton.approval_decided")
    assert done["approved"] is True
    assert types(events)[-1] == "RUN_FINISHED"
    assert run["status"] == "ok" and run["result"]["approvals"][0]["note"] == "manager ok"
    steps = [(n["kind"], n["title"], n["status"]) for n in tree["root"]["children"]]
    assert ("approval", "approval · issue_refund", "ok") in steps
    assert ("tool", "issue_refund", "ok") in steps and ("tool", "lookup_order", "ok") in steps
    approval = next(n for n in tree["root"]["children"] if n["kind"] == "approval")
    assert approval["summary"] == "approved by dana: manager ok"
    assert approval["fields"] == {"order_id": "A-1001", "amount_usd": 250.0}


async def wait_for_approval(http: httpx.AsyncClient, run_id: str) -> dict[str, Any]:
    for _ in range(200):
        listed = (await http.get("/api/approvals")).json()["runs"]
        if mine := [r for r in listed if r["workflow_id"] == run_id]:
            return mine[0]
        await asyncio.sleep(0.1)
    raise AssertionError(f"{run_id} never waited for a person")


async def test_chat_turns_sessions_and_bad_input(served: Served) -> None:
    async with httpx.AsyncClient(base_url=served.url, timeout=60) as http:
        first = await http.post("/api/sessions/web-s1/turns", json={
            "member": "support_desk", "message": "My invoice is wrong"})
        second = await http.post("/api/sessions/web-s1/turns", json={
            "member": "support_desk", "message": "And the refund?"})
        state = await http.get("/api/sessions/web-s1")
        other_team = await http.post("/api/sessions/web-s1/turns", json={
            "member": "dev_team", "message": "hi"})
        ended = await http.post("/api/sessions/web-s1/end", json={"reason": "done"})
        after_end = await http.post("/api/sessions/web-s1/turns", json={
            "member": "support_desk", "message": "still there?"})
        bad = {
            "unknown member": await http.post("/api/runs", json={"member": "ghost",
                                                                 "prompt": "hi"}),
            "unknown chat member": await http.post("/api/sessions/x/turns", json={
                "member": "ghost", "message": "hi"}),
            "malformed": await http.post("/api/runs", content=b"{\"member\": "),
            "missing field": await http.post("/api/sessions/x/turns", json={"member": "clerk"}),
            "no prompt": await http.post("/api/runs", json={"member": "support_desk"}),
            "bad session id": await http.post("/api/sessions/%20bad/turns", json={
                "member": "clerk", "message": "hi"}),
            "unknown run": await http.get("/api/runs/nope-123"),
            "unknown tree": await http.get("/api/runs/nope-123/tree"),
            "unknown events": await http.get("/api/runs/nope-123/events"),
            "unknown session": await http.get("/api/sessions/nobody-here"),
            "bad status": await http.get("/api/runs?status=sleepy"),
            "bad parameter": await http.get("/api/runs?colour=red"),
            "bad since": await http.get("/api/runs?since=yesterday"),
            "unknown endpoint": await http.get("/api/nothing"),
        }
        listed = (await http.get("/api/runs?team=support_desk&limit=50")).json()
        catalogue_listed = (await http.get("/api/catalogue")).json()
    assert first.status_code == 200, first.text
    assert first.json()["handled_by"] == "billing" and second.json()["turn"] == 2
    assert first.json()["link"].startswith(f"{UI}/namespaces/default/workflows/session-web-s1")
    assert state.json()["turns"] == 2
    assert other_team.status_code == 409 and "not 'dev_team'" in other_team.text
    assert ended.status_code == 200 and after_end.status_code == 409
    assert "has ended" in after_end.json()["error"]["message"]
    expected = {"unknown member": 404, "unknown chat member": 404, "malformed": 400,
                "missing field": 422, "no prompt": 422, "bad session id": 422,
                "unknown run": 404, "unknown tree": 404, "unknown events": 404,
                "unknown session": 404, "bad status": 400, "bad parameter": 400,
                "bad since": 400, "unknown endpoint": 404}
    assert {k: r.status_code for k, r in bad.items()} == expected
    for response in bad.values():
        error = response.json()["error"]
        assert error["status"] == response.status_code and error["message"]
    assert "unknown team or agent 'ghost'" in bad["unknown member"].json()["error"]["message"]
    assert "is not JSON" in bad["malformed"].json()["error"]["message"]
    assert "message" in bad["missing field"].json()["error"]["message"]
    assert all(r["team"] == "support_desk" for r in listed["runs"])
    assert {"clerk", "router"} <= {a["name"] for a in catalogue_listed["agents"]}
    assert "research_panel" in {t["name"] for t in catalogue_listed["teams"]}


async def test_unknown_or_foreign_last_event_ids_are_refused(served: Served) -> None:
    async with httpx.AsyncClient(base_url=served.url, timeout=60) as http:
        started = await http.post("/api/runs", json={"member": "support_desk",
                                                     "prompt": "The app crashes"})
        run_id = started.json()["workflow_id"]
        whole = await read_events(served.url, run_id)
        answers = [await http.get(f"/api/runs/{run_id}/events",
                                  headers={"Last-Event-ID": bad})
                   for bad in ("yesterday", "99999.0", f"{whole[-1][0].split('.')[0]}.9")]
    for answer in answers:
        assert answer.status_code == 400
        assert "Last-Event-ID" in answer.json()["error"]["message"] or \
            "has no event" in answer.json()["error"]["message"]


async def test_fan_out_tree_and_report(env: WorkflowEnvironment, served: Served,
                                       tmp_path: Path) -> None:
    async with httpx.AsyncClient(base_url=served.url, timeout=60) as http:
        started = await http.post("/api/runs", json={"member": "research_panel",
                                                     "prompt": "Is Rust fast?"})
        run_id = started.json()["workflow_id"]
        events = await read_events(served.url, run_id)
        tree = (await http.get(f"/api/runs/{run_id}/tree")).json()
    assert types(events)[-1] == "RUN_FINISHED"
    root = tree["root"]
    branches = [n for n in root["children"] if n["kind"] == "run"]
    assert sorted(b["title"] for b in branches) == ["academic", "industry", "news"]
    assert all(b["status"] == "ok" and b["children"][0]["kind"] == "model" for b in branches)
    assert root["input_tokens"] + root["output_tokens"] == sum(
        n["input_tokens"] + n["output_tokens"] for n in walk(root) if n["kind"] == "model")
    assert tree["links"][f"{run_id}/academic"].endswith(f"/workflows/{run_id}/academic")
    html, png = tmp_path / "run.html", tmp_path / "run.png"
    code, _, err = await run_starter(env, served.task_queue, "report", run_id,
                                       "--html", str(html), "--png", str(png))
    assert code == 0, err
    page = html.read_text()
    for text in ("research_panel", "academic", "synthesizer", "By agent", "Time line"):
        assert text in page
    assert page.count("class='tree-row depth-") == len(list(walk(root)))
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    code, _, err = await run_starter(env, served.task_queue, "report", "nope-1", "--html",
                                     str(html))
    assert code == 2 and "no run 'nope-1'" in err


def walk(node: dict[str, Any]) -> list[dict[str, Any]]:
    return [node, *(n for child in node["children"] for n in walk(child))]


async def test_token_rules_and_cors(env: WorkflowEnvironment) -> None:
    def app(**options: Any) -> Any:
        return create_app(ServeConfig(catalogue=catalogue(), client=env.client,
                                      settings=Settings(ui_url=UI), **options))

    locked = httpx.ASGITransport(app=app(token=TOKEN))
    async with httpx.AsyncClient(transport=locked, base_url="http://baton") as http:
        none = await http.get("/api/config")
        wrong = await http.get("/api/config", headers={"Authorization": "Bearer nope"})
        right = await http.get("/api/config", headers={"Authorization": f"Bearer {TOKEN}"})
        console = await http.get("/")
        preflight = await http.options("/api/runs", headers={
            "Origin": "https://elsewhere.test", "Access-Control-Request-Method": "POST"})
    assert [none.status_code, wrong.status_code, right.status_code] == [401, 401, 200]
    assert none.json()["error"]["status"] == 401 and "bearer token" in none.text
    assert right.json()["token_required"] is True
    assert console.status_code == 200 and "Baton console" in console.text
    assert "access-control-allow-origin" not in preflight.headers
    shared = httpx.ASGITransport(app=app(cors_origins=["https://console.test"]))
    async with httpx.AsyncClient(transport=shared, base_url="http://baton") as http:
        allowed = await http.options("/api/runs", headers={
            "Origin": "https://console.test", "Access-Control-Request-Method": "POST"})
    assert allowed.headers["access-control-allow-origin"] == "https://console.test"
    # Other pages in the operator's browser: a rebinding name, a cross-site POST.
    loopback = httpx.ASGITransport(app=app(loopback_only=True,
                                           cors_origins=["https://console.test"]))
    async with httpx.AsyncClient(transport=loopback, base_url="http://127.0.0.1:8765") as http:
        own = await http.get("/api/config")
        rebound = await http.get("/api/config", headers={"Host": "evil.test:8765"})
        cross_site = await http.post("/api/runs", content=b'{"member": "support_desk"}',
                                     headers={"Origin": "https://evil.test",
                                              "Content-Type": "text/plain"})
        same_site = await http.post("/api/runs", json={"member": "ghost", "prompt": "hi"},
                                    headers={"Origin": "http://127.0.0.1:8765"})
        listed = await http.post("/api/runs", json={"member": "ghost", "prompt": "hi"},
                                 headers={"Origin": "https://console.test"})
    assert own.status_code == 200
    assert rebound.status_code == 403 and "host 'evil.test:8765' is not served" in rebound.text
    assert cross_site.status_code == 403 and "origin 'https://evil.test'" in cross_site.text
    # past the guard, to the request's own checks (an unknown member)
    assert same_site.status_code == listed.status_code == 404, same_site.text
    assert token_problem("127.0.0.1", None) is None and token_problem("::1", None) is None
    assert token_problem("0.0.0.0", TOKEN) is None
    assert "refusing to listen on 0.0.0.0" in (token_problem("0.0.0.0", None) or "")
    assert "too short" in (token_problem("127.0.0.1", "short") or "")
    refused = await asyncio.to_thread(starter, "serve", "--host", "0.0.0.0",
                                      extra_env={"BATON_HTTP_TOKEN": ""})
    assert refused.returncode == 2
    assert refused.stderr.strip().count("\n") == 0
    assert "BATON_HTTP_TOKEN" in refused.stderr and "Traceback" not in refused.stderr


async def test_two_subscribers_share_one_feed_and_contract_outputs_are_data(
        served: Served) -> None:
    """Two subscribers of one run (one process, one feed) see the same events; a
    stage's contract output arrives as data, not as text."""
    async with httpx.AsyncClient(base_url=served.url, timeout=60) as http:
        started = await http.post("/api/runs", json={"member": "article_pipeline",
                                                     "prompt": "Durable agents"})
    run_id = started.json()["workflow_id"]
    one, two = await asyncio.gather(read_events(served.url, run_id),
                                    read_events(served.url, run_id))
    assert one == two and types(one)[-1] == "RUN_FINISHED"
    outputs = customs(one, "baton.output")
    assert outputs and all(isinstance(o["output"], dict) for o in outputs)
