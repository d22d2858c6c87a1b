"""Group commit for resolves in the PostgreSQL store.

A resolve alone takes five round trips: BEGIN, lock the run, read the interrupt (after
the lock, so ``decide`` judges the latest answers), write what ``decide`` returned,
COMMIT. Resolves queued while earlier ones run go together in one transaction on one
connection, with the same five round trips for the whole batch:

1. BEGIN;
2. lock every run of the batch in one statement, in id order (two batches, or a batch
   and a single resolve, then never wait for each other in a cycle), reading each
   run's latest row;
3. read every interrupt (with its answers and its run's steps), one pipelined
   statement each (``fetchmany``), each in a snapshot taken after the locks;
4. call each ``decide``, then send the writes, pipelined per SQL text;
5. COMMIT, and only then hand each caller its result.

A batch holds at most one resolve per run (a second one waits for the next batch, so
it sees the first one's answer). A ``decide`` that raises, or a run or interrupt that
does not exist, fails only its own resolve. A statement the server refuses (or a
deadlock) rolls the whole batch back; it then runs again one resolve at a time, each in
its own transaction, so only a failing one fails (``decide`` is pure, so calling it
again is safe). A lost connection fails the batch (whether it committed is unknown).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import asyncpg

from engine.errors import StoreError
from engine.models import InterruptStatus, RunStatus
from engine.store.base import ResolveResult
from engine.store.deciding import QueuedResolve
from engine.store.postgres import ops
from engine.store.postgres.grouping import BatchTasks
from engine.store.postgres.ops import Conn
from engine.store.rows import RUN_COLS, resolved_interrupt

MAX_BATCH = 128
"""Most resolves in one transaction (each run's lock is held until its COMMIT)."""

_LOCK = f"SELECT {RUN_COLS} FROM runs WHERE id = ANY($1::text[]) ORDER BY id FOR UPDATE"


@dataclass
class ResolveCall(QueuedResolve):
    """One queued ``Store.resolve`` call, with the future its caller awaits."""

    fut: asyncio.Future[ResolveResult] = field(repr=False, kw_only=True)


class _Redo(Exception):
    """The batch must run again one resolve at a time (its transaction rolled back)."""


Acquire = Callable[[Callable[[Conn], Awaitable[Any]]], Awaitable[Any]]
"""Runs a function on a pooled connection (the store's, which maps connection errors)."""
Alone = Callable[[ResolveCall], Awaitable[ResolveResult]]
"""Resolves one call in its own transaction (the store's, with its deadlock retries)."""

Outcome = ResolveResult | Exception


class Resolver(BatchTasks):
    """Queues resolves and runs each batch of them in one transaction.

    Args:
        acquire: runs a function on a pooled connection.
        alone: resolves one call in its own transaction (a batch of one, and the
            fallback after a batch was rolled back).
        max_inflight: most batches in flight at once (each holds a connection).
    """

    def __init__(self, acquire: Acquire, alone: Alone, *, max_inflight: int = 2) -> None:
        super().__init__(max_inflight=max_inflight)
        self._acquire = acquire
        self._alone = alone
        self._queue: list[ResolveCall] = []

    async def resolve(self, call: ResolveCall) -> ResolveResult:
        """Queue ``call``; its result once its batch committed."""
        self._queue.append(call)
        self._start()
        return await call.fut

    def _queued(self) -> bool:
        return bool(self._queue)

    async def _run_batches(self) -> None:
        while self._queue:
            batch: list[ResolveCall] = []
            rest: list[ResolveCall] = []
            runs: set[str] = set()
            for call in self._queue:  # one resolve per run in a batch
                if len(batch) < MAX_BATCH and call.run_id not in runs:
                    runs.add(call.run_id)
                    batch.append(call)
                else:
                    rest.append(call)
            self._queue = rest
            self._start()
            await self._send(batch)

    async def _send(self, batch: list[ResolveCall]) -> None:
        try:
            outcomes: list[Outcome] | None = None
            if len(batch) > 1:
                try:
                    outcomes = await self._acquire(lambda conn: _together(conn, batch))
                except (asyncpg.PostgresError, asyncpg.exceptions.DataError, _Redo):
                    outcomes = None  # rolled back as a whole: one by one below
            if outcomes is None:
                outcomes = []
                for call in batch:
                    try:
                        outcomes.append(await self._alone(call))
                    except Exception as exc:
                        outcomes.append(exc)
            for call, outcome in zip(batch, outcomes, strict=True):
                if call.fut.done():
                    continue
                if isinstance(outcome, Exception):
                    call.fut.set_exception(outcome)
                else:
                    call.fut.set_result(outcome)
        except BaseException as exc:
            err = exc if isinstance(exc, Exception) else StoreError("the resolve was interrupted")
            for call in batch:
                if not call.fut.done():
                    call.fut.set_exception(err)
            if not isinstance(exc, Exception):
                raise


async def _together(conn: Conn, batch: list[ResolveCall]) -> list[Outcome]:
    """Resolve ``batch`` (one call per run) in one transaction; outcomes in order."""
    async with conn.transaction():
        locked = {r[0]: r for r in await conn.fetch(_LOCK, [c.run_id for c in batch])}
        reads = await conn.fetchmany(ops.RESOLVE_READ, [(c.run_id, c.interrupt_id) for c in batch])
        if len(reads) != len(batch):
            raise StoreError("a batched read must return exactly one row")
        outcomes: list[Outcome] = []
        writes: dict[str, list[tuple[int, list[Any]]]] = {}
        pending: dict[int, Any] = {}
        for n, (call, read) in enumerate(zip(batch, reads, strict=True)):
            row = locked.get(call.run_id)
            found, steps_json = ops.read_for_resolve(read)
            try:
                run, found, res, at = call.decide_on(row, found)
            except Exception as exc:
                outcomes.append(exc)
                continue
            # Only a parked run is taken over; one being driven sees wake_seq move instead.
            take = res.status is not InterruptStatus.PENDING and run.status is RunStatus.SUSPENDED
            claim = (call.claim_owner, call.lease_until) if take else None
            sql, args = ops.resolution_sql(call.run_id, call.interrupt_id, res, at, claim, take)
            writes.setdefault(sql, []).append((n, args))
            after = resolved_interrupt(found, res, at)
            pending[n] = (res, after, take, steps_json if take else None)
            outcomes.append(ResolveResult(interrupt=after, claimed=None))
        for sql, items in writes.items():
            rows = await conn.fetchmany(sql, [args for _, args in items])
            if len(rows) != len(items):
                raise StoreError("a batched write must return exactly one row")
            for (n, _), written in zip(items, rows, strict=True):
                res, after, take, steps_json = pending[n]
                if res.status is InterruptStatus.PENDING:
                    continue
                call = batch[n]
                try:
                    checked = ops.resolution_written(call.run_id, call.interrupt_id, written)
                except StoreError as exc:
                    raise _Redo() from exc  # rolls the whole batch back
                if take:
                    claimed = ops.taken_over(checked, steps_json, checked[12], after)
                    outcomes[n] = ResolveResult(interrupt=after, claimed=claimed)
    return outcomes
