"""Durable timers: interrupt expiry (resume/fail/bail), reminders and ``ctx.sleep``.

Timers are rows in the store, so they also fire after a restart: an engine that opens
on a file with overdue timers fires them at start-up.
"""

from __future__ import annotations

import asyncio
import time

import pytest
from pydantic import BaseModel

from engine import (
    AlreadyResolved,
    EventType,
    InterruptKind,
    InterruptStatus,
    OnExpiry,
    RunStatus,
    StepContext,
    StepStatus,
    Workflow,
    WrongInterruptKind,
    step,
)
from engine.store.base import TimerRow
from engine.timers import TimerLoop
from tests.engine.conftest import EngineFactory
from tests.engine.fixtures_runtime import (
    PROBE,
    Collect,
    Probe,
    finished,
    history,
    parked,
)
from tests.support.polling import eventually


class Ticket(BaseModel):
    """Workflow input; ``expires`` is how long the approver gets (seconds)."""

    title: str
    expires: float = 0.3
    rule: str = "resume"


class Ask(BaseModel):
    """What the approver is shown."""

    title: str


class Decision(BaseModel):
    """The approver's answer."""

    approved: bool
    comment: str = ""


class Outcome(BaseModel):
    """What the run produced, and how the decision came about."""

    approved: bool
    comment: str
    expired: bool
    by: str | None


RULES = {
    "resume": OnExpiry.resume_with(Decision(approved=False, comment="nobody answered")),
    "fail": OnExpiry.fail(),
    "bail": OnExpiry.bail("approval window closed"),
}


@step
async def review(t: Ticket, ctx: StepContext[Ask, Decision]) -> Outcome:
    """Ask for approval with an expiry rule chosen by the input."""
    rule = RULES.get(t.rule)  # "default": no on_expiry given
    answer = await ctx.suspend(Ask(title=t.title), expires=t.expires, on_expiry=rule)
    assert ctx.resolution is not None
    return Outcome(
        approved=answer.approved,
        comment=answer.comment,
        expired=ctx.resolution.status is InterruptStatus.EXPIRED,
        by=ctx.resolution.resolved_by,
    )


@step
async def after_review(o: Outcome) -> Outcome:
    """Runs only if the run continues after the review."""
    PROBE.hit("after_review", o)
    return o


reviewed = Workflow("reviewed", input=Ticket, output=Outcome).then(review).then(after_review)
ASK = "0:review#0"  # the id of review's interrupt: its path and call number


class Reminded(BaseModel):
    """Input of the reminder workflow: reminder offsets in seconds."""

    reminders: list[float]


@step
async def nag(r: Reminded, ctx: StepContext[Ask, Decision]) -> Decision:
    """Wait for an answer with reminders (no expiry)."""
    return await ctx.suspend(Ask(title="nag"), reminders=r.reminders)


nagging = Workflow("nagging", input=Reminded, output=Decision).then(nag)


class Nap(BaseModel):
    """Input of the sleeper: how long to sleep."""

    seconds: float


@step
async def before_nap(n: Nap, ctx: StepContext) -> Nap:
    """Counts its executions (must be one, sleep or not)."""
    PROBE.hit("before_nap", ctx.idempotency_key)
    return n


@step
async def nap(n: Nap, ctx: StepContext) -> float:
    """Sleep durably; return when the step finally got past the sleep."""
    PROBE.hit("nap")
    await ctx.sleep(n.seconds)
    return time.time()


sleeper = Workflow("sleeper", input=Nap, output=float).then(before_nap).then(nap)


# --- expiry --------------------------------------------------------------------------------


async def test_expiry_with_resume_with_continues_the_run_on_the_default(
    engine_factory: EngineFactory, probe: Probe
) -> None:
    engine = await engine_factory(reviewed)
    run_id = await engine.start(reviewed, {"title": "deploy", "expires": 0.2})
    await parked(engine, run_id)

    run = await finished(engine, run_id)

    assert run.status is RunStatus.COMPLETED
    assert run.output == {
        "approved": False,
        "comment": "nobody answered",
        "expired": True,
        "by": None,
    }
    assert probe.calls["after_review"] == 1
    (interrupt,) = (await engine.get_run(run_id)).interrupts
    assert interrupt.status is InterruptStatus.EXPIRED
    assert interrupt.resolved_by is None
    assert interrupt.data == {"approved": False, "comment": "nobody answered"}
    assert interrupt.responses == []
    (expired,) = await history(engine, run_id, EventType.EXPIRED)
    assert expired.data["action"] == "resume"
    assert expired.data["data"] == {"approved": False, "comment": "nobody answered"}
    (resolved,) = await history(engine, run_id, EventType.RESOLVED)
    assert resolved.data["status"] == "expired"
    assert await history(engine, run_id, EventType.RESPONSE_RECORDED) == []


async def test_an_expired_default_is_distinguishable_from_the_same_answer(
    engine_factory: EngineFactory, probe: Probe
) -> None:
    engine = await engine_factory(reviewed)
    answered = await engine.start(reviewed, {"title": "a", "expires": 30})
    expired = await engine.start(reviewed, {"title": "b", "expires": 0.2})
    await parked(engine, answered)
    same_as_default = {"approved": False, "comment": "nobody answered"}
    await engine.resume(answered, ASK, same_as_default, actor="alice")

    by_hand, by_timer = await finished(engine, answered), await finished(engine, expired)

    assert by_hand.output == {**same_as_default, "expired": False, "by": "alice"}
    assert by_timer.output == {**same_as_default, "expired": True, "by": None}
    hand = await engine.get_interrupt(answered, ASK)
    timer = await engine.get_interrupt(expired, ASK)
    assert (hand.status, hand.resolved_by) == (InterruptStatus.REJECTED, "alice")
    assert (timer.status, timer.resolved_by) == (InterruptStatus.EXPIRED, None)
    assert await history(engine, answered, EventType.EXPIRED) == []


@pytest.mark.parametrize("rule", ["fail", "default"])
async def test_expiry_with_fail_fails_the_run_with_interrupt_expired(
    engine_factory: EngineFactory, probe: Probe, rule: str
) -> None:
    engine = await engine_factory(reviewed)
    run_id = await engine.start(reviewed, {"title": "t", "expires": 0.2, "rule": rule})

    run = await finished(engine, run_id)

    assert run.status is RunStatus.FAILED
    assert run.error is not None
    assert run.error.type == "InterruptExpired"
    assert "expired before anyone answered" in run.error.message
    detail = await engine.get_run(run_id)
    (review_step,) = detail.steps
    assert review_step.status is StepStatus.FAILED
    assert review_step.error is not None and review_step.error.type == "InterruptExpired"
    assert detail.interrupts[0].status is InterruptStatus.EXPIRED
    (expired,) = await history(engine, run_id, EventType.EXPIRED)
    assert expired.data["action"] == "fail"
    assert expired.data["data"] is None
    assert probe.calls["after_review"] == 0


async def test_expiry_with_bail_rejects_the_run_with_the_reason(
    engine_factory: EngineFactory, probe: Probe
) -> None:
    engine = await engine_factory(reviewed)
    run_id = await engine.start(reviewed, {"title": "t", "expires": 0.2, "rule": "bail"})

    run = await finished(engine, run_id)

    assert run.status is RunStatus.REJECTED
    assert run.error is not None and run.error.message == "approval window closed"
    detail = await engine.get_run(run_id)
    assert [s.status for s in detail.steps] == [StepStatus.BAILED]
    assert detail.interrupts[0].status is InterruptStatus.EXPIRED
    (bailed,) = await history(engine, run_id, EventType.BAILED)
    assert bailed.data["reason"] == "approval window closed"
    assert probe.calls["after_review"] == 0


async def test_an_answer_after_expiry_is_refused(
    engine_factory: EngineFactory, probe: Probe
) -> None:
    engine = await engine_factory(reviewed)
    run_id = await engine.start(reviewed, {"title": "t", "expires": 0.2})
    await finished(engine, run_id)

    with pytest.raises(AlreadyResolved) as refused:
        await engine.resume(run_id, ASK, {"approved": True}, actor="alice")

    assert refused.value.status == "expired"
    assert probe.calls["after_review"] == 1


async def test_an_answer_before_expiry_cancels_the_expiry(
    engine_factory: EngineFactory, probe: Probe
) -> None:
    engine = await engine_factory(reviewed)
    run_id = await engine.start(reviewed, {"title": "t", "expires": 0.6, "rule": "fail"})
    await parked(engine, run_id)
    await engine.resume(run_id, ASK, {"approved": True}, actor="alice")
    run = await finished(engine, run_id)

    await asyncio.sleep(0.7)  # past the old deadline

    assert run.status is RunStatus.COMPLETED
    assert (await engine.get_run(run_id)).run.status is RunStatus.COMPLETED
    assert await history(engine, run_id, EventType.EXPIRED) == []


# --- reminders -----------------------------------------------------------------------------


async def test_reminders_fire_while_pending_and_stop_once_resolved(
    engine_factory: EngineFactory, collect: Collect
) -> None:
    engine = await engine_factory(nagging)
    reminders = collect(engine, topics=["interrupt.reminder"])
    run_id = await engine.start(nagging, {"reminders": [0.1, 0.2, 1.5]})
    await parked(engine, run_id)
    (interrupt,) = await engine.list_interrupts(run_id=run_id)
    assert len(interrupt.reminders) == 3

    async def two_reminded() -> bool:
        return len(await history(engine, run_id, EventType.REMINDED)) == 2

    await eventually(two_reminded)
    await engine.resume(run_id, interrupt.id, {"approved": True}, actor="alice")
    await finished(engine, run_id)
    await asyncio.sleep(1.6)  # past the third reminder

    events = await history(engine, run_id, EventType.REMINDED)
    assert [e.data["interrupt_id"] for e in events] == [interrupt.id] * 2
    assert events[0].data["due_at"] < events[1].data["due_at"]
    assert [(m.topic, m.interrupt_id) for m in reminders] == [
        ("interrupt.reminder", interrupt.id)
    ] * 2


# --- snoozes -------------------------------------------------------------------------------


async def test_a_snooze_reminds_its_person_once_and_leaves_the_requests_timers_alone(
    engine_factory: EngineFactory, collect: Collect
) -> None:
    engine = await engine_factory(nagging)
    snoozed = collect(engine, topics=["interrupt.snoozed"])
    run_id = await engine.start(nagging, {"reminders": [60.0]})
    await parked(engine, run_id)
    (interrupt,) = await engine.list_interrupts(run_id=run_id)

    await engine.snooze(run_id, interrupt.id, "bob", time.time() + 0.1)
    await engine.snooze(run_id, interrupt.id, "carol", time.time() + 60)

    await eventually(lambda: len(snoozed) == 1)
    await asyncio.sleep(0.2)
    assert [(m.topic, m.interrupt_id, m.data["actor"]) for m in snoozed] == [
        ("interrupt.snoozed", interrupt.id, "bob")
    ]
    (entry,) = await history(engine, run_id, EventType.SNOOZED)
    assert entry.data["actor"] == "bob"
    after = await engine.get_interrupt(run_id, interrupt.id)
    assert after.status is InterruptStatus.PENDING and after.reminders == interrupt.reminders
    assert after.expires_at == interrupt.expires_at


async def test_a_snooze_of_a_decided_request_is_refused_and_one_pending_is_dropped(
    engine_factory: EngineFactory, collect: Collect
) -> None:
    engine = await engine_factory(nagging)
    snoozed = collect(engine, topics=["interrupt.snoozed"])
    run_id = await engine.start(nagging, {"reminders": []})
    await parked(engine, run_id)
    (interrupt,) = await engine.list_interrupts(run_id=run_id)
    await engine.snooze(run_id, interrupt.id, "bob", time.time() + 0.2)

    await engine.resume(run_id, interrupt.id, {"approved": True}, actor="alice")
    await finished(engine, run_id)
    with pytest.raises(AlreadyResolved):
        await engine.snooze(run_id, interrupt.id, "bob", time.time() + 0.1)
    await asyncio.sleep(0.4)

    assert snoozed == []
    assert await history(engine, run_id, EventType.SNOOZED) == []


# --- durable sleep -------------------------------------------------------------------------


async def test_sleep_parks_the_run_and_wakes_it_once(
    engine_factory: EngineFactory, probe: Probe
) -> None:
    engine = await engine_factory(sleeper)
    started = time.time()
    run_id = await engine.start(sleeper, {"seconds": 0.3})
    await parked(engine, run_id)
    (sleep,) = await engine.list_interrupts(run_id=run_id)
    assert sleep.kind is InterruptKind.SLEEP
    with pytest.raises(WrongInterruptKind):
        await engine.resume(run_id, sleep.id, {}, actor="alice")

    run = await finished(engine, run_id)

    assert run.status is RunStatus.COMPLETED
    assert run.output >= started + 0.3
    assert probe.calls["before_nap"] == 1
    assert probe.calls["nap"] == 2  # parked once, woken once
    woken = await engine.get_interrupt(run_id, sleep.id)
    assert woken.status is InterruptStatus.RESOLVED


async def test_sleep_survives_a_restart(engine_factory: EngineFactory, probe: Probe) -> None:
    first = await engine_factory(sleeper)
    run_id = await first.start(sleeper, {"seconds": 0.3})
    await parked(first, run_id)
    await first.close()
    await asyncio.sleep(0.4)  # the sleep ends while no engine runs

    second = await engine_factory(sleeper, poll_interval=30)
    run = await finished(second, run_id, timeout=5)

    assert run.status is RunStatus.COMPLETED
    assert probe.calls["before_nap"] == 1
    assert probe.calls["nap"] == 2


async def test_overdue_expiry_fires_at_start_up_after_a_restart(
    engine_factory: EngineFactory, probe: Probe
) -> None:
    first = await engine_factory(reviewed)
    run_id = await first.start(reviewed, {"title": "t", "expires": 0.2})
    await parked(first, run_id)
    await first.close()
    await asyncio.sleep(0.3)
    assert probe.calls["after_review"] == 0

    reopened_at = time.time()
    # A long poll interval: only the start-up pass can fire the timer in time.
    second = await engine_factory(reviewed, poll_interval=30)
    run = await finished(second, run_id, timeout=5)

    assert run.status is RunStatus.COMPLETED
    assert run.output is not None and run.output["expired"] is True
    interrupt = await second.get_interrupt(run_id, ASK)
    assert interrupt.status is InterruptStatus.EXPIRED
    assert interrupt.resolved_at is not None
    assert interrupt.resolved_at.timestamp() >= reopened_at
    assert probe.calls["after_review"] == 1


# --- shutdown ------------------------------------------------------------------------------


class _NoTimers:
    """A store with nothing due, for driving the timer loop alone."""

    async def claim_timers(self, *args: object) -> list[object]:
        return []

    async def next_timer_at(self) -> None:
        return None


async def test_the_timer_loop_stops_when_cancelled_as_a_timer_is_added() -> None:
    # Regression: with asyncio.wait_for, a cancel arriving in the same loop iteration as
    # kick() was swallowed on Python 3.11, so Engine.close() waited forever.
    loop = TimerLoop(_NoTimers(), "me", time.time, list, _never_fired, poll_interval=0.5)  # type: ignore[arg-type]
    task = asyncio.create_task(loop.run())
    await asyncio.sleep(0.05)  # parked in its wait

    loop.kick()
    task.cancel()

    done, _ = await asyncio.wait([task], timeout=2)
    assert done == {task} and task.cancelled()


async def _never_fired(timer: object) -> None:
    raise AssertionError("no timer is due")


async def test_timers_of_different_interrupts_fire_side_by_side_in_due_order() -> None:
    """One slow firing does not make other interrupts' timers late; an interrupt's own
    timers still fire one after another, in due order."""
    rows = [
        TimerRow(1, "run", "a", "reminder", 10.0),
        TimerRow(2, "run", "b", "expiry", 11.0),
        TimerRow(3, "run", "a", "expiry", 12.0),
    ]

    class OneBatch:
        """Just enough store for one claim."""

        async def claim_timers(self, *args: object) -> list[TimerRow]:
            return rows

    fired: list[int] = []
    b_fired = asyncio.Event()

    async def fire(timer: TimerRow) -> None:
        if timer.id == 1:  # slow: waits until the other interrupt's timer has fired
            await asyncio.wait_for(b_fired.wait(), 5)
        fired.append(timer.id)
        if timer.interrupt_id == "b":
            b_fired.set()

    loop = TimerLoop(OneBatch(), "me", lambda: 100.0, list, fire, poll_interval=1)  # type: ignore[arg-type]
    assert await loop.fire_due() == 3
    assert fired == [2, 1, 3]
