"""One poll for every open history stream of this process.

An SSE stream (``bot.web.sse``) must notice new history entries of its run, including those
committed by other processes on the same database, so it has to look at the store. Each
stream reading its run and its history every interval costs two reads per stream per
interval: 1,000 idle streams were about a fifth of a core. ``HistoryWatch`` instead asks
the engine once per interval for the newest entry id of every followed run
(``Engine.latest_event_ids``) and wakes only the streams whose run has something newer,
which then read as before. An idle stream costs one index seek per interval, inside one
query shared with all the others.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass, field

from engine import Engine

__all__ = ["CHUNK", "HistoryWatch"]

log = logging.getLogger("signoff.web.streams")

CHUNK = 500  # runs per read: bounds one query's size, whatever the number of streams


@dataclass(eq=False)
class _Follower:
    after: int  # the newest entry id the stream has sent
    woken: asyncio.Event = field(default_factory=asyncio.Event)


class HistoryWatch:
    """Wakes the streams following runs' histories when their run has newer entries.

    Args:
        engine: where the histories are.
        interval: seconds between two looks at the store, while anything is followed.
    """

    def __init__(self, engine: Engine, interval: float) -> None:
        self.engine = engine
        self.interval = interval
        self._followers: dict[str, list[_Follower]] = {}
        self._poller: asyncio.Task[None] | None = None
        self._closed = False

    @property
    def followed(self) -> int:
        """How many streams wait for news now."""
        return sum(len(f) for f in self._followers.values())

    async def wait(self, run_id: str, after: int, timeout: float) -> bool:
        """Wait until ``run_id`` has an entry newer than ``after``; False after ``timeout``.

        Also True once the watch is closed (the server shuts down) or the store could not
        be read, so that the caller reads for itself and sees why.
        """
        if self._closed:
            return True
        follower = _Follower(after)
        self._followers.setdefault(run_id, []).append(follower)
        if self._poller is None or self._poller.done():
            self._poller = asyncio.get_running_loop().create_task(self._poll())
        try:
            with contextlib.suppress(TimeoutError):  # not wait_for: it can eat a cancel
                async with asyncio.timeout(timeout):
                    await follower.woken.wait()
        finally:
            followers = self._followers.get(run_id, [])
            followers.remove(follower)
            if not followers:
                self._followers.pop(run_id, None)
        return follower.woken.is_set()

    def close(self) -> None:
        """Wake every stream and stop polling (the server shuts down)."""
        self._closed = True
        self._wake_all()
        if self._poller is not None:
            self._poller.cancel()

    def _wake_all(self) -> None:
        for followers in self._followers.values():
            for follower in followers:
                follower.woken.set()

    async def _poll(self) -> None:
        # Runs while anyone follows; the next wait() starts it again.
        while self._followers:
            await asyncio.sleep(self.interval)
            runs = list(self._followers)
            try:
                latest: dict[str, int] = {}
                for start in range(0, len(runs), CHUNK):
                    latest.update(await self.engine.latest_event_ids(runs[start : start + CHUNK]))
            except Exception as exc:
                # Each woken stream reads the store itself and ends with the error it meets.
                log.warning("could not look for new history entries: %s", exc)
                self._wake_all()
                continue
            for run_id in runs:
                newest = latest.get(run_id)
                for follower in self._followers.get(run_id, ()):
                    # No entry at all: the run is gone; the stream finds out and ends.
                    if newest is None or newest > follower.after:
                        follower.woken.set()
