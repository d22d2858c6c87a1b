"""PostgreSQL store on asyncpg: a pool, row locks as fences, group commit.

Why it is built this way:

* Several processes (on several hosts) share one database, so exactly-once comes from
  the database's locks, never from this process's memory. Every operation is
  atomic (READ COMMITTED) on a pooled connection: a single statement where the
  whole write fits in one (data-modifying CTEs, see ``write``), since round trips
  are what a PostgreSQL store spends its time on, else an explicit transaction;
  concurrent ones of the hot paths share a transaction (group commit, below).
* A run's row is the lock that serialises everything done to that run: drivers fence
  on it with conditional ``UPDATE ... WHERE owner=$me AND status='running'``, and
  ``resolve``/``cancel_run``/``fire_reminder`` take it with ``SELECT ... FOR UPDATE``
  before reading what they decide on. Under READ COMMITTED each statement after the
  lock sees the latest committed rows, so a ``decide`` callback always judges fresh
  data and exactly one of any number of concurrent resolves wins. Because every
  writer of a run's history and outbox holds that lock while it inserts, a run's
  event and outbox ids grow in commit order: readers paging ``after_id`` and the
  outbox's per-run ordering can rely on ids.
* Claims of runs and timers use ``FOR UPDATE SKIP LOCKED`` plus lease columns;
  outbox claims are serialised by an advisory lock instead, to keep each run's
  messages in order across processes (``claims`` explains both).
* Group commit (``batching``, ``resolving``): with the server on the same cores as the
  service, each round trip costs a wake-up of a server process, and each commit a WAL
  flush. So the hot writes (create, record steps, park, finish) of concurrent runs go
  out together, one pipelined statement each and one implicit transaction per batch,
  and concurrent resolves of different runs share one transaction. Each statement
  still fences on its own run, a failed fence fails only its own write, and a batch
  the server refuses runs again one operation at a time. Every lock on several runs
  (batches, resolves, heartbeats) is taken in id order, so they never deadlock with
  each other. Deadlocks (still possible with worker clean-up) and serialization
  failures are retried; ``decide`` is pure, so a retry is safe.
* Migrations (``postgres/migrations/NNNN_*.sql``) run in one transaction under an advisory
  lock, recorded in ``schema_migrations``; concurrent opens wait for each other, and
  a schema newer than this code is refused.
* JSON is stored as the text the engine produced (exact round trip); ``refs`` is
  ``jsonb`` so ``set_ref`` updates a single key in place.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeVar

import asyncpg
from asyncpg import Record

from engine.errors import InterruptNotFound, RunNotActive, RunNotFound, StoreError
from engine.models import (
    InterruptStatus,
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
from engine.store.postgres import claims, ops, retry
from engine.store.postgres.batching import Batcher
from engine.store.postgres.migrate import migrate
from engine.store.postgres.ops import CONNECTION_ERRORS, Conn
from engine.store.postgres.queries import PostgresQueries
from engine.store.postgres.resolving import ResolveCall, Resolver
from engine.store.postgres.write import Params, guarded, write_ctes
from engine.store.rows import RUN_COLS, dumps, resolved_interrupt, run_from_row

T = TypeVar("T")

_RETRIES = 8
_RETRYABLE = (asyncpg.exceptions.DeadlockDetectedError, asyncpg.exceptions.SerializationError)


class PostgresStore(PostgresQueries):
    """A store on PostgreSQL, safe to share between any number of processes and hosts.

    Args:
        dsn: a ``postgresql://`` URL; unknown query parameters are server settings
            (asyncpg's rule), e.g. ``?search_path=signoff``.
        min_size: connections the pool keeps open.
        max_size: most connections the pool opens at once.
    """

    def __init__(self, dsn: str, *, min_size: int = 1, max_size: int = 10) -> None:
        self.dsn = dsn
        self.min_size = min_size
        self.max_size = max_size
        self._pool = None
        self._batcher = Batcher(self._on_conn, self._alone)
        self._resolver = Resolver(self._on_conn, self._resolve_alone)

    # -- plumbing (reads in `queries`) ------------------------------------------------
    async def _tx(self, fn: Callable[[Conn], Awaitable[T]], *, atomic: bool = True) -> T:
        """Run ``fn`` in one transaction, retrying it after a deadlock.

        ``atomic=False`` skips BEGIN/COMMIT (two round trips) for an ``fn`` whose writes
        are a single statement, which PostgreSQL runs atomically anyway.
        """
        pool = self._require_pool()
        for attempt in range(_RETRIES):
            try:
                async with pool.acquire() as conn:
                    if not atomic:
                        return await fn(conn)
                    async with conn.transaction():
                        return await fn(conn)
            except _RETRYABLE:
                if attempt == _RETRIES - 1:
                    raise
                await asyncio.sleep(0.005 * 2**attempt)
            except CONNECTION_ERRORS as exc:
                raise StoreError(f"PostgreSQL write failed: {exc}") from exc
        raise AssertionError("unreachable")  # pragma: no cover

    async def _on_conn(self, fn: Callable[[Conn], Awaitable[T]]) -> T:
        """Run ``fn`` on a pooled connection, as it is (for a batch of writes)."""
        pool = self._require_pool()
        try:
            async with pool.acquire() as conn:
                return await fn(conn)
        except asyncpg.exceptions.DataError:
            raise  # an argument asyncpg could not encode: nothing was committed
        except CONNECTION_ERRORS as exc:
            raise StoreError(f"PostgreSQL write failed: {exc}") from exc

    async def _alone(self, sql: str, args: Sequence[Any]) -> Record | None:
        """Run one statement in its own transaction (with the deadlock retries)."""
        return await self._tx(lambda conn: conn.fetchrow(sql, *args), atomic=False)

    async def _write(self, run_id: str, sql: str, args: Sequence[Any]) -> Any:
        """The single value of a one-row write statement (locking at most the run
        ``run_id``), sent with concurrent ones."""
        row = await self._batcher.fetchrow(run_id, sql, args)
        return None if row is None else row[0]

    async def open(self) -> None:
        """Connect (a pool) and apply pending migrations under an advisory lock."""
        if self._pool is not None:
            return
        try:
            self._pool = await asyncpg.create_pool(
                self.dsn, min_size=self.min_size, max_size=self.max_size, reset=_keep_session
            )
        except CONNECTION_ERRORS as exc:
            raise StoreError(f"cannot connect to PostgreSQL: {exc}") from exc
        try:
            await self._tx(migrate)
        except BaseException:
            await self.close()  # a refused open must not leave connections behind
            raise

    async def close(self) -> None:
        """Close the pool (waits for operations in flight to release their connections)."""
        await self._resolver.drain()
        await self._batcher.drain()
        pool, self._pool = self._pool, None
        if pool is not None:
            await pool.close()

    # -- runs -------------------------------------------------------------------------
    async def create_run(self, run: NewRun) -> tuple[str, bool]:
        """Insert a run; an already used idempotency key returns the existing run."""
        p = Params(
            run.id,
            run.workflow,
            run.version,
            run.input_json,
            run.requester,
            run.idempotency_key,
            run.owner,
            run.lease_until,
            run.now,
        )
        # ON CONFLICT waits for a concurrent insert of the same key to commit or roll
        # back, so two racing starts with one key create one run.
        sql = guarded(
            "INSERT INTO runs (id, workflow, version, status, input_json, requester, "
            "idempotency_key, owner, lease_until, created_at, updated_at) "
            "VALUES ($1, $2, $3, 'running', $4, $5, $6, $7, $8, $9, $9) "
            "ON CONFLICT (idempotency_key) DO NOTHING RETURNING id",
            write_ctes(p, run.now, events=run.events, outbox=run.outbox),
            "SELECT (SELECT id FROM run)",
        )
        row = await self._batcher.fetchrow(run.id, sql, p.values)
        if row is not None and row[0] is not None:
            return run.id, True
        found = await self._read(
            lambda conn: conn.fetchval(
                "SELECT id FROM runs WHERE idempotency_key=$1", run.idempotency_key
            )
        )
        return str(found), False

    async def load_state(self, run_id: str) -> RunState | None:
        """Read a run with its steps and interrupts (one snapshot)."""
        return await self._read(lambda conn: ops.load_state(conn, run_id), snapshot=True)

    async def commit_steps(
        self, run_id: str, owner: str, steps: Sequence[StepWrite], now: float
    ) -> None:
        """Record step results with their interrupts, timers, events and outbox rows."""
        p = Params(now, run_id, owner)
        # One statement: the fencing UPDATE (which also row-locks the run) guards the rest.
        sql = guarded(
            "UPDATE runs SET updated_at=$1 WHERE id=$2 AND owner=$3 AND status='running' "
            "RETURNING id",
            write_ctes(p, now, steps=steps),
            "SELECT (SELECT 1 FROM run)",
        )
        if await self._write(run_id, sql, p.values) is None:
            raise LostOwnership(run_id)

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
        if steps:
            # One statement: the fencing UPDATE parks the run only if wake_seq is unchanged.
            # A concurrent resolve holding the row makes it wait; PostgreSQL then evaluates
            # the WHERE and the CASEs again on the new row, so a bumped wake_seq keeps the
            # run running ("drive again") while the steps are still recorded.
            p = Params(now, run_id, owner, wake_seq)
            park = "wake_seq=$4"
            sql = guarded(
                f"UPDATE runs SET updated_at=$1, "
                f"status=CASE WHEN {park} THEN 'suspended' ELSE status END, "
                f"owner=CASE WHEN {park} THEN NULL ELSE owner END, "
                f"lease_until=CASE WHEN {park} THEN NULL ELSE lease_until END "
                "WHERE id=$2 AND owner=$3 AND status='running' RETURNING id, status",
                write_ctes(p, now, steps=steps),
                "SELECT (SELECT status FROM run)",
            )
            status = await self._write(run_id, sql, p.values)
            if status is None:
                raise LostOwnership(run_id)
            return bool(status == "suspended")

        # A concurrent resolve holding the row makes this wait, then re-check the
        # WHERE on the new row: a bumped wake_seq means "drive again".
        parked = await self._write(
            run_id,
            "WITH run AS (UPDATE runs SET status='suspended', owner=NULL, lease_until=NULL, "
            "updated_at=$1 WHERE id=$2 AND owner=$3 AND status='running' AND wake_seq=$4 "
            "RETURNING 1) SELECT (SELECT 1 FROM run)",
            (now, run_id, owner, wake_seq),
        )
        if parked is not None:
            return True
        if not await self._tx(lambda conn: ops.check_owner(conn, run_id, owner, now), atomic=False):
            raise LostOwnership(run_id)
        return False

    async def abandon_run(self, run_id: str, owner: str, retry_at: float) -> None:
        """Give a run up (after an unexpected error) so recovery retries it at ``retry_at``."""

        async def op(conn: Conn) -> None:
            await conn.execute(
                "UPDATE runs SET owner=NULL, lease_until=$1 WHERE id=$2 AND owner=$3",
                retry_at,
                run_id,
                owner,
            )

        await self._tx(op, atomic=False)

    async def finish_run(
        self, run_id: str, owner: str, fin: FinishWrite, leftover: LeftoverBuilder | None = None
    ) -> None:
        """Record the terminal status; leftover pending interrupts become cancelled."""
        p = Params(fin.status.value, fin.output_json, fin.error_json, fin.now, run_id, owner)
        update = (
            "UPDATE runs SET status=$1, output_json=$2, error_json=$3, owner=NULL, "
            "lease_until=NULL, updated_at=$4 WHERE id=$5 AND owner=$6 AND status='running'"
        )
        ctes = write_ctes(p, fin.now, steps=fin.steps, events=fin.events, outbox=fin.outbox)
        # Usually nothing is pending: then the whole finish is one statement (atomic without
        # BEGIN/COMMIT). Only the run's driver creates its interrupts, so none can appear
        # between that check and the update; if some are pending (or the run is not ours),
        # nothing is written and the finish runs again as a transaction.
        quick = guarded(
            f"{update} AND NOT EXISTS (SELECT 1 FROM interrupts WHERE run_id=$5 "
            "AND status='pending') RETURNING id",
            ctes,
            "SELECT (SELECT 1 FROM run)",
        )
        if await self._write(run_id, quick, p.values) is not None:
            return
        sql = guarded(f"{update} RETURNING {RUN_COLS}", ctes, f"SELECT {RUN_COLS} FROM run")

        async def op(conn: Conn) -> None:
            row = await conn.fetchrow(sql, *p.values)
            if row is None:
                raise LostOwnership(run_id)
            await ops.cancel_pending(conn, run_from_row(row), fin.now, leftover)

        await self._tx(op)

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

        async def op(conn: Conn) -> Run:
            row = await ops.run_row(conn, run_id, lock=True)
            if row is None:
                raise RunNotFound(run_id)
            if RunStatus(row[3]).terminal:
                raise RunNotActive(run_id, row[3])
            row = await conn.fetchrow(
                "UPDATE runs SET status='cancelled', owner=NULL, lease_until=NULL, "
                f"updated_at=$1, wake_seq=wake_seq+1 WHERE id=$2 RETURNING {RUN_COLS}",
                now,
                run_id,
            )
            assert row is not None  # locked above
            run = run_from_row(row)
            await ops.append(conn, run_id, now, events, outbox)
            await ops.cancel_pending(conn, run, now, leftover, by)
            return run

        return await self._tx(op)

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

        Concurrent resolves of different runs share a transaction (``resolving``).
        """
        fut: asyncio.Future[ResolveResult] = asyncio.get_running_loop().create_future()
        call = ResolveCall(run_id, interrupt_id, decide, claim_owner, lease_until, now, fut=fut)
        return await self._resolver.resolve(call)

    async def _resolve_alone(self, call: ResolveCall) -> ResolveResult:
        """One resolve in its own transaction."""

        async def op(conn: Conn) -> ResolveResult:
            # The run's row lock serialises every resolve of this run (across processes);
            # the interrupt is read after it, so `decide` sees the latest answers.
            row = await ops.run_row(conn, call.run_id, lock=True)
            if row is None:
                raise RunNotFound(call.run_id)
            run = run_from_row(row)
            parked = run.status is RunStatus.SUSPENDED
            # A parked run's steps come with the interrupt, for its take-over (nobody
            # writes the steps of a parked run; we hold its lock).
            found, steps_json = await ops.interrupt_for_resolve(
                conn, call.run_id, call.interrupt_id, steps=parked
            )
            if found is None:
                raise InterruptNotFound(call.run_id, call.interrupt_id)
            res = call.decide(found, run)
            at = call.now if res.at is None else res.at
            # Only a parked run is taken over; one being driven sees wake_seq move instead.
            take = res.status is not InterruptStatus.PENDING and parked
            claim = (call.claim_owner, call.lease_until) if take else None
            written = await ops.apply_resolution(
                conn, call.run_id, call.interrupt_id, res, at, claim, others=take
            )
            after = resolved_interrupt(found, res, at)
            claimed = None
            if take:
                assert written is not None
                claimed = ops.taken_over(written, steps_json, written[12], after)
            return ResolveResult(interrupt=after, claimed=claimed)

        return await self._tx(op)

    # -- workers, leases, recovery (SQL and the claim design in claims) -------------
    async def heartbeat(self, worker: WorkerRow, lease_until: float) -> list[WorkerRow]:
        """Upsert the worker row, extend its runs' leases, and list all workers."""
        return await self._tx(lambda conn: claims.heartbeat(conn, worker, lease_until))

    async def remove_workers(self, ids: Sequence[str]) -> None:
        """Forget workers known to be dead and release their timer and outbox claims."""
        if ids:
            await self._tx(lambda conn: claims.remove_workers(conn, ids))

    async def claim_runs(
        self, owner: str, now: float, lease_until: float, dead: Sequence[str], limit: int
    ) -> list[str]:
        """Take over running runs whose lease ran out or whose owner is dead."""
        return await self._tx(
            lambda conn: claims.claim_runs(conn, owner, now, lease_until, dead, limit), atomic=False
        )

    # -- timers -----------------------------------------------------------------------
    async def claim_timers(
        self, owner: str, now: float, claim_until: float, dead: Sequence[str], limit: int
    ) -> list[TimerRow]:
        """Claim due timers, earliest first."""
        return await self._tx(
            lambda conn: claims.claim_timers(conn, owner, now, claim_until, dead, limit),
            atomic=False,
        )

    async def fire_reminder(
        self, timer: TimerRow, events: list[EventWrite], outbox: list[OutboxWrite], now: float
    ) -> None:
        """Delete the reminder timer and record the reminder, if the interrupt still waits."""
        await self._tx(lambda conn: claims.fire_reminder(conn, timer, events, outbox, now))

    async def fire_escalation(self, timer: TimerRow, change: ChangeSpec, now: float) -> bool:
        """Delete the escalation timer and apply ``change``, if the interrupt still waits."""
        return await self._tx(lambda conn: claims.fire_escalation(conn, timer, change, now))

    async def add_timer(
        self, run_id: str, interrupt_id: str, kind: str, due_at: float, actor: str | None = None
    ) -> bool:
        """Add a timer to the interrupt if it is pending."""

        async def op(conn: Conn) -> bool:
            added = await conn.fetchval(
                "INSERT INTO timers (run_id, interrupt_id, kind, due_at, actor) "
                "SELECT run_id, id, $1, $2, $3 FROM interrupts "
                "WHERE run_id=$4 AND id=$5 AND status='pending' RETURNING 1",
                kind,
                due_at,
                actor,
                run_id,
                interrupt_id,
            )
            return added is not None

        return await self._tx(op)

    async def delete_timer(self, timer_id: int) -> None:
        """Drop a timer."""
        await self._tx(
            lambda conn: conn.execute("DELETE FROM timers WHERE id=$1", timer_id), atomic=False
        )

    async def next_timer_at(self) -> float | None:
        """When the earliest stored timer is due."""

        async def op(conn: Conn) -> float | None:
            found = await conn.fetchval("SELECT MIN(due_at) FROM timers")
            return None if found is None else float(found)

        return await self._read(op)

    # -- outbox -----------------------------------------------------------------------
    async def claim_outbox(
        self, owner: str, now: float, claim_until: float, dead: Sequence[str], limit: int
    ) -> list[tuple[OutboxMessage, list[str]]]:
        """Claim deliverable messages; a run's later message waits for its earlier ones."""
        return await self._tx(
            lambda conn: claims.claim_outbox(conn, owner, now, claim_until, dead, limit)
        )

    async def settle_outbox(self, results: Sequence[OutboxResult], now: float) -> None:
        """Mark delivered messages done; schedule failed ones for a retry."""
        if results:
            await self._tx(lambda conn: claims.settle_outbox(conn, results, now))

    async def set_ref(self, run_id: str, interrupt_id: str, key: str, value: Any) -> None:
        """Store ``refs[key] = value`` on the interrupt (e.g. Slack channel and ts)."""

        async def op(conn: Conn) -> None:
            found = await conn.fetchval(
                "UPDATE interrupts SET refs = refs || jsonb_build_object($1::text, $2::jsonb) "
                "WHERE run_id=$3 AND id=$4 RETURNING 1",
                key,
                dumps(value),
                run_id,
                interrupt_id,
            )
            if found is None:
                raise InterruptNotFound(run_id, interrupt_id)

        await self._tx(op, atomic=False)

    async def append_events(
        self, run_id: str, events: list[EventWrite], outbox: list[OutboxWrite], now: float
    ) -> None:
        """Add history entries and outbox messages to a run, whoever drives it (RunNotFound)."""

        async def op(conn: Conn) -> None:
            # The run row's lock keeps the run's event and outbox ids in commit order.
            if await ops.run_row(conn, run_id, lock=True) is None:
                raise RunNotFound(run_id)
            await ops.append(conn, run_id, now, events, outbox)

        await self._tx(op)

    # -- preferences ----------------------------------------------------------------------
    async def set_preference(
        self, actor: str, key: str, value_json: str | None, now: float
    ) -> None:
        """Store (or with None, delete) the JSON text for ``(actor, key)``."""

        async def op(conn: Conn) -> None:
            if value_json is None:
                await conn.execute("DELETE FROM preferences WHERE actor=$1 AND key=$2", actor, key)
                return
            await conn.execute(
                "INSERT INTO preferences (actor, key, value_json, updated_at) VALUES ($1,$2,$3,$4) "
                "ON CONFLICT (actor, key) DO UPDATE SET value_json=excluded.value_json, "
                "updated_at=excluded.updated_at",
                actor,
                key,
                value_json,
                now,
            )

        await self._tx(op)

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
        return await self._tx(
            lambda conn: retry.retry_run(conn, run_id, owner, lease_until, now, events)
        )


async def _keep_session(conn: object) -> None:
    """Skip asyncpg's per-release reset query (a round trip per operation).

    The store leaves no session state behind: no SET, LISTEN, cursors or session-level
    advisory locks, and asyncpg still rolls back an unfinished transaction itself.
    """
