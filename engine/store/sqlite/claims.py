"""How SQLite workers share work: heartbeats, leases, and claims of runs, timers, outbox.

Each claim is one ``UPDATE ... WHERE id IN (SELECT ...) RETURNING`` with a lease
column. SQLite has one writer at a time (a process takes the write lock with ``BEGIN
IMMEDIATE``), so a claim always sees the previous one: no row locks are needed, and a
claim held by a worker that died lapses by time, or at once once it is known dead.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from typing import Any

from engine.models import OutboxMessage
from engine.store.base import (
    ChangeSpec,
    EventWrite,
    OutboxResult,
    OutboxWrite,
    TimerRow,
    WorkerRow,
)
from engine.store.rows import OUTBOX_COLS, dumps, loads, outbox_from_row
from engine.store.sqlite import ops
from engine.store.sqlite.responders import index_responders
from engine.store.sqlite.write import append


def _free(owner_col: str, until_col: str, dead: Sequence[str]) -> tuple[str, dict[str, Any]]:
    """SQL for "nobody holds this claim": unclaimed, expired, or held by a dead worker."""
    params: dict[str, Any] = {f"dead{i}": d for i, d in enumerate(dead)}
    held_by_dead = ""
    if dead:
        held_by_dead = f" OR {owner_col} IN ({','.join(':' + k for k in params)})"
    return f"({until_col} IS NULL OR {until_col} < :now{held_by_dead})", params


def heartbeat(conn: sqlite3.Connection, worker: WorkerRow, lease_until: float) -> list[WorkerRow]:
    """Upsert the worker row, extend its runs' leases, and list all workers."""
    conn.execute(
        "INSERT INTO workers (id, host, pid, heartbeat_at) VALUES (?, ?, ?, ?) "
        "ON CONFLICT (id) DO UPDATE SET heartbeat_at=excluded.heartbeat_at",
        (worker.id, worker.host, worker.pid, worker.heartbeat_at),
    )
    conn.execute(
        "UPDATE runs SET lease_until=? WHERE owner=? AND status='running'",
        (lease_until, worker.id),
    )
    return [WorkerRow(*r) for r in conn.execute("SELECT id, host, pid, heartbeat_at FROM workers")]


def remove_workers(conn: sqlite3.Connection, ids: Sequence[str]) -> None:
    """Forget workers known to be dead and release their timer and outbox claims."""
    args = [(i,) for i in ids]
    conn.executemany("DELETE FROM workers WHERE id=?", args)
    conn.executemany("UPDATE timers SET claimed_by=NULL, claim_until=NULL WHERE claimed_by=?", args)
    # Only undone messages can hold a claim (finishing one clears it): the condition
    # reads the small outbox_undone index instead of the whole outbox.
    conn.executemany(
        "UPDATE outbox SET claimed_by=NULL, claim_until=NULL "
        "WHERE done_at IS NULL AND claimed_by=?",
        args,
    )


def claim_runs(
    conn: sqlite3.Connection,
    owner: str,
    now: float,
    lease_until: float,
    dead: Sequence[str],
    limit: int,
) -> list[str]:
    """Take over running runs whose lease ran out or whose owner is dead."""
    free, params = _free("owner", "lease_until", dead)
    params.update(me=owner, until=lease_until, now=now, n=limit)
    rows = conn.execute(
        "UPDATE runs SET owner=:me, lease_until=:until WHERE id IN (SELECT id FROM runs "
        f"WHERE status='running' AND {free} LIMIT :n) RETURNING id",
        params,
    ).fetchall()
    return [r[0] for r in rows]


def claim_timers(
    conn: sqlite3.Connection,
    owner: str,
    now: float,
    claim_until: float,
    dead: Sequence[str],
    limit: int,
) -> list[TimerRow]:
    """Claim due timers, earliest first."""
    free, params = _free("claimed_by", "claim_until", dead)
    params.update(me=owner, until=claim_until, now=now, n=limit)
    rows = conn.execute(
        "UPDATE timers SET claimed_by=:me, claim_until=:until WHERE id IN (SELECT id "
        f"FROM timers WHERE due_at <= :now AND {free} ORDER BY due_at LIMIT :n) "
        "RETURNING id, run_id, interrupt_id, kind, due_at, actor",
        params,
    ).fetchall()
    return sorted((TimerRow(*r) for r in rows), key=lambda t: (t.due_at, t.id))


def fire_reminder(
    conn: sqlite3.Connection,
    timer: TimerRow,
    events: list[EventWrite],
    outbox: list[OutboxWrite],
    now: float,
) -> None:
    """Delete the reminder timer and record the reminder, if the interrupt still waits."""
    # Only the caller that deletes the timer records it: a second claimer (after
    # a lapsed claim, or a worker wrongly taken for dead) finds it gone.
    if conn.execute("DELETE FROM timers WHERE id=?", (timer.id,)).rowcount == 0:
        return
    pending = conn.execute(
        "SELECT 1 FROM interrupts WHERE run_id=? AND id=? AND status='pending'",
        (timer.run_id, timer.interrupt_id),
    ).fetchone()
    if pending:
        append(conn, timer.run_id, now, events, outbox)


def fire_escalation(
    conn: sqlite3.Connection, timer: TimerRow, change: ChangeSpec, now: float
) -> bool:
    """Delete the escalation timer and apply ``change``, if the interrupt still waits."""
    # As with reminders, only the caller that deletes the timer applies it.
    if conn.execute("DELETE FROM timers WHERE id=?", (timer.id,)).rowcount == 0:
        return False
    found = ops.interrupts(
        conn,
        "i.run_id = ? AND i.id = ? AND i.status = 'pending'",
        (timer.run_id, timer.interrupt_id),
    )
    if not found:
        return False
    (spec_text,) = conn.execute(
        "SELECT spec_json FROM interrupts WHERE run_id=? AND id=?",
        (timer.run_id, timer.interrupt_id),
    ).fetchone()
    changed = change(found[0], loads(spec_text))
    if changed is None:
        return False
    conn.execute(
        "UPDATE interrupts SET spec_json=? WHERE run_id=? AND id=?",
        (dumps(changed.spec), timer.run_id, timer.interrupt_id),
    )
    # Whoever the escalation added may answer at once: the "what may I answer" index too.
    index_responders(conn, timer.run_id, timer.interrupt_id, changed.spec.get("responders", []))
    append(conn, timer.run_id, now, changed.events, changed.outbox)
    return True


def claim_outbox(
    conn: sqlite3.Connection,
    owner: str,
    now: float,
    claim_until: float,
    dead: Sequence[str],
    limit: int,
) -> list[tuple[OutboxMessage, list[str]]]:
    """Claim deliverable messages; a run's later message waits for its earlier ones."""
    free_o, params = _free("o.claimed_by", "o.claim_until", dead)
    free_p, _ = _free("p.claimed_by", "p.claim_until", dead)
    params.update(me=owner, until=claim_until, now=now, n=limit)
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


def settle_outbox(conn: sqlite3.Connection, results: Sequence[OutboxResult], now: float) -> None:
    """Mark delivered messages done; schedule failed ones for a retry."""
    for r in results:
        handlers = dumps(r.done_handlers)
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
