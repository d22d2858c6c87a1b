"""Waiting for a run to settle (``wait``), for an interrupt's decision (``wait_interrupt``),
or for a run's next history entries (``wait_for_history``).

A commit made by this engine wakes its waiters at once (``EngineCore._notify``); one
made by another process on the same database is seen by the engine's ``RunWatch``
(``engine.watch``), which looks for every waiter at once, every ``watch_interval``
seconds (default ``poll_interval``). A waiter notes the newest history entry of its run before it
reads the run, so a commit between its read and its sleep wakes it too.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Iterable, Iterator

from engine.core import EngineCore
from engine.errors import InterruptNotFound, RunNotFound
from engine.models import SETTLED, Interrupt, InterruptStatus, Run, RunStatus


class Waiting(EngineCore):
    """The ``Engine``'s waits, woken by commits here and polling for the others'."""

    async def wait(
        self,
        run_id: str,
        *,
        until: Iterable[RunStatus] = SETTLED,
        timeout: float | None = None,
    ) -> Run:
        """Wait until the run reaches one of ``until`` (default: parked or finished).

        Raises RunNotFound, or TimeoutError after ``timeout`` seconds.
        """
        wanted = frozenset(until)
        deadline = None if timeout is None else time.monotonic() + timeout
        with _listening(self._waiters, run_id) as ev:
            while True:
                ev.clear()
                seen = self.watch.seen(run_id)  # before the read: see engine.watch
                run = await self.store.get_run(run_id)
                if run is None:
                    raise RunNotFound(run_id)
                if run.status in wanted and not self.driver.driving(run_id):
                    return run
                if run.status in wanted and run.status.terminal:
                    return run
                pending = f"run {run_id} is still {run.status.value}"
                await self._nap(ev, run_id, seen, deadline, pending)

    async def wait_interrupt(
        self, run_id: str, interrupt_id: str, *, timeout: float | None = None
    ) -> Interrupt:
        """Wait until the interrupt is decided; return it (its status is no longer pending).

        Decided means answered, approved or rejected (quorum reached), expired or
        cancelled: this returns once that resolution is committed, without waiting for the
        run to go on past it. A resolution committed by this engine wakes the waiter at
        once; one committed by another process on the same database is seen within
        ``poll_interval``. An interrupt the run has not opened yet is waited for too.

        Raises:
            RunNotFound: there is no such run.
            InterruptNotFound: the run ended without opening this interrupt.
            TimeoutError: it is still pending after ``timeout`` seconds.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        with _listening(self._decision_waiters, run_id) as ev:
            while True:
                ev.clear()
                seen = self.watch.seen(run_id)  # before the read: see engine.watch
                found = await self.store.get_interrupt(run_id, interrupt_id)
                if found is not None and found.status is not InterruptStatus.PENDING:
                    return found
                if found is None:
                    run = await self.store.get_run(run_id)
                    if run is None:
                        raise RunNotFound(run_id)
                    if run.status.terminal:
                        # Opened and decided between the two reads, or never opened.
                        found = await self.store.get_interrupt(run_id, interrupt_id)
                        if found is None:
                            raise InterruptNotFound(run_id, interrupt_id)
                        if found.status is not InterruptStatus.PENDING:
                            return found
                pending = f"interrupt {interrupt_id} of run {run_id} is pending"
                await self._nap(ev, run_id, seen, deadline, pending)

    async def wait_for_history(
        self, run_id: str, *, after_id: int, timeout: float | None = None
    ) -> bool:
        """Wait until the run has a history entry newer than ``after_id``; False once
        ``timeout`` seconds passed without one.

        What a live view of a run (an SSE stream) waits on between reads of
        ``events(run_id, after_id=...)``: this engine's commits wake it at once when
        the run is parked, decided or finished; entries committed by any process are
        seen within ``watch_interval`` seconds (``signoff serve``: 0.25). However many
        wait, the engine reads the store once per interval for all of them. Also True
        when the run has no history at all (deleted), the store could not be read, or
        the engine closes: the caller reads and finds out.
        """
        return await self.watch.wait(run_id, after_id, timeout)

    async def _nap(
        self,
        ev: asyncio.Event,
        run_id: str,
        seen: int | None,
        deadline: float | None,
        pending: str,
    ) -> None:
        """Sleep until ``ev`` is set: by a commit here, or by the watch when the run has a
        history entry newer than ``seen`` (another process's commit). TimeoutError with
        ``pending`` once ``deadline`` is past."""
        wait = None
        if deadline is not None:
            wait = deadline - time.monotonic()
            if wait <= 0:
                raise TimeoutError(pending)
        await self.watch.wait(run_id, seen, wait, woken=ev)


@contextlib.contextmanager
def _listening(table: dict[str, list[asyncio.Event]], run_id: str) -> Iterator[asyncio.Event]:
    """An event registered under ``run_id`` in ``table`` (which commits set) while inside."""
    ev = asyncio.Event()
    table.setdefault(run_id, []).append(ev)
    try:
        yield ev
    finally:
        waiters = table.get(run_id, [])
        waiters.remove(ev)
        if not waiters:
            table.pop(run_id, None)
