"""SQLite store on aiosqlite: WAL, group commit, IMMEDIATE transactions.

Why it is built this way (measured on the 2-core reference machine):

* Each aiosqlite call is a round trip to the connection's thread, ~125 us, while a
  statement run inside that thread costs ~2 us. So every store operation is one plain
  function run whole, never a chain of awaited ``execute`` calls: on the connection's
  thread (``connection.in_thread``), or, where a hop costs more than the work, on the
  event loop's thread: primary-key reads (``_lookup``, in ``queries`` with the other
  reads) and, unless ``?inline_writes=0``, small write batches (``batching.Batcher``),
  neither ever waiting for a lock there.
* A durable commit costs far more than the statements in it. Writes from concurrent
  runs are queued and committed together (group commit, ``batching``): one failing
  operation rolls back alone, and every caller's future resolves only after the shared
  COMMIT, so nothing is reported before it is durable. A batch's resolves of distinct
  runs run together in a dozen statements for all of them (``resolving``), where each
  alone runs about eleven: a statement hands the GIL back to a busy loop once per step.
* ``BEGIN IMMEDIATE`` takes the write lock up front, so two processes on one file
  never deadlock upgrading a read transaction; ``busy_timeout`` makes the loser wait
  (on the connection's thread).
* Durability: WAL with ``synchronous=NORMAL`` (default) survives a killed process;
  ``synchronous=FULL`` (``?synchronous=full`` in the URL) also survives power loss.
* Migrations (``sqlite/migrations/NNNN_*.sql``) are versioned by ``PRAGMA
  user_version`` (``migrate``).
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import aiosqlite

from engine.errors import InterruptNotFound, RunNotActive, RunNotFound
from engine.models import (
    OutboxMessage,
    Run,
    RunStatus,
)
from engine.store.base import (
    ChangeSpec,
    Decide,
    EventWrite,
    FinishWrite,
    LeftoverBuilder,
    LostOwnership,
    NewRun,
    OutboxResult,
    OutboxWrite,
    ResolveResult,
    RunState,
    StepWrite,
    TimerRow,
    WorkerRow,
)
from engine.store.rows import (
    dumps,
    run_from_row,
)
from engine.store.sqlite import claims, ops, retry
from engine.store.sqlite.batching import Batcher
from engine.store.sqlite.connection import checkpoint_loop, connect, in_thread
from engine.store.sqlite.migrate import migrate, migrations
from engine.store.sqlite.queries import SQLiteQueries
from engine.store.sqlite.resolving import ResolveOp
from engine.store.sqlite.write import append, write_steps

T = TypeVar("T")


class SQLiteStore(SQLiteQueries):
    """The default store: one SQLite file, safe to share between processes on one host.

    Build it with ``open_store("sqlite:///path.db")``.

    Args:
        path: the database file (created if missing).
        synchronous: ``"normal"`` (survives a killed process), ``"full"`` or ``"extra"``
            (also survive power loss).
        busy_timeout_ms: how long a write waits for another process's write lock.
    """

    def __init__(
        self,
        path: str,
        *,
        synchronous: str = "normal",
        busy_timeout_ms: int = 10_000,
        inline_writes: bool = True,
    ) -> None:
        if synchronous.lower() not in ("normal", "full", "extra"):
            raise ValueError("synchronous must be 'normal', 'full' or 'extra'")
        self.path = path
        # On by default (``?inline_writes=0`` turns it off), with synchronous=NORMAL only:
        # a lone write skips two thread hops. Measured on 2 CPUs, alternated pairs:
        # bench/engine.py (7 pairs) resume-to-complete p50 0.88-0.93 ms against 1.10-1.32
        # ms threaded, throughput equal; bench/slack.py (5 pairs) one click at a time, ack
        # p50 1.55 against 1.85 ms and 3.1 against 4.1 ms of CPU per click (medians), a
        # burst of 200 clicks equal. Only batches of up to 8 writes run on the loop's
        # thread (`batching`): a burst still overlaps the loop on the connection's thread.
        self.inline_writes = inline_writes
        self.synchronous = synchronous.upper()
        self.busy_timeout_ms = busy_timeout_ms
        self._writes = Batcher(writes=True)
        self._reads = Batcher(writes=False)
        self._checkpointer: aiosqlite.Connection | None = None
        self._peek: aiosqlite.Connection | None = None
        self._checkpoints: asyncio.Task[None] | None = None
        self.checkpoint_interval = 0.5

    # -- plumbing (connections in `connection`, queues in `batching`, reads in `queries`) -
    async def _connect(self, cache_kib: int = 8192) -> aiosqlite.Connection:
        return await connect(
            self.path,
            synchronous=self.synchronous,
            busy_timeout_ms=self.busy_timeout_ms,
            cache_kib=cache_kib,
        )

    async def _write(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        return await self._writes.submit(fn)

    async def open(self) -> None:
        """Open the file (created if missing), enable WAL and apply migrations."""
        writer = self._writes.conn = await self._connect()
        self._reads.conn = await self._connect()
        known = migrations()
        try:
            await in_thread(writer, migrate, writer._conn, known)
        except BaseException:
            await self.close()  # a refused open must not leave connection threads behind
            raise
        if self.inline_writes and self.synchronous == "NORMAL":  # commits skip the disk
            await writer.execute("PRAGMA busy_timeout=0")
            self._writes.inline_busy_ms = self.busy_timeout_ms
        # Point reads on the loop's thread (`_lookup`): never waits for a lock.
        self._peek = await self._connect(cache_kib=1024)
        await self._peek.execute("PRAGMA busy_timeout=0")
        self._checkpointer = await self._connect(cache_kib=256)  # copies pages, caches none
        self._checkpoints = asyncio.get_running_loop().create_task(
            checkpoint_loop(self._checkpointer, lambda: self.checkpoint_interval)
        )

    async def close(self) -> None:
        """Wait for queued writes, then close the connections."""
        if self._checkpoints is not None:
            self._checkpoints.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._checkpoints
            self._checkpoints = None
        for queue in (self._writes, self._reads):
            await queue.drain()
        for conn in (self._writes.conn, self._reads.conn, self._peek, self._checkpointer):
            if conn is not None:
                await conn.close()
        self._writes.conn = self._reads.conn = self._peek = self._checkpointer = None

    # -- runs -------------------------------------------------------------------------
    async def create_run(self, run: NewRun) -> tuple[str, bool]:
        """Insert a run; an already used idempotency key returns the existing run."""

        def op(conn: sqlite3.Connection) -> tuple[str, bool]:
            if run.idempotency_key is not None:
                found = conn.execute(
                    "SELECT id FROM runs WHERE idempotency_key=?", (run.idempotency_key,)
                ).fetchone()
                if found:
                    return found[0], False
            conn.execute(
                "INSERT INTO runs (id, workflow, version, status, input_json, requester, "
                "idempotency_key, owner, lease_until, created_at, updated_at) "
                "VALUES (?, ?, ?, 'running', ?, ?, ?, ?, ?, ?, ?)",
                (
                    run.id,
                    run.workflow,
                    run.version,
                    run.input_json,
                    run.requester,
                    run.idempotency_key,
                    run.owner,
                    run.lease_until,
                    run.now,
                    run.now,
                ),
            )
            append(conn, run.id, run.now, run.events, run.outbox)
            return run.id, True

        return await self._write(op)

    async def load_state(self, run_id: str) -> RunState | None:
        """Read a run with its steps and interrupts."""
        return await self._lookup(lambda conn: ops.load_state(conn, run_id))

    async def commit_steps(
        self, run_id: str, owner: str, steps: Sequence[StepWrite], now: float
    ) -> None:
        """Record step results with their interrupts, timers, events and outbox rows."""

        def op(conn: sqlite3.Connection) -> None:
            ops.check_owner(conn, run_id, owner, now)
            write_steps(conn, run_id, steps, now)

        await self._write(op)

    async def release_run(
        self,
        run_id: str,
        owner: str,
        wake_seq: int,
        now: float,
        steps: Sequence[StepWrite] = (),
    ) -> bool:
        """Record ``steps`` and park the run; False (steps recorded, not parked) when an
        interrupt was resolved since ``wake_seq`` was read."""

        def op(conn: sqlite3.Connection) -> bool:
            cur = conn.execute(
                "UPDATE runs SET status='suspended', owner=NULL, lease_until=NULL, updated_at=? "
                "WHERE id=? AND owner=? AND status='running' AND wake_seq=?",
                (now, run_id, owner, wake_seq),
            )
            parked = cur.rowcount == 1
            if not parked:  # the fence: raises unless we still drive it
                ops.check_owner(conn, run_id, owner, now)
            write_steps(conn, run_id, steps, now)
            return parked

        return await self._write(op)

    async def abandon_run(self, run_id: str, owner: str, retry_at: float) -> None:
        """Give a run up (after an unexpected error) so recovery retries it at ``retry_at``."""

        def op(conn: sqlite3.Connection) -> None:
            conn.execute(
                "UPDATE runs SET owner=NULL, lease_until=? WHERE id=? AND owner=?",
                (retry_at, run_id, owner),
            )

        await self._write(op)

    async def finish_run(
        self, run_id: str, owner: str, fin: FinishWrite, leftover: LeftoverBuilder | None = None
    ) -> None:
        """Record the terminal status; leftover pending interrupts become cancelled."""

        def op(conn: sqlite3.Connection) -> None:
            cur = conn.execute(
                "UPDATE runs SET status=?, output_json=?, error_json=?, owner=NULL, "
                "lease_until=NULL, updated_at=? WHERE id=? AND owner=? AND status='running'",
                (fin.status.value, fin.output_json, fin.error_json, fin.now, run_id, owner),
            )
            if cur.rowcount != 1:
                raise LostOwnership(run_id)
            write_steps(conn, run_id, fin.steps, fin.now, fin.events, fin.outbox)
            if ops.has_pending(conn, run_id):
                row = ops.run_row(conn, run_id)
                ops.cancel_pending(conn, run_from_row(row), fin.now, leftover)

        await self._write(op)

    async def cancel_run(
        self,
        run_id: str,
        now: float,
        events: list[EventWrite],
        outbox: list[OutboxWrite],
        leftover: LeftoverBuilder | None = None,
        by: str | None = None,
    ) -> Run:
        """Cancel an active run; its pending interrupts become cancelled ``by`` the actor."""

        def op(conn: sqlite3.Connection) -> Run:
            row = ops.run_row(conn, run_id)
            if row is None:
                raise RunNotFound(run_id)
            if RunStatus(row[3]).terminal:
                raise RunNotActive(run_id, row[3])
            conn.execute(
                "UPDATE runs SET status='cancelled', owner=NULL, lease_until=NULL, "
                "updated_at=?, wake_seq=wake_seq+1 WHERE id=?",
                (now, run_id),
            )
            append(conn, run_id, now, events, outbox)
            run = run_from_row(ops.run_row(conn, run_id))
            ops.cancel_pending(conn, run, now, leftover, by)
            return run

        return await self._write(op)

    async def resolve(
        self,
        run_id: str,
        interrupt_id: str,
        decide: Decide,
        *,
        claim_owner: str,
        lease_until: float,
        now: float,
    ) -> ResolveResult:
        """Apply ``decide`` to the interrupt atomically; take over the run if it is parked.

        Concurrent resolves of different runs share a few statements (``resolving``).
        """
        return await self._write(
            ResolveOp(run_id, interrupt_id, decide, claim_owner, lease_until, now)
        )

    # -- workers, leases, recovery (SQL in `claims`) ------------------------------------
    async def heartbeat(self, worker: WorkerRow, lease_until: float) -> list[WorkerRow]:
        """Upsert the worker row, extend its runs' leases, and list all workers."""
        return await self._write(lambda conn: claims.heartbeat(conn, worker, lease_until))

    async def remove_workers(self, ids: Sequence[str]) -> None:
        """Forget workers known to be dead and release their timer and outbox claims."""
        if ids:
            await self._write(lambda conn: claims.remove_workers(conn, ids))

    async def claim_runs(
        self, owner: str, now: float, lease_until: float, dead: Sequence[str], limit: int
    ) -> list[str]:
        """Take over running runs whose lease ran out or whose owner is dead."""
        return await self._write(
            lambda conn: claims.claim_runs(conn, owner, now, lease_until, dead, limit)
        )

    # -- timers -----------------------------------------------------------------------
    async def claim_timers(
        self, owner: str, now: float, claim_until: float, dead: Sequence[str], limit: int
    ) -> list[TimerRow]:
        """Claim due timers, earliest first."""
        return await self._write(
            lambda conn: claims.claim_timers(conn, owner, now, claim_until, dead, limit)
        )

    async def fire_reminder(
        self, timer: TimerRow, events: list[EventWrite], outbox: list[OutboxWrite], now: float
    ) -> None:
        """Delete the reminder timer and record the reminder, if the interrupt still waits."""
        await self._write(lambda conn: claims.fire_reminder(conn, timer, events, outbox, now))

    async def fire_escalation(self, timer: TimerRow, change: ChangeSpec, now: float) -> bool:
        """Delete the escalation timer and apply ``change``, if the interrupt still waits."""
        return await self._write(lambda conn: claims.fire_escalation(conn, timer, change, now))

    async def add_timer(
        self, run_id: str, interrupt_id: str, kind: str, due_at: float, actor: str | None = None
    ) -> bool:
        """Add a timer to the interrupt if it is pending."""

        def op(conn: sqlite3.Connection) -> bool:
            added = conn.execute(
                "INSERT INTO timers (run_id, interrupt_id, kind, due_at, actor) "
                "SELECT run_id, id, ?, ?, ? FROM interrupts "
                "WHERE run_id=? AND id=? AND status='pending'",
                (kind, due_at, actor, run_id, interrupt_id),
            )
            return added.rowcount > 0

        return await self._write(op)

    async def delete_timer(self, timer_id: int) -> None:
        """Drop a timer."""
        await self._write(lambda conn: conn.execute("DELETE FROM timers WHERE id=?", (timer_id,)))

    async def next_timer_at(self) -> float | None:
        """When the earliest stored timer is due."""

        def op(conn: sqlite3.Connection) -> float | None:
            row = conn.execute("SELECT MIN(due_at) FROM timers").fetchone()
            return None if row is None or row[0] is None else float(row[0])

        return await self._read(op)

    # -- outbox -----------------------------------------------------------------------
    async def claim_outbox(
        self, owner: str, now: float, claim_until: float, dead: Sequence[str], limit: int
    ) -> list[tuple[OutboxMessage, list[str]]]:
        """Claim deliverable messages; a run's later message waits for its earlier ones."""
        return await self._write(
            lambda conn: claims.claim_outbox(conn, owner, now, claim_until, dead, limit)
        )

    async def settle_outbox(self, results: Sequence[OutboxResult], now: float) -> None:
        """Mark delivered messages done; schedule failed ones for a retry."""
        await self._write(lambda conn: claims.settle_outbox(conn, results, now))

    async def set_ref(self, run_id: str, interrupt_id: str, key: str, value: Any) -> None:
        """Store ``refs[key] = value`` on the interrupt (e.g. Slack channel and ts)."""

        def op(conn: sqlite3.Connection) -> None:
            cur = conn.execute(
                "UPDATE interrupts SET refs_json=json_set(refs_json, '$.' || json_quote(?), "
                "json(?)) WHERE run_id=? AND id=?",
                (key, dumps(value), run_id, interrupt_id),
            )
            if cur.rowcount != 1:
                raise InterruptNotFound(run_id, interrupt_id)

        await self._write(op)

    async def append_events(
        self, run_id: str, events: list[EventWrite], outbox: list[OutboxWrite], now: float
    ) -> None:
        """Add history entries and outbox messages to a run, whoever drives it (RunNotFound)."""

        def op(conn: sqlite3.Connection) -> None:
            if ops.run_row(conn, run_id) is None:
                raise RunNotFound(run_id)
            append(conn, run_id, now, events, outbox)

        await self._write(op)

    # -- preferences ----------------------------------------------------------------------
    async def set_preference(
        self, actor: str, key: str, value_json: str | None, now: float
    ) -> None:
        """Store (or with None, delete) the JSON text for ``(actor, key)``."""

        def op(conn: sqlite3.Connection) -> None:
            if value_json is None:
                conn.execute("DELETE FROM preferences WHERE actor=? AND key=?", (actor, key))
                return
            conn.execute(
                "INSERT INTO preferences (actor, key, value_json, updated_at) VALUES (?,?,?,?) "
                "ON CONFLICT (actor, key) DO UPDATE SET value_json=excluded.value_json, "
                "updated_at=excluded.updated_at",
                (actor, key, value_json, now),
            )

        await self._write(op)

    # -- retry (SQL in `retry`) ---------------------------------------------------------
    async def retry_run(
        self,
        run_id: str,
        *,
        owner: str,
        lease_until: float,
        now: float,
        events: list[EventWrite],
    ) -> RunState:
        """Send a failed run back to running, owned by ``owner`` (see ``Store``)."""
        return await self._write(
            lambda conn: retry.retry_run(conn, run_id, owner, lease_until, now, events)
        )
