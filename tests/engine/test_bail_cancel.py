"""Ending runs on purpose: ``ctx.bail(reason)`` from inside, ``engine.cancel`` from outside."""

import asyncio
from collections import Counter
from collections.abc import Callable
from typing import Any

import pytest

from engine import (
    AlreadyResolved,
    Engine,
    EventType,
    InterruptStatus,
    OutboxMessage,
    RunNotActive,
    RunNotFound,
    RunStatus,
    StepContext,
    StepStatus,
    Workflow,
    step,
)
from tests.engine.conftest import EngineFactory
from tests.engine.wf_common import Approval, Done, Req, Shown, pending, settle
from tests.support.polling import eventually

Collect = Callable[..., list[OutboxMessage]]


def gated_wf(calls: Counter[str]) -> Workflow:
    """``ask`` (approve or bail) then ``ship``."""

    @step
    async def ask(r: Req, ctx: StepContext[Shown, Approval]) -> Req:
        calls["ask"] += 1
        answer = await ctx.suspend(Shown(question="ship?"))
        if not answer.approved:
            ctx.bail(f"rejected: {answer.comment}")
        return r

    @step
    async def ship(r: Req) -> Done:
        calls["ship"] += 1
        return Done(name=r.name, approved=True)

    return Workflow("gated", input=Req, output=Done).then(ask).then(ship)


async def test_bail_ends_the_run_as_rejected_and_skips_later_steps(
    engine_factory: EngineFactory, collect: Collect
) -> None:
    calls: Counter[str] = Counter()
    engine = await engine_factory(gated_wf(calls))
    finished = collect(engine, ["run.finished"])
    run_id = await engine.start("gated", {"name": "x"})
    (interrupt,) = await pending(engine, (await settle(engine, run_id)).id)
    await engine.resume(run_id, interrupt.id, {"approved": False, "comment": "too big"}, actor="a")
    run = await settle(engine, run_id)
    assert run.status is RunStatus.REJECTED
    assert run.error is not None
    assert run.error.message == "rejected: too big"
    assert calls == {"ask": 2}

    detail = await engine.get_run(run_id)
    assert [(s.name, s.status) for s in detail.steps] == [("ask", StepStatus.BAILED)]
    bailed = [e.data for e in detail.events if e.type is EventType.BAILED]
    assert bailed == [{"step": "ask", "path": "0:ask", "reason": "rejected: too big"}]
    await eventually(lambda: len(finished) == 1)
    assert finished[0].data["status"] == "rejected"
    assert finished[0].data["error"]["message"] == "rejected: too big"


async def test_bail_is_not_swallowed_by_except_exception(engine_factory: EngineFactory) -> None:
    @step
    async def careful(r: Req, ctx: StepContext) -> Done:  # type: ignore[type-arg]
        try:
            ctx.bail("no budget")
        except Exception:  # what a user might write: it must not catch a bail
            return Done(name="swallowed")

    engine = await engine_factory(Workflow("w", input=Req, output=Done).then(careful))
    run = await settle(engine, await engine.start("w", {"name": "x"}))
    assert run.status is RunStatus.REJECTED
    assert run.error is not None and run.error.message == "no budget"


async def test_bail_in_a_parallel_branch_cancels_the_other_pending_interrupts(
    engine_factory: EngineFactory,
) -> None:
    @step
    async def wait_here(r: Req, ctx: StepContext[Shown, Approval]) -> Done:
        await ctx.suspend(Shown(question="?"))
        return Done(name="waited")

    @step
    async def bail_there(r: Req, ctx: StepContext[Shown, Approval]) -> Done:
        answer = await ctx.suspend(Shown(question="?"))
        if not answer.approved:
            ctx.bail("vetoed")
        return Done(name="ok")

    wf = Workflow("p", input=Req, output=Any).parallel(wait_here, bail_there)
    engine = await engine_factory(wf)
    run_id = await engine.start("p", {"name": "x"})
    await settle(engine, run_id)
    asks = {i.step: i for i in await pending(engine, run_id)}
    await engine.resume(run_id, asks["bail_there"].id, {"approved": False}, actor="v")
    run = await settle(engine, run_id)
    assert run.status is RunStatus.REJECTED
    left = await engine.get_interrupt(run_id, asks["wait_here"].id)
    assert left.status is InterruptStatus.CANCELLED
    with pytest.raises(AlreadyResolved):
        await engine.resume(run_id, left.id, {"approved": True}, actor="late")


async def test_cancel_ends_a_suspended_run_and_cancels_its_interrupts(
    engine_factory: EngineFactory, collect: Collect
) -> None:
    calls: Counter[str] = Counter()
    engine = await engine_factory(gated_wf(calls))
    finished = collect(engine, ["run.finished"])
    resolved = collect(engine, ["interrupt.resolved"])
    run_id = await engine.start("gated", {"name": "x"})
    await settle(engine, run_id)
    (interrupt,) = await pending(engine, run_id)

    run = await engine.cancel(run_id, reason="no longer needed", actor="ops")
    assert run.status is RunStatus.CANCELLED
    assert (await engine.get_run(run_id)).run.status is RunStatus.CANCELLED
    cancelled = await engine.get_interrupt(run_id, interrupt.id)
    assert cancelled.status is InterruptStatus.CANCELLED
    assert await pending(engine, run_id) == []

    with pytest.raises(AlreadyResolved) as info:
        await engine.resume(run_id, interrupt.id, {"approved": True}, actor="ann")
    assert info.value.status == "cancelled"
    assert calls == {"ask": 1}

    events = (await engine.get_run(run_id)).events
    (cancel_event,) = [e for e in events if e.type is EventType.CANCELLED]
    assert cancel_event.data == {"status": "cancelled", "reason": "no longer needed", "by": "ops"}
    await eventually(lambda: len(finished) == 1 and len(resolved) == 1)
    assert finished[0].run_id == run_id
    assert finished[0].data == {"status": "cancelled", "reason": "no longer needed", "by": "ops"}
    assert resolved[0].interrupt_id == interrupt.id
    assert resolved[0].data["status"] == "cancelled"


async def test_cancelling_twice_raises_run_not_active(engine_factory: EngineFactory) -> None:
    engine = await engine_factory(gated_wf(Counter()))
    run_id = await engine.start("gated", {"name": "x"})
    await settle(engine, run_id)
    await engine.cancel(run_id, reason="first")
    with pytest.raises(RunNotActive) as info:
        await engine.cancel(run_id, reason="second")
    assert (info.value.run_id, info.value.status) == (run_id, "cancelled")
    cancels = [e for e in (await engine.get_run(run_id)).events if e.type is EventType.CANCELLED]
    assert [e.data["reason"] for e in cancels] == ["first"]


async def test_a_finished_run_cannot_be_cancelled(engine: Engine) -> None:
    @step
    async def quick(r: Req) -> Done:
        return Done(name=r.name)

    engine.register(Workflow("w", input=Req, output=Done).then(quick))
    run = await settle(engine, await engine.start("w", {"name": "x"}))
    with pytest.raises(RunNotActive, match="already completed"):
        await engine.cancel(run.id)


async def test_cancelling_an_unknown_run_raises_run_not_found(engine: Engine) -> None:
    with pytest.raises(RunNotFound):
        await engine.cancel("nope")


async def test_cancel_stops_a_running_step_and_nothing_after_it_runs(
    engine_factory: EngineFactory,
) -> None:
    entered = asyncio.Event()
    after: list[str] = []

    @step
    async def slow(r: Req) -> Req:
        entered.set()
        await asyncio.sleep(30)
        return r

    @step
    async def later(r: Req) -> Done:
        after.append(r.name)
        return Done(name=r.name)

    engine = await engine_factory(Workflow("w", input=Req, output=Done).then(slow).then(later))
    run_id = await engine.start("w", {"name": "x"})
    await asyncio.wait_for(entered.wait(), 5)
    await engine.cancel(run_id, reason="stop")
    run = await engine.wait(run_id, timeout=5)
    assert run.status is RunStatus.CANCELLED
    await asyncio.sleep(0.1)
    assert after == []
    assert (await engine.get_run(run_id)).run.status is RunStatus.CANCELLED


async def test_run_finished_is_announced_for_completed_runs(
    engine_factory: EngineFactory, collect: Collect
) -> None:
    @step
    async def quick(r: Req) -> Done:
        return Done(name=r.name)

    engine = await engine_factory(Workflow("w", input=Req, output=Done).then(quick))
    finished = collect(engine, ["run.finished"])
    run = await settle(engine, await engine.start("w", {"name": "x"}))
    await eventually(lambda: len(finished) == 1)
    assert finished[0].run_id == run.id
    assert finished[0].data["status"] == "completed"
    assert finished[0].data["output"] == {"name": "x", "approved": False, "by": None}
