"""Issue 10, item 8: escalation in the expiry ladder (reminders, escalations, expiry)."""

from __future__ import annotations

import asyncio

import pytest
from pydantic import BaseModel

from engine import (
    Escalation,
    EventType,
    InterruptStatus,
    NotAuthorized,
    OnExpiry,
    StepContext,
    Workflow,
    step,
)
from tests.engine.conftest import EngineFactory
from tests.engine.fixtures_runtime import Collect, finished, history, parked
from tests.engine.wf_common import Approval, Done, Shown
from tests.support.polling import eventually


class Ladder(BaseModel):
    """How the request escalates (seconds)."""

    escalate_after: list[float]
    expires: float = 60.0
    reminders: list[float] = []
    open_to_anyone: bool = False


@step
async def escalating(lad: Ladder, ctx: StepContext[Shown, Approval]) -> Done:
    """Asks U0A; escalates to the boss and the leads, then to the escalation channel."""
    rungs = [
        Escalation(after=lad.escalate_after[0], add_responders=["U0BOSS", "group:S0LEADS"]),
        *(Escalation(after=a, channel="C0ESC") for a in lad.escalate_after[1:]),
    ]
    answer = await ctx.suspend(
        Shown(question="ship it?"),
        responders=[] if lad.open_to_anyone else ["U0A"],
        reminders=lad.reminders,
        escalate=rungs,
        expires=lad.expires,
        on_expiry=OnExpiry.resume_with(Approval(approved=False, comment="expired")),
        channel="C0ASK",
    )
    return Done(
        name="x", approved=answer.approved, by=ctx.resolution and ctx.resolution.resolved_by
    )


ladder_wf = Workflow("ladder", input=Ladder, output=Done).then(escalating)


async def test_an_escalation_adds_responders_who_may_answer_at_once_and_is_announced(
    engine_factory: EngineFactory, collect: Collect
) -> None:
    engine = await engine_factory(ladder_wf)
    escalated = collect(engine, topics=["interrupt.escalated"])
    run_id = await engine.start(ladder_wf, {"escalate_after": [0.3]})
    await parked(engine, run_id)
    (before,) = await engine.list_interrupts(run_id=run_id)
    assert before.responders == ["U0A"]
    assert [(e.add_responders, e.escalated_at) for e in before.escalations] == [
        (["U0BOSS", "group:S0LEADS"], None)
    ]
    with pytest.raises(NotAuthorized):
        await engine.resume(run_id, before.id, {"approved": True}, actor="U0BOSS")

    await eventually(lambda: escalated, what="interrupt.escalated delivered")

    after = await engine.get_interrupt(run_id, before.id)
    assert after.status is InterruptStatus.PENDING
    assert after.responders == ["U0A", "U0BOSS", "group:S0LEADS"]
    (rung,) = after.escalations
    assert rung.escalated_at is not None and rung.added == ["U0BOSS", "group:S0LEADS"]
    assert [i.id for i in await engine.list_interrupts(actor="U0BOSS")] == [before.id]
    (message,) = escalated
    assert message.interrupt_id == before.id
    assert message.data["added_responders"] == ["U0BOSS", "group:S0LEADS"]
    assert message.data["responders"] == ["U0A", "U0BOSS", "group:S0LEADS"]
    assert message.data["escalation"] == 0 and message.data["channel"] is None
    (event,) = await history(engine, run_id, EventType.ESCALATED)
    assert event.data == message.data

    await engine.resume(run_id, before.id, {"approved": True}, actor="U0BOSS")
    run = await finished(engine, run_id)
    assert run.output == {"name": "x", "approved": True, "by": "U0BOSS"}


async def test_the_expiry_ladder_reminds_escalates_then_expires_with_the_typed_default(
    engine_factory: EngineFactory, collect: Collect
) -> None:
    engine = await engine_factory(ladder_wf)
    topics = ["interrupt.reminder", "interrupt.escalated", "interrupt.resolved"]
    messages = collect(engine, topics=topics)
    run_id = await engine.start(
        ladder_wf,
        {"reminders": [0.1], "escalate_after": [0.25, 0.4, 5.0], "expires": 0.6},
    )
    await parked(engine, run_id)
    (asked,) = await engine.list_interrupts(run_id=run_id)
    assert [e.after for e in asked.escalations] == [0.25, 0.4]  # due after expiry: dropped

    run = await finished(engine, run_id)

    assert run.output == {"name": "x", "approved": False, "by": None}
    ladder = await history(
        engine,
        run_id,
        EventType.REMINDED,
        EventType.ESCALATED,
        EventType.EXPIRED,
        EventType.RESOLVED,
        EventType.RESPONSE_RECORDED,
    )
    assert [e.type for e in ladder] == [
        EventType.REMINDED,
        EventType.ESCALATED,
        EventType.ESCALATED,
        EventType.EXPIRED,
        EventType.RESOLVED,
    ]
    assert [e.data.get("channel") for e in ladder[1:3]] == [None, "C0ESC"]
    assert ladder[4].data["status"] == "expired" and ladder[4].data["by"] is None
    expired = await engine.get_interrupt(run_id, asked.id)
    assert expired.status is InterruptStatus.EXPIRED  # never confused with an answer
    assert (expired.resolved_by, expired.responses) == (None, [])
    assert expired.data == {"approved": False, "comment": "expired"}
    # Delivered after their commits: the last may still be on its way when the run is done.
    await eventually(lambda: len(messages) >= 4, what="the four outbox messages")
    assert [m.topic for m in messages] == [
        "interrupt.reminder",
        "interrupt.escalated",
        "interrupt.escalated",
        "interrupt.resolved",
    ]


async def test_an_escalation_is_skipped_once_the_interrupt_is_decided(
    engine_factory: EngineFactory, collect: Collect
) -> None:
    engine = await engine_factory(ladder_wf)
    escalated = collect(engine, topics=["interrupt.escalated"])
    run_id = await engine.start(ladder_wf, {"escalate_after": [0.3]})
    await parked(engine, run_id)
    (asked,) = await engine.list_interrupts(run_id=run_id)
    await engine.resume(run_id, asked.id, {"approved": True}, actor="U0A")
    await finished(engine, run_id)
    await asyncio.sleep(0.5)
    assert await history(engine, run_id, EventType.ESCALATED) == []
    assert escalated == []
    assert (await engine.get_interrupt(run_id, asked.id)).escalations[0].escalated_at is None


async def test_an_escalation_of_a_request_open_to_anyone_keeps_it_open(
    engine_factory: EngineFactory,
) -> None:
    engine = await engine_factory(ladder_wf)
    run_id = await engine.start(ladder_wf, {"escalate_after": [0.1], "open_to_anyone": True})
    await parked(engine, run_id)

    async def escalated() -> bool:
        return bool(await history(engine, run_id, EventType.ESCALATED))

    await eventually(escalated)
    (asked,) = await engine.list_interrupts(run_id=run_id)
    assert asked.responders == []  # still anyone's to answer
    assert asked.escalations[0].added == []
    (event,) = await history(engine, run_id, EventType.ESCALATED)
    assert event.data["add_responders"] == ["U0BOSS", "group:S0LEADS"]  # for a mention


def test_an_escalation_that_does_nothing_is_refused() -> None:
    with pytest.raises(ValueError, match="add_responders"):
        Escalation(after=60)
    with pytest.raises(ValueError, match="positive"):
        Escalation(after=0, channel="C0")
