"""bot.outbox_reads: one interrupt read per outbox message, shared by its subscribers."""

from __future__ import annotations

import datetime as dt
from typing import cast

from bot.outbox_reads import DeliveryReads, delivery_reads
from engine import Engine, Interrupt, OutboxMessage

WHEN = dt.datetime(2030, 1, 2, tzinfo=dt.UTC)


class CountingEngine:
    """Stands in for ``Engine.get_interrupt``: a new object per read, reads counted."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, str]] = []

    async def get_interrupt(self, run_id: str, interrupt_id: str) -> Interrupt:
        self.calls.append((run_id, interrupt_id))
        return cast(Interrupt, object())


def message(message_id: int) -> OutboxMessage:
    return OutboxMessage(
        id=message_id,
        topic="interrupt.resolved",
        run_id="r1",
        interrupt_id="i1",
        data={},
        created_at=WHEN,
        attempt=1,
    )


async def test_a_later_subscriber_takes_the_read_of_the_same_message() -> None:
    engine = CountingEngine()
    reads = DeliveryReads(cast(Engine, engine))
    first = await reads.current(message(1))
    assert await reads.settled(message(1)) is first
    assert engine.calls == [("r1", "i1")]


async def test_current_always_reads_and_another_message_is_read_again() -> None:
    engine = CountingEngine()
    reads = DeliveryReads(cast(Engine, engine))
    first = await reads.current(message(1))
    again = await reads.current(message(1))
    assert again is not first
    assert await reads.settled(message(1)) is again  # the latest read is the one shared
    other = await reads.settled(message(2))  # nobody read it yet: read now
    assert other is not again
    assert len(engine.calls) == 3


async def test_only_the_latest_messages_are_kept() -> None:
    engine = CountingEngine()
    reads = DeliveryReads(cast(Engine, engine), kept=2)
    for n in (1, 2, 3):
        await reads.current(message(n))
    assert len(engine.calls) == 3
    await reads.settled(message(3))
    await reads.settled(message(2))
    assert len(engine.calls) == 3
    await reads.settled(message(1))  # dropped: read again
    assert len(engine.calls) == 4


def test_one_instance_per_engine() -> None:
    a, b = cast(Engine, CountingEngine()), cast(Engine, CountingEngine())
    assert delivery_reads(a) is delivery_reads(a)
    assert delivery_reads(a) is not delivery_reads(b)
