"""Acks first: Slack requests waiting for their HTTP answer go before the notifier's work.

Everything runs on one event loop. A click is acked only once its answer is committed
(``bot.slack.listeners``), and each commit wakes the outbox, whose deliveries (render the
message, ``chat.update``, the run's outcome in the thread) are several times a click's own
work. Under a burst of clicks, those deliveries filled the loop's ready queue, and each
step of every click still waiting for its ack (the commit's wake-up, the listener's return,
bolt's response) waited behind all of them: the last ack of 200 clicks came after most of
the updates.

So the notifier takes its turn (``AckFirst.turn``) only when no Slack request is between
arrival and answer, or after ``MAX_DEFER`` at most: a steady stream of clicks delays the
updates by that much, never starves them. Nothing is dropped or reordered within a run;
delivery just starts later, and a click's answer is recorded before its ack as before.

The engine waits for the same turn before it drives a run on (``Engine.yield_to``): each
answered run's next steps were the other work that ran between a click's commit and its
ack. Under bursts of 200 clicks (``bench/slack.py --levels 200,200,200``, 3 runs each)
the ack p99 went from a median of 188 to 144 ms with it (docs/perf-history.md, "Issue 13,
fourth pass").
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator

__all__ = ["MAX_DEFER", "AckFirst"]

MAX_DEFER = 0.5  # seconds the notifier lets waiting acks go first, at most


class AckFirst:
    """Counts the Slack requests waiting for their answer; lets background work wait."""

    def __init__(self, *, max_defer: float = MAX_DEFER) -> None:
        self.max_defer = max_defer
        self.waiting = 0  # Slack requests between arrival and answer
        self.deferred = 0  # background tasks waiting for their turn
        self._idle = asyncio.Event()
        self._idle.set()

    @contextlib.contextmanager
    def answering(self) -> Iterator[None]:
        """Around the handling of one Slack request, until its response is ready."""
        self.waiting += 1
        self._idle.clear()
        try:
            yield
        finally:
            self.waiting -= 1
            if not self.waiting:
                self._idle.set()

    async def turn(self) -> None:
        """Return once no Slack request waits for its answer, or after ``max_defer``."""
        if not self.waiting:
            return
        self.deferred += 1
        try:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._idle.wait(), self.max_defer)
        finally:
            self.deferred -= 1
