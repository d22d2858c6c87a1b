"""The read-only operations of the SQLite store: every query the Engine's reads make.

Reads go through the reader connection's queue (``_read``) or, for primary-key reads,
run on the event loop's thread (``_lookup``); neither ever takes the write lock.
``SQLiteStore`` opens the connections these use.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable, Sequence
from typing import TypeVar

import aiosqlite

from engine.models import Event, Interrupt, Run, RunDetail, StepStatus
from engine.store.rows import (
    CURSOR_SLACK,
    PENDING_BY_WORKFLOW_AND_KIND,
    RUN_COLS,
    loads,
    run_from_row,
)
from engine.store.sqlite import ops, retry
from engine.store.sqlite import responders as responders_ops
from engine.store.sqlite.batching import SQLITE_BUSY, SQLITE_LOCKED, Batcher

T = TypeVar("T")


class SQLiteQueries:
    """The reads of ``SQLiteStore``: runs, interrupts, history, counts, preferences."""

    _reads: Batcher
    _peek: aiosqlite.Connection | None

    # -- plumbing (the reader's queue, point reads on the loop's thread) ----------------
    async def _read(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        return await self._reads.submit(fn)

    async def _lookup(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """A primary-key read, run on the event loop's thread: a few page reads cost less
        than the hop to the reader's thread and back (~100-200 us under load). WAL
        readers do not wait for writers; should one find the database busy anyway (a
        WAL-index rebuild), it waits on the reader's thread instead."""
        peek = self._peek
        if peek is None:
            return await self._read(fn)
        try:
            return fn(peek._conn)
        except sqlite3.OperationalError as exc:
            if getattr(exc, "sqlite_errorcode", None) not in (SQLITE_BUSY, SQLITE_LOCKED):
                raise
        return await self._read(fn)

    # -- runs, interrupts, history, counts, preferences ---------------------------------
    async def outbox_backlog(self) -> int:
        """How many messages are not delivered yet."""
        return await self._read(
            lambda conn: int(
                conn.execute("SELECT COUNT(*) FROM outbox WHERE done_at IS NULL").fetchone()[0]
            )
        )

    async def get_run(self, run_id: str) -> Run | None:
        """One run."""

        def op(conn: sqlite3.Connection) -> Run | None:
            row = ops.run_row(conn, run_id)
            return run_from_row(row) if row else None

        return await self._lookup(op)

    async def get_detail(self, run_id: str) -> RunDetail | None:
        """One run with its ended steps (with outputs), interrupts and whole history."""

        def op(conn: sqlite3.Connection) -> RunDetail | None:
            state = ops.load_state(conn, run_id)
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
                events=ops.events(conn, run_id, 0, -1),
            )

        return await self._read(op)

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
        where: list[str] = ["1=1"]
        args: list[str | float] = []
        for column, value in (("status", status), ("workflow", workflow), ("requester", requester)):
            if value:
                where.append(f"{column}=?")
                args.append(value)
        if created_after is not None:
            where.append("created_at>=?")
            args.append(created_after)
        if created_before is not None:
            where.append("created_at<?")
            args.append(created_before)
        if before is not None:
            # Row-value keyset on (created_at DESC, id ASC); the half-microsecond window
            # absorbs the cursor's rounding to datetime precision (see Store.list_runs).
            at, after_id = before
            where.append("created_at<? AND (created_at<? OR id>?)")
            args += [at + CURSOR_SLACK, at - CURSOR_SLACK, after_id]

        def op(conn: sqlite3.Connection) -> list[Run]:
            rows = conn.execute(
                f"SELECT {RUN_COLS} FROM runs WHERE {' AND '.join(where)} "
                "ORDER BY created_at DESC, id LIMIT ? OFFSET ?",
                (*args, limit, offset),
            ).fetchall()
            return [run_from_row(r) for r in rows]

        return await self._read(op)

    async def count_runs(self) -> dict[str, int]:
        """Number of runs per status."""

        def op(conn: sqlite3.Connection) -> dict[str, int]:
            return {
                s: n for s, n in conn.execute("SELECT status, COUNT(*) FROM runs GROUP BY status")
            }

        return await self._read(op)

    async def get_interrupt(self, run_id: str, interrupt_id: str) -> Interrupt | None:
        """One interrupt with its responses."""

        def op(conn: sqlite3.Connection) -> Interrupt | None:
            found = ops.interrupts(conn, "i.run_id = ? AND i.id = ?", (run_id, interrupt_id))
            return found[0] if found else None

        return await self._lookup(op)

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
        where, args = ["1=1"], []
        if status:
            where.append("i.status=?")
            args.append(status)
        if workflow:
            where.append("r.workflow=?")
            args.append(workflow)
        if run_id:
            where.append("i.run_id=?")
            args.append(run_id)
        if label:
            where.append("i.label=?")
            args.append(label)
        if kind:
            where.append("i.kind=?")
            args.append(kind)
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

        def op(conn: sqlite3.Connection) -> dict[str, int]:
            # One seek per run: SQLite reads a MAX over `events_by_run` from its end.
            rows = conn.execute(
                "SELECT w.value, (SELECT MAX(e.id) FROM events e WHERE e.run_id = w.value) "
                "FROM json_each(?) w",
                (json.dumps(list(run_ids)),),
            )
            return {run_id: int(latest) for run_id, latest in rows if latest is not None}

        return await self._read(op)

    async def get_preference(self, actor: str, key: str) -> str | None:
        """The JSON text stored for ``(actor, key)``, or None."""

        def op(conn: sqlite3.Connection) -> str | None:
            row = conn.execute(
                "SELECT value_json FROM preferences WHERE actor=? AND key=?", (actor, key)
            ).fetchone()
            return None if row is None else str(row[0])

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
            )
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

        def op(conn: sqlite3.Connection) -> dict[str, dict[str, int]]:
            found: dict[str, dict[str, int]] = {}
            for workflow, kind, n in conn.execute(PENDING_BY_WORKFLOW_AND_KIND):
                found.setdefault(workflow, {})[kind] = int(n)
            return found

        return await self._read(op)
