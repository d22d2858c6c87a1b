"""SQLite store on aiosqlite: WAL, group commit, IMMEDIATE transactions.

Why it is built this way (measured on the 2-core reference machine):

* Each aiosqlite call is a round trip to the connection's thread, ~125 us, while a
  statement run inside that thread costs ~2 us. So every store operation is one plain
  function run whole on aiosqlite's connection thread (``_in_thread``), never a
  chain of awaited ``execute`` calls.
* A durable commit costs far more than the statements in it. Writes from concurrent
  runs are queued and committed together (group commit): each operation gets its own
  SAVEPOINT, so one failing operation rolls back alone, and every caller's future
  resolves only after the shared COMMIT, so nothing is reported before it is durable.
* ``BEGIN IMMEDIATE`` takes the write lock up front, so two processes on one file
  never deadlock upgrading a read transaction; ``busy_timeout`` makes the loser wait.
* Durability: WAL with ``synchronous=NORMAL`` (default) survives a killed process;
  ``synchronous=FULL`` (``?synchronous=full`` in the URL) also survives power loss.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sqlite3
from collections.abc import Callable, Sequence
from importlib import resources
from typing import Any, TypeVar

import aiosqlite

from engine.errors import InterruptNotFound, RunNotActive, RunNotFound, StoreError
from engine.models import (
    Event,
    Interrupt,
    InterruptStatus,
    OutboxMessage,
    Response,
    Run,
    RunDetail,
    RunStatus,
    StepRecord,
)
from engine.store.base import (
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

# Row mapping is shared with the PostgreSQL store (same columns, same order).
from engine.store.rows import (
    OUTBOX_COLS,
    RUN_COLS,
    STEP_COLS,
    dumps,
    event_from_row,
    interrupt_from_row,
    loads,
    outbox_from_row,
    resolved_interrupt,
    response_from_row,
    run_from_row,
    spec_json,
    step_from_row,
)

log = logging.getLogger("signoff.store")

T = TypeVar("T")
Op = Callable[[sqlite3.Connection], Any]

_MAX_BATCH = 512
_dumps = dumps
_loads = loads


def _migrations() -> list[tuple[int, str]]:
    folder = resources.files("engine.store") / "migrations"
    found = []
    for item in folder.iterdir():
        if item.name.endswith(".sql"):
            found.append((int(item.name.split("_", 1)[0]), item.read_text()))
    return sorted(found)


_INT_COLS = (
    "i.run_id, i.id, i.path, i.step, i.kind, i.status, i.spec_json, i.expires_at, "
    "i.created_at, i.resolved_at, i.resolved_by, i.data_json, i.refs_json, "
    "r.workflow, r.version, r.requester"
)


def _responses(conn: sqlite3.Connection, run_id: str) -> dict[str, list[Response]]:
    out: dict[str, list[Response]] = {}
    for iid, actor, data, approved, at in conn.execute(
        "SELECT interrupt_id, actor, data_json, approved, at FROM responses "
        "WHERE run_id=? ORDER BY at",
        (run_id,),
    ):
        out.setdefault(iid, []).append(response_from_row(actor, data, approved, at))
    return out


def _interrupts(
    conn: sqlite3.Connection, where: str, args: Sequence[Any], limit: int = -1
) -> list[Interrupt]:
    rows = conn.execute(
        f"SELECT {_INT_COLS} FROM interrupts i JOIN runs r ON r.id = i.run_id "
        f"WHERE {where} ORDER BY i.created_at, i.id LIMIT ?",
        (*args, limit),
    ).fetchall()
    by_run: dict[str, dict[str, list[Response]]] = {}
    result = []
    for row in rows:
        if row[0] not in by_run:
            by_run[row[0]] = _responses(conn, row[0])
        result.append(interrupt_from_row(row, by_run[row[0]].get(row[1], [])))
    return result


def _append(
    conn: sqlite3.Connection,
    run_id: str,
    now: float,
    events: Sequence[EventWrite],
    outbox: Sequence[OutboxWrite],
) -> None:
    if events:
        conn.executemany(
            "INSERT INTO events (run_id, at, type, data) VALUES (?, ?, ?, ?)",
            [(run_id, e.at or now, e.type, _dumps(e.data)) for e in events],
        )
    if outbox:
        conn.executemany(
            "INSERT INTO outbox (run_id, interrupt_id, topic, data, created_at, next_at) "
            "VALUES (?, ?, ?, ?, ?, ?)",
            [(run_id, o.interrupt_id, o.topic, _dumps(o.data), now, now) for o in outbox],
        )


def _run_batch(conn: sqlite3.Connection, ops: list[Op]) -> list[tuple[bool, Any]]:
    """Run queued operations in one transaction, each isolated by a savepoint."""
    results: list[tuple[bool, Any]] = []
    conn.execute("BEGIN IMMEDIATE")
    try:
        for op in ops:
            conn.execute("SAVEPOINT op")
            try:
                results.append((True, op(conn)))
            except Exception as exc:
                conn.execute("ROLLBACK TO op")
                results.append((False, exc))
            conn.execute("RELEASE op")
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise
    return results


def _run_reads(conn: sqlite3.Connection, ops: list[Op]) -> list[tuple[bool, Any]]:
    """Run queued reads one after another (each in its own implicit transaction)."""
    results: list[tuple[bool, Any]] = []
    for op in ops:
        try:
            results.append((True, op(conn)))
        except Exception as exc:
            results.append((False, exc))
    return results


def _settle(batch: list[tuple[Op, asyncio.Future[Any]]], results: list[tuple[bool, Any]]) -> None:
    """Hand each queued operation's result (or exception) to its waiting caller."""
    for (_, fut), (ok, value) in zip(batch, results, strict=True):
        if fut.done():
            continue
        if ok:
            fut.set_result(value)
        else:
            fut.set_exception(value)


def _load_state(
    conn: sqlite3.Connection, run_id: str, known: Interrupt | None = None
) -> RunState | None:
    """Read a run for driving; ``known`` is an interrupt of it already read in this op."""
    row = conn.execute(f"SELECT {RUN_COLS} FROM runs WHERE id=?", (run_id,)).fetchone()
    if row is None:
        return None
    steps: dict[str, StepRecord] = {}
    outputs: dict[str, str | None] = {}
    for step_row in conn.execute(f"SELECT {STEP_COLS} FROM steps WHERE run_id=?", (run_id,)):
        steps[step_row[0]] = step_from_row(step_row)
        outputs[step_row[0]] = step_row[3]  # output JSON, decoded only where it is read
    if known is None:
        interrupts = {i.id: i for i in _interrupts(conn, "i.run_id = ?", (run_id,))}
    else:
        others = _interrupts(conn, "i.run_id = ? AND i.id <> ?", (run_id, known.id))
        interrupts = {i.id: i for i in others}
        interrupts[known.id] = known
    return RunState(
        run=run_from_row(row),
        wake_seq=row[10],
        steps=steps,
        step_outputs=outputs,
        interrupts=interrupts,
    )


def _cancel_pending(
    conn: sqlite3.Connection, run: Run, now: float, build: LeftoverBuilder | None
) -> None:
    # `+i.status` keeps SQLite on the primary key (run_id, id); the status index would
    # scan every pending interrupt of every run.
    pending = _interrupts(conn, "i.run_id = ? AND +i.status = 'pending'", (run.id,))
    if not pending:
        return
    conn.execute(
        "UPDATE interrupts SET status='cancelled', resolved_at=?, resolved_by='system' "
        "WHERE run_id=? AND status='pending'",
        (now, run.id),
    )
    conn.execute("DELETE FROM timers WHERE run_id=?", (run.id,))
    if build is not None:
        events, outbox = build(run, pending)
        _append(conn, run.id, now, events, outbox)


def _free(owner_col: str, until_col: str, dead: Sequence[str]) -> tuple[str, dict[str, Any]]:
    """SQL for "nobody holds this claim": unclaimed, expired, or held by a dead worker."""
    params: dict[str, Any] = {f"dead{i}": d for i, d in enumerate(dead)}
    held_by_dead = ""
    if dead:
        held_by_dead = f" OR {owner_col} IN ({','.join(':' + k for k in params)})"
    return f"({until_col} IS NULL OR {until_col} < :now{held_by_dead})", params


def _write_step(conn: sqlite3.Connection, run_id: str, step: StepWrite, now: float) -> None:
    conn.execute(
        "INSERT OR REPLACE INTO steps (run_id, path, name, status, output_json, "
        "error_json, attempts, started_at, finished_at) VALUES (?,?,?,?,?,?,?,?,?)",
        (
            run_id,
            step.path,
            step.name,
            step.status,
            step.output_json,
            step.error_json,
            step.attempts,
            step.started_at,
            step.finished_at,
        ),
    )
    for spec in step.interrupts:
        conn.execute(
            "INSERT INTO interrupts (run_id, id, path, step, kind, status, spec_json, "
            "expires_at, created_at) VALUES (?, ?, ?, ?, ?, 'pending', ?, ?, ?)",
            (
                run_id,
                spec.id,
                step.path,
                step.name,
                spec.kind.value,
                spec_json(spec),
                spec.expires_at,
                now,
            ),
        )
        timers = [(run_id, spec.id, "reminder", t) for t in spec.reminders]
        if spec.expires_at is not None:
            timers.append((run_id, spec.id, "expiry", spec.expires_at))
        if timers:
            conn.executemany(
                "INSERT INTO timers (run_id, interrupt_id, kind, due_at) VALUES (?, ?, ?, ?)",
                timers,
            )
    _append(conn, run_id, now, step.events, step.outbox)


def _check_owner(conn: sqlite3.Connection, run_id: str, owner: str, now: float) -> None:
    cur = conn.execute(
        "UPDATE runs SET updated_at=? WHERE id=? AND owner=? AND status='running'",
        (now, run_id, owner),
    )
    if cur.rowcount != 1:
        raise LostOwnership(run_id)


class SQLiteStore:
    """The default store: one SQLite file, safe to share between processes on one host."""

    def __init__(
        self, path: str, *, synchronous: str = "normal", busy_timeout_ms: int = 10_000
    ) -> None:
        if synchronous.lower() not in ("normal", "full", "extra"):
            raise ValueError("synchronous must be 'normal', 'full' or 'extra'")
        self.path = path
        self.synchronous = synchronous.upper()
        self.busy_timeout_ms = busy_timeout_ms
        self._writer: aiosqlite.Connection | None = None
        self._reader: aiosqlite.Connection | None = None
        self._queue: list[tuple[Op, asyncio.Future[Any]]] = []
        self._flusher: asyncio.Task[None] | None = None
        self._read_queue: list[tuple[Op, asyncio.Future[Any]]] = []
        self._read_flusher: asyncio.Task[None] | None = None
        self._checkpointer: aiosqlite.Connection | None = None
        self._checkpoints: asyncio.Task[None] | None = None
        self.checkpoint_interval = 0.5

    # -- plumbing ---------------------------------------------------------------------
    async def _connect(self, cache_kib: int = 8192) -> aiosqlite.Connection:
        conn = await aiosqlite.connect(self.path, isolation_level=None)
        await conn.execute(f"PRAGMA busy_timeout={int(self.busy_timeout_ms)}")
        await conn.execute("PRAGMA journal_mode=WAL")
        await conn.execute(f"PRAGMA synchronous={self.synchronous}")
        # A bounded page cache per connection: it is most of the store's fixed memory.
        await conn.execute(f"PRAGMA cache_size=-{int(cache_kib)}")
        # Checkpoints run on a connection of their own (`_checkpoint_loop`): done inside a
        # commit they stall every caller waiting on that group commit for milliseconds.
        # The high automatic threshold is only a safety net if that loop falls behind.
        await conn.execute("PRAGMA wal_autocheckpoint=20000")
        return conn

    @staticmethod
    async def _in_thread(conn: aiosqlite.Connection | None, fn: Callable[..., T], *args: Any) -> T:
        # aiosqlite's public API hops threads once per statement (~125 us each); running the
        # whole operation on its connection thread costs ~2 us per statement. `_execute`
        # is how aiosqlite itself runs work there; the version range is pinned for it.
        if conn is None:
            raise StoreError("the store is not open (call `await store.open()`)")
        return await conn._execute(fn, *args)  # type: ignore[no-any-return,no-untyped-call]

    async def _read(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        # Reads queued while the reader thread is busy go over together in one hop, for the
        # same reason as writes (each hop costs far more than a small query).
        if self._reader is None:
            raise StoreError("the store is not open (call `await store.open()`)")
        fut: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        self._read_queue.append((fn, fut))
        if self._read_flusher is None or self._read_flusher.done():
            self._read_flusher = asyncio.get_running_loop().create_task(self._flush_reads())
        return await fut

    async def _flush_reads(self) -> None:
        reader = self._reader
        assert reader is not None
        while self._read_queue:
            batch, self._read_queue = self._read_queue[:_MAX_BATCH], self._read_queue[_MAX_BATCH:]
            try:
                results = await self._in_thread(
                    reader, _run_reads, reader._conn, [op for op, _ in batch]
                )
            except Exception as exc:  # pragma: no cover - _run_reads catches per op
                results = [(False, exc)] * len(batch)
            _settle(batch, results)

    async def _write(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        if self._writer is None:
            raise StoreError("the store is not open (call `await store.open()`)")
        fut: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        self._queue.append((fn, fut))
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.get_running_loop().create_task(self._flush())
        return await fut

    async def _flush(self) -> None:
        writer = self._writer
        assert writer is not None
        while self._queue:
            batch, self._queue = self._queue[:_MAX_BATCH], self._queue[_MAX_BATCH:]
            try:
                results = await self._in_thread(
                    writer, _run_batch, writer._conn, [op for op, _ in batch]
                )
            except Exception as exc:  # the whole transaction failed (e.g. disk full)
                err = StoreError(f"SQLite write failed: {exc}")
                for _, fut in batch:
                    if not fut.done():
                        fut.set_exception(err)
                continue
            _settle(batch, results)

    async def open(self) -> None:
        """Open the file (created if missing), enable WAL and apply migrations."""
        self._writer = await self._connect()
        self._reader = await self._connect()
        migrations = _migrations()

        def migrate(conn: sqlite3.Connection) -> None:
            conn.execute("BEGIN IMMEDIATE")
            try:
                current = conn.execute("PRAGMA user_version").fetchone()[0]
                latest = migrations[-1][0]
                if current > latest:
                    raise StoreError(
                        f"database schema version {current} is newer than this Signoff "
                        f"(knows up to {latest}); upgrade Signoff"
                    )
                for version, sql in migrations:
                    if version > current:
                        lines = [ln for ln in sql.splitlines() if not ln.lstrip().startswith("--")]
                        for statement in "\n".join(lines).split(";"):
                            if statement.strip():
                                conn.execute(statement)
                        conn.execute(f"PRAGMA user_version={version}")
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise

        try:
            await self._in_thread(self._writer, migrate, self._writer._conn)
        except BaseException:
            await self.close()  # a refused open must not leave connection threads behind
            raise
        self._checkpointer = await self._connect(cache_kib=256)  # copies pages, caches none
        self._checkpoints = asyncio.get_running_loop().create_task(self._checkpoint_loop())

    async def _checkpoint_loop(self) -> None:
        """Copy committed WAL pages into the database file, off the commit path.

        PASSIVE checkpoints never block readers or writers; they copy what they can.
        """
        conn = self._checkpointer
        assert conn is not None
        while True:
            await asyncio.sleep(self.checkpoint_interval)
            try:
                await conn.execute("PRAGMA wal_checkpoint(PASSIVE)")
            except Exception as exc:  # e.g. SQLITE_BUSY from another process's checkpoint
                log.debug("WAL checkpoint skipped: %s", exc)

    async def close(self) -> None:
        """Wait for queued writes, then close the connections."""
        if self._checkpoints is not None:
            self._checkpoints.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._checkpoints
            self._checkpoints = None
        for flusher in (self._flusher, self._read_flusher):
            if flusher is not None:
                await asyncio.shield(flusher)
        for conn in (self._writer, self._reader, self._checkpointer):
            if conn is not None:
                await conn.close()
        self._writer = self._reader = self._checkpointer = None

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
            _append(conn, run.id, run.now, run.events, run.outbox)
            return run.id, True

        return await self._write(op)

    async def load_state(self, run_id: str) -> RunState | None:
        """Read a run with its steps and interrupts."""
        return await self._read(lambda conn: _load_state(conn, run_id))

    async def commit_steps(
        self, run_id: str, owner: str, steps: Sequence[StepWrite], now: float
    ) -> None:
        """Record step results with their interrupts, timers, events and outbox rows."""

        def op(conn: sqlite3.Connection) -> None:
            _check_owner(conn, run_id, owner, now)
            for step in steps:
                _write_step(conn, run_id, step, now)

        await self._write(op)

    async def release_run(self, run_id: str, owner: str, wake_seq: int, now: float) -> bool:
        """Park the run; False when an interrupt was resolved since ``wake_seq`` was read."""

        def op(conn: sqlite3.Connection) -> bool:
            cur = conn.execute(
                "UPDATE runs SET status='suspended', owner=NULL, lease_until=NULL, updated_at=? "
                "WHERE id=? AND owner=? AND status='running' AND wake_seq=?",
                (now, run_id, owner, wake_seq),
            )
            if cur.rowcount == 1:
                return True
            _check_owner(conn, run_id, owner, now)
            return False

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
            for step in fin.steps:
                _write_step(conn, run_id, step, fin.now)
            _append(conn, run_id, fin.now, fin.events, fin.outbox)
            row = conn.execute(f"SELECT {RUN_COLS} FROM runs WHERE id=?", (run_id,)).fetchone()
            _cancel_pending(conn, run_from_row(row), fin.now, leftover)

        await self._write(op)

    async def cancel_run(
        self,
        run_id: str,
        now: float,
        events: list[EventWrite],
        outbox: list[OutboxWrite],
        leftover: LeftoverBuilder | None = None,
    ) -> Run:
        """Cancel an active run and resolve its pending interrupts as cancelled."""

        def op(conn: sqlite3.Connection) -> Run:
            row = conn.execute(f"SELECT {RUN_COLS} FROM runs WHERE id=?", (run_id,)).fetchone()
            if row is None:
                raise RunNotFound(run_id)
            if RunStatus(row[3]).terminal:
                raise RunNotActive(run_id, row[3])
            conn.execute(
                "UPDATE runs SET status='cancelled', owner=NULL, lease_until=NULL, "
                "updated_at=?, wake_seq=wake_seq+1 WHERE id=?",
                (now, run_id),
            )
            _append(conn, run_id, now, events, outbox)
            run = run_from_row(
                conn.execute(f"SELECT {RUN_COLS} FROM runs WHERE id=?", (run_id,)).fetchone()
            )
            _cancel_pending(conn, run, now, leftover)
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
        """Apply ``decide`` to the interrupt atomically; take over the run if it is parked."""

        def op(conn: sqlite3.Connection) -> ResolveResult:
            found = _interrupts(conn, "i.run_id = ? AND i.id = ?", (run_id, interrupt_id))
            if not found:
                if conn.execute("SELECT 1 FROM runs WHERE id=?", (run_id,)).fetchone():
                    raise InterruptNotFound(run_id, interrupt_id)
                raise RunNotFound(run_id)
            row = conn.execute(f"SELECT {RUN_COLS} FROM runs WHERE id=?", (run_id,)).fetchone()
            res = decide(found[0], run_from_row(row))
            if res.response_actor is not None:
                conn.execute(
                    "INSERT INTO responses (run_id, interrupt_id, actor, data_json, approved, at) "
                    "VALUES (?, ?, ?, ?, ?, ?)",
                    (
                        run_id,
                        interrupt_id,
                        res.response_actor,
                        res.response_json,
                        res.response_approved,
                        now,
                    ),
                )
            _append(conn, run_id, now, res.events, res.outbox)
            claimed = None
            claim = False
            if res.status is not InterruptStatus.PENDING:
                cur = conn.execute(
                    "UPDATE interrupts SET status=?, resolved_at=?, resolved_by=?, data_json=? "
                    "WHERE run_id=? AND id=? AND status='pending'",
                    (res.status.value, now, res.resolved_by, res.data_json, run_id, interrupt_id),
                )
                if cur.rowcount != 1:  # decide() saw it pending inside this very transaction
                    raise StoreError(f"interrupt {run_id}/{interrupt_id} changed underneath")
                conn.execute(
                    "DELETE FROM timers WHERE run_id=? AND interrupt_id=?", (run_id, interrupt_id)
                )
                conn.execute(
                    "UPDATE runs SET wake_seq=wake_seq+1, updated_at=? WHERE id=?", (now, run_id)
                )
                cur = conn.execute(
                    "UPDATE runs SET status='running', owner=?, lease_until=? "
                    "WHERE id=? AND status='suspended'",
                    (claim_owner, lease_until, run_id),
                )
                claim = cur.rowcount == 1
            after = resolved_interrupt(found[0], res, now)
            if claim:
                claimed = _load_state(conn, run_id, known=after)
            return ResolveResult(interrupt=after, claimed=claimed)

        return await self._write(op)

    # -- workers, leases, recovery ----------------------------------------------------
    async def heartbeat(self, worker: WorkerRow, lease_until: float) -> list[WorkerRow]:
        """Upsert the worker row, extend its runs' leases, and list all workers."""

        def op(conn: sqlite3.Connection) -> list[WorkerRow]:
            conn.execute(
                "INSERT INTO workers (id, host, pid, heartbeat_at) VALUES (?, ?, ?, ?) "
                "ON CONFLICT (id) DO UPDATE SET heartbeat_at=excluded.heartbeat_at",
                (worker.id, worker.host, worker.pid, worker.heartbeat_at),
            )
            conn.execute(
                "UPDATE runs SET lease_until=? WHERE owner=? AND status='running'",
                (lease_until, worker.id),
            )
            return [
                WorkerRow(*r)
                for r in conn.execute("SELECT id, host, pid, heartbeat_at FROM workers")
            ]

        return await self._write(op)

    async def remove_workers(self, ids: Sequence[str]) -> None:
        """Forget workers known to be dead and release their timer and outbox claims."""
        if not ids:
            return

        def op(conn: sqlite3.Connection) -> None:
            args = [(i,) for i in ids]
            conn.executemany("DELETE FROM workers WHERE id=?", args)
            conn.executemany(
                "UPDATE timers SET claimed_by=NULL, claim_until=NULL WHERE claimed_by=?", args
            )
            conn.executemany(
                "UPDATE outbox SET claimed_by=NULL, claim_until=NULL WHERE claimed_by=?", args
            )

        await self._write(op)

    async def claim_runs(
        self, owner: str, now: float, lease_until: float, dead: Sequence[str], limit: int
    ) -> list[str]:
        """Take over running runs whose lease ran out or whose owner is dead."""
        free, params = _free("owner", "lease_until", dead)
        params.update(me=owner, until=lease_until, now=now, n=limit)

        def op(conn: sqlite3.Connection) -> list[str]:
            rows = conn.execute(
                "UPDATE runs SET owner=:me, lease_until=:until WHERE id IN (SELECT id FROM runs "
                f"WHERE status='running' AND {free} LIMIT :n) RETURNING id",
                params,
            ).fetchall()
            return [r[0] for r in rows]

        return await self._write(op)

    # -- timers -----------------------------------------------------------------------
    async def claim_timers(
        self, owner: str, now: float, claim_until: float, dead: Sequence[str], limit: int
    ) -> list[TimerRow]:
        """Claim due timers, earliest first."""
        free, params = _free("claimed_by", "claim_until", dead)
        params.update(me=owner, until=claim_until, now=now, n=limit)

        def op(conn: sqlite3.Connection) -> list[TimerRow]:
            rows = conn.execute(
                "UPDATE timers SET claimed_by=:me, claim_until=:until WHERE id IN (SELECT id "
                f"FROM timers WHERE due_at <= :now AND {free} ORDER BY due_at LIMIT :n) "
                "RETURNING id, run_id, interrupt_id, kind, due_at",
                params,
            ).fetchall()
            return sorted((TimerRow(*r) for r in rows), key=lambda t: (t.due_at, t.id))

        return await self._write(op)

    async def fire_reminder(
        self, timer: TimerRow, events: list[EventWrite], outbox: list[OutboxWrite], now: float
    ) -> None:
        """Delete the reminder timer and record the reminder, if the interrupt still waits."""

        def op(conn: sqlite3.Connection) -> None:
            # Only the caller that deletes the timer records it: a second claimer (after
            # a lapsed claim, or a worker wrongly taken for dead) finds it gone.
            if conn.execute("DELETE FROM timers WHERE id=?", (timer.id,)).rowcount == 0:
                return
            pending = conn.execute(
                "SELECT 1 FROM interrupts WHERE run_id=? AND id=? AND status='pending'",
                (timer.run_id, timer.interrupt_id),
            ).fetchone()
            if pending:
                _append(conn, timer.run_id, now, events, outbox)

        await self._write(op)

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
        free_o, params = _free("o.claimed_by", "o.claim_until", dead)
        free_p, _ = _free("p.claimed_by", "p.claim_until", dead)
        params.update(me=owner, until=claim_until, now=now, n=limit)

        def op(conn: sqlite3.Connection) -> list[tuple[OutboxMessage, list[str]]]:
            rows = conn.execute(
                "UPDATE outbox SET claimed_by=:me, claim_until=:until WHERE id IN ("
                "SELECT o.id FROM outbox o WHERE o.done_at IS NULL AND o.next_at <= :now "
                f"AND {free_o} AND NOT EXISTS (SELECT 1 FROM outbox p WHERE p.run_id = o.run_id "
                f"AND p.id < o.id AND p.done_at IS NULL AND NOT (p.next_at <= :now AND {free_p}))"
                " ORDER BY o.id LIMIT :n) "
                f"RETURNING {OUTBOX_COLS}",
                params,
            ).fetchall()
            return [outbox_from_row(r) for r in sorted(rows)]

        return await self._write(op)

    async def settle_outbox(self, results: Sequence[OutboxResult], now: float) -> None:
        """Mark delivered messages done; schedule failed ones for a retry."""

        def op(conn: sqlite3.Connection) -> None:
            for r in results:
                handlers = _dumps(r.done_handlers)
                if r.error is None and r.next_at is None:
                    conn.execute(
                        "UPDATE outbox SET done_at=?, done_handlers=?, attempts=attempts+1, "
                        "claimed_by=NULL, claim_until=NULL WHERE id=?",
                        (now, handlers, r.id),
                    )
                elif r.error is None:  # not attempted (an earlier message of its run failed)
                    conn.execute(
                        "UPDATE outbox SET claimed_by=NULL, claim_until=NULL, next_at=? WHERE id=?",
                        (r.next_at, r.id),
                    )
                else:
                    conn.execute(
                        "UPDATE outbox SET attempts=attempts+1, next_at=?, last_error=?, "
                        "done_handlers=?, claimed_by=NULL, claim_until=NULL WHERE id=?",
                        (r.next_at, r.error, handlers, r.id),
                    )

        await self._write(op)

    async def outbox_backlog(self) -> int:
        """How many messages are not delivered yet."""
        return await self._read(
            lambda conn: int(
                conn.execute("SELECT COUNT(*) FROM outbox WHERE done_at IS NULL").fetchone()[0]
            )
        )

    async def set_ref(self, run_id: str, interrupt_id: str, key: str, value: Any) -> None:
        """Store ``refs[key] = value`` on the interrupt (e.g. Slack channel and ts)."""

        def op(conn: sqlite3.Connection) -> None:
            cur = conn.execute(
                "UPDATE interrupts SET refs_json=json_set(refs_json, '$.' || json_quote(?), "
                "json(?)) WHERE run_id=? AND id=?",
                (key, _dumps(value), run_id, interrupt_id),
            )
            if cur.rowcount != 1:
                raise InterruptNotFound(run_id, interrupt_id)

        await self._write(op)

    # -- queries ----------------------------------------------------------------------
    async def get_run(self, run_id: str) -> Run | None:
        """One run."""

        def op(conn: sqlite3.Connection) -> Run | None:
            row = conn.execute(f"SELECT {RUN_COLS} FROM runs WHERE id=?", (run_id,)).fetchone()
            return run_from_row(row) if row else None

        return await self._read(op)

    async def get_detail(self, run_id: str) -> RunDetail | None:
        """One run with steps (with outputs), interrupts and its whole history."""

        def op(conn: sqlite3.Connection) -> RunDetail | None:
            state = _load_state(conn, run_id)
            if state is None:
                return None
            steps = [
                rec.model_copy(
                    update={"output": _loads(o) if (o := state.step_outputs[p]) else None}
                )
                for p, rec in sorted(state.steps.items(), key=lambda kv: kv[1].started_at)
            ]
            return RunDetail(
                run=state.run,
                steps=steps,
                interrupts=list(state.interrupts.values()),
                events=_events(conn, run_id, 0, -1),
            )

        return await self._read(op)

    async def list_runs(
        self, *, status: str | None, workflow: str | None, limit: int, offset: int
    ) -> list[Run]:
        """Runs, newest first, optionally filtered."""
        where, args = ["1=1"], []
        if status:
            where.append("status=?")
            args.append(status)
        if workflow:
            where.append("workflow=?")
            args.append(workflow)

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
            found = _interrupts(conn, "i.run_id = ? AND i.id = ?", (run_id, interrupt_id))
            return found[0] if found else None

        return await self._read(op)

    async def list_interrupts(
        self,
        *,
        status: str | None,
        workflow: str | None,
        run_id: str | None,
        limit: int,
    ) -> list[Interrupt]:
        """Interrupts, oldest first, optionally filtered."""
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
        return await self._read(lambda conn: _interrupts(conn, " AND ".join(where), args, limit))

    async def list_events(self, run_id: str, *, after_id: int, limit: int) -> list[Event]:
        """History entries of a run with ids above ``after_id``."""
        return await self._read(lambda conn: _events(conn, run_id, after_id, limit))


def _events(conn: sqlite3.Connection, run_id: str, after_id: int, limit: int) -> list[Event]:
    return [
        event_from_row(run_id, r)
        for r in conn.execute(
            "SELECT id, at, type, data FROM events WHERE run_id=? AND id>? ORDER BY id LIMIT ?",
            (run_id, after_id, limit),
        )
    ]
