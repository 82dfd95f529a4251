"""Pipeline: stages in a fixed order, each with a typed contract and an optional gate.

Each stage receives the request and the previous stage's validated output, or
what the stage's `input` function (the user's, run here; baton/core/team_hooks.py)
makes of the request, every earlier stage's output, the transcript and a gate's
feedback: a writer sent back by a judge can be given its previous draft.
`run_agent` already holds every agent stage to its contract (re-prompting with the
validation error), so nothing malformed reaches the next stage. A stage with a
`gate_field` is a judge: when that boolean comes back false, the pipeline loops
back to `loop_back_to` with the judge's feedback. A stage is attempted at most
`max_attempts` times; past that the gate escalates: the pipeline goes on with the
last output and the run is marked degraded, naming the gate that never passed.
"""

from __future__ import annotations

import json
from typing import Any

from temporalio import workflow
from temporalio.exceptions import ApplicationError

with workflow.unsafe.imports_passed_through():
    from pydantic import BaseModel

    from baton.core.contracts import Article, contract_model
    from baton.core.model_io import Message
    from baton.core.runs import PipelineResult, RunInput, RunResult, StageOutcome
    from baton.core.specs import GATES, PipelineTeam, StageSpec
    from baton.core.team_hooks import STAGE_INPUTS, StageContext, call_hook, messages_of
    from baton.core.text import shorten

from baton.workflows.base import PatternWorkflow
from baton.workflows.ledger import RunLedger
from baton.workflows.members import run_member


@workflow.defn
class PipelineWorkflow(PatternWorkflow):
    pattern = "pipeline"

    def __init__(self) -> None:
        super().__init__()
        self._stage = ""

    @workflow.query
    def current_stage(self) -> str:
        return self._stage

    @workflow.run
    async def run(self, run: RunInput) -> PipelineResult:
        return await self.execute(run, PipelineResult, self._pipeline)

    async def _pipeline(self, ledger: RunLedger) -> PipelineResult:
        run = ledger.run
        team = run.catalogue.teams[run.member]
        assert isinstance(team, PipelineTeam)
        names = [s.agent for s in team.stages]
        attempts = dict.fromkeys(names, 0)
        feedback: dict[str, str] = {}
        results: dict[str, RunResult] = {}
        # The run's conversation, then each stage run's answer: what input functions see.
        transcript = list(run.messages)
        index = 0
        while index < len(team.stages):
            stage = team.stages[index]
            attempts[stage.agent] += 1
            self._stage = f"{stage.agent} (attempt {attempts[stage.agent]})"
            self.set_phase(f"stage {index + 1}/{len(names)}: {self._stage}")
            sent_back = feedback.pop(stage.agent, None)
            if stage.input is None:
                previous = results.get(names[index - 1]) if index else None
                messages = [_stage_message(run.prompt, previous, sent_back)]
            else:
                messages = _stage_input(stage, StageContext(
                    request=run.prompt, stage=stage.agent, attempt=attempts[stage.agent],
                    outputs={n: _output_or_text(run, n, r) for n, r in results.items()},
                    transcript=list(transcript), feedback=sent_back))
            if stage.approval:
                decision = await self.ask(
                    ledger, kind="stage", agent=stage.agent, subject=stage.agent,
                    arguments={"input": shorten(messages[-1].content, 1000)},
                    why=f"stage {stage.agent} runs only with a person's approval",
                    timeout_s=stage.approval_timeout_s, default=stage.approval_default)
                if not decision.approved:
                    # The stage escalates: it never runs, and the pipeline stops here.
                    ledger.degrade(f"stage {stage.agent} rejected by {decision.decided_by}: "
                                   f"{decision.reason}; the pipeline stopped before it")
                    break
            result = await run_member(ledger, stage.agent, messages)
            results[stage.agent] = result
            transcript.append(Message(role="assistant", content=result.answer,
                                      agent=stage.agent))
            ledger.step("stage", stage.agent, f"attempt {attempts[stage.agent]} done")
            if stage.gate_field is not None or stage.gate is not None:
                verdict = stage_output(run, stage.agent, result)
                if stage.gate is not None:
                    passed = _gate_passes(stage.gate, verdict if verdict is not None
                                          else result.answer)
                    shown = f"gate {stage.gate}"
                else:
                    passed = bool(getattr(verdict, stage.gate_field or "", False))
                    shown = str(stage.gate_field)
                reason = str(getattr(verdict, "feedback", "") or "gate not passed")
                target = stage.loop_back_to or stage.agent
                ledger.step("gate", stage.agent, f"{shown}={passed}: {reason}", ok=passed)
                if not passed:
                    if attempts[target] < team.max_attempts:
                        feedback[target] = reason
                        index = names.index(target)
                        continue
                    ledger.degrade(f"gate {stage.agent}.{stage.gate_field or stage.gate} still "
                                   "failing after "
                                   f"{attempts[target]} attempts of {target}; escalated")
            index += 1
        done = [n for n in names if n in results]
        stages = [StageOutcome(stage=n, attempts=attempts[n], output=results[n].output,
                               answer=results[n].answer) for n in done]
        if not done:
            return PipelineResult(pattern="pipeline", stages=stages,
                                  answer="The pipeline stopped before its first stage: "
                                         + "; ".join(ledger.reasons), **ledger.result_fields())
        last = results[done[-1]]
        final = stage_output(run, done[-1], last)
        answer = final.markdown if isinstance(final, Article) else last.answer
        return PipelineResult(pattern="pipeline", answer=answer, output=last.output,
                              stages=stages, **ledger.result_fields())


def stage_output(run: RunInput, stage: str, result: RunResult) -> BaseModel | None:
    """A stage's output as its contract's model (outputs cross workflows as JSON)."""
    agent = run.catalogue.agents.get(stage)
    if agent is None or agent.contract is None or result.output is None:
        return None
    return contract_model(agent.contract).model_validate(result.output)


def _output_or_text(run: RunInput, stage: str, result: RunResult) -> Any:
    """A stage's output as an input function sees it: its contract's model, else text."""
    output = stage_output(run, stage, result)
    return output if output is not None else result.answer


def _stage_input(stage: StageSpec, context: StageContext) -> list[Message]:
    """The stage's input function's messages for this attempt (typed failures when the
    worker lacks it, it raises, or it returns neither text nor messages)."""
    assert stage.input is not None
    role = f"stage {stage.agent!r}: the input function"
    return messages_of(call_hook(STAGE_INPUTS, stage.input, role, context), role,
                       stage.input)


def _stage_message(request: str, previous: RunResult | None, feedback: str | None) -> Message:
    parts = [f"Request: {request}"]
    if previous is not None:
        body = (json.dumps(previous.output, indent=2) if previous.output is not None
                else previous.answer)
        parts.append(f"Input from {previous.member}:\n{body}")
    if feedback:
        parts.append(f"Feedback to address: {feedback}")
    return Message(role="user", content="\n\n".join(parts))


def _gate_passes(name: str, output: Any) -> bool:
    """A stage's gate function (baton.Stage(gate=fn)) on its output; typed failures when
    this worker does not have it or it raises (a run names gates, never carries code)."""
    gate = GATES.get(name)
    if gate is None:
        raise ApplicationError(f"gate {name!r} is not registered on this worker (it is "
                               "defined with baton.Stage(gate=...) in the app's module; "
                               "start the worker with --app MODULE)", type="UnknownGate",
                               non_retryable=True)
    try:
        return bool(gate(output))
    except Exception as err:  # the user's function: a typed failure naming it
        raise ApplicationError(f"gate {name!r} raised {type(err).__name__}: {err}",
                               type="GateFailed", non_retryable=True) from None
