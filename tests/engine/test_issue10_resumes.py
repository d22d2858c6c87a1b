"""Issue 10, item 3: a cap on a step's suspend/resume cycles (``@step(max_resumes=N)``)."""

from __future__ import annotations

import pytest

from engine import (
    DefinitionError,
    EventType,
    RunStatus,
    StepContext,
    TooManyResumes,
    Workflow,
    step,
)
from tests.engine.conftest import EngineFactory
from tests.engine.fixtures_runtime import finished, history, parked
from tests.engine.wf_common import Approval, Done, Req, Shown


@step(max_resumes=2)
async def insist(r: Req, ctx: StepContext[Shown, Approval]) -> Done:
    """Asks again and again until the answer is yes."""
    while True:
        answer = await ctx.suspend(Shown(question=r.name))
        if answer.approved:
            return Done(name=r.name, approved=True)


insisting = Workflow("insist", input=Req, output=Done).then(insist)


async def test_a_step_asking_again_past_max_resumes_fails_with_too_many_resumes(
    engine_factory: EngineFactory,
) -> None:
    engine = await engine_factory(insisting)
    run_id = await engine.start(insisting, {"name": "q"})
    for _ in range(2):
        await parked(engine, run_id)
        (asked,) = await engine.list_interrupts(run_id=run_id)
        await engine.resume(run_id, asked.id, {"approved": False}, actor="bo")

    run = await finished(engine, run_id)

    assert run.status is RunStatus.FAILED and run.error is not None
    assert run.error.type == "TooManyResumes"
    assert "step 'insist' was resumed 2 times (@step(max_resumes=2))" in run.error.message
    assert await engine.list_interrupts(run_id=run_id) == []  # the third ask was not made
    (failed,) = await history(engine, run_id, EventType.STEP_FAILED)
    assert failed.data["step"] == "insist"


async def test_max_resumes_counts_across_restarts(engine_factory: EngineFactory) -> None:
    for n in range(2):
        engine = await engine_factory(insisting)
        if n == 0:
            run_id = await engine.start(insisting, {"name": "q"})
        await parked(engine, run_id)
        (asked,) = await engine.list_interrupts(run_id=run_id)
        await engine.resume(run_id, asked.id, {"approved": False}, actor="bo")
        await engine.wait(run_id, timeout=10)
        await engine.close()  # a new process each time: nothing counted in memory

    engine = await engine_factory(insisting)
    run = await finished(engine, run_id)
    assert run.status is RunStatus.FAILED and run.error is not None
    assert run.error.type == "TooManyResumes"


async def test_a_step_within_max_resumes_completes(engine_factory: EngineFactory) -> None:
    engine = await engine_factory(insisting)
    run_id = await engine.start(insisting, {"name": "q"})
    for approved in (False, True):
        await parked(engine, run_id)
        (asked,) = await engine.list_interrupts(run_id=run_id)
        await engine.resume(run_id, asked.id, {"approved": approved}, actor="bo")
    run = await finished(engine, run_id)
    assert run.status is RunStatus.COMPLETED


def test_max_resumes_below_one_is_a_definition_error() -> None:
    with pytest.raises(DefinitionError, match="max_resumes must be >= 1"):

        @step(max_resumes=0)
        async def never(r: Req, ctx: StepContext[Shown, Approval]) -> Done:
            return Done(name=r.name)


def test_too_many_resumes_names_the_step_and_the_cap() -> None:
    err = TooManyResumes("insist", 5)
    assert (err.step, err.cap) == ("insist", 5)
    assert "max_resumes=5" in str(err)
