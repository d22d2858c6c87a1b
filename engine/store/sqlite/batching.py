"""Group commit: operations queued while a batch runs run together in the next one.

A durable commit costs far more than the statements in it, and each hop to the
connection's thread far more than a small query. So writes from concurrent runs are
queued and run in one transaction (``run_batch``): one failing operation rolls back
alone (the batch is rolled back to its savepoint and runs again with a savepoint per
operation), and every caller's future resolves only after the shared COMMIT, so nothing
is reported before it is durable. Reads are batched the same way, one hop for many,
each in its own implicit transaction (``run_reads``). ``BEGIN IMMEDIATE`` takes the
write lock up front, so two processes on one file never deadlock upgrading a read
transaction. With ``synchronous=NORMAL`` write batches run on the event loop's thread
(``Batcher``).
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Callable
from typing import Any, TypeVar

import aiosqlite

from engine.errors import StoreError
from engine.store.sqlite.connection import NOT_OPEN, in_thread

T = TypeVar("T")
Op = Callable[[sqlite3.Connection], Any]
"""A store operation: a plain function run whole on the connection's thread."""

MAX_BATCH = 512
"""Most operations sent to the thread in one hop (and, for writes, one transaction)."""


def run_batch(conn: sqlite3.Connection, ops: list[Op]) -> list[tuple[bool, Any]]:
    """Run queued operations in one transaction, each one all or nothing.

    The transaction is begun here (``BEGIN IMMEDIATE``) unless the caller began it, and
    committed here (see ``run_ops`` for how a failing operation rolls back alone).
    """
    if not conn.in_transaction:
        conn.execute("BEGIN IMMEDIATE")
    try:
        results = run_ops(conn, ops)
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise
    return results


def run_ops(conn: sqlite3.Connection, ops: list[Op]) -> list[tuple[bool, Any]]:
    """Run operations inside the open transaction, each one all or nothing.

    Operations rarely fail, so they first run one after another without a savepoint
    each (two statements per operation saved). If one raises, everything these ops
    wrote is rolled back (to their savepoint; the write lock is kept) and they run
    again with a savepoint per operation, so the failing one rolls back alone.
    Operations are plain functions of the database, so running one twice in a
    transaction that is rolled back in between has no effect outside it.
    """
    conn.execute("SAVEPOINT batch")
    results: list[tuple[bool, Any]] = []
    try:
        for op in ops:
            results.append((True, op(conn)))
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
    """Run ``runner`` waiting up to ``busy_timeout_ms`` for the write lock (on the
    connection's thread: an inline writer's connection does not wait, see ``Batcher``)."""
    conn.execute(f"PRAGMA busy_timeout={int(busy_timeout_ms)}")
    try:
        return runner(conn, ops)
    finally:
        conn.execute("PRAGMA busy_timeout=0")


def settle(batch: list[tuple[Op, asyncio.Future[Any]]], results: list[tuple[bool, Any]]) -> None:
    """Hand each queued operation's result (or exception) to its waiting caller."""
    for (_, fut), (ok, value) in zip(batch, results, strict=True):
        if fut.done():
            continue
        if ok:
            fut.set_result(value)
        else:
            fut.set_exception(value)


async def settle_sliced(
    batch: list[tuple[Op, asyncio.Future[Any]]], results: list[tuple[bool, Any]]
) -> None:
    """``settle`` ``INLINE_SLICE`` callers at a time, letting the loop run in between: the
    callers woken by one slice (e.g. runs going on to their next step) run before the
    next slice is woken, so a batch of hundreds never holds the loop all at once."""
    try:
        for lo in range(0, len(batch), INLINE_SLICE):
            if lo:
                await asyncio.sleep(0)
            settle(batch[lo : lo + INLINE_SLICE], results[lo : lo + INLINE_SLICE])
    except BaseException:  # cancelled in between: the rest is committed, tell them now
        settle(batch, results)
        raise


def fail(batch: list[tuple[Op, asyncio.Future[Any]]], err: Exception) -> None:
    """Fail every queued operation of a batch whose transaction did not commit."""
    for _, fut in batch:
        if not fut.done():
            fut.set_exception(err)


class Batcher:
    """The queue of one connection: ``submit`` an operation, await its result.

    Args:
        writes: True for the writer (one transaction per batch, a failed transaction
            fails every operation in it with StoreError); False for the reader.

    ``inline_busy_ms`` (writer only; set by the store once the connection is ready and
    its ``busy_timeout`` is 0): run batches on the event loop's thread instead of
    hopping to the connection's thread. A hop costs more than a batch of small writes
    (the futures, the wake-up, and the GIL contended at every statement while the loop
    runs Python), and on the connection's thread the batch's Python holds the GIL
    anyway, so the loop is not free meanwhile. Inline, a batch runs ``INLINE_SLICE``
    operations at a time in its one transaction and lets the loop run in between, so
    it holds the loop for a few milliseconds at most and still commits once. Meant
    for ``synchronous=NORMAL``, where a commit does not wait for the disk. A batch
    that finds another process holding the write lock goes to the connection's
    thread, which waits up to that many milliseconds for it, so the loop is never
    blocked waiting for a lock.
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
        if self._flusher is not None and not self._flusher.done():
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
                elif try_begin(raw):
                    try:
                        results = await run_inline(raw, ops)
                    except asyncio.CancelledError:  # rolled back: tell the callers so
                        fail(batch, StoreError("SQLite write cancelled (rolled back)"))
                        raise
                else:  # another process writes: wait for it off the loop
                    results = await in_thread(
                        conn, patiently, runner, raw, ops, self.inline_busy_ms
                    )
            except Exception as exc:
                if not self.writes:  # pragma: no cover - run_reads catches per op
                    results = [(False, exc)] * len(batch)
                else:  # the whole transaction failed (e.g. disk full)
                    fail(batch, StoreError(f"SQLite write failed: {exc}"))
                    continue
            await settle_sliced(batch, results)


INLINE_SLICE = 8
"""Most operations an inline batch runs (and callers ``settle_sliced`` wakes) before the
event loop runs other work again: 1-2 ms each; the batch still commits once, at its end.
Measured with 2,000 concurrent resumes: a timer due every millisecond waited p50 2-3 ms,
max 52-78 ms (64 at a time: p50 17-19 ms; writes on the connection's thread: p50 0.1 ms,
max 56-111 ms, but 15% more CPU per resume)."""


async def run_inline(conn: sqlite3.Connection, ops: list[Op]) -> list[tuple[bool, Any]]:
    """``run_batch`` on the event loop's thread, in the transaction the caller began,
    ``INLINE_SLICE`` operations at a time with the loop let run in between.

    The transaction stays open across those pauses: nothing it wrote is visible to other
    connections, and no caller hears of its result, until the one COMMIT at the end.
    Rolled back if anything fails or the flush is cancelled.
    """
    results: list[tuple[bool, Any]] = []
    try:
        for lo in range(0, len(ops), INLINE_SLICE):
            if lo:
                await asyncio.sleep(0)
            results += run_ops(conn, ops[lo : lo + INLINE_SLICE])
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise
    return results
