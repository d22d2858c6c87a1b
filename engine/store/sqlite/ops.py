"""SQL building blocks of the SQLite store, each run on the connection it is given.

They run on the connection's thread inside an operation (see ``batching``); writers
among them expect the operation's transaction, which holds SQLite's one write lock,
so nothing else changes the run between their statements.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from typing import Any

from engine.errors import StoreError
from engine.models import Event, Interrupt, InterruptStatus, Response, Run, StepRecord
from engine.store.base import LeftoverBuilder, LostOwnership, Resolution, RunState
from engine.store.rows import (
    RUN_COLS,
    STEP_COLS,
    event_from_row,
    interrupt_from_row,
    response_from_row,
    run_from_row,
    step_from_row,
)
from engine.store.sqlite.write import append

INT_COLS = (
    "i.run_id, i.id, i.path, i.step, i.kind, i.status, i.spec_json, i.expires_at, "
    "i.created_at, i.resolved_at, i.resolved_by, i.data_json, i.refs_json, "
    "r.workflow, r.version, r.requester"
)


def run_row(conn: sqlite3.Connection, run_id: str) -> Any:
    """The run's row (``RUN_COLS``), or None."""
    return conn.execute(f"SELECT {RUN_COLS} FROM runs WHERE id=?", (run_id,)).fetchone()


def responses(conn: sqlite3.Connection, run_id: str) -> dict[str, list[Response]]:
    """A run's responses, by interrupt id, oldest first."""
    out: dict[str, list[Response]] = {}
    for iid, actor, data, approved, at in conn.execute(
        "SELECT interrupt_id, actor, data_json, approved, at FROM responses "
        "WHERE run_id=? ORDER BY at",
        (run_id,),
    ):
        out.setdefault(iid, []).append(response_from_row(actor, data, approved, at))
    return out


def interrupts(
    conn: sqlite3.Connection, where: str, args: Sequence[Any], limit: int = -1, offset: int = 0
) -> list[Interrupt]:
    """Interrupts matching ``where`` (over ``i`` interrupts and ``r`` runs), oldest first."""
    rows = conn.execute(
        f"SELECT {INT_COLS} FROM interrupts i JOIN runs r ON r.id = i.run_id "
        f"WHERE {where} ORDER BY i.created_at, i.id LIMIT ? OFFSET ?",
        (*args, limit, offset),
    ).fetchall()
    by_run: dict[str, dict[str, list[Response]]] = {}
    result = []
    for row in rows:
        if row[0] not in by_run:
            by_run[row[0]] = responses(conn, row[0])
        result.append(interrupt_from_row(row, by_run[row[0]].get(row[1], [])))
    return result


def load_state(
    conn: sqlite3.Connection,
    run_id: str,
    known: Interrupt | None = None,
    run: tuple[Run, int] | None = None,
) -> RunState | None:
    """Read a run for driving; ``known`` is an interrupt of it already read in this op,
    ``run`` the run and its ``wake_seq`` as this op left them (not read again)."""
    if run is None:
        row = run_row(conn, run_id)
        if row is None:
            return None
        run = (run_from_row(row), row[10])
    steps: dict[str, StepRecord] = {}
    outputs: dict[str, str | None] = {}
    for step_row in conn.execute(f"SELECT {STEP_COLS} FROM steps WHERE run_id=?", (run_id,)):
        steps[step_row[0]] = step_from_row(step_row)
        outputs[step_row[0]] = step_row[3]  # output JSON, decoded only where it is read
    if known is None:
        found = {i.id: i for i in interrupts(conn, "i.run_id = ?", (run_id,))}
    else:
        others = interrupts(conn, "i.run_id = ? AND i.id <> ?", (run_id, known.id))
        found = {i.id: i for i in others}
        found[known.id] = known
    return RunState(
        run=run[0],
        wake_seq=run[1],
        steps=steps,
        step_outputs=outputs,
        interrupts=found,
    )


def events(conn: sqlite3.Connection, run_id: str, after_id: int, limit: int) -> list[Event]:
    """A run's history entries with ids above ``after_id`` (``limit`` -1: all)."""
    return [
        event_from_row(run_id, r)
        for r in conn.execute(
            "SELECT id, at, type, data FROM events WHERE run_id=? AND id>? ORDER BY id LIMIT ?",
            (run_id, after_id, limit),
        )
    ]


def cancel_pending(
    conn: sqlite3.Connection,
    run: Run,
    now: float,
    build: LeftoverBuilder | None,
    by: str | None = None,
) -> None:
    """Resolve a finished run's pending interrupts as cancelled (``by`` the actor, else
    ``'system'``) and drop their timers."""
    # `+i.status` keeps SQLite on the primary key (run_id, id); the status index would
    # scan every pending interrupt of every run.
    pending = interrupts(conn, "i.run_id = ? AND +i.status = 'pending'", (run.id,))
    if not pending:
        return
    conn.execute(
        "UPDATE interrupts SET status='cancelled', resolved_at=?, resolved_by=? "
        "WHERE run_id=? AND status='pending'",
        (now, by or "system", run.id),
    )
    conn.execute("DELETE FROM timers WHERE run_id=?", (run.id,))
    if build is not None:
        events, outbox = build(run, pending)
        append(conn, run.id, now, events, outbox)


def has_pending(conn: sqlite3.Connection, run_id: str) -> bool:
    """Whether the run has a pending interrupt (a primary-key range read)."""
    # `+status`: stay on the primary key (see cancel_pending).
    return (
        conn.execute(
            "SELECT 1 FROM interrupts WHERE run_id=? AND +status='pending' LIMIT 1", (run_id,)
        ).fetchone()
        is not None
    )


def check_owner(conn: sqlite3.Connection, run_id: str, owner: str, now: float) -> None:
    """Fence: raise LostOwnership unless ``owner`` still drives the running run."""
    cur = conn.execute(
        "UPDATE runs SET updated_at=? WHERE id=? AND owner=? AND status='running'",
        (now, run_id, owner),
    )
    if cur.rowcount != 1:
        raise LostOwnership(run_id)


def apply_resolution(
    conn: sqlite3.Connection,
    run_id: str,
    before: Interrupt,
    res: Resolution,
    now: float,
    claim: tuple[str, float] | None,
) -> None:
    """Write what ``decide`` returned for ``before`` (the interrupt as read in this op).

    Records the response, history and outbox; if final, closes the interrupt, drops its
    timers, bumps the run's ``wake_seq`` and, with a ``claim`` (owner, lease end: the
    caller saw the run parked in this op), takes the run over.
    """
    interrupt_id = before.id
    if res.response_actor is not None:
        conn.execute(
            "INSERT INTO responses (run_id, interrupt_id, actor, data_json, approved, at) "
            "VALUES (?, ?, ?, ?, ?, ?)",
            (
                run_id,
                interrupt_id,
                res.response_actor,
                res.response_json,
                res.response_approved,
                now,
            ),
        )
    append(conn, run_id, now, res.events, res.outbox)
    if res.status is InterruptStatus.PENDING:
        return
    cur = conn.execute(
        "UPDATE interrupts SET status=?, resolved_at=?, resolved_by=?, data_json=? "
        "WHERE run_id=? AND id=? AND status='pending'",
        (res.status.value, now, res.resolved_by, res.data_json, run_id, interrupt_id),
    )
    if cur.rowcount != 1:  # decide() saw it pending inside this very transaction
        raise StoreError(f"interrupt {run_id}/{interrupt_id} changed underneath")
    if before.expires_at is not None or before.reminders or before.escalations:
        # Timers exist only for these (written with the interrupt, in write_steps).
        conn.execute("DELETE FROM timers WHERE run_id=? AND interrupt_id=?", (run_id, interrupt_id))
    if claim is None:
        conn.execute("UPDATE runs SET wake_seq=wake_seq+1, updated_at=? WHERE id=?", (now, run_id))
    else:
        conn.execute(
            "UPDATE runs SET wake_seq=wake_seq+1, updated_at=?, status='running', owner=?, "
            "lease_until=? WHERE id=?",
            (now, *claim, run_id),
        )
