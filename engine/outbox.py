"""Delivers outbox messages to subscribers after commit, with retries and per-run order.

A message is written in the same transaction as the state change it announces, so
nothing is lost across a crash. Delivery is at-least-once per subscriber: each
subscriber that handled a message is recorded on it, so a retry (after another
subscriber failed) skips the ones that already succeeded. Messages of one run are
delivered in order; a failing message holds back the later messages of its run only.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

from engine.models import OutboxMessage
from engine.store.base import OutboxResult, Store

log = logging.getLogger("signoff.outbox")

Handler = Callable[[OutboxMessage], Awaitable[None]]


@dataclass(frozen=True)
class Subscription:
    """A named handler for some topics (None: every topic)."""

    name: str
    handler: Handler
    topics: frozenset[str] | None

    def wants(self, topic: str) -> bool:
        """True if this subscription handles ``topic``."""
        return self.topics is None or topic in self.topics


class Dispatcher:
    """Claims due outbox rows and hands them to subscriptions."""

    def __init__(
        self,
        store: Store,
        owner: str,
        clock: Callable[[], float],
        dead: Callable[[], Sequence[str]],
        *,
        poll_interval: float,
        claim_seconds: float = 60.0,
        batch: int = 200,
        max_inflight: int = 256,
        base_backoff: float = 1.0,
        max_backoff: float = 300.0,
    ) -> None:
        self.store = store
        self.owner = owner
        self.clock = clock
        self.dead = dead
        self.poll_interval = poll_interval
        self.claim_seconds = claim_seconds
        self.batch = batch
        self.max_inflight = max_inflight
        self.base_backoff = base_backoff
        self.max_backoff = max_backoff
        self.subscriptions: list[Subscription] = []
        self._wake = asyncio.Event()

    def kick(self) -> None:
        """Something was enqueued: look now instead of at the next poll."""
        self._wake.set()

    async def run(self) -> None:
        """Deliver forever (cancel to stop).

        New messages are claimed while earlier deliveries are still in flight (up to
        ``max_inflight`` at once), so a slow call for one run does not hold back the
        messages of other runs. A run's later messages stay unclaimable while an earlier
        one is in flight, which keeps each run's order.
        """
        inflight: set[asyncio.Task[None]] = set()
        try:
            while True:
                self._wake.clear()
                claimed = 0
                room = self.max_inflight - len(inflight)
                # A process with no subscribers (the CLI, a script) would only mark
                # messages delivered, so the server's notifier would never see them.
                if room > 0 and self.subscriptions:
                    try:
                        claimed = await self._claim_and_start(min(self.batch, room), inflight)
                    except Exception:
                        log.exception("outbox claim failed; retrying")
                if claimed:
                    continue
                woken = asyncio.ensure_future(self._wake.wait())
                try:
                    await asyncio.wait(
                        {woken, *inflight},
                        timeout=self.poll_interval,
                        return_when=asyncio.FIRST_COMPLETED,
                    )
                finally:
                    woken.cancel()
        finally:
            # Unfinished deliveries keep their claims, which lapse; they are redone later.
            for task in inflight:
                task.cancel()
            await asyncio.gather(*inflight, return_exceptions=True)

    async def _claim_and_start(self, limit: int, inflight: set[asyncio.Task[None]]) -> int:
        now = self.clock()
        claimed = await self.store.claim_outbox(
            self.owner, now, now + self.claim_seconds, self.dead(), limit
        )
        by_run: dict[str, list[tuple[OutboxMessage, list[str]]]] = {}
        for msg, done in claimed:
            by_run.setdefault(msg.run_id, []).append((msg, done))
        for items in by_run.values():
            task = asyncio.get_running_loop().create_task(self._deliver_and_settle(items))
            inflight.add(task)
            task.add_done_callback(inflight.discard)
        return len(claimed)

    async def _deliver_and_settle(self, items: list[tuple[OutboxMessage, list[str]]]) -> None:
        try:
            results = await self._deliver_run(items)
            await self.store.settle_outbox(results, self.clock())
        except Exception:
            log.exception("settling outbox messages failed; their claims will lapse")
        self._wake.set()  # room for more work

    async def _deliver_run(
        self, items: list[tuple[OutboxMessage, list[str]]]
    ) -> list[OutboxResult]:
        results: list[OutboxResult] = []
        blocked_until: float | None = None
        for msg, done in items:
            if blocked_until is not None:  # keep the run's order: wait for the failed one
                results.append(OutboxResult(msg.id, done, None, blocked_until))
                continue
            error = await self._deliver(msg, done)
            if error is None:
                results.append(OutboxResult(msg.id, done))
            else:
                delay = min(self.max_backoff, self.base_backoff * 2 ** (msg.attempt - 1))
                blocked_until = self.clock() + delay
                log.warning(
                    "outbox message %s (%s) failed (attempt %s), retry in %.1fs: %s",
                    msg.id,
                    msg.topic,
                    msg.attempt,
                    delay,
                    error,
                )
                results.append(OutboxResult(msg.id, done, error, blocked_until))
        return results

    async def _deliver(self, msg: OutboxMessage, done: list[str]) -> str | None:
        for sub in self.subscriptions:
            if sub.name in done or not sub.wants(msg.topic):
                continue
            try:
                await sub.handler(msg)
            except Exception as exc:
                return f"{sub.name}: {type(exc).__qualname__}: {exc}"
            done.append(sub.name)
        return None
