"""Issue 10, item 2: an answer delivered to the run as a named event (``ResumeTo.event``)."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import BaseModel

from engine import (
    DefinitionError,
    Engine,
    EventType,
    InterruptKind,
    ResumeTo,
    RunStatus,
    StepContext,
    StepStatus,
    Workflow,
    step,
)
from tests.engine.conftest import EngineFactory
from tests.engine.fixtures_runtime import PROBE, Probe, finished, history, parked
from tests.engine.wf_common import Done, Note, Req, Shown


class Decision(BaseModel):
    """The answer, and the event's data."""

    approved: bool
    comment: str = ""


@step(resume_to=ResumeTo.event("ApprovalGiven"))
async def ask_approval(r: Req, ctx: StepContext[Shown, Decision]) -> Shown:
    """Asks; the answer goes to whoever waits for ApprovalGiven."""
    PROBE.hit("ask")
    await ctx.suspend(Shown(question=f"ship {r.name}?"))
    raise AssertionError("an asking step with ResumeTo.event is never re-entered")


@step(events={"ApprovalGiven": Decision})
async def on_approval(r: Req, ctx: StepContext) -> Done:  # type: ignore[type-arg]
    """Waits for the answer as an event."""
    PROBE.hit("wait")
    decision = await ctx.wait_for_event("ApprovalGiven", Decision)
    by = ctx.resolution.resolved_by if ctx.resolution else None
    return Done(name=r.name, approved=decision.approved, by=by)


side_by_side = Workflow("ev", input=Req, output=Any).parallel(ask_approval, on_approval)


async def test_an_answer_resumes_to_the_step_waiting_for_its_named_event(
    engine_factory: EngineFactory, probe: Probe
) -> None:
    engine = await engine_factory(side_by_side)
    run_id = await engine.start(side_by_side, {"name": "v2"})
    await parked(engine, run_id)
    (asked,) = await engine.list_interrupts(run_id=run_id)  # no event interrupt besides
    assert asked.kind is InterruptKind.INPUT and asked.step == "ask_approval"
    detail = await engine.get_run(run_id)
    (done,) = [s for s in detail.steps if s.name == "ask_approval"]
    assert done.status is StepStatus.COMPLETED  # completed as soon as it asked

    await engine.resume(run_id, asked.id, {"approved": True, "comment": "go"}, actor="bo")
    run = await finished(engine, run_id)

    assert run.status is RunStatus.COMPLETED
    assert run.output == {
        "ask_approval": {"question": "ship v2?"},  # its output: the payload it showed
        "on_approval": {"name": "v2", "approved": True, "by": "bo"},
    }
    assert probe.calls["ask"] == 1  # never re-entered
    assert probe.calls["wait"] == 2  # parked once, woken once with the answer
    assert len(await history(engine, run_id, EventType.RESOLVED)) == 1


@step(events={"ApprovalGiven": Decision})
async def later(shown: Shown, ctx: StepContext) -> Done:  # type: ignore[type-arg]
    """Runs after the asking step, then waits for its answer."""
    PROBE.hit("later", shown.question)
    decision = await ctx.wait_for_event("ApprovalGiven", Decision)
    return Done(name=shown.question, approved=decision.approved)


in_sequence = Workflow("seq_ev", input=Req, output=Done).then(ask_approval).then(later)


async def test_the_run_goes_on_after_asking_and_a_later_step_receives_the_answer(
    engine_factory: EngineFactory, probe: Probe
) -> None:
    engine = await engine_factory(in_sequence)
    run_id = await engine.start(in_sequence, {"name": "v3"})
    await parked(engine, run_id)
    assert probe.seen["later"] == ["ship v3?"]  # reached while the request is pending
    (asked,) = await engine.list_interrupts(run_id=run_id)
    await engine.resume(run_id, asked.id, {"approved": False}, actor="bo")
    run = await finished(engine, run_id)
    assert run.output == {"name": "ship v3?", "approved": False, "by": None}


async def test_resume_to_an_event_nobody_waits_for_is_refused_at_registration(
    engine: Engine,
) -> None:
    with pytest.raises(DefinitionError, match="no step of the workflow waits for it"):
        engine.register(Workflow("lonely", input=Req, output=Shown).then(ask_approval))

    @step(events={"ApprovalGiven": Note})
    async def wrong_model(r: Req, ctx: StepContext) -> Done:  # type: ignore[type-arg]
        await ctx.wait_for_event("ApprovalGiven", Note)
        return Done(name=r.name)

    with pytest.raises(DefinitionError, match="waits for event 'ApprovalGiven' with a model"):
        engine.register(
            Workflow("wrong", input=Req, output=Any).parallel(ask_approval, wrong_model)
        )


def test_resume_to_an_event_needs_a_resume_model_and_an_output_fitting_the_payload() -> None:
    with pytest.raises(DefinitionError, match="needs a resume model"):

        @step(resume_to=ResumeTo.event("E"))
        async def no_models(r: Req) -> None:
            return None

    with pytest.raises(DefinitionError, match="completes the step with the payload it showed"):

        @step(resume_to=ResumeTo.event("E"))
        async def other_output(r: Req, ctx: StepContext[Shown, Decision]) -> Done:
            return Done(name="x")

    @step(resume_to=ResumeTo.event("E"))
    async def returns_none(r: Req, ctx: StepContext[Shown, Decision]) -> None:
        return None

    assert returns_none.resume_to == "event" and returns_none.resume_event == "E"
    with pytest.raises(DefinitionError, match="is not one of"):

        @step(resume_to="elsewhere")  # type: ignore[arg-type]
        async def unknown(r: Req, ctx: StepContext[Shown, Decision]) -> Shown:
            return Shown(question="?")
