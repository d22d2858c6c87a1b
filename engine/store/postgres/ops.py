"""SQL building blocks of the PostgreSQL store, each run on a connection it is given.

Writers among them expect to be called inside a transaction that already holds the
run's row lock (see ``PostgresStore``): that lock is what keeps a run's event and
outbox ids in commit order.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, TypeAlias

import asyncpg

from engine.errors import StoreError
from engine.models import Event, Interrupt, InterruptStatus, Response, Run
from engine.store.base import (
    EventWrite,
    LeftoverBuilder,
    OutboxWrite,
    Resolution,
    RunState,
)
from engine.store.postgres.write import Params, guarded, write_ctes
from engine.store.rows import (
    RUN_COLS,
    STEP_COLS,
    event_from_row,
    interrupt_from_row,
    loads,
    response_from_row,
    run_from_row,
    step_from_row,
)

if TYPE_CHECKING:
    from asyncpg import Record
    from asyncpg.pool import PoolConnectionProxy

# The stubs make the proxy generic; at run time it is not subscriptable.
Conn: TypeAlias = "PoolConnectionProxy[Record]"

# What asyncpg raises when the server or the connection is gone (StoreError to callers).
CONNECTION_ERRORS = (
    OSError,
    asyncpg.exceptions.PostgresConnectionError,
    asyncpg.exceptions.InterfaceError,
    asyncpg.exceptions.CannotConnectNowError,
    asyncpg.exceptions.TooManyConnectionsError,
)

INT_COLS = (
    "i.run_id, i.id, i.path, i.step, i.kind, i.status, i.spec_json, i.expires_at, "
    "i.created_at, i.resolved_at, i.resolved_by, i.data_json, i.refs::text, "
    "r.workflow, r.version, r.requester"
)


def limit_arg(limit: int) -> int | None:
    """SQLite's ``LIMIT -1`` (no limit) is PostgreSQL's ``LIMIT NULL``."""
    return None if limit < 0 else limit


async def run_row(conn: Conn, run_id: str, *, lock: bool = False) -> Record | None:
    """The run's row (``RUN_COLS``), row-locked with ``lock`` until the transaction ends."""
    suffix = " FOR UPDATE" if lock else ""
    return await conn.fetchrow(f"SELECT {RUN_COLS} FROM runs WHERE id=$1{suffix}", run_id)


async def interrupts(
    conn: Conn, where: str, args: Sequence[Any], limit: int = -1, offset: int = 0
) -> list[Interrupt]:
    """Interrupts matching ``where`` (placeholders ``$1..$n`` for ``args``), oldest first.

    Each row carries its responses as a JSON array, so this is one round trip and one
    consistent snapshot without a transaction.
    """
    rows = await conn.fetch(
        f"SELECT {INT_COLS}, {_RESPONSES} FROM interrupts i JOIN runs r ON r.id = i.run_id "
        f"WHERE {where} ORDER BY i.created_at, i.id LIMIT ${len(args) + 1} "
        f"OFFSET ${len(args) + 2}",
        *args,
        limit_arg(limit),
        offset,
    )
    return [interrupt_from_row(row, _responses(row[16])) for row in rows]


_RESPONSES = (
    "(SELECT json_agg(json_build_array(x.actor, x.data_json, x.approved, x.at) "
    "ORDER BY x.at, x.actor) FROM responses x "
    "WHERE x.run_id = i.run_id AND x.interrupt_id = i.id)::text"
)
"""A JSON array of an interrupt's responses (``i``), oldest first, or NULL if none.
PostgreSQL prints float8 with the shortest exact digits, so ``at`` round-trips."""


_STEPS = (
    "(SELECT json_agg(json_build_array(s.path, s.name, s.status, s.output_json, "
    "s.error_json, s.attempts, s.started_at, s.finished_at)) FROM steps s "
    "WHERE s.run_id = i.run_id)::text"
)
"""A JSON array of the steps (``STEP_COLS``) of interrupt ``i``'s run, or NULL if none."""

_OTHERS = (
    f"(SELECT json_agg(json_build_array({INT_COLS}, {_RESPONSES})) "
    "FROM interrupts i JOIN runs r ON r.id = i.run_id WHERE i.run_id = $1 AND i.id <> $2)::text"
)
"""A JSON array of the rows of a run's interrupts other than ``$2`` (as ``interrupts``)."""


async def interrupt_for_resolve(
    conn: Conn, run_id: str, interrupt_id: str, *, steps: bool
) -> tuple[Interrupt | None, str | None]:
    """One interrupt with its responses and, with ``steps``, its run's steps as JSON
    (for the state of a run about to be taken over): one round trip."""
    extra = f", {_STEPS}" if steps else ""
    row = await conn.fetchrow(
        f"SELECT {INT_COLS}, {_RESPONSES}{extra} FROM interrupts i JOIN runs r ON r.id = i.run_id "
        "WHERE i.run_id = $1 AND i.id = $2",
        run_id,
        interrupt_id,
    )
    if row is None:
        return None, None
    return interrupt_from_row(row, _responses(row[16])), row[17] if steps else None


RESOLVE_READ = (
    "SELECT x.* FROM (SELECT 1) AS one LEFT JOIN LATERAL "
    f"(SELECT {INT_COLS}, {_RESPONSES}, {_STEPS} FROM interrupts i JOIN runs r "
    "ON r.id = i.run_id WHERE i.run_id = $1 AND i.id = $2) AS x ON TRUE"
)
"""``interrupt_for_resolve`` with the steps, as exactly one row (all NULL when the
interrupt does not exist): one of many pipelined in a batch of resolves."""


def read_for_resolve(row: Record) -> tuple[Interrupt | None, str | None]:
    """The interrupt and its run's steps (JSON) from a ``RESOLVE_READ`` row."""
    if row[1] is None:
        return None, None
    return interrupt_from_row(row, _responses(row[16])), row[17]


def taken_over(
    run_row: Record, steps_json: str | None, others_json: str | None, resolved: Interrupt
) -> RunState:
    """The state of a run just taken over, from what ``interrupt_for_resolve`` and
    ``apply_resolution`` returned (no further reads)."""
    steps, outputs = {}, {}
    for s in loads(steps_json) if steps_json else ():
        steps[s[0]] = step_from_row(s)
        outputs[s[0]] = s[3]
    found = {}
    for r in loads(others_json) if others_json else ():
        i = interrupt_from_row(r, _responses(r[16]))
        found[i.id] = i
    found[resolved.id] = resolved
    return RunState(
        run=run_from_row(run_row),
        wake_seq=run_row[10],
        steps=steps,
        step_outputs=outputs,
        interrupts=found,
    )


def _responses(found: str | None) -> list[Response]:
    if found is None:
        return []
    return [response_from_row(*r) for r in loads(found)]


async def load_state(conn: Conn, run_id: str, row: Record | None = None) -> RunState | None:
    """A run with its steps and interrupts (``row``: the run's row if already read)."""
    if row is None:
        row = await run_row(conn, run_id)
        if row is None:
            return None
    steps, outputs = {}, {}
    for s in await conn.fetch(f"SELECT {STEP_COLS} FROM steps WHERE run_id=$1", run_id):
        steps[s[0]] = step_from_row(s)
        outputs[s[0]] = s[3]
    found = await interrupts(conn, "i.run_id = $1", (run_id,))
    return RunState(
        run=run_from_row(row),
        wake_seq=row[10],
        steps=steps,
        step_outputs=outputs,
        interrupts={i.id: i for i in found},
    )


async def events(conn: Conn, run_id: str, after_id: int, limit: int) -> list[Event]:
    """History entries of a run with ids above ``after_id``, in id order."""
    rows = await conn.fetch(
        "SELECT id, at, type, data FROM events WHERE run_id=$1 AND id>$2 ORDER BY id LIMIT $3",
        run_id,
        after_id,
        limit_arg(limit),
    )
    return [event_from_row(run_id, r) for r in rows]


async def append(
    conn: Conn,
    run_id: str,
    now: float,
    new_events: Sequence[EventWrite],
    outbox: Sequence[OutboxWrite],
) -> None:
    """Append history entries and outbox messages to a run, in one statement."""
    if not new_events and not outbox:
        return
    p = Params(run_id)
    ctes = write_ctes(p, now, events=new_events, outbox=outbox)
    await conn.execute(guarded("SELECT $1::text AS id", ctes, "SELECT 1"), *p.values)


async def cancel_pending(
    conn: Conn, run: Run, now: float, build: LeftoverBuilder | None, by: str | None = None
) -> None:
    """Cancel the run's pending interrupts (``by`` the actor, else ``'system'``) and drop
    its timers (run row locked by caller)."""
    pending = await interrupts(conn, "i.run_id = $1 AND i.status = 'pending'", (run.id,))
    if not pending:
        return
    await conn.execute(
        "UPDATE interrupts SET status='cancelled', resolved_at=$1, resolved_by=$3 "
        "WHERE run_id=$2 AND status='pending'",
        now,
        run.id,
        by or "system",
    )
    await conn.execute("DELETE FROM timers WHERE run_id=$1", run.id)
    if build is not None:
        leftover_events, leftover_outbox = build(run, pending)
        await append(conn, run.id, now, leftover_events, leftover_outbox)


async def check_owner(conn: Conn, run_id: str, owner: str, now: float) -> bool:
    """Touch the run if ``owner`` drives it (locking its row); False otherwise."""
    found = await conn.fetchval(
        "UPDATE runs SET updated_at=$1 WHERE id=$2 AND owner=$3 AND status='running' RETURNING 1",
        now,
        run_id,
        owner,
    )
    return found is not None


def resolution_sql(
    run_id: str,
    interrupt_id: str,
    res: Resolution,
    now: float,
    claim: tuple[str, float] | None,
    others: bool = False,
) -> tuple[str, list[Any]]:
    """The one statement (and its arguments) that writes what ``decide`` returned.

    Records the response, history and outbox; if final, closes the interrupt, drops its
    timers and bumps the run's ``wake_seq``, and with ``claim`` (owner, lease end) also
    takes the parked run over. It returns one row: for a pending answer just ``1``;
    when final, the run's row (``RUN_COLS``), then the count of interrupts closed and,
    with ``others``, the run's other interrupts as JSON (read in the statement's
    snapshot: this write does not change them). The caller holds the run's lock.
    """
    p = Params(run_id, interrupt_id, now)
    ctes = write_ctes(p, now, events=res.events, outbox=res.outbox)
    if res.response_actor is not None:
        ctes.append(
            "w_response AS (INSERT INTO responses (run_id, interrupt_id, actor, data_json, "
            f"approved, at) VALUES ($1, $2, {p.add(res.response_actor)}, "
            f"{p.add(res.response_json)}, {p.add(res.response_approved, 'bool')}, $3))"
        )
    if res.status is InterruptStatus.PENDING:
        return guarded("SELECT $1::text AS id", ctes, "SELECT 1"), p.values
    take = (
        ", status='running', owner={}, lease_until={}".format(
            p.add(claim[0], "text"), p.add(claim[1], "float8")
        )
        if claim
        else ""
    )
    ctes += [
        "w_interrupt AS (UPDATE interrupts SET "
        f"status={p.add(res.status.value)}, resolved_at=$3, "
        f"resolved_by={p.add(res.resolved_by, 'text')}, data_json={p.add(res.data_json, 'text')} "
        "WHERE run_id=$1 AND id=$2 AND status='pending' RETURNING 1)",
        "w_timers_gone AS (DELETE FROM timers WHERE run_id=$1 AND interrupt_id=$2)",
        f"w_run AS (UPDATE runs SET wake_seq=wake_seq+1, updated_at=$3{take} "
        f"WHERE id=$1 RETURNING {RUN_COLS})",
    ]
    sql = guarded(
        "SELECT $1::text AS id",
        ctes,
        "SELECT w_run.*, (SELECT COUNT(*) FROM w_interrupt)"
        + (f", {_OTHERS}" if others else "")
        + " FROM w_run",
    )
    return sql, p.values


def resolution_written(run_id: str, interrupt_id: str, row: Record | None) -> Record:
    """The final resolution's row, checked: the interrupt was closed by this statement."""
    if row is None or row[11] != 1:  # decide() saw it pending inside this very transaction
        raise StoreError(f"interrupt {run_id}/{interrupt_id} changed underneath")
    return row


async def apply_resolution(
    conn: Conn,
    run_id: str,
    interrupt_id: str,
    res: Resolution,
    now: float,
    claim: tuple[str, float] | None,
    others: bool = False,
) -> Record | None:
    """Write what ``decide`` returned, in one statement (see ``resolution_sql``); the
    run's row when final, else None."""
    sql, args = resolution_sql(run_id, interrupt_id, res, now, claim, others)
    row = await conn.fetchrow(sql, *args)
    if res.status is InterruptStatus.PENDING:
        return None
    return resolution_written(run_id, interrupt_id, row)
