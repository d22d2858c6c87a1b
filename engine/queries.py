"""Read-only queries about runs: find, count, list, details, history, health."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from engine.core import EngineCore
from engine.errors import InterruptNotFound, RunNotFound
from engine.models import Event, Interrupt, Run, RunDetail, RunStatus
from engine.store.base import Store
from engine.store.rows import CURSOR_SLACK


async def existing_interrupt(store: Store, run_id: str, interrupt_id: str) -> Interrupt:
    """One interrupt with its responses; RunNotFound or InterruptNotFound if it is not there."""
    found = await store.get_interrupt(run_id, interrupt_id)
    if found is None:
        if await store.get_run(run_id) is None:
            raise RunNotFound(run_id)
        raise InterruptNotFound(run_id, interrupt_id)
    return found


class Queries(EngineCore):
    """The ``Engine``'s reads of runs, interrupts and history; they never write."""

    async def find_run(self, run_id: str) -> Run | None:
        """The run with this id (without steps or history), or None if there is none."""
        return await self.store.get_run(run_id)

    async def count_runs(self) -> dict[str, int]:
        """How many runs there are in each status (for metrics)."""
        return await self.store.count_runs()

    async def count_runs_by_workflow(self) -> dict[str, dict[str, int]]:
        """How many runs each workflow has in each status: ``{workflow: {status: n}}``.

        One aggregate over the ``runs_by_workflow_status_newest`` index (exact, not
        capped); statuses without runs are left out.
        """
        return await self.store.count_runs_by_workflow()

    async def count_pending_interrupts(self) -> dict[str, dict[str, int]]:
        """How many interrupts wait in each workflow, by kind: ``{workflow: {kind: n}}``.

        One aggregate in the database (exact, not capped), so it costs the same whether
        ten or a hundred thousand requests wait: nothing is loaded to count them. Kinds
        without pending interrupts are left out.
        """
        return await self.store.count_pending_interrupts()

    async def outbox_backlog(self) -> int:
        """How many notifications are waiting to be delivered (for metrics)."""
        return await self.store.outbox_backlog()

    async def ping(self) -> None:
        """Touch the database with a cheap query; raises if it does not answer."""
        # A primary-key lookup of an id that never exists: touches the database and the
        # schema without reading any data.
        await self.store.get_run("healthz")

    async def get_run(self, run_id: str) -> RunDetail:
        """A run with its steps, interrupts and history (RunNotFound)."""
        detail = await self.store.get_detail(run_id)
        if detail is None:
            raise RunNotFound(run_id)
        return detail

    async def list_runs(
        self,
        *,
        status: RunStatus | str | None = None,
        workflow: str | None = None,
        limit: int = 100,
        offset: int = 0,
        requester: str | None = None,
        created_after: datetime | None = None,
        created_before: datetime | None = None,
        before: tuple[datetime, str] | None = None,
    ) -> list[Run]:
        """Runs, newest first (``created_at`` descending, then ``id``).

        Args:
            status, workflow, requester: keep only runs with these values.
            created_after: keep runs created at or after this time.
            created_before: keep runs created before this time.
            before: a keyset cursor, ``(run.created_at, run.id)`` of the last run of the
                previous page: the next page starts after it. Unlike ``offset`` it reads
                only the rows it returns (indexed), however deep the page.
            limit, offset: page size and rows skipped (prefer ``before`` for deep pages).
        """
        extra: dict[str, Any] = {}
        if requester:
            extra["requester"] = requester
        # A datetime is the stored Unix seconds rounded to the microsecond: shift the bounds
        # by half of one so a run's own created_at is inside "after" and outside "before".
        if created_after is not None:
            extra["created_after"] = created_after.timestamp() - CURSOR_SLACK
        if created_before is not None:
            extra["created_before"] = created_before.timestamp() - CURSOR_SLACK
        if before is not None:
            extra["before"] = (before[0].timestamp(), before[1])
        return await self.store.list_runs(
            status=str(status) if status else None,
            workflow=workflow,
            limit=limit,
            offset=offset,
            **extra,
        )

    async def get_interrupt(self, run_id: str, interrupt_id: str) -> Interrupt:
        """One interrupt with its responses (RunNotFound / InterruptNotFound)."""
        return await existing_interrupt(self.store, run_id, interrupt_id)

    async def events(self, run_id: str, *, after_id: int = 0, limit: int = 1000) -> list[Event]:
        """A run's history entries after ``after_id``."""
        return await self.store.list_events(run_id, after_id=after_id, limit=limit)
