"""The outbox: notifications delivered after commit, at least once per subscriber, in order.

Messages are written in the same transaction as the change they announce, so a handler
always sees the committed state, and nothing is lost across a restart.
"""

from __future__ import annotations

import asyncio
import time

import pytest
from pydantic import BaseModel

from engine import (
    Engine,
    InterruptNotFound,
    InterruptStatus,
    OutboxMessage,
    RunStatus,
    StepContext,
    Workflow,
    open_store,
    step,
)
from engine.outbox import Dispatcher
from tests.engine.conftest import EngineFactory
from tests.engine.fixtures_runtime import Collect, finished, parked
from tests.support.polling import eventually


class Order(BaseModel):
    """Workflow input."""

    item: str


class Shown(BaseModel):
    """What the approver sees."""

    item: str


class Approval(BaseModel):
    """The approver's answer."""

    approved: bool


@step
async def approve(order: Order, ctx: StepContext[Shown, Approval]) -> bool:
    """Wait for an approval of the order."""
    answer = await ctx.suspend(Shown(item=order.item), title="Approve order")
    return answer.approved


ordering = Workflow("ordering", input=Order, output=bool).then(approve)
ASK = "0:approve#0"


def recorder(
    engine: Engine, name: str, *, failures: int = 0, topics: list[str] | None = None
) -> list[tuple[float, OutboxMessage, bool]]:
    """Subscribe a handler that fails its first ``failures`` calls; return its calls.

    Each call is ``(monotonic time, message, succeeded)``.
    """
    calls: list[tuple[float, OutboxMessage, bool]] = []

    async def handler(message: OutboxMessage) -> None:
        ok = sum(1 for *_, good in calls if not good) >= failures
        calls.append((time.monotonic(), message, ok))
        if not ok:
            raise RuntimeError(f"{name} is down")

    engine.subscribe(handler, topics=topics, name=name)
    return calls


def fast_retries(engine: Engine, base: float = 0.05) -> None:
    """Shorten the dispatcher's retry backoff for the test."""
    engine.dispatcher.base_backoff = base


async def approved_run(engine: Engine, item: str = "book") -> str:
    """Start an ordering run, approve it and wait until it completed."""
    run_id = await engine.start(ordering, {"item": item})
    await parked(engine, run_id)
    await engine.resume(run_id, ASK, {"approved": True}, actor="alice")
    assert (await finished(engine, run_id)).status is RunStatus.COMPLETED
    return run_id


async def drained(engine: Engine) -> None:
    """Wait until every outbox message is delivered."""

    async def empty() -> bool:
        return await engine.store.outbox_backlog() == 0

    await eventually(empty)


async def test_handlers_get_the_lifecycle_messages_after_commit(
    engine_factory: EngineFactory,
) -> None:
    engine = await engine_factory(ordering)
    seen: list[tuple[str, object]] = []

    async def handler(message: OutboxMessage) -> None:
        # What the message announces is already committed when the handler runs.
        if message.interrupt_id is not None:
            found = await engine.get_interrupt(message.run_id, message.interrupt_id)
            seen.append((message.topic, found.status))
        else:
            seen.append((message.topic, (await engine.get_run(message.run_id)).run.status))

    engine.subscribe(handler, name="watcher")
    run_id = await engine.start(ordering, {"item": "pen"})
    await parked(engine, run_id)
    await eventually(lambda: len(seen) == 1)  # seen before the answer exists
    await engine.resume(run_id, ASK, {"approved": True}, actor="alice")
    await finished(engine, run_id)
    await drained(engine)

    assert seen == [
        ("interrupt.created", InterruptStatus.PENDING),
        ("interrupt.resolved", InterruptStatus.APPROVED),
        ("run.finished", RunStatus.COMPLETED),
    ]


async def test_messages_carry_what_adapters_need(
    engine_factory: EngineFactory, collect: Collect
) -> None:
    engine = await engine_factory(ordering)
    got = collect(engine)
    run_id = await approved_run(engine, "lamp")
    await drained(engine)

    created, resolved, done = got
    assert (created.topic, created.run_id, created.interrupt_id) == (
        "interrupt.created",
        run_id,
        ASK,
    )
    assert created.data["payload"] == {"item": "lamp"}
    assert created.data["title"] == "Approve order"
    assert (resolved.topic, resolved.interrupt_id) == ("interrupt.resolved", ASK)
    assert resolved.data == {
        "interrupt_id": ASK,
        "status": "approved",
        "by": "alice",
        "data": {"approved": True},
    }
    assert (done.topic, done.interrupt_id) == ("run.finished", None)
    assert done.data == {"status": "completed", "output": True}
    assert [m.attempt for m in got] == [1, 1, 1]
    assert created.id < resolved.id < done.id


async def test_a_failing_handler_is_retried_with_backoff_until_it_succeeds(
    engine_factory: EngineFactory,
) -> None:
    engine = await engine_factory(ordering)
    fast_retries(engine)
    calls = recorder(engine, "flaky", failures=3, topics=["interrupt.created"])
    run_id = await engine.start(ordering, {"item": "desk"})
    await parked(engine, run_id)

    await drained(engine)
    await asyncio.sleep(0.2)  # nothing more is delivered once it is done

    assert [(m.topic, m.attempt, ok) for _, m, ok in calls] == [
        ("interrupt.created", 1, False),
        ("interrupt.created", 2, False),
        ("interrupt.created", 3, False),
        ("interrupt.created", 4, True),
    ]
    gaps = [b[0] - a[0] for a, b in zip(calls, calls[1:], strict=False)]
    for gap, backoff in zip(gaps, [0.05, 0.1, 0.2], strict=True):
        assert gap >= backoff * 0.9


async def test_a_subscriber_that_succeeded_is_not_called_again_when_another_fails(
    engine_factory: EngineFactory,
) -> None:
    engine = await engine_factory(ordering)
    fast_retries(engine)
    steady = recorder(engine, "steady")
    flaky = recorder(engine, "flaky", failures=2)
    await approved_run(engine)

    await drained(engine)

    assert [m.topic for _, m, _ in steady] == [
        "interrupt.created",
        "interrupt.resolved",
        "run.finished",
    ]
    assert [(m.topic, ok) for _, m, ok in flaky] == [
        ("interrupt.created", False),
        ("interrupt.created", False),
        ("interrupt.created", True),
        ("interrupt.resolved", True),
        ("run.finished", True),
    ]


async def test_a_runs_messages_keep_their_order_while_one_is_retried(
    engine_factory: EngineFactory,
) -> None:
    engine = await engine_factory(ordering)
    fast_retries(engine)
    calls: list[tuple[str, str, bool]] = []
    other_finished = False

    async def handler(message: OutboxMessage) -> None:
        nonlocal other_finished
        # The held run's first message fails until the other run has finished and
        # been announced: meanwhile, the held run's later messages must wait and the
        # other run's must not.
        ok = message.run_id != held or other_finished
        calls.append((message.run_id, message.topic, ok))
        if not ok:
            raise RuntimeError("chat is down for this run")
        other_finished = other_finished or message.topic == "run.finished"

    engine.subscribe(handler, name="chat")
    held = await engine.start(ordering, {"item": "held"})
    await parked(engine, held)
    await eventually(lambda: len(calls) >= 1)
    await engine.resume(held, ASK, {"approved": True}, actor="alice")
    other = await approved_run(engine, "other")
    await drained(engine)

    failed = [(run_id, topic) for run_id, topic, ok in calls if not ok]
    assert failed and set(failed) == {(held, "interrupt.created")}
    delivered = [(run_id, topic) for run_id, topic, ok in calls if ok]
    topics = ["interrupt.created", "interrupt.resolved", "run.finished"]
    assert delivered == [(other, t) for t in topics] + [(held, t) for t in topics]


async def test_a_slow_delivery_does_not_hold_back_other_runs(
    engine_factory: EngineFactory,
) -> None:
    engine = await engine_factory(ordering)
    release = asyncio.Event()
    delivered: list[tuple[str, str]] = []

    async def handler(message: OutboxMessage) -> None:
        # The first run's announcement hangs (a slow chat API) until released.
        if message.run_id == slow and not release.is_set():
            await release.wait()
        delivered.append((message.run_id, message.topic))

    engine.subscribe(handler, name="chat")
    slow = await engine.start(ordering, {"item": "slow"})
    await parked(engine, slow)
    other = await approved_run(engine, "other")
    topics = ["interrupt.created", "interrupt.resolved", "run.finished"]
    # All of the other run's messages arrive while the slow one is still in flight.
    await eventually(lambda: [t for r, t in delivered if r == other] == topics)
    assert not [t for r, t in delivered if r == slow]
    release.set()
    await engine.resume(slow, ASK, {"approved": True}, actor="alice")
    await finished(engine, slow)
    await drained(engine)
    assert [t for r, t in delivered if r == slow] == topics


async def test_set_interrupt_ref_stores_a_handlers_reference(
    engine_factory: EngineFactory,
) -> None:
    engine = await engine_factory(ordering)

    async def post_to_chat(message: OutboxMessage) -> None:
        assert message.interrupt_id is not None
        ref = {"channel": "C42", "ts": f"1700000000.{message.id:06d}"}
        await engine.set_interrupt_ref(message.run_id, message.interrupt_id, "slack", ref)

    engine.subscribe(post_to_chat, topics=["interrupt.created"], name="chat")
    run_id = await engine.start(ordering, {"item": "chair"})
    await parked(engine, run_id)
    await drained(engine)

    interrupt = await engine.get_interrupt(run_id, ASK)
    assert interrupt.refs["slack"]["channel"] == "C42"
    await engine.set_interrupt_ref(run_id, ASK, "email", "msg-1")
    interrupt = await engine.get_interrupt(run_id, ASK)
    assert interrupt.refs == {"slack": interrupt.refs["slack"], "email": "msg-1"}
    with pytest.raises(InterruptNotFound):
        await engine.set_interrupt_ref(run_id, "nope", "slack", {})


async def test_undelivered_messages_survive_a_restart(
    engine_factory: EngineFactory, db_path: str
) -> None:
    first = await engine_factory(ordering)
    fast_retries(first)
    audit_first = recorder(first, "audit")
    notify_first = recorder(first, "notify", failures=1_000)
    run_id = await first.start(ordering, {"item": "bike"})
    await parked(first, run_id)

    async def retried() -> bool:  # so the first attempt's outcome is recorded
        return len(notify_first) >= 2

    await eventually(retried)
    await first.close()
    assert await _backlog(db_path) == 1

    second = await engine_factory(ordering)  # subscribed before its dispatcher first runs
    audit_second = recorder(second, "audit")
    notify_second = recorder(second, "notify")
    await drained(second)

    assert [m.topic for _, m, _ in audit_first] == ["interrupt.created"]
    assert audit_second == []  # it got the message already: not again after the restart
    ((_, message, ok),) = notify_second
    assert (message.topic, message.run_id, ok) == ("interrupt.created", run_id, True)
    assert message.attempt >= 2


async def _backlog(db_path: str) -> int:
    """The number of undelivered messages in a database no engine has open."""
    store = open_store(db_path)
    await store.open()
    try:
        return await store.outbox_backlog()
    finally:
        await store.close()


class _Nothing:
    """A store with no outbox messages, for driving the dispatcher alone."""

    async def claim_outbox(self, *args: object) -> list[object]:
        return []


async def test_the_dispatcher_stops_when_cancelled_as_a_message_is_enqueued() -> None:
    # Regression: with asyncio.wait_for, a cancel arriving in the same loop iteration as
    # kick() was swallowed on Python 3.11, so Engine.close() waited forever.
    dispatcher = Dispatcher(_Nothing(), "me", time.time, list, poll_interval=0.5)  # type: ignore[arg-type]
    task = asyncio.create_task(dispatcher.run())
    await asyncio.sleep(0.05)

    dispatcher.kick()
    task.cancel()

    done, _ = await asyncio.wait([task], timeout=2)
    assert done == {task} and task.cancelled()
