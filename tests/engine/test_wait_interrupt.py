"""``Engine.wait_interrupt``: a waiter learns that a request was decided at the commit of the
decision, before the run goes on, in this process or from another one."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from engine import (
    InterruptNotFound,
    InterruptStatus,
    RunNotFound,
    RunStatus,
    StepContext,
    Workflow,
    step,
)
from tests.engine.conftest import EngineFactory
from tests.engine.wf_common import Approval, Done, Req, Shown, settle


def gated_wf(gate: asyncio.Event, *, before: asyncio.Event | None = None) -> Workflow:
    """``ask`` (interrupt ``ok``) then ``hold``, which blocks until ``gate`` is set.

    With ``before``, ``ask`` first blocks until it is set (the interrupt is not open yet).
    """

    @step
    async def ask(r: Req, ctx: StepContext[Shown, Approval]) -> Done:
        if before is not None:
            await before.wait()
        answer = await ctx.suspend(Shown(question=f"ok {r.name}?"), interrupt_id="ok")
        return Done(name=r.name, approved=answer.approved)

    @step
    async def hold(d: Done) -> Done:
        await gate.wait()
        return d

    return Workflow("gated", version=1, input=Req, output=Done).then(ask).then(hold)


async def test_the_wait_returns_at_the_resolution_before_the_run_goes_on(
    engine_factory: EngineFactory,
) -> None:
    gate = asyncio.Event()
    engine = await engine_factory(gated_wf(gate), poll_interval=30.0)  # no polling help
    run_id = await engine.start("gated", {"name": "db"})
    await settle(engine, run_id)
    waiter = asyncio.create_task(engine.wait_interrupt(run_id, "ok", timeout=20))
    await asyncio.sleep(0.05)
    assert not waiter.done()  # pending: still waiting

    await engine.resume(run_id, "ok", {"approved": True}, actor="U0ALICE")
    decided = await asyncio.wait_for(waiter, 10)  # far below the 30 s poll: woken in-process

    assert decided.status is InterruptStatus.APPROVED
    assert decided.resolved_by == "U0ALICE"
    assert decided.resolved_at is not None
    run = await engine.find_run(run_id)
    assert run is not None and run.status is RunStatus.RUNNING  # `hold` is still blocked
    gate.set()
    finished = await engine.wait(run_id, until=[RunStatus.COMPLETED], timeout=10)
    assert finished.status is RunStatus.COMPLETED


async def test_a_resolution_committed_by_another_engine_wakes_the_waiter_by_polling(
    engine_factory: EngineFactory,
) -> None:
    gate = asyncio.Event()
    gate.set()
    deciding = await engine_factory(gated_wf(gate), worker_id="deciding")
    watching = await engine_factory(gated_wf(gate), worker_id="watching", poll_interval=0.05)
    run_id = await deciding.start("gated", {"name": "db"})
    await settle(deciding, run_id)
    waiter = asyncio.create_task(watching.wait_interrupt(run_id, "ok", timeout=20))
    await asyncio.sleep(0.2)
    assert not waiter.done()

    await deciding.resume(run_id, "ok", {"approved": False}, actor="U0BOB")

    decided = await asyncio.wait_for(waiter, 10)
    assert decided.status is InterruptStatus.REJECTED
    assert decided.resolved_by == "U0BOB"


async def test_an_interrupt_not_opened_yet_is_waited_for(engine_factory: EngineFactory) -> None:
    gate, before = asyncio.Event(), asyncio.Event()
    gate.set()
    engine = await engine_factory(gated_wf(gate, before=before))
    run_id = await engine.start("gated", {"name": "db"})
    waiter = asyncio.create_task(engine.wait_interrupt(run_id, "ok", timeout=20))
    await asyncio.sleep(0.2)  # several polls: the run is running, nothing asked yet
    assert not waiter.done()
    before.set()
    await settle(engine, run_id)
    assert not waiter.done()

    await engine.cancel(run_id, reason="not needed", actor="U0OPS")

    decided = await asyncio.wait_for(waiter, 10)
    assert decided.status is InterruptStatus.CANCELLED
    assert decided.resolved_by == "U0OPS"


async def test_no_run_no_interrupt_and_timeout_raise(engine_factory: EngineFactory) -> None:
    gate = asyncio.Event()
    gate.set()
    engine = await engine_factory(gated_wf(gate))
    with pytest.raises(RunNotFound):
        await engine.wait_interrupt("nope", "ok", timeout=5)

    run_id = await engine.start("gated", {"name": "db"})
    await settle(engine, run_id)
    with pytest.raises(TimeoutError):
        await engine.wait_interrupt(run_id, "ok", timeout=0.1)
    with pytest.raises(TimeoutError):  # another interrupt: the run is alive, it may come
        await engine.wait_interrupt(run_id, "other", timeout=0.1)

    await engine.resume(run_id, "ok", {"approved": True}, actor="U0ALICE")
    await engine.wait(run_id, until=[RunStatus.COMPLETED], timeout=10)
    with pytest.raises(InterruptNotFound):  # finished without ever opening it
        await engine.wait_interrupt(run_id, "other", timeout=5)
    decided = await engine.wait_interrupt(run_id, "ok", timeout=5)  # decided: at once
    assert decided.status is InterruptStatus.APPROVED
    assert engine._decision_waiters == {}  # every waiter unregistered itself


async def test_the_decision_is_stamped_when_it_takes_effect_not_when_it_was_asked(
    engine_factory: EngineFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    now = [1_800_000_000.0]
    gate = asyncio.Event()
    gate.set()
    engine = await engine_factory(gated_wf(gate), clock=lambda: now[0])
    run_id = await engine.start("gated", {"name": "db"})
    await settle(engine, run_id)
    resolve = engine.store.resolve

    async def queued(*args: Any, **kwargs: Any) -> Any:
        now[0] += 0.25  # the write waits behind others in the group commit meanwhile
        return await resolve(*args, **kwargs)

    monkeypatch.setattr(engine.store, "resolve", queued)
    await engine.resume(run_id, "ok", {"approved": True}, actor="U0ALICE")

    decided = await engine.wait_interrupt(run_id, "ok", timeout=5)
    assert decided.resolved_at is not None
    assert decided.resolved_at.timestamp() == 1_800_000_000.25
    assert [r.at.timestamp() for r in decided.responses] == [1_800_000_000.25]
