"""Group commit for the PostgreSQL store: concurrent one-statement writes in one round trip.

A PostgreSQL store spends its time on round trips (each wakes a server process, on the
same cores as the service when they share a machine) and on commits (each a WAL flush).
The hot writes (create, record steps, park, finish) are single statements that guard
themselves (see ``write``): so writes queued while earlier batches run are sent
together, one batch per SQL text, with asyncpg's ``fetchmany``: a Bind/Execute per
write and a single Sync. PostgreSQL runs them as one implicit transaction: one round
trip and one commit for the batch, each statement with its own READ COMMITTED snapshot
and its own fence, as if sent alone.

Every batched statement returns exactly one row, its guard's verdict (e.g. the run id,
or NULL when the fence matched no row, in which case the statement wrote nothing). So a
failed fence fails only its own write while the rest of the batch commits. An error in
any statement aborts the whole transaction; the batch then runs again one write at a
time, each in its own transaction (with the store's deadlock retries), so only the
failing write fails. Nothing is reported before the batch's COMMIT.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import asyncpg
from asyncpg import Record

from engine.errors import StoreError
from engine.store.postgres.grouping import BatchTasks
from engine.store.postgres.ops import Conn

MAX_BATCH = 128
"""Most writes sent in one batch (one transaction: every run lock in it is held until
its COMMIT, so a huge batch would make each write wait for all the others)."""

Acquire = Callable[[Callable[[Conn], Awaitable[list[Record]]]], Awaitable[list[Record]]]
"""Runs a function on a pooled connection (the store's, which maps connection errors)."""
One = Callable[[str, Sequence[Any]], Awaitable[Record | None]]
"""Runs one statement alone in its own transaction (the store's, with its retries)."""

_Item = tuple[str, Sequence[Any], "asyncio.Future[Record | None]"]
"""A queued write: the run it locks (the batch's lock order), its arguments, its caller."""


class Batcher(BatchTasks):
    """Queues one-row write statements and sends each SQL text's queue as one batch.

    Args:
        acquire: runs a function on a pooled connection.
        one: runs one statement alone (the fallback after a failed batch).
        max_inflight: most batches in flight at once (each holds a connection).
    """

    def __init__(self, acquire: Acquire, one: One, *, max_inflight: int = 2) -> None:
        super().__init__(max_inflight=max_inflight)
        self._acquire = acquire
        self._one = one
        self._queues: dict[str, list[_Item]] = {}

    async def fetchrow(self, run_id: str, sql: str, args: Sequence[Any]) -> Record | None:
        """Run ``sql`` (which returns exactly one row and locks at most the run
        ``run_id``) with ``args`` in the next batch; its row once the batch committed."""
        fut: asyncio.Future[Record | None] = asyncio.get_running_loop().create_future()
        self._queues.setdefault(sql, []).append((run_id, args, fut))
        self._start()
        return await fut

    def _queued(self) -> bool:
        return bool(self._queues)

    async def _run_batches(self) -> None:
        while self._queues:
            sql = next(iter(self._queues))
            queue = self._queues.pop(sql)
            if len(queue) > MAX_BATCH:
                # The rest goes to the back, so a busy text does not starve the others.
                self._queues[sql] = queue[MAX_BATCH:]
            self._start()  # what is left may go out while this batch is in flight
            # Runs are locked in id order, as every statement locking several runs
            # does: then lockers of several runs never wait for each other in a cycle.
            await self._send(sql, sorted(queue[:MAX_BATCH], key=lambda item: item[0]))

    async def _send(self, sql: str, batch: list[_Item]) -> None:
        try:
            if len(batch) == 1 or not await self._together(sql, batch):
                await self._one_by_one(sql, batch)
        except BaseException as exc:
            # A lost connection (the commit's fate unknown: no retry) or a cancelled batch.
            err = exc if isinstance(exc, Exception) else StoreError("the write was interrupted")
            for _, _, fut in batch:
                if not fut.done():
                    fut.set_exception(err)
            if not isinstance(exc, Exception):
                raise

    async def _together(self, sql: str, batch: list[_Item]) -> bool:
        """Send the batch as one transaction; False if the server refused a statement
        (then nothing of it was written)."""
        try:
            rows = await self._acquire(lambda conn: conn.fetchmany(sql, [a for _, a, _ in batch]))
        except (asyncpg.PostgresError, asyncpg.exceptions.DataError):
            # The server refused a statement, or asyncpg an argument: either way the
            # implicit transaction was rolled back, so each write may run again alone.
            return False
        if len(rows) != len(batch):
            raise StoreError("a batched statement must return exactly one row")
        for (_, _, fut), row in zip(batch, rows, strict=True):
            if not fut.done():
                fut.set_result(row)
        return True

    async def _one_by_one(self, sql: str, batch: list[_Item]) -> None:
        """Run each write in its own transaction, so a failing one fails alone."""
        for _, args, fut in batch:
            try:
                row = await self._one(sql, args)
            except Exception as exc:
                if not fut.done():
                    fut.set_exception(exc)
            else:
                if not fut.done():
                    fut.set_result(row)
