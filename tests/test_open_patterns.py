"""Open patterns: a planner answering its own model (`plan=fn` or a list field), the
synthesizer's prompt and the reducer as functions, a pipeline stage's input as a
function of the run so far, and user contracts named like Baton's own.

One worker serves the whole module; the user's functions are looked up by name when
a run calls them, so teams built by each test run on it.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import pytest
from pydantic import BaseModel, Field
from temporalio.client import WorkflowFailureError
from temporalio.exceptions import ApplicationError
from temporalio.testing import WorkflowEnvironment

import baton
from baton.core import contracts
from baton.core.contracts import CONTRACTS
from baton.core.errors import SPENT_DETAIL
from baton.core.model_io import Message, ModelRequest, ModelResponse
from baton.core.runs import BranchTask, FanOutResult, PipelineResult
from baton.core.team_hooks import PLANS, STAGE_INPUTS
from baton.define.catalogue import CatalogueError, parse_catalogue
from tests.helpers import worker
from tests.scripted import scripted_offline

ONCE = {"max_attempts": 1}
QUESTION = "Is durable execution worth it for LLM agents?"


# Models of the user's, three of them named like Baton's built-in contracts.
class Plan(BaseModel):
    questions: list[str] = Field(min_length=1, max_length=2)


class Draft(BaseModel):
    headline: str = Field(min_length=1)
    text: str = Field(min_length=1)


class Review(BaseModel):
    score: int = Field(ge=1, le=5)
    notes: str


class Search(BaseModel):
    query: str
    reason: str


class ResearchPlan(BaseModel):
    searches: list[Search] = Field(min_length=1)


class Summary(BaseModel):
    gist: str
    confidence: float = Field(ge=0, le=1)


class Grade(BaseModel):
    passed: bool
    feedback: str


@pytest.fixture(scope="module", autouse=True)
def own_contracts() -> Iterator[None]:
    """The contracts this module's agents register, forgotten after it: other modules
    use the bare built-in names, which the user's `Plan` would take."""
    known = dict(CONTRACTS)
    yield
    CONTRACTS.clear()
    CONTRACTS.update(known)


@pytest.fixture(scope="module")
async def queue(env: WorkflowEnvironment) -> AsyncIterator[str]:
    name = f"open-{uuid.uuid4().hex[:8]}"
    async with worker(env.client, name):
        yield name


def answer(request: ModelRequest, value: dict[str, Any]) -> ModelResponse:
    return ModelResponse(model=request.model, text=json.dumps(value), parsed=value)


def last_user_text(request: ModelRequest) -> str:
    return [m.content for m in request.messages if m.role == "user"][-1]


async def failure_of(team: baton.Team, env: WorkflowEnvironment, queue: str,
                     prompt: str = QUESTION) -> ApplicationError:
    with pytest.raises(WorkflowFailureError) as caught:
        await baton.run(team, prompt, client=env.client, task_queue=queue)
    cause = caught.value.cause
    assert isinstance(cause, ApplicationError)
    return cause


# 1 and 2: a planner's own model, the synthesizer's prompt and the reducer.

SEARCHES = [{"query": q, "reason": "to know"} for q in ("alpha", "beta", "gamma")]


async def test_planner_answers_its_own_model_and_prompts_are_functions(
        env: WorkflowEnvironment, queue: str) -> None:
    prompts: list[tuple[str, list[baton.Finding]]] = []

    def write_prompt(request: str, findings: list[baton.Finding]) -> str:
        prompts.append((request, findings))
        return f"Report on {request} from " + ", ".join(str(f.task) for f in findings)

    def reduce(findings: list[baton.Finding]) -> str:
        return " | ".join(f"{f.task}: {f.status}" for f in findings)

    planner = baton.Agent("op_planner", "Plan web searches.", output=ResearchPlan)
    searcher = baton.Agent("op_searcher", "Search the web.", output=Summary, retry=ONCE)
    writer = baton.Agent("op_writer", "Write the report.", retry=ONCE)
    team = baton.Coordinator("op_research", planner=planner, members=[searcher],
                             plan=lambda plan: [s.query for s in plan.searches],
                             synthesizer=writer, synthesizer_prompt=write_prompt,
                             reducer=reduce, policy="best_effort")

    def script(request: ModelRequest) -> ModelResponse | None:
        if request.agent == "op_planner":
            return answer(request, {"searches": SEARCHES})
        if request.agent == "op_searcher" and last_user_text(request) == "beta":
            raise RuntimeError("search engine down")
        if request.agent == "op_writer":
            raise RuntimeError("writer down")
        return None

    with scripted_offline(script) as provider:
        outcome = await baton.run(team, QUESTION, client=env.client, task_queue=queue)
    result = outcome.result
    assert isinstance(result, FanOutResult)
    # the planner answered its own model; the function made it three branch tasks
    assert result.plan == [BranchTask(member="op_searcher", task=q)
                           for q in ("alpha", "beta", "gamma")]
    assert [(b.task, b.ok) for b in result.branches] == [
        ("alpha", True), ("beta", False), ("gamma", True)]
    # the prompt function saw every branch, typed: outputs as the searcher's model
    [(request, findings)] = prompts
    assert request == QUESTION
    assert [(f.branch, f.task, f.status) for f in findings] == [
        ("op_searcher", "alpha", "ok"), ("op_searcher", "beta", "failed"),
        ("op_searcher", "gamma", "ok")]
    assert isinstance(findings[0].output, Summary) and findings[0].text
    assert findings[1].output is None and "search engine down" in (findings[1].error or "")
    writer_asked = [r for r in provider.requests if r.agent == "op_writer"]
    assert [m.content for m in writer_asked[0].messages] == [
        f"Report on {QUESTION} from alpha, beta, gamma"]
    # the synthesizer failed: the reducer's text is the (degraded) answer
    assert result.status == "degraded"
    assert result.answer == "alpha: ok | beta: failed | gamma: ok"
    assert any("synthesizer failed" in r for r in result.reasons)


def _plan_cases() -> dict[str, tuple[Callable[[Any], Any], int, str, str]]:
    """Plan functions that fail: (function, members, error type, message part)."""
    return {
        "nothing": (lambda plan: None, 1, "PlanFailed",
                    "planner 'bad_planner': the plan function 'bad_nothing/plan' returned "
                    "None; accepted: a list of strings"),
        "raises": (lambda plan: 1 / 0, 1, "PlanFailed",
                   "planner 'bad_planner': the plan function 'bad_raises/plan' raised "
                   "ZeroDivisionError"),
        "not-text": (lambda plan: [plan], 1, "PlanFailed", "among its subtasks; accepted: "
                     "a list of strings (each a subtask for the team's one member) or of "
                     "baton.Subtask"),
        "text-for-two": (lambda plan: ["a", "b"], 2, "PlanFailed",
                         "returned text subtasks, and the team has members "
                         "['bad_member_1', 'bad_member_2']"),
        "empty": (lambda plan: [], 1, "PlanFailed",
                  "planner 'bad_planner' gave no usable plan: ResearchPlan violated: the "
                  "plan has no subtasks; give at least one"),
        "unknown-member": (lambda plan: [baton.Subtask(task="x", member="nobody")], 1,
                           "PlanFailed", "unknown members ['nobody']; choose from"),
        "unregistered": (lambda plan: ["x"], 1, "UnknownHook",
                         "planner 'bad_planner': the plan function 'bad_unregistered/plan' "
                         "is not registered on this worker"),
    }


@pytest.mark.parametrize("case", list(_plan_cases()))
async def test_a_plan_function_that_fails_is_a_typed_failure_naming_the_planner(
        env: WorkflowEnvironment, queue: str, case: str) -> None:
    plan, count, error_type, message = _plan_cases()[case]
    planner = baton.Agent("bad_planner", "Plan.", output=ResearchPlan, max_repairs=1)
    members = [baton.Agent(f"bad_member_{i + 1}", "Search.") for i in range(count)]
    name = f"bad_{case.replace('-', '_')}"
    team = baton.Coordinator(name, planner=planner, members=members, plan=plan,
                             synthesizer=baton.Agent("bad_writer", "Write."))
    if case == "unregistered":
        del PLANS[f"{name}/plan"]  # a worker without the module that defines the team
    cause = await failure_of(team, env, queue)
    assert cause.type == error_type and message in cause.message, cause.message
    # the planner's completed call is not lost: the failure says what it spent
    assert cause.details[0][SPENT_DETAIL]["bad_planner"]["calls"] >= 1


async def test_a_bad_prompt_or_reducer_function_fails_the_run_typed(
        env: WorkflowEnvironment, queue: str) -> None:
    def a_number(request: str, findings: list[baton.Finding]) -> Any:
        return 42

    analyst = baton.Agent("bp_analyst", "Analyse.")
    writer = baton.Agent("bp_writer", "Write.")
    team = baton.FanOut("bp_prompt", branches=[analyst], synthesizer=writer,
                        synthesizer_prompt=a_number)
    cause = await failure_of(team, env, queue)
    assert cause.type == "HookFailed"
    assert cause.message == ("team 'bp_prompt': the synthesizer prompt 'bp_prompt/"
                             "synthesizer_prompt' returned 42; accepted: a non-empty string")
    team = baton.FanOut("bp_reducer", branches=[analyst], synthesizer=writer,
                        reducer=lambda findings: findings[5].text)
    cause = await failure_of(team, env, queue)
    assert cause.type == "HookFailed"
    assert cause.message.startswith(
        "team 'bp_reducer': the reducer 'bp_reducer/reducer' raised IndexError")


# 3: a stage's input made by a function.

async def test_a_stage_input_sends_back_the_previous_draft_and_the_feedback(
        env: WorkflowEnvironment, queue: str) -> None:
    contexts: list[baton.StageContext] = []

    def writer_input(ctx: baton.StageContext) -> str | list[Message]:
        contexts.append(ctx)
        if ctx.feedback is None:
            return f"Write a short article on: {ctx.request}"
        draft = ctx.outputs["oj_writer"]
        return [Message(role="user", content=f"Your draft:\n{draft.text}"),
                Message(role="user", content=f"Revise it. The judge said: {ctx.feedback}")]

    def judge_input(ctx: baton.StageContext) -> str:
        contexts.append(ctx)
        return f"Grade this draft: {ctx.outputs['oj_writer'].headline}"

    writer = baton.Agent("oj_writer", "Write.", output=Draft)
    judge = baton.Agent("oj_judge", "Judge.", output=Grade)
    team = baton.Pipeline("oj_loop", [
        baton.Stage(writer, input=writer_input),
        baton.Stage(judge, gate_field="passed", loop_back_to=writer, input=judge_input)])
    grades = iter([{"passed": False, "feedback": "Add numbers."},
                   {"passed": True, "feedback": "Good."}])

    def script(request: ModelRequest) -> ModelResponse | None:
        return answer(request, next(grades)) if request.agent == "oj_judge" else None

    with scripted_offline(script) as provider:
        outcome = await baton.run(team, "durable agents", client=env.client,
                                  task_queue=queue)
    result = outcome.result
    assert isinstance(result, PipelineResult) and result.status == "ok"
    assert [(s.stage, s.attempts) for s in result.stages] == [("oj_writer", 2), ("oj_judge", 2)]
    first, judged, again, rejudged = contexts
    assert (first.stage, first.attempt, first.outputs, first.feedback) == (
        "oj_writer", 1, {}, None)
    assert [m.content for m in first.transcript] == ["durable agents"]
    assert isinstance(judged.outputs["oj_writer"], Draft)
    # sent back: the previous draft, the judge's verdict, its feedback, the transcript
    assert (again.stage, again.attempt, again.feedback) == ("oj_writer", 2, "Add numbers.")
    assert again.outputs["oj_writer"] == judged.outputs["oj_writer"]
    assert again.outputs["oj_judge"] == Grade(passed=False, feedback="Add numbers.")
    assert [(m.role, m.agent) for m in again.transcript] == [
        ("user", None), ("assistant", "oj_writer"), ("assistant", "oj_judge")]
    # the stages were asked exactly what the functions made
    asked = [[m.content for m in r.messages] for r in provider.requests]
    draft = judged.outputs["oj_writer"]
    assert asked == [
        ["Write a short article on: durable agents"],
        [f"Grade this draft: {draft.headline}"],
        [f"Your draft:\n{draft.text}", "Revise it. The judge said: Add numbers."],
        [f"Grade this draft: {rejudged.outputs['oj_writer'].headline}"]]
    assert rejudged.outputs["oj_writer"] != draft  # the judge saw the revised draft


@pytest.mark.parametrize(("made", "error_type", "message"), [
    (lambda ctx: 42, "HookFailed", "returned 42; accepted: a non-empty string, or a list of "
                                   "baton.Message ending with a non-empty user message"),
    (lambda ctx: [Message(role="assistant", content="hi")], "HookFailed",
     "ending with a non-empty user message"),
    (lambda ctx: ctx.outputs["missing"], "HookFailed", "raised KeyError: 'missing'"),
    (None, "UnknownHook", "is not registered on this worker"),
], ids=["number", "no-user-turn", "raises", "unregistered"])
async def test_a_bad_stage_input_fails_the_run_typed(
        env: WorkflowEnvironment, queue: str, made: Callable[[Any], Any] | None,
        error_type: str, message: str) -> None:
    writer = baton.Agent("bi_writer", "Write.")
    team = baton.Pipeline("bi_stage", [baton.Stage(writer, input=made or (lambda c: "x"))])
    if made is None:
        del STAGE_INPUTS["bi_stage/bi_writer"]
    cause = await failure_of(team, env, queue)
    assert cause.type == error_type and message in cause.message, cause.message
    assert "stage 'bi_writer': the input function 'bi_stage/bi_writer'" in cause.message


# 4: user contracts named like Baton's.

def _planned(contract: str, **team: Any) -> dict[str, Any]:
    """A TOML-shaped catalogue: a planner answering `contract`, one member."""
    return {"agents": {"p": {"instructions": "Plan.", "contract": contract},
                       "w": {"instructions": "Work.", "contract": "Findings"},
                       "s": {"instructions": "Sum up."}},
            "teams": {"t": {"pattern": "fanout", "planner": "p", "members": ["w"],
                            "synthesizer": "s", **team}}}


def test_user_contracts_named_like_batons_never_collide() -> None:
    baton.Agent("nc_planner", "Plan.", output=Plan)
    baton.Agent("nc_critic", "Review.", output=Review)
    assert CONTRACTS["Plan"] is Plan and CONTRACTS["baton.Plan"] is contracts.Plan
    assert CONTRACTS["Review"] is Review and CONTRACTS["baton.Review"] is contracts.Review
    # a catalogue written before the namespace: a bare built-in name no contract of
    # the user's takes is Baton's; one the user's takes is the user's
    catalogue = parse_catalogue(_planned("baton.Plan"))
    assert catalogue.agents["w"].contract == "baton.Findings"
    assert parse_catalogue(_planned("Plan", plan_field="questions")).agents["p"].contract \
        == "Plan"
    # a planner meant for Baton's Plan that now names the user's: said, not guessed
    with pytest.raises(CatalogueError, match=(
            r"planner 'p' answers 'Plan' \(tests.test_open_patterns.Plan\), not "
            r"'baton.Plan': map it to subtasks with plan=fn or plan='a list field'")):
        parse_catalogue(_planned("Plan"))
    with pytest.raises(CatalogueError, match=(
            r"plan_field 'headline' is not a list\[str\] field of Draft; its list\[str\] "
            "fields: none")):
        parse_catalogue(_planned("Draft", plan_field="headline"))
    with pytest.raises(CatalogueError, match="plan and plan_field read the planner's own "
                                             "model; give the planner output=YourModel"):
        parse_catalogue(_planned("Plan", plan_field="questions")
                        | {"agents": {"p": {"instructions": "Plan."},
                                      "w": {"instructions": "Work."},
                                      "s": {"instructions": "Sum up."}}})


def test_bad_plan_definitions_are_refused_before_anything_starts() -> None:
    planner = baton.Agent("nd_planner", "Plan.", output=Plan)
    one, two = baton.Agent("nd_one", "Work."), baton.Agent("nd_two", "Work.")
    writer = baton.Agent("nd_writer", "Write.")
    with pytest.raises(TypeError, match="plan must be a function of the planner's output "
                                        "or the name of its list field; got 42"):
        baton.Coordinator("nd", planner=planner, members=[one], synthesizer=writer,
                          plan=42)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="`plan` and `plan_field` read a planner's answer; "
                                         "this fan-out has no `planner`"):
        baton.FanOut("nd", branches=[one], synthesizer=writer, plan="questions").catalogue()
    with pytest.raises(ValueError, match=r"plan_field 'questions' gives subtasks as text, "
                                         r"each for the one member; this fan-out has members "
                                         r"\['nd_one', 'nd_two'\]"):
        baton.Coordinator("nd", planner=planner, members=[one, two], synthesizer=writer,
                          plan="questions").catalogue()


async def test_user_plan_review_and_draft_work_beside_batons_patterns(
        env: WorkflowEnvironment, queue: str) -> None:
    planner = baton.Agent("ns_planner", "Split the question.", output=Plan)
    drafter = baton.Agent("ns_drafter", "Draft an answer.", output=Draft)
    critic = baton.Agent("ns_critic", "Review the draft.", output=Review)
    lead = baton.Agent("ns_lead", "Delegate, then review.", model="offline:strong")
    desk = baton.Supervisor("ns_desk", lead, [drafter, critic], max_rounds=3)
    team = baton.Coordinator("ns_research", planner=planner, members=[desk],
                             plan="questions", synthesizer=baton.Agent("ns_writer", "Write."))
    outcome = await baton.run(team, QUESTION, client=env.client, task_queue=queue)
    result = outcome.result
    assert isinstance(result, FanOutResult) and result.status == "ok", result.reasons
    assert result.plan is not None and [t.member for t in result.plan] == ["ns_desk"] * 2
    assert all(b.ok for b in result.branches) and len(result.branches) == 2
    # one run: the user's Plan, Draft and Review, and Baton's Review for the supervisor
    calls = {(s.agent, s.detail) for s in result.trace if s.kind == "model_call"}
    assert {("ns_planner", "Plan ok"), ("ns_drafter", "Draft ok"), ("ns_critic", "Review ok"),
            ("ns_lead", "baton.Review ok")} <= calls


# One pattern table: the other views of the patterns derive from it.

def test_one_pattern_table_drives_every_view_of_the_patterns() -> None:
    from typing import get_args

    from baton.core.runs import PATTERN_WORKFLOWS, PATTERNS
    from baton.core.specs import TeamSpec
    from baton.runtime.launch import RESULT_TYPES
    from baton.workflows.registry import ALL_WORKFLOWS, PATTERN_CLASSES

    assert set(PATTERNS) == {"triage", "fanout", "supervisor", "pipeline", "agent"}
    for name, pattern in PATTERNS.items():
        assert PATTERN_WORKFLOWS[name] == pattern.workflow == PATTERN_CLASSES[name].__name__
        assert PATTERN_CLASSES[name].pattern == name and PATTERN_CLASSES[name] in ALL_WORKFLOWS
        assert RESULT_TYPES[name] is pattern.result
        if pattern.spec is not None:
            assert pattern.spec.model_fields["pattern"].default == name
    # the catalogue's team union holds exactly the table's team specs
    union, _ = get_args(TeamSpec)
    assert set(get_args(union)) == {p.spec for p in PATTERNS.values() if p.spec is not None}
