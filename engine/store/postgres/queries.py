"""The read-only operations of the PostgreSQL store: every query the Engine's reads make.

Each runs on a pooled connection as one statement, or, where several statements must
agree (a run's detail, a page with its total), in a read-only REPEATABLE READ
transaction (``_read(..., snapshot=True)``). ``PostgresStore`` opens the pool.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import TypeVar

from asyncpg import Record
from asyncpg.pool import Pool

from engine.errors import StoreError
from engine.models import Event, Interrupt, Run, RunDetail, StepStatus
from engine.store.postgres import ops, retry
from engine.store.postgres import responders as responders_ops
from engine.store.postgres.ops import CONNECTION_ERRORS, Conn
from engine.store.rows import (
    CURSOR_SLACK,
    PENDING_BY_WORKFLOW_AND_KIND,
    RUN_COLS,
    loads,
    run_from_row,
)

T = TypeVar("T")


class PostgresQueries:
    """The reads of ``PostgresStore``: runs, interrupts, history, counts, preferences."""

    _pool: Pool[Record] | None

    # -- plumbing (the pool, reads with an optional snapshot) ----------------------------
    def _require_pool(self) -> Pool[Record]:
        if self._pool is None:
            raise StoreError("the store is not open (call `await store.open()`)")
        return self._pool

    async def _read(self, fn: Callable[[Conn], Awaitable[T]], *, snapshot: bool = False) -> T:
        """Run a read; ``snapshot`` makes several statements see one consistent state."""
        pool = self._require_pool()
        try:
            async with pool.acquire() as conn:
                if not snapshot:
                    return await fn(conn)
                async with conn.transaction(isolation="repeatable_read", readonly=True):
                    return await fn(conn)
        except CONNECTION_ERRORS as exc:
            raise StoreError(f"PostgreSQL read failed: {exc}") from exc

    # -- runs, interrupts, history, counts, preferences ---------------------------------
    async def outbox_backlog(self) -> int:
        """How many messages are not delivered yet."""

        async def op(conn: Conn) -> int:
            return int(await conn.fetchval("SELECT COUNT(*) FROM outbox WHERE done_at IS NULL"))

        return await self._read(op)

    async def get_run(self, run_id: str) -> Run | None:
        """One run."""

        async def op(conn: Conn) -> Run | None:
            row = await ops.run_row(conn, run_id)
            return run_from_row(row) if row is not None else None

        return await self._read(op)

    async def get_detail(self, run_id: str) -> RunDetail | None:
        """One run with its ended steps (with outputs), interrupts and whole history."""

        async def op(conn: Conn) -> RunDetail | None:
            state = await ops.load_state(conn, run_id)
            if state is None:
                return None
            steps = [
                rec.model_copy(
                    update={"output": loads(o) if (o := state.step_outputs[p]) else None}
                )
                for p, rec in sorted(state.steps.items(), key=lambda kv: kv[1].started_at)
                # An attempt in progress is not a result: it shows as `step_started` in the
                # history; its record only keeps the attempt count for recovery.
                if rec.status is not StepStatus.RUNNING
            ]
            return RunDetail(
                run=state.run,
                steps=steps,
                interrupts=list(state.interrupts.values()),
                events=await ops.events(conn, run_id, 0, -1),
            )

        return await self._read(op, snapshot=True)

    async def list_runs(
        self,
        *,
        status: str | None,
        workflow: str | None,
        limit: int,
        offset: int,
        requester: str | None = None,
        created_after: float | None = None,
        created_before: float | None = None,
        before: tuple[float, str] | None = None,
    ) -> list[Run]:
        """Runs, newest first, optionally filtered and keyset-paged (see ``Store``)."""
        where: list[str] = ["TRUE"]
        args: list[str | float] = []
        for column, value in (("status", status), ("workflow", workflow), ("requester", requester)):
            if value:
                args.append(value)
                where.append(f"{column}=${len(args)}")
        if created_after is not None:
            args.append(created_after)
            where.append(f"created_at>=${len(args)}")
        if created_before is not None:
            args.append(created_before)
            where.append(f"created_at<${len(args)}")
        if before is not None:
            # Keyset on (created_at DESC, id ASC), with the cursor's rounding window.
            at, after_id = before
            args += [at + CURSOR_SLACK, at - CURSOR_SLACK, after_id]
            n = len(args)
            where.append(f"created_at<${n - 2} AND (created_at<${n - 1} OR id>${n})")
        n = len(args)

        async def op(conn: Conn) -> list[Run]:
            rows = await conn.fetch(
                f"SELECT {RUN_COLS} FROM runs WHERE {' AND '.join(where)} "
                f"ORDER BY created_at DESC, id LIMIT ${n + 1} OFFSET ${n + 2}",
                *args,
                ops.limit_arg(limit),
                offset,
            )
            return [run_from_row(r) for r in rows]

        return await self._read(op)

    async def count_runs(self) -> dict[str, int]:
        """Number of runs per status."""

        async def op(conn: Conn) -> dict[str, int]:
            rows = await conn.fetch("SELECT status, COUNT(*) FROM runs GROUP BY status")
            return {r[0]: int(r[1]) for r in rows}

        return await self._read(op)

    async def get_interrupt(self, run_id: str, interrupt_id: str) -> Interrupt | None:
        """One interrupt with its responses."""

        async def op(conn: Conn) -> Interrupt | None:
            found = await ops.interrupts(
                conn, "i.run_id = $1 AND i.id = $2", (run_id, interrupt_id)
            )
            return found[0] if found else None

        return await self._read(op)

    async def list_interrupts(
        self,
        *,
        status: str | None,
        workflow: str | None,
        run_id: str | None,
        limit: int,
        label: str | None = None,
        offset: int = 0,
        kind: str | None = None,
    ) -> list[Interrupt]:
        """Interrupts, oldest first, optionally filtered; ``offset`` rows skipped."""
        where, args = ["TRUE"], []
        filters = (("i.status", status), ("r.workflow", workflow), ("i.run_id", run_id))
        for column, value in (*filters, ("i.label", label), ("i.kind", kind)):
            if value:
                args.append(value)
                where.append(f"{column}=${len(args)}")
        return await self._read(
            lambda conn: ops.interrupts(conn, " AND ".join(where), args, limit, offset)
        )

    async def list_events(self, run_id: str, *, after_id: int, limit: int) -> list[Event]:
        """History entries of a run with ids above ``after_id``."""
        return await self._read(lambda conn: ops.events(conn, run_id, after_id, limit))

    async def latest_event_ids(self, run_ids: Sequence[str]) -> dict[str, int]:
        """The id of each run's newest history entry (runs without one are left out)."""
        if not run_ids:
            return {}

        async def op(conn: Conn) -> dict[str, int]:
            # One backward index seek per run (`events_by_run`).
            rows = await conn.fetch(
                "SELECT w.id, (SELECT MAX(e.id) FROM events e WHERE e.run_id = w.id) "
                "FROM unnest($1::text[]) AS w(id)",
                list(run_ids),
            )
            return {run_id: int(latest) for run_id, latest in rows if latest is not None}

        return await self._read(op)

    async def get_preference(self, actor: str, key: str) -> str | None:
        """The JSON text stored for ``(actor, key)``, or None."""

        async def op(conn: Conn) -> str | None:
            found = await conn.fetchval(
                "SELECT value_json FROM preferences WHERE actor=$1 AND key=$2", actor, key
            )
            return None if found is None else str(found)

        return await self._read(op)

    # -- the responder index ------------------------------------------------------------
    async def list_answerable(
        self,
        *,
        responders: Sequence[str],
        actor: str | None,
        kind: str | None = None,
        limit: int,
        newest: bool = False,
        counted: bool = True,
    ) -> tuple[list[Interrupt], int]:
        """Pending interrupts the responders may answer, a page and the total (indexed)."""
        if not responders:
            return [], 0 if counted else -1
        return await self._read(
            lambda conn: responders_ops.answerable(
                conn, responders, actor, kind, limit, newest, counted
            ),
            snapshot=True,
        )

    async def list_decided(
        self, *, responders: Sequence[str], kind: str | None = None, limit: int
    ) -> list[Interrupt]:
        """Resolved interrupts that listed any of the responders, newest decision first."""
        if not responders:
            return []
        return await self._read(lambda conn: responders_ops.decided(conn, responders, kind, limit))

    async def pending_responders(self) -> list[str]:
        """The distinct responders of pending interrupts."""
        return await self._read(responders_ops.pending_responders)

    async def count_runs_by_workflow(self) -> dict[str, dict[str, int]]:
        """Number of runs per workflow and status."""
        return await self._read(retry.count_by_workflow)

    async def count_pending_interrupts(self) -> dict[str, dict[str, int]]:
        """Number of pending interrupts per workflow and kind."""

        async def op(conn: Conn) -> dict[str, dict[str, int]]:
            found: dict[str, dict[str, int]] = {}
            for workflow, kind, n in await conn.fetch(PENDING_BY_WORKFLOW_AND_KIND):
                found.setdefault(workflow, {})[kind] = int(n)
            return found

        return await self._read(op)
