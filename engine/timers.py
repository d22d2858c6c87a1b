"""Fires durable timers: interrupt expiries, reminders and sleeps, also after restarts."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence

from engine.store.base import Store, TimerRow

log = logging.getLogger("signoff.timers")


class TimerLoop:
    """Sleeps until the earliest stored timer is due, claims due timers and fires them."""

    def __init__(
        self,
        store: Store,
        owner: str,
        clock: Callable[[], float],
        dead: Callable[[], Sequence[str]],
        fire: Callable[[TimerRow], Awaitable[None]],
        *,
        poll_interval: float,
        claim_seconds: float = 60.0,
        batch: int = 100,
    ) -> None:
        self.store = store
        self.owner = owner
        self.clock = clock
        self.dead = dead
        self.fire = fire
        self.poll_interval = poll_interval
        self.claim_seconds = claim_seconds
        self.batch = batch
        self._wake = asyncio.Event()

    def kick(self) -> None:
        """A timer was added: recompute when to wake up."""
        self._wake.set()

    async def run(self) -> None:
        """Fire timers forever (cancel to stop)."""
        while True:
            self._wake.clear()
            try:
                fired = await self.fire_due()
                if fired:
                    continue
                due = await self.store.next_timer_at()
            except Exception:
                log.exception("timer pass failed; retrying")
                due = None
            wait = self.poll_interval
            if due is not None:
                wait = max(0.0, min(wait, due - self.clock()))
            # asyncio.timeout, not wait_for: on Python 3.11 wait_for swallows a cancel that
            # lands just as kick() sets the event, and close() would then wait forever.
            try:
                async with asyncio.timeout(wait):
                    await self._wake.wait()
            except TimeoutError:
                pass

    async def fire_due(self) -> int:
        """Claim and fire the timers that are due; return how many."""
        now = self.clock()
        due = await self.store.claim_timers(
            self.owner, now, now + self.claim_seconds, self.dead(), self.batch
        )
        # Timers of different interrupts fire side by side, so one slow resolution does not
        # make the others late; an interrupt's own timers fire in due order.
        by_interrupt: dict[tuple[str, str], list[TimerRow]] = {}
        for timer in due:
            by_interrupt.setdefault((timer.run_id, timer.interrupt_id), []).append(timer)
        await asyncio.gather(*(self._fire_in_order(ts) for ts in by_interrupt.values()))
        return len(due)

    async def _fire_in_order(self, timers: list[TimerRow]) -> None:
        for timer in timers:
            try:
                await self.fire(timer)
            except Exception:
                # The claim expires and another pass (here or elsewhere) tries again.
                log.exception("firing timer %s of run %s failed", timer.id, timer.run_id)
