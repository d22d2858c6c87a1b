"""SQL building blocks of the PostgreSQL store, each run on a connection it is given.

Writers among them expect to be called inside a transaction that already holds the
run's row lock (see ``PostgresStore``): that lock is what keeps a run's event and
outbox ids in commit order.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, TypeAlias

from engine.errors import StoreError
from engine.models import Event, Interrupt, Response, Run
from engine.store.base import (
    EventWrite,
    LeftoverBuilder,
    OutboxWrite,
    Resolution,
    RunState,
    StepWrite,
)
from engine.store.rows import (
    RUN_COLS,
    STEP_COLS,
    dumps,
    event_from_row,
    interrupt_from_row,
    response_from_row,
    run_from_row,
    spec_json,
    step_from_row,
)

if TYPE_CHECKING:
    from asyncpg import Record
    from asyncpg.pool import PoolConnectionProxy

# The stubs make the proxy generic; at run time it is not subscriptable.
Conn: TypeAlias = "PoolConnectionProxy[Record]"

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


async def responses(conn: Conn, run_ids: Sequence[str]) -> dict[tuple[str, str], list[Response]]:
    """Responses of the given runs, by (run id, interrupt id), oldest first."""
    out: dict[tuple[str, str], list[Response]] = {}
    for r in await conn.fetch(
        "SELECT run_id, interrupt_id, actor, data_json, approved, at FROM responses "
        "WHERE run_id = ANY($1::text[]) ORDER BY at, actor",
        list(run_ids),
    ):
        out.setdefault((r[0], r[1]), []).append(response_from_row(r[2], r[3], r[4], r[5]))
    return out


async def interrupts(
    conn: Conn, where: str, args: Sequence[Any], limit: int = -1
) -> list[Interrupt]:
    """Interrupts matching ``where`` (placeholders ``$1..$n`` for ``args``), oldest first."""
    rows = await conn.fetch(
        f"SELECT {INT_COLS} FROM interrupts i JOIN runs r ON r.id = i.run_id "
        f"WHERE {where} ORDER BY i.created_at, i.id LIMIT ${len(args) + 1}",
        *args,
        limit_arg(limit),
    )
    if not rows:
        return []
    # One query for every run's responses instead of one per run.
    by_key = await responses(conn, sorted({row[0] for row in rows}))
    return [interrupt_from_row(row, by_key.get((row[0], row[1]), [])) for row in rows]


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
    """Append history entries and outbox messages, one statement each (``unnest``)."""
    if new_events:
        await conn.execute(
            "INSERT INTO events (run_id, at, type, data) "
            "SELECT $1, * FROM unnest($2::float8[], $3::text[], $4::text[])",
            run_id,
            [e.at or now for e in new_events],
            [e.type for e in new_events],
            [dumps(e.data) for e in new_events],
        )
    if outbox:
        await conn.execute(
            "INSERT INTO outbox (run_id, interrupt_id, topic, data, created_at, next_at) "
            "SELECT $1, t.*, $2, $2 FROM unnest($3::text[], $4::text[], $5::text[]) AS t",
            run_id,
            now,
            [o.interrupt_id for o in outbox],
            [o.topic for o in outbox],
            [dumps(o.data) for o in outbox],
        )


async def write_step(conn: Conn, run_id: str, step: StepWrite, now: float) -> None:
    """Upsert a step result with its new interrupts, their timers, events and outbox."""
    await conn.execute(
        "INSERT INTO steps (run_id, path, name, status, output_json, error_json, attempts, "
        "started_at, finished_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) "
        "ON CONFLICT (run_id, path) DO UPDATE SET name=excluded.name, status=excluded.status, "
        "output_json=excluded.output_json, error_json=excluded.error_json, "
        "attempts=excluded.attempts, started_at=excluded.started_at, "
        "finished_at=excluded.finished_at",
        run_id,
        step.path,
        step.name,
        step.status,
        step.output_json,
        step.error_json,
        step.attempts,
        step.started_at,
        step.finished_at,
    )
    timers: list[tuple[str, str, float]] = []
    for spec in step.interrupts:
        await conn.execute(
            "INSERT INTO interrupts (run_id, id, path, step, kind, status, spec_json, "
            "expires_at, created_at) VALUES ($1, $2, $3, $4, $5, 'pending', $6, $7, $8)",
            run_id,
            spec.id,
            step.path,
            step.name,
            spec.kind.value,
            spec_json(spec),
            spec.expires_at,
            now,
        )
        timers.extend((spec.id, "reminder", t) for t in spec.reminders)
        if spec.expires_at is not None:
            timers.append((spec.id, "expiry", spec.expires_at))
    if timers:
        await conn.execute(
            "INSERT INTO timers (run_id, interrupt_id, kind, due_at) "
            "SELECT $1, * FROM unnest($2::text[], $3::text[], $4::float8[])",
            run_id,
            [t[0] for t in timers],
            [t[1] for t in timers],
            [t[2] for t in timers],
        )
    await append(conn, run_id, now, step.events, step.outbox)


async def cancel_pending(conn: Conn, run: Run, now: float, build: LeftoverBuilder | None) -> None:
    """Cancel the run's pending interrupts and drop its timers (run row locked by caller)."""
    pending = await interrupts(conn, "i.run_id = $1 AND i.status = 'pending'", (run.id,))
    if not pending:
        return
    await conn.execute(
        "UPDATE interrupts SET status='cancelled', resolved_at=$1, resolved_by='system' "
        "WHERE run_id=$2 AND status='pending'",
        now,
        run.id,
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


async def settle_interrupt(
    conn: Conn, run_id: str, interrupt_id: str, res: Resolution, now: float
) -> None:
    """Close a pending interrupt (the caller holds the run's lock) and drop its timers."""
    changed = await conn.fetchval(
        "UPDATE interrupts SET status=$1, resolved_at=$2, resolved_by=$3, data_json=$4 "
        "WHERE run_id=$5 AND id=$6 AND status='pending' RETURNING 1",
        res.status.value,
        now,
        res.resolved_by,
        res.data_json,
        run_id,
        interrupt_id,
    )
    if changed is None:  # decide() saw it pending inside this very transaction
        raise StoreError(f"interrupt {run_id}/{interrupt_id} changed underneath")
    await conn.execute(
        "DELETE FROM timers WHERE run_id=$1 AND interrupt_id=$2", run_id, interrupt_id
    )
