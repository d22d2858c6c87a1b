"""The quorum rule: N distinct approvals resolve; one rejection is final; one actor counts once."""

from collections import Counter
from typing import Any

import pytest

from engine import (
    AlreadyResolved,
    DuplicateResponse,
    Engine,
    EventType,
    InterruptStatus,
    RunStatus,
    StepContext,
    Workflow,
    step,
)
from tests.engine.conftest import EngineFactory
from tests.engine.wf_common import Approval, Done, Note, Req, Shown, pending, settle


def quorum_wf(calls: Counter[str], quorum: int) -> Workflow:
    @step
    async def vote(r: Req, ctx: StepContext[Shown, Approval]) -> Done:
        calls["vote"] += 1
        answer = await ctx.suspend(Shown(question="ship?"), quorum=quorum)
        assert ctx.resolution is not None
        voters = "+".join(x.actor for x in ctx.resolution.responses)
        return Done(name=voters, approved=answer.approved, by=ctx.resolution.resolved_by)

    @step
    async def after(d: Done) -> Done:
        calls["after"] += 1
        return d

    return Workflow("q", input=Req, output=Done).then(vote).then(after)


async def started(engine: Engine) -> tuple[str, str]:
    run_id = await engine.start("q", {"name": "x"})
    await settle(engine, run_id)
    (interrupt,) = await pending(engine, run_id)
    return run_id, interrupt.id


async def test_quorum_needs_n_distinct_approvals(engine_factory: EngineFactory) -> None:
    calls: Counter[str] = Counter()
    engine = await engine_factory(quorum_wf(calls, quorum=3))
    run_id, iid = await started(engine)

    first = await engine.resume(run_id, iid, {"approved": True}, actor="ann")
    assert (first.status, first.approvals, first.needed, first.resolved) == (
        InterruptStatus.PENDING,
        1,
        3,
        False,
    )
    second = await engine.resume(run_id, iid, {"approved": True}, actor="bo")
    assert (second.status, second.approvals) == (InterruptStatus.PENDING, 2)
    assert (await settle(engine, run_id)).status is RunStatus.SUSPENDED
    assert calls["after"] == 0

    third = await engine.resume(run_id, iid, {"approved": True, "comment": "go"}, actor="cy")
    assert (third.status, third.approvals, third.needed) == (InterruptStatus.APPROVED, 3, 3)
    assert third.resolved
    run = await settle(engine, run_id)
    assert run.output == {"name": "ann+bo+cy", "approved": True, "by": "cy"}
    assert calls == {"vote": 2, "after": 1}

    interrupt = await engine.get_interrupt(run_id, iid)
    assert interrupt.approvals == 3
    assert interrupt.data == {"approved": True, "comment": "go"}  # the deciding answer
    events = (await engine.get_run(run_id)).events
    votes = [e.data for e in events if e.type is EventType.RESPONSE_RECORDED]
    assert [(v["actor"], v["approvals"], v["needed"]) for v in votes] == [
        ("ann", 1, 3),
        ("bo", 2, 3),
        ("cy", 3, 3),
    ]
    assert [e.data["by"] for e in events if e.type is EventType.RESOLVED] == ["cy"]


async def test_the_same_actor_counts_once(engine_factory: EngineFactory) -> None:
    engine = await engine_factory(quorum_wf(Counter(), quorum=2))
    run_id, iid = await started(engine)
    await engine.resume(run_id, iid, {"approved": True}, actor="ann")
    before = await engine.get_run(run_id)

    with pytest.raises(DuplicateResponse) as info:
        await engine.resume(run_id, iid, {"approved": True}, actor="ann")
    err = info.value
    assert (err.actor, err.approvals, err.needed) == ("ann", 1, 2)
    assert "each actor counts once" in str(err)
    with pytest.raises(DuplicateResponse):  # changing their mind is refused too
        await engine.resume(run_id, iid, {"approved": False}, actor="ann")

    after = await engine.get_run(run_id)
    assert after.events == before.events
    (still,) = after.pending
    assert [r.actor for r in still.responses] == ["ann"]
    assert still.status is InterruptStatus.PENDING


async def test_one_rejection_resolves_as_rejected(engine_factory: EngineFactory) -> None:
    calls: Counter[str] = Counter()
    engine = await engine_factory(quorum_wf(calls, quorum=3))
    run_id, iid = await started(engine)
    await engine.resume(run_id, iid, {"approved": True}, actor="ann")
    outcome = await engine.resume(run_id, iid, {"approved": False, "comment": "no"}, actor="bo")
    assert (outcome.status, outcome.approvals, outcome.needed) == (InterruptStatus.REJECTED, 1, 3)
    run = await settle(engine, run_id)
    assert run.output == {"name": "ann+bo", "approved": False, "by": "bo"}
    with pytest.raises(AlreadyResolved) as info:
        await engine.resume(run_id, iid, {"approved": True}, actor="cy")
    assert (info.value.status, info.value.resolved_by) == ("rejected", "bo")


async def test_a_single_approval_resolves_a_quorum_of_one(engine_factory: EngineFactory) -> None:
    engine = await engine_factory(quorum_wf(Counter(), quorum=1))
    run_id, iid = await started(engine)
    outcome = await engine.resume(run_id, iid, {"approved": True}, actor="ann")
    assert (outcome.status, outcome.approvals, outcome.needed) == (InterruptStatus.APPROVED, 1, 1)


@pytest.mark.parametrize("quorum", [0, 2])
async def test_a_bad_quorum_fails_the_step(engine_factory: EngineFactory, quorum: int) -> None:
    # quorum=0 is nonsense; quorum=2 needs an `approved` bool to count, and Note has none.
    @step
    async def ask(r: Req, ctx: StepContext[Shown, Note]) -> Done:
        await ctx.suspend(Shown(question="?"), quorum=quorum)
        return Done(name="x")

    engine = await engine_factory(Workflow("w", input=Req, output=Done).then(ask))
    run = await settle(engine, await engine.start("w", {"name": "x"}))
    assert run.status is RunStatus.FAILED
    assert run.error is not None
    expected: dict[int, Any] = {0: "quorum must be >= 1", 2: "needs a resume model with a bool"}
    assert expected[quorum] in run.error.message
    assert await engine.list_interrupts(status=None) == []
