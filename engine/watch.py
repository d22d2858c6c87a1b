"""One look at the store per interval for everything waiting on other processes' commits.

A commit made by this engine wakes its waiters at once (``EngineCore._notify``). One made
by another process sharing the database (another instance, ``signoff serve --workers``)
can only be seen by reading the store. Each waiter reading for itself every interval
costs a read per waiter per interval: a thousand long polls of a request, or SSE streams
of a run's history, were 5-25% of a core doing nothing. ``RunWatch`` instead asks the
store once per interval for the newest history entry id of every watched run
(``Store.latest_event_ids``: one index seek per run, in queries of at most ``CHUNK``
runs) and wakes the waiters whose run has an entry newer than the one they saw. Every
change a waiter can wait for (a status, a decision, a step) writes a history entry.

A waiter that reads a run's state must name an entry id read *before* that state, or a
commit between its read and its sleep would go unseen. Reading one for every wait would
add a store read to every ``wait`` (a tenth of a millisecond to a resume-and-wait). So a
waiter takes the id the watch's last look found for its run (``seen``, before its own
read), or None if the run was not watched then: the watch's next look then wakes it
once, whatever it finds, and the waiter reads again with that look's id in hand.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass

from engine.store.base import Store

__all__ = ["CHUNK", "RunWatch"]

log = logging.getLogger("signoff.engine.watch")

CHUNK = 500  # runs per read: bounds one query's size, whatever the number of waiters


@dataclass(eq=False)
class _Watcher:
    after: int | None  # an entry id read before the waiter's state (None: not known)
    woken: asyncio.Event


class RunWatch:
    """Wakes waiters when their run has history entries newer than what they saw.

    Args:
        store: where the histories are.
        interval: seconds between two looks at the store, while anyone waits.
    """

    def __init__(self, store: Store, interval: float) -> None:
        self.store = store
        self.interval = interval
        self._watchers: dict[str, list[_Watcher]] = {}
        self._seen: dict[str, int] = {}  # the last look's newest entry of each watched run
        self._poller: asyncio.Task[None] | None = None

    @property
    def watched(self) -> int:
        """How many waiters are registered now."""
        return sum(len(w) for w in self._watchers.values())

    def seen(self, run_id: str) -> int | None:
        """The newest entry id of ``run_id`` at the watch's last look (None: not looked
        at): take it before reading the run's state, to pass to ``wait``."""
        return self._seen.get(run_id)

    async def wait(
        self,
        run_id: str,
        after: int | None,
        timeout: float | None,
        woken: asyncio.Event | None = None,
    ) -> bool:
        """Wait until ``run_id`` has an entry newer than ``after`` (with ``after`` None: until
        the next look, whatever it finds); False after ``timeout`` seconds (None: no
        limit). Also True when the run has no history at all, the store could not be
        read or the watch closed, so that the caller reads for itself and sees why.
        ``woken``: the caller's own event to wait on, which its other wakers set too
        (the engine's commits)."""
        if woken is None:
            woken = asyncio.Event()
        watcher = _Watcher(after, woken)
        self._watchers.setdefault(run_id, []).append(watcher)
        if self._poller is None or self._poller.done():
            self._poller = asyncio.get_running_loop().create_task(self._poll())
        try:
            with contextlib.suppress(TimeoutError):  # not wait_for: it can eat a cancel
                async with asyncio.timeout(timeout):
                    await woken.wait()
        finally:
            watchers = self._watchers.get(run_id, [])
            watchers.remove(watcher)
            if not watchers:
                self._watchers.pop(run_id, None)
        return woken.is_set()

    def wake(self, run_id: str) -> None:
        """Wake the waiters of ``run_id`` now (this process committed something of it)."""
        for watcher in self._watchers.get(run_id, ()):
            watcher.woken.set()

    def close(self) -> None:
        """Wake every waiter and stop looking (the engine closes); a later wait looks
        again."""
        self._wake_all()
        if self._poller is not None:
            self._poller.cancel()
            self._poller = None

    def _wake_all(self) -> None:
        for watchers in self._watchers.values():
            for watcher in watchers:
                watcher.woken.set()

    async def _poll(self) -> None:
        # Runs while anyone waits; the next registration starts it again.
        while self._watchers:
            await asyncio.sleep(self.interval)
            runs = list(self._watchers)
            try:
                latest: dict[str, int] = {}
                for start in range(0, len(runs), CHUNK):
                    latest.update(await self.store.latest_event_ids(runs[start : start + CHUNK]))
            except Exception as exc:
                # Each woken waiter reads the store itself and meets the error there.
                log.warning("could not look for other processes' commits: %s", exc)
                self._wake_all()
                continue
            for run_id in runs:
                newest = latest.get(run_id)
                for watcher in self._watchers.get(run_id, ()):
                    # No history at all: the run is gone; the waiter finds out.
                    if newest is None or watcher.after is None or newest > watcher.after:
                        watcher.woken.set()
            self._seen = latest
