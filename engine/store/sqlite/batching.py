"""Group commit: operations queued while a batch runs run together in the next one.

A durable commit costs far more than the statements in it, and each hop to the
connection's thread far more than a small query. So writes from concurrent runs are
queued and run in one transaction (``run_batch``): one failing operation rolls back
alone (the batch is rolled back to its savepoint and runs again with a savepoint per
operation), and every caller's future resolves only after the shared COMMIT, so nothing
is reported before it is durable. Reads are batched the same way, one hop for many,
each in its own implicit transaction (``run_reads``). ``BEGIN IMMEDIATE`` takes the
write lock up front, so two processes on one file never deadlock upgrading a read
transaction. Small write batches run on the event loop's thread unless
``?inline_writes=0`` (``Batcher``).
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Callable
from typing import Any, TypeVar

import aiosqlite

from engine.errors import StoreError
from engine.store.sqlite.connection import NOT_OPEN, in_thread
from engine.store.sqlite.resolving import run_in_passes

T = TypeVar("T")
Op = Callable[[sqlite3.Connection], Any]
"""A store operation: a plain function run whole on the connection's thread."""

MAX_BATCH = 512
"""Most operations sent to the thread in one hop (and, for writes, one transaction)."""

INLINE_MAX = 8
"""Most operations a write batch may have to run on the event loop's thread (about 1-2
ms of writes; see ``Batcher``)."""


def run_batch(conn: sqlite3.Connection, ops: list[Op]) -> list[tuple[bool, Any]]:
    """Run queued operations in one transaction, each one all or nothing.

    The transaction is begun here (``BEGIN IMMEDIATE``) unless the caller began it.
    Operations rarely fail, so they first run one after another without a savepoint
    each (two statements per operation saved), resolves of distinct runs in passes of a
    few statements for all (``resolving``). If one raises, everything this batch
    wrote is rolled back (to the batch's savepoint; the write lock is kept) and the
    batch runs again with a savepoint per operation, so the failing one rolls back
    alone. Operations are plain functions of the database, so running one twice in a
    transaction that is rolled back in between has no effect outside it.
    """
    if not conn.in_transaction:
        conn.execute("BEGIN IMMEDIATE")
    try:
        conn.execute("SAVEPOINT batch")
        try:
            results = run_in_passes(conn, ops)
        except Exception:
            conn.execute("ROLLBACK TO batch")
            results = []
            for op in ops:
                conn.execute("SAVEPOINT op")
                try:
                    results.append((True, op(conn)))
                except Exception as exc:
                    conn.execute("ROLLBACK TO op")
                    results.append((False, exc))
                conn.execute("RELEASE op")
        conn.execute("RELEASE batch")
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise
    return results


def run_reads(conn: sqlite3.Connection, ops: list[Op]) -> list[tuple[bool, Any]]:
    """Run queued reads one after another (each in its own implicit transaction)."""
    results: list[tuple[bool, Any]] = []
    for op in ops:
        try:
            results.append((True, op(conn)))
        except Exception as exc:
            results.append((False, exc))
    return results


SQLITE_BUSY = 5
SQLITE_LOCKED = 6


def try_begin(conn: sqlite3.Connection) -> bool:
    """``BEGIN IMMEDIATE`` without waiting: False if another process holds the write lock."""
    try:
        conn.execute("BEGIN IMMEDIATE")
    except sqlite3.OperationalError as exc:
        if getattr(exc, "sqlite_errorcode", None) == SQLITE_BUSY:
            return False
        raise
    return True


def patiently(
    runner: Callable[[sqlite3.Connection, list[Op]], list[tuple[bool, Any]]],
    conn: sqlite3.Connection,
    ops: list[Op],
    busy_timeout_ms: int,
) -> list[tuple[bool, Any]]:
    """Run the write batch ``runner`` waiting up to ``busy_timeout_ms`` for the write
    lock (on the connection's thread: an inline writer's connection does not wait, see
    ``Batcher``).

    The lock is tried first without waiting: the connection's ``busy_timeout`` is set
    only when another process holds it. Under a burst every statement here gives the
    GIL back to a busy event loop and waits to get it again (up to the 5 ms switch
    interval), so the two pragmas are skipped when they are not needed.
    """
    if not try_begin(conn):
        conn.execute(f"PRAGMA busy_timeout={int(busy_timeout_ms)}")
        try:
            conn.execute("BEGIN IMMEDIATE")
        finally:
            conn.execute("PRAGMA busy_timeout=0")
    return runner(conn, ops)


def settle(batch: list[tuple[Op, asyncio.Future[Any]]], results: list[tuple[bool, Any]]) -> None:
    """Hand each queued operation's result (or exception) to its waiting caller."""
    for (_, fut), (ok, value) in zip(batch, results, strict=True):
        if fut.done():
            continue
        if ok:
            fut.set_result(value)
        else:
            fut.set_exception(value)


class Batcher:
    """The queue of one connection: ``submit`` an operation, await its result.

    Args:
        writes: True for the writer (one transaction per batch, a failed transaction
            fails every operation in it with StoreError); False for the reader.

    ``inline_busy_ms`` (writer only; set by the store once the connection is ready and
    its ``busy_timeout`` is 0): a batch of at most ``INLINE_MAX`` writes runs on the
    event loop's thread instead of hopping to the connection's thread and back. The
    hop costs more than a few small writes (the futures, two thread wake-ups), and for
    a run resumed alone it is most of the latency. A larger batch (a burst) goes to the
    connection's thread: there SQLite's own work runs with the GIL released, so the
    loop keeps running other work (a batch of hundreds inline held it for 0.2-0.6 s).
    Meant for ``synchronous=NORMAL``, where a commit does not wait for the disk. A
    small batch that finds another process holding the write lock goes to the
    connection's thread as well, which waits up to that many milliseconds for it, so
    the loop is never blocked waiting for a lock.
    """

    def __init__(self, *, writes: bool) -> None:
        self.writes = writes
        self.inline_busy_ms: int | None = None
        self.conn: aiosqlite.Connection | None = None
        self._queue: list[tuple[Op, asyncio.Future[Any]]] = []
        self._flusher: asyncio.Task[None] | None = None

    async def submit(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """Queue ``fn`` and return its result once its batch ran (and, for writes, committed)."""
        if self.conn is None:
            raise StoreError(NOT_OPEN)
        fut: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        self._queue.append((fn, fut))
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.get_running_loop().create_task(self._flush())
        return await fut

    async def drain(self) -> None:
        """Wait until everything queued so far has run."""
        if self._flusher is not None:
            await asyncio.shield(self._flusher)

    async def _flush(self) -> None:
        conn = self.conn
        assert conn is not None
        while self._queue:
            batch, self._queue = self._queue[:MAX_BATCH], self._queue[MAX_BATCH:]
            ops = [op for op, _ in batch]
            # Looked up at call time (not bound at import) so tests can wrap them.
            runner = run_batch if self.writes else run_reads
            try:
                raw = conn._conn
                if self.inline_busy_ms is None:
                    results = await in_thread(conn, runner, raw, ops)
                elif len(ops) <= INLINE_MAX and try_begin(raw):
                    results = runner(raw, ops)
                else:  # a burst, or another process writes: off the loop
                    results = await in_thread(
                        conn, patiently, runner, raw, ops, self.inline_busy_ms
                    )
            except Exception as exc:
                if not self.writes:  # pragma: no cover - run_reads catches per op
                    results = [(False, exc)] * len(batch)
                else:  # the whole transaction failed (e.g. disk full)
                    err = StoreError(f"SQLite write failed: {exc}")
                    for _, fut in batch:
                        if not fut.done():
                            fut.set_exception(err)
                    continue
            settle(batch, results)
