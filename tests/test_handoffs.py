"""Handoffs as transfer tools (workflows/handoffs.py): any agent may hand a conversation
on, back to the router or to a peer, bounded by max_handoffs; hooks and input filters;
undeclared transfers refused; flows' agent.run; the tools as a provider sees them."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from temporalio.client import WorkflowFailureError
from temporalio.exceptions import ApplicationError
from temporalio.testing import WorkflowEnvironment

import baton
from baton.activities.providers.offline import OfflineProvider
from baton.core.handoffs import transfer_spec, transfer_tool_name
from baton.core.model_io import Message, ModelRequest, ModelResponse, ToolSpec
from baton.core.runs import TriageResult
from baton.core.specs import Catalogue
from baton.define.catalogue import parse_catalogue
from tests import handoff_app
from tests.fake_llm import FakeLLMServer
from tests.helpers import activity_inputs, fake_provider, on_fake, run, start, worker
from tests.scripted import scripted_offline, tool_call

# A front desk and a back office whose transfers each describe the request: the offline
# model hands it back and forth (a cycle) until max_handoffs stops the run.
LOOP_TOML = """
[agents.front]
instructions = "Route the customer."
description = "Front desk."
handoffs = [{ target = "back", description = "Refunds and invoices." }]

[agents.back]
instructions = "Answer the customer."
description = "Back office."
retry = { max_attempts = 2, initial_interval_s = 0.1 }
handoffs = [{ target = "front", description = "Refunds and invoices." }, "clerk"]

[agents.clerk]
instructions = "File things."

[teams.loop_desk]
pattern = "triage"
router = "front"
max_handoffs = 3
"""


def loop_catalogue(**changes: Any) -> Catalogue:
    import tomllib

    raw = tomllib.loads(LOOP_TOML)
    for agent, update in changes.items():
        raw["agents"][agent].update(update)
    return parse_catalogue(raw)


async def test_a_specialist_hands_back_to_the_router_and_on_to_a_peer(
        env: WorkflowEnvironment, task_queue: str) -> None:
    # router -> billing -> router (back to triage) -> shipping -> billing (a peer), who
    # answers; each agent's turn ends at its transfer.
    plan = {("router", 0): "billing", ("billing", 0): "router", ("router", 1): "shipping",
            ("shipping", 0): "billing"}

    def script(request: ModelRequest) -> ModelResponse | None:
        target = plan.get((request.agent, request.call_index))
        if target is None:
            return None
        return tool_call(request, f"transfer_to_{target}",
                         reason=f"{request.agent} thinks {target} should answer")

    with scripted_offline(script) as provider:
        async with worker(env.client, task_queue):
            result = await run(env.client, task_queue, "shop_desk", "Hello there",
                               cat=handoff_app.shop_desk.catalogue(), result_type=TriageResult)
    assert result.status == "ok" and result.handled_by == "billing"
    assert result.route_reason == "shipping thinks billing should answer"
    handoffs = [(s.agent, s.detail) for s in result.trace if s.kind == "handoff"]
    assert [(a, d.split(":")[0]) for a, d in handoffs] == [
        ("router", "-> billing"), ("billing", "-> router"), ("router", "-> shipping"),
        ("shipping", "-> billing")]
    # each transfer ended its agent's turn: one call per hop, then billing's answer
    assert [r.agent for r in provider.requests] == [
        "router", "billing", "router", "shipping", "billing"]
    assert {a: u.calls for a, u in result.usage.items()} == {
        "router": 2, "billing": 2, "shipping": 1}
    # every transfer tool carries its target's description; billing's answer is its
    # contract, typed
    offered = {t.name: t.description for t in provider.requests[0].tools}
    assert offered == {"transfer_to_billing": "Invoices, payments and refunds.",
                       "transfer_to_shipping": "Parcels, deliveries and tracking."}
    handoff_app.Refund.model_validate(result.output)
    # the router's input filter shaped what billing saw from it; from shipping (no
    # filter on that handoff) billing saw the conversation as it was
    assert provider.requests[1].messages[-1].content == "[passed on] Hello there"
    assert provider.requests[4].messages[-1].content == "Hello there"  # from shipping


async def test_max_handoffs_stops_a_cycle_as_a_budget_does(
        env: WorkflowEnvironment, task_queue: str) -> None:
    async with worker(env.client, task_queue):
        result = await run(env.client, task_queue, "loop_desk", "Please refund my invoice",
                           cat=loop_catalogue(), result_type=TriageResult)
    assert result.status == "budget_exhausted"
    chain = "front -> back -> front -> back -> front"
    assert f"budget exhausted (max_handoffs=3 reached: {chain}); partial results" \
        in result.reasons
    assert result.answer.startswith(f"Budget exhausted (max_handoffs=3 reached: {chain})")
    assert [s.kind for s in result.trace].count("handoff") == 3
    assert result.trace[-1].kind == "error" and not result.trace[-1].ok
    # every call made before the stop is counted
    assert {a: u.calls for a, u in result.usage.items()} == {"front": 2, "back": 2}


async def test_an_undeclared_transfer_goes_to_that_agents_default(
        env: WorkflowEnvironment, task_queue: str) -> None:
    def script(request: ModelRequest) -> ModelResponse | None:
        if request.agent == "front":
            return tool_call(request, "transfer_to_back", reason="a refund")
        if request.agent == "back":
            return tool_call(request, "transfer_to_ghost", reason="made up")
        return None

    cat = loop_catalogue(back={"default_handoff": "clerk"})
    with scripted_offline(script):
        async with worker(env.client, task_queue):
            result = await run(env.client, task_queue, "loop_desk", "Please refund my invoice",
                               cat=cat, result_type=TriageResult)
    assert result.handled_by == "clerk" and result.status == "degraded"
    refused = [s for s in result.trace if s.kind == "handoff" and not s.ok]
    assert [s.detail for s in refused] == [
        "-> clerk: back asked for 'transfer_to_ghost', which is not one of its transfers "
        "(transfer_to_front, transfer_to_clerk); its default clerk takes over"]
    assert result.reasons == [refused[0].detail.removeprefix("-> clerk: ")]
    assert "clerk" in result.answer


async def test_a_flows_agent_run_follows_handoffs_with_a_hook_and_a_filter(
        env: WorkflowEnvironment, task_queue: str) -> None:
    # No workflow cache: every step replays the history, hooks and filters included.
    async with worker(env.client, task_queue, max_cached_workflows=0):
        routed = await baton.start(handoff_app.help_desk, "Please refund my invoice",
                                   client=env.client, task_queue=task_queue)
        greeted = await baton.run(handoff_app.help_desk, "Hello there", client=env.client,
                                  task_queue=task_queue)
        outcome = await asyncio.wait_for(routed.result(), 60)
        requests = await activity_inputs(routed.handle)
    answered = outcome.output
    assert isinstance(answered, handoff_app.Answered) and outcome.status == "ok"
    assert answered.handled_by == "billing" and answered.refund is not None
    # the hook changed the run's context; the change is in the flow's result
    assert answered.ticket.escalated is True
    assert answered.ticket.notes == [
        "to billing: [offline] the request shares the words invoic, refund with billing, "
        "more than with router."]
    # the filter decided what billing saw
    [to_billing] = [r for r in requests if r.get("agent") == "billing"]
    assert [m["content"] for m in to_billing["messages"]] == [
        "[passed on] Please refund my invoice"]
    assert [s.kind for s in outcome.result.trace] == ["model_call", "handoff", "model_call"]
    # the router may answer itself: then it is the one who handled the request
    hello = greeted.output
    assert isinstance(hello, handoff_app.Answered)
    assert hello.handled_by == "router" and not hello.ticket.escalated
    assert "so I answered myself" in hello.text


async def test_an_unknown_hook_fails_the_run_typed(env: WorkflowEnvironment,
                                                   task_queue: str) -> None:
    cat = loop_catalogue(front={"handoffs": [
        {"target": "back", "description": "Refunds and invoices.",
         "input_filter": "nobody/registered"}]})
    async with worker(env.client, task_queue):
        handle = await start(env.client, task_queue, "loop_desk", "Please refund my invoice",
                             cat=cat, result_type=TriageResult)
        with pytest.raises(WorkflowFailureError) as failed:
            await asyncio.wait_for(handle.result(), 60)
    cause = failed.value.cause
    assert isinstance(cause, ApplicationError) and cause.type == "UnknownHook"
    assert "the input filter of front -> back 'nobody/registered' is not registered" \
        in cause.message


@pytest.mark.usefixtures("provider_key")
async def test_transfer_tools_on_the_wire(env: WorkflowEnvironment, task_queue: str,
                                          fake: FakeLLMServer) -> None:
    async with worker(env.client, task_queue, providers=fake_provider("openai", fake)):
        result = await run(env.client, task_queue, "support_desk", "Refund my invoice",
                           cat=on_fake("openai", fake), result_type=TriageResult)
    assert result.handled_by == "billing"
    router, billing = (r.body for r in fake.requests)
    assert "response_format" not in router  # no route contract: transfers are tools
    tools = {t["function"]["name"]: t["function"] for t in router["tools"]}
    assert set(tools) == {"transfer_to_billing", "transfer_to_technical", "transfer_to_general"}
    assert tools["transfer_to_billing"]["description"] == \
        "Invoices, payments, refunds, subscriptions."
    assert tools["transfer_to_technical"]["parameters"]["properties"]["reason"]["type"] == \
        "string"
    # the model's transfer reason is the route's reason; billing is offered no transfers
    assert result.route_reason.startswith("[offline] the request shares the words")
    assert "tools" not in billing


async def test_agent_run_outside_a_workflow_follows_handoffs(env: WorkflowEnvironment,
                                                             task_queue: str) -> None:
    async with baton.worker(handoff_app.router, client=env.client, task_queue=task_queue):
        result = await asyncio.wait_for(handoff_app.router.run(
            "Where is my parcel?", client=env.client, task_queue=task_queue), 60)
    assert result.handled_by == "shipping" and "shipping" in result.text
    assert [m.agent for m in result.messages] == [None, "shipping"]


# --- the offline model's choice --------------------------------------------------------

def transfers(**descriptions: str) -> list[ToolSpec]:
    return [transfer_spec(transfer_tool_name(t), t, d) for t, d in descriptions.items()]


@pytest.mark.parametrize(("prompt", "description", "chosen"), [
    # a target's name, split at underscores, and its description count alike
    ("I need another seat, by the window", "", "transfer_to_seat_booking"),
    ("What is the baggage allowance?", "", "transfer_to_faq_desk"),
    # keywords only break a tie: nothing else matches "charged", billing's keyword
    ("I was charged twice", "", "transfer_to_billing"),
    # words in the latest request only; a nested transcript before it does not count
    ("<conversation_history>\nuser: my seat\n</conversation_history>\n\nHello",
     "", None),
    # nothing fits a target better than the agent's own description: it answers itself
    ("Where do I find my seat on the plane?", "Seats, the plane and the cabin.", None),
])
async def test_the_offline_model_picks_a_transfer_by_name_and_description(
        prompt: str, description: str, chosen: str | None) -> None:
    offered = transfers(seat_booking="Changes a passenger's seat.",
                        faq_desk="Frequently asked questions: baggage, wifi, meals.",
                        billing="")
    request = ModelRequest(agent="front desk", model="offline:fast", instructions="Route.",
                           description=description, tools=offered,
                           messages=[Message(role="user", content=prompt)])
    first = await OfflineProvider().complete(request)
    again = await OfflineProvider().complete(request)
    assert first == again  # deterministic
    if chosen is None:
        assert not first.tool_calls
        assert "offline" in first.text and "so I answered myself" in first.text
    else:
        [call] = first.tool_calls
        assert call.name == chosen and call.arguments["reason"].startswith("[offline]")


# --- catalogues ------------------------------------------------------------------------

def refused(raw: dict[str, Any]) -> str:
    with pytest.raises(ValueError) as err:
        parse_catalogue(raw)
    return str(err.value)


def test_handoff_tables_and_old_routers_load() -> None:
    cat = loop_catalogue(front={"contract": "RouteDecision"})
    front = cat.agents["front"]
    assert front.contract is None  # how routers were declared before transfer tools
    assert front.handoffs == ["back"] and front.default_handoff == "back"
    assert front.handoff_options["back"].description == "Refunds and invoices."
    assert cat.agents["back"].handoffs == ["front", "clerk"]
    again = parse_catalogue(cat.model_dump(mode="json"))  # what a run's input carries
    assert again.agents["front"] == front
    team = cat.teams["loop_desk"]
    assert team.pattern == "triage" and team.max_handoffs == 3


@pytest.mark.parametrize(("change", "expected"), [
    ({"clerk": {"handoffs": ["loop_desk"]}},
     "team 'loop_desk' hands the conversation back to itself: loop_desk -> front -> back "
     "-> clerk -> loop_desk; an agent hands back to the router agent, not to the router's "
     "team"),
    ({"clerk": {"handoffs": ["clerk"]}}, "agent 'clerk' hands off to itself"),
    ({"clerk": {"handoffs": [{"input_filter": "x"}]}},
     "a handoff written as a table needs `target`"),
    ({"clerk": {"handoffs": [{"target": "front", "on_hand": "x"}]}}, "on_hand"),
    ({"clerk": {"handoff_options": {"front": {}}}}, "handoff_options name targets of"),
])
def test_bad_handoffs_are_refused(change: dict[str, dict[str, Any]], expected: str) -> None:
    import tomllib

    raw = tomllib.loads(LOOP_TOML)
    for agent, update in change.items():
        raw["agents"][agent].update(update)
    assert expected in refused(raw)


def test_max_handoffs_is_bounded() -> None:
    import tomllib

    raw = tomllib.loads(LOOP_TOML)
    raw["teams"]["loop_desk"]["max_handoffs"] = 0
    assert "max_handoffs" in refused(raw)
    with pytest.raises(TypeError, match="handoff target must be an agent or a team"):
        baton.handoff("billing")  # type: ignore[arg-type]
