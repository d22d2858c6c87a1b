"""Versioning: a run stays pinned to the workflow version it started on.

Deploying a changed workflow registers a new version; runs already waiting keep their
definition (and their resume model) as long as the old version stays registered.
"""

from __future__ import annotations

import asyncio

import pytest
from pydantic import BaseModel

from engine import (
    InterruptStatus,
    ResumeValidationError,
    RunStatus,
    StepContext,
    Workflow,
    WorkflowNotRegistered,
    step,
)
from tests.engine.conftest import EngineFactory
from tests.engine.fixtures_runtime import (
    PROBE,
    Probe,
    finished,
    history,
    parked,
    stored_run,
)
from tests.support.polling import eventually


class Expense(BaseModel):
    """Workflow input."""

    amount: int


class Shown(BaseModel):
    """What the approver sees."""

    amount: int


class ApprovalV1(BaseModel):
    """Version 1's answer."""

    approved: bool


class ApprovalV2(BaseModel):
    """Version 2's answer: a cost centre became mandatory."""

    approved: bool
    cost_centre: str


class Paid(BaseModel):
    """Workflow output: which version's code produced it."""

    amount: int
    version: str
    detail: str = ""


@step(name="approve")
async def approve_v1(e: Expense, ctx: StepContext[Shown, ApprovalV1]) -> Paid:
    """Version 1: a plain approval."""
    PROBE.hit("approve_v1")
    answer = await ctx.suspend(Shown(amount=e.amount))
    if e.amount == 99:  # held after the answer, for the recovery test
        PROBE.hit("held")
        await PROBE.wait("hold")
    return Paid(amount=e.amount if answer.approved else 0, version="1")


@step(name="approve")
async def approve_v2(e: Expense, ctx: StepContext[Shown, ApprovalV2]) -> Paid:
    """Version 2: an approval with a cost centre."""
    PROBE.hit("approve_v2")
    answer = await ctx.suspend(Shown(amount=e.amount))
    return Paid(amount=e.amount, version="2", detail=answer.cost_centre)


@step
async def book(p: Paid) -> Paid:
    """Version 2 only: book the payment."""
    PROBE.hit("book")
    return p.model_copy(update={"detail": f"booked:{p.detail}"})


V1 = Workflow("expense", version=1, input=Expense, output=Paid).then(approve_v1)
V2 = Workflow("expense", version=2, input=Expense, output=Paid).then(approve_v2).then(book)
ASK = "0:approve#0"


async def test_a_run_cannot_be_resumed_without_its_pinned_version(
    engine_factory: EngineFactory, probe: Probe
) -> None:
    old = await engine_factory(V1)
    run_id = await old.start("expense", {"amount": 10})
    assert (await parked(old, run_id)).version == "1"
    await old.close()
    new = await engine_factory(V2)
    before = await new.get_run(run_id)

    with pytest.raises(WorkflowNotRegistered) as refused:
        await new.resume(run_id, ASK, {"approved": True, "cost_centre": "R&D"}, actor="alice")

    assert (refused.value.name, refused.value.version) == ("expense", "1")
    assert "register that version again" in str(refused.value)
    after = await new.get_run(run_id)
    assert after.run.status is RunStatus.SUSPENDED
    assert after.interrupts[0].status is InterruptStatus.PENDING
    assert after.interrupts[0].responses == []
    assert after.events == before.events
    assert after.steps == before.steps
    assert probe.calls == {"approve_v1": 1}


async def test_old_runs_resume_on_their_version_while_new_runs_start_on_the_newest(
    engine_factory: EngineFactory, probe: Probe
) -> None:
    old = await engine_factory(V1)
    old_run = await old.start("expense", {"amount": 10})
    await parked(old, old_run)
    await old.close()
    engine = await engine_factory(V1, V2)

    new_run = await engine.start("expense", {"amount": 20})
    await parked(engine, new_run)
    # The old run's answer is validated against version 1's model, the new run's
    # against version 2's.
    await engine.resume(old_run, ASK, {"approved": True}, actor="alice")
    with pytest.raises(ResumeValidationError) as invalid:
        await engine.resume(new_run, ASK, {"approved": True}, actor="alice")
    assert set(invalid.value.errors) == {"cost_centre"}
    await engine.resume(new_run, ASK, {"approved": True, "cost_centre": "R&D"}, actor="bob")

    done_old, done_new = await finished(engine, old_run), await finished(engine, new_run)

    assert (done_old.version, done_old.status) == ("1", RunStatus.COMPLETED)
    assert done_old.output == {"amount": 10, "version": "1", "detail": ""}
    assert (done_new.version, done_new.status) == ("2", RunStatus.COMPLETED)
    assert done_new.output == {"amount": 20, "version": "2", "detail": "booked:R&D"}
    assert probe.calls == {"approve_v1": 2, "approve_v2": 2, "book": 1}
    (started,) = [e for e in await history(engine, new_run) if e.type == "started"]
    assert started.data["version"] == "2"


async def test_an_older_version_can_still_be_started_explicitly(
    engine_factory: EngineFactory, probe: Probe
) -> None:
    engine = await engine_factory(V1, V2)

    run_id = await engine.start("expense", {"amount": 5}, version=1)

    assert (await parked(engine, run_id)).version == "1"
    assert (await engine.get_interrupt(run_id, ASK)).version == "1"
    with pytest.raises(WorkflowNotRegistered):
        await engine.start("expense", {"amount": 5}, version=3)


async def test_a_run_in_flight_is_recovered_only_by_an_engine_with_its_version(
    engine_factory: EngineFactory, db_path: str, probe: Probe, caplog: pytest.LogCaptureFixture
) -> None:
    old = await engine_factory(V1)
    run_id = await old.start("expense", {"amount": 99})
    await parked(old, run_id)
    await old.resume(run_id, ASK, {"approved": True}, actor="alice")
    await eventually(lambda: probe.calls["held"] == 1)
    await old.close(grace=0.1)  # the run stays "running", left to recovery
    before = await stored_run(db_path)
    assert before.run.status is RunStatus.RUNNING

    only_new = await engine_factory(V2, lease=0.3)
    await asyncio.sleep(0.5)  # several recovery passes
    await only_new.close()
    refusals = [r for r in caplog.records if "cannot drive run" in r.getMessage()]
    assert refusals and "version '1' is not registered" in refusals[0].getMessage()

    after = await stored_run(db_path)
    assert after.run.status is RunStatus.RUNNING
    assert (after.steps, after.events) == (before.steps, before.events)
    assert probe.calls["approve_v2"] == probe.calls["book"] == 0

    probe.gate("hold").set()
    again = await engine_factory(V1)
    run = await finished(again, run_id)
    assert run.status is RunStatus.COMPLETED
    assert run.output == {"amount": 99, "version": "1", "detail": ""}
    assert probe.calls["approve_v2"] == probe.calls["book"] == 0
