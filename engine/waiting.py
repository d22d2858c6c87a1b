"""Waiting for a run to settle (``wait``) or for an interrupt's decision (``wait_interrupt``).

A commit made by this engine wakes its waiters at once (``EngineCore._notify``); one
made by another process on the same database is seen within ``poll_interval``.
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
                run = await self.store.get_run(run_id)
                if run is None:
                    raise RunNotFound(run_id)
                if run.status in wanted and run_id not in self.driver.tasks:
                    return run
                if run.status in wanted and run.status.terminal:
                    return run
                await self._nap(ev, deadline, f"run {run_id} is still {run.status.value}")

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
                await self._nap(
                    ev, deadline, f"interrupt {interrupt_id} of run {run_id} is pending"
                )

    async def _nap(self, ev: asyncio.Event, deadline: float | None, pending: str) -> None:
        """Sleep until ``ev`` is set or ``poll_interval`` passes (to poll for other
        processes' commits); TimeoutError with ``pending`` once ``deadline`` is past."""
        wait = self.poll_interval
        if deadline is not None:
            wait = min(wait, deadline - time.monotonic())
            if wait <= 0:
                raise TimeoutError(pending)
        with contextlib.suppress(TimeoutError):  # not wait_for: it can eat a cancel
            async with asyncio.timeout(wait):
                await ev.wait()


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
