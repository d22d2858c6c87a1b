"""What every part of the ``Engine`` shares: its state, and the signals a commit sends.

``Engine`` (``engine.runner``) is composed of one class per idea: ``Answering``
(``engine.answering``), ``Waiting`` (``engine.waiting``), ``Queries``
(``engine.queries``), ``Inbox`` (``engine.inbox``) and ``AdapterState``
(``engine.adapter_state``). Each subclasses ``EngineCore``, which names the attributes
``Engine.__init__`` sets, so each part is type-checked on its own.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from engine.access import Authorizer
from engine.driver import Driver
from engine.outbox import Dispatcher
from engine.recovery import Recovery
from engine.registry import Registry
from engine.store.base import Store
from engine.timers import TimerLoop
from engine.watch import RunWatch


class EngineCore:
    """The state ``Engine.__init__`` sets, and how a commit wakes the loops and waiters."""

    store: Store
    worker_id: str
    lease: float
    poll_interval: float
    authorizer: Authorizer | None
    clock: Callable[[], float]
    registry: Registry
    driver: Driver
    recovery: Recovery
    dispatcher: Dispatcher
    timers: TimerLoop
    watch: RunWatch  # other processes' commits, for every waiter at once
    # Waiters for a run's status (wait), by run id.
    _waiters: dict[str, list[asyncio.Event]]
    # Waiters for an interrupt's resolution (wait_interrupt), by run id: woken by every
    # resolution committed here and by every change of the run's status.
    _decision_waiters: dict[str, list[asyncio.Event]]

    def _on_commit(self) -> None:
        # Only new timers need the timer loop to look again (it polls anyway); waking it
        # on every commit would add a claim query to every resume.
        self.dispatcher.kick()

    def _notify(self, run_id: str) -> None:
        for ev in self._waiters.get(run_id, ()):
            ev.set()
        self._notify_decided(run_id)

    def _notify_decided(self, run_id: str) -> None:
        for ev in self._decision_waiters.get(run_id, ()):
            ev.set()
        self.watch.wake(run_id)  # live views of the run (wait_for_history)
