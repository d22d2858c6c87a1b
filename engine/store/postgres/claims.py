"""How PostgreSQL workers share work: heartbeats, leases, and claims of runs, timers, outbox.

Runs and timers are claimed with ``UPDATE ... WHERE id IN (SELECT ... FOR UPDATE SKIP
LOCKED)`` and a lease column: claimers never wait on each other or on a busy driver
(a locked row is skipped, and rechecked on the next pass), and a claim lapses by time
if its holder dies. The outbox is claimed differently, because a message may only go
once every earlier message of its run is done or in the same batch: SKIP LOCKED
would let a claimer hop over a row that another transaction is just releasing, and
two claimers on snapshots taken at once could each take a different part of one
run's queue. So outbox claims are serialised by a transaction-scoped advisory lock
(held for one short statement) and use plain ``FOR UPDATE``, which makes each claim
see the previous one, exactly as SQLite's single writer does.
"""

from __future__ import annotations

from collections.abc import Sequence

from engine.models import OutboxMessage
from engine.store.base import (
    ChangeSpec,
    EventWrite,
    OutboxResult,
    OutboxWrite,
    TimerRow,
    WorkerRow,
)
from engine.store.postgres import ops
from engine.store.postgres.ops import Conn
from engine.store.postgres.responders import index_responders
from engine.store.rows import OUTBOX_COLS, dumps, loads, outbox_from_row

OUTBOX_LOCK = 0x5349474E4F4647
"""Advisory lock key serialising outbox claims ("SIGNOFG" in ASCII: any fixed bigint)."""


def _free(owner_col: str, until_col: str) -> str:
    """SQL for "nobody holds this claim" with ``now`` as $3 and the dead workers as $4."""
    return f"({until_col} IS NULL OR {until_col} < $3 OR {owner_col} = ANY($4::text[]))"


async def heartbeat(conn: Conn, worker: WorkerRow, lease_until: float) -> list[WorkerRow]:
    """Upsert the worker row, extend its runs' leases, and list all workers."""
    await conn.execute(
        "INSERT INTO workers (id, host, pid, heartbeat_at) VALUES ($1, $2, $3, $4) "
        "ON CONFLICT (id) DO UPDATE SET heartbeat_at=excluded.heartbeat_at",
        worker.id,
        worker.host,
        worker.pid,
        worker.heartbeat_at,
    )
    # Only leases with less than two thirds of their length left are extended: each is
    # still renewed long before it runs out (heartbeats come every third of a lease or
    # more often), while a run is rewritten (all of the runs table's indexes, and its row
    # locked until this transaction ends) every few heartbeats instead of at each one.
    now = worker.heartbeat_at
    await conn.execute(
        "UPDATE runs SET lease_until=$1 WHERE id IN (SELECT id FROM runs WHERE owner=$2 "
        "AND status='running' AND (lease_until IS NULL OR lease_until < $3) "
        "ORDER BY id FOR UPDATE)",  # in id order, as every locker of several runs
        lease_until,
        worker.id,
        now + (lease_until - now) * 2 / 3,
    )
    rows = await conn.fetch("SELECT id, host, pid, heartbeat_at FROM workers ORDER BY id")
    return [WorkerRow(r[0], r[1], r[2], r[3]) for r in rows]


async def remove_workers(conn: Conn, ids: Sequence[str]) -> None:
    """Forget workers known to be dead and release their timer and outbox claims."""
    dead = sorted(ids)  # one lock order for every process removing the same workers
    await conn.execute("DELETE FROM workers WHERE id = ANY($1::text[])", dead)
    await conn.execute(
        "UPDATE timers SET claimed_by=NULL, claim_until=NULL WHERE claimed_by = ANY($1::text[])",
        dead,
    )
    # Only undone messages can hold a claim (finishing one clears it): the condition puts
    # the scan on the small outbox_undone index, so claimed_by needs no index of its own
    # (which would rule out HOT updates of each claim; see migration 0005).
    await conn.execute(
        "UPDATE outbox SET claimed_by=NULL, claim_until=NULL "
        "WHERE done_at IS NULL AND claimed_by = ANY($1::text[])",
        dead,
    )


async def claim_runs(
    conn: Conn, owner: str, now: float, lease_until: float, dead: Sequence[str], limit: int
) -> list[str]:
    """Take over running runs whose lease ran out or whose owner is dead."""
    rows = await conn.fetch(
        "UPDATE runs SET owner=$1, lease_until=$2 WHERE id IN (SELECT id FROM runs "
        f"WHERE status='running' AND {_free('owner', 'lease_until')} "
        "LIMIT $5 FOR UPDATE SKIP LOCKED) RETURNING id",
        owner,
        lease_until,
        now,
        list(dead),
        limit,
    )
    return [r[0] for r in rows]


async def claim_timers(
    conn: Conn, owner: str, now: float, claim_until: float, dead: Sequence[str], limit: int
) -> list[TimerRow]:
    """Claim due timers, earliest first."""
    rows = await conn.fetch(
        "UPDATE timers SET claimed_by=$1, claim_until=$2 WHERE id IN (SELECT id "
        f"FROM timers WHERE due_at <= $3 AND {_free('claimed_by', 'claim_until')} "
        "ORDER BY due_at LIMIT $5 FOR UPDATE SKIP LOCKED) "
        "RETURNING id, run_id, interrupt_id, kind, due_at, actor",
        owner,
        claim_until,
        now,
        list(dead),
        limit,
    )
    timers = (TimerRow(r[0], r[1], r[2], r[3], r[4], r[5]) for r in rows)
    return sorted(timers, key=lambda t: (t.due_at, t.id))


async def fire_reminder(
    conn: Conn, timer: TimerRow, events: list[EventWrite], outbox: list[OutboxWrite], now: float
) -> None:
    """Delete the reminder timer and record the reminder, if the interrupt still waits."""
    await ops.run_row(conn, timer.run_id, lock=True)  # keeps the run's ids in commit order
    # Only the caller that deletes the timer records it: a second claimer (after a lapsed
    # claim, or a worker wrongly taken for dead) waits on the run's lock, then finds it gone.
    if await conn.fetchval("DELETE FROM timers WHERE id=$1 RETURNING 1", timer.id) is None:
        return
    pending = await conn.fetchval(
        "SELECT 1 FROM interrupts WHERE run_id=$1 AND id=$2 AND status='pending'",
        timer.run_id,
        timer.interrupt_id,
    )
    if pending is not None:
        await ops.append(conn, timer.run_id, now, events, outbox)


async def fire_escalation(conn: Conn, timer: TimerRow, change: ChangeSpec, now: float) -> bool:
    """Delete the escalation timer and apply ``change``, if the interrupt still waits."""
    await ops.run_row(conn, timer.run_id, lock=True)  # serialises with resolves of the run
    # As with reminders, only the caller that deletes the timer applies it.
    if await conn.fetchval("DELETE FROM timers WHERE id=$1 RETURNING 1", timer.id) is None:
        return False
    found = await ops.interrupts(
        conn,
        "i.run_id = $1 AND i.id = $2 AND i.status = 'pending'",
        (timer.run_id, timer.interrupt_id),
    )
    if not found:
        return False
    spec_text = await conn.fetchval(
        "SELECT spec_json FROM interrupts WHERE run_id=$1 AND id=$2",
        timer.run_id,
        timer.interrupt_id,
    )
    changed = change(found[0], loads(spec_text))
    if changed is None:
        return False
    await conn.execute(
        "UPDATE interrupts SET spec_json=$1 WHERE run_id=$2 AND id=$3",
        dumps(changed.spec),
        timer.run_id,
        timer.interrupt_id,
    )
    # Whoever the escalation added may answer at once: the "what may I answer" index too.
    await index_responders(
        conn, timer.run_id, timer.interrupt_id, changed.spec.get("responders", [])
    )
    await ops.append(conn, timer.run_id, now, changed.events, changed.outbox)
    return True


async def claim_outbox(
    conn: Conn, owner: str, now: float, claim_until: float, dead: Sequence[str], limit: int
) -> list[tuple[OutboxMessage, list[str]]]:
    """Claim deliverable messages; a run's later message waits for its earlier ones."""
    # Serialised (see the module docstring): the statement below, whose snapshot is
    # taken after the lock, sees every earlier claim; FOR UPDATE waits out a release.
    await conn.execute("SELECT pg_advisory_xact_lock($1)", OUTBOX_LOCK)
    rows = await conn.fetch(
        "UPDATE outbox SET claimed_by=$1, claim_until=$2 WHERE id IN ("
        "SELECT o.id FROM outbox o WHERE o.done_at IS NULL AND o.next_at <= $3 "
        f"AND {_free('o.claimed_by', 'o.claim_until')} AND NOT EXISTS (SELECT 1 "
        "FROM outbox p WHERE p.run_id = o.run_id AND p.id < o.id AND p.done_at IS NULL "
        f"AND NOT (p.next_at <= $3 AND {_free('p.claimed_by', 'p.claim_until')})) "
        f"ORDER BY o.id LIMIT $5 FOR UPDATE OF o) RETURNING {OUTBOX_COLS}",
        owner,
        claim_until,
        now,
        list(dead),
        limit,
    )
    return [outbox_from_row(r) for r in sorted(rows, key=lambda r: int(r[0]))]


async def settle_outbox(conn: Conn, results: Sequence[OutboxResult], now: float) -> None:
    """Mark delivered messages done; schedule failed ones for a retry."""
    done, later, failed = [], [], []
    for r in results:
        if r.error is None and r.next_at is None:
            done.append((now, dumps(r.done_handlers), r.id))
        elif r.error is None:  # not attempted (an earlier message of its run failed)
            later.append((r.next_at, r.id))
        else:
            failed.append((r.next_at, r.error, dumps(r.done_handlers), r.id))
    if done:
        await conn.executemany(
            "UPDATE outbox SET done_at=$1, done_handlers=$2, attempts=attempts+1, "
            "claimed_by=NULL, claim_until=NULL WHERE id=$3",
            done,
        )
    if later:
        await conn.executemany(
            "UPDATE outbox SET claimed_by=NULL, claim_until=NULL, next_at=$1 WHERE id=$2",
            later,
        )
    if failed:
        await conn.executemany(
            "UPDATE outbox SET attempts=attempts+1, next_at=$1, last_error=$2, "
            "done_handlers=$3, claimed_by=NULL, claim_until=NULL WHERE id=$4",
            failed,
        )
