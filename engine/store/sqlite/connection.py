"""SQLite connections: how each is configured, how work runs on its thread, WAL checkpoints.

* Each aiosqlite call is a round trip to the connection's thread, ~125 us, while a
  statement run inside that thread costs ~2 us. So every store operation is one plain
  function run whole on aiosqlite's connection thread (``in_thread``), never a chain of
  awaited ``execute`` calls.
* ``busy_timeout`` makes a writer that finds another process's write lock wait for it
  instead of failing at once.
* WAL pages are copied into the database file by a connection of its own
  (``checkpoint_loop``), off the commit path.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any, TypeVar

import aiosqlite

from engine.errors import StoreError

log = logging.getLogger("signoff.store")

T = TypeVar("T")

NOT_OPEN = "the store is not open (call `await store.open()`)"


async def connect(
    path: str, *, synchronous: str, busy_timeout_ms: int, cache_kib: int = 8192
) -> aiosqlite.Connection:
    """Open one connection in autocommit mode (transactions are explicit) with WAL on."""
    # Not bound to its thread: an inline writer (see `batching.Batcher`) runs its
    # batches on the event loop's thread; the Batcher never uses it from two at once.
    conn = await aiosqlite.connect(path, isolation_level=None, check_same_thread=False)
    await conn.execute(f"PRAGMA busy_timeout={int(busy_timeout_ms)}")
    await conn.execute("PRAGMA journal_mode=WAL")
    await conn.execute(f"PRAGMA synchronous={synchronous}")
    # A bounded page cache per connection: it is most of the store's fixed memory.
    await conn.execute(f"PRAGMA cache_size=-{int(cache_kib)}")
    # Checkpoints run on a connection of their own (`checkpoint_loop`): done inside a
    # commit they stall every caller waiting on that group commit for milliseconds.
    # The high automatic threshold is only a safety net if that loop falls behind.
    await conn.execute("PRAGMA wal_autocheckpoint=20000")
    return conn


async def in_thread(conn: aiosqlite.Connection | None, fn: Callable[..., T], *args: Any) -> T:
    """Run ``fn(*args)`` on ``conn``'s thread in one hop (StoreError if it is not open)."""
    # aiosqlite's public API hops threads once per statement (~125 us each); running the
    # whole operation on its connection thread costs ~2 us per statement. `_execute`
    # is how aiosqlite itself runs work there; the version range is pinned for it.
    if conn is None:
        raise StoreError(NOT_OPEN)
    return await conn._execute(fn, *args)  # type: ignore[no-any-return,no-untyped-call]


async def checkpoint_loop(conn: aiosqlite.Connection, interval: Callable[[], float]) -> None:
    """Copy committed WAL pages into the database file, off the commit path (cancel to stop).

    PASSIVE checkpoints never block readers or writers; they copy what they can.
    ``interval`` is read before each sleep, so a test may shorten it.
    """
    while True:
        await asyncio.sleep(interval())
        try:
            await conn.execute("PRAGMA wal_checkpoint(PASSIVE)")
        except Exception as exc:  # e.g. SQLITE_BUSY from another process's checkpoint
            log.debug("WAL checkpoint skipped: %s", exc)
