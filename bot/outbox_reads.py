"""One read of an interrupt per outbox message, shared by the bot's subscribers.

The engine hands each outbox message to its subscribers one after the other (the Slack
notifier, the Home tab, the metrics, ...), and each used to read the message's interrupt
again. The notifier needs the interrupt as it is *now* (it renders current state, and the
refs of posted messages change without an outbox message), so it always reads and leaves
its read here; subscribers that only need what was settled when the message was committed
(a resolved interrupt's status, times and responders, which later changes announce with
messages of their own) take that read instead of making another. Any read taken while
delivering a message comes after the message's commit, so it shows at least that change.
"""

from __future__ import annotations

import weakref
from collections import OrderedDict

from engine import Engine, Interrupt, OutboxMessage

__all__ = ["DeliveryReads", "delivery_reads"]

KEPT = 1024  # messages whose reads are kept; a burst's deliveries finish well within it


class DeliveryReads:
    """The latest interrupt read for each recent outbox message, by message id."""

    def __init__(self, engine: Engine, kept: int = KEPT) -> None:
        self.engine = engine
        self.kept = kept
        self.reads = 0  # reads made (for tests)
        self._by_message: OrderedDict[int, Interrupt] = OrderedDict()

    async def current(self, message: OutboxMessage) -> Interrupt:
        """Read the message's interrupt now (RunNotFound / InterruptNotFound) and keep
        the read for the message's other subscribers."""
        assert message.interrupt_id is not None
        interrupt = await self.engine.get_interrupt(message.run_id, message.interrupt_id)
        self.reads += 1
        self._by_message[message.id] = interrupt
        self._by_message.move_to_end(message.id)
        while len(self._by_message) > self.kept:
            self._by_message.popitem(last=False)
        return interrupt

    async def settled(self, message: OutboxMessage) -> Interrupt:
        """The message's interrupt as read by an earlier subscriber of this message, or
        read now: use it only for what the message's own change settled."""
        found = self._by_message.get(message.id)
        if found is not None:
            return found
        return await self.current(message)


_shared: weakref.WeakKeyDictionary[Engine, DeliveryReads] = weakref.WeakKeyDictionary()


def delivery_reads(engine: Engine) -> DeliveryReads:
    """The ``DeliveryReads`` every subscriber on ``engine`` in this process shares."""
    reads = _shared.get(engine)
    if reads is None:
        reads = _shared[engine] = DeliveryReads(engine)
    return reads
