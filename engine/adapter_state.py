"""What adapters keep on the engine beside runs: interrupt refs, preferences, snoozes,
undelivered notices."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from engine import quorum
from engine.models import EventType
from engine.queries import Queries
from engine.store.base import EventWrite, OutboxWrite


class AdapterState(Queries):
    """The ``Engine``'s writes on behalf of an adapter (the Slack bot, a web console).

    It builds on ``Queries``: a snooze reads the interrupt first.
    """

    async def set_interrupt_ref(self, run_id: str, interrupt_id: str, key: str, value: Any) -> None:
        """Store an adapter's reference on an interrupt (e.g. Slack channel + ts)."""
        await self.store.set_ref(run_id, interrupt_id, key, value)

    async def get_preference(self, actor: str, key: str, default: Any = None) -> Any:
        """A per-person preference an adapter stored (``set_preference``), or ``default``."""
        found = await self.store.get_preference(actor, key)
        return default if found is None else json.loads(found)

    async def set_preference(self, actor: str, key: str, value: Any) -> None:
        """Store a per-person preference (any JSON value; None deletes it), e.g. the Slack
        bot's ``digest``. Durable and shared by every process on the store."""
        encoded = None if value is None else json.dumps(value)
        await self.store.set_preference(actor, key, encoded, self.clock())

    async def snooze(
        self, run_id: str, interrupt_id: str, actor: str, until: datetime | float
    ) -> None:
        """Remind ``actor`` of a pending request at ``until``, once, durably.

        Stores a timer of kind ``snooze`` naming the actor. When it fires (after restarts
        too, on whichever worker claims it) and the request still waits, a ``snoozed``
        history entry and an ``interrupt.snoozed`` outbox message ``{interrupt_id, actor,
        due_at}`` are recorded, once. The request's expiry, reminders and escalation are
        not changed. Who may snooze is the adapter's call (the Slack bot lets those who may
        answer).

        Raises:
            RunNotFound, InterruptNotFound: no such run or interrupt.
            AlreadyResolved: the request does not wait any more.
        """
        due = until.timestamp() if isinstance(until, datetime) else float(until)
        interrupt = await self.get_interrupt(run_id, interrupt_id)
        quorum.ensure_pending(interrupt)
        if not await self.store.add_timer(run_id, interrupt_id, "snooze", due, actor):
            quorum.ensure_pending(await self.get_interrupt(run_id, interrupt_id))
        self.timers.kick()

    async def report_undelivered(
        self, run_id: str, interrupt_id: str, *, target: str | None, reason: str
    ) -> None:
        """Record that an adapter could not show a request to anyone at ``target``.

        Appends an ``undelivered`` entry to the run's history (so the API and any console
        show it) and an ``interrupt.undelivered`` outbox message (so subscribers can tell
        the requester and the admins, at least once), in one transaction. The request
        itself stays pending: it can still be answered through the API, or it expires.

        Raises:
            RunNotFound: there is no such run.
        """
        info = {"interrupt_id": interrupt_id, "target": target, "reason": reason}
        await self.store.append_events(
            run_id,
            [EventWrite(EventType.UNDELIVERED, info)],
            [OutboxWrite("interrupt.undelivered", interrupt_id, info)],
            self.clock(),
        )
        self._on_commit()
