"""What a state change inserts in the SQLite store: a step's record with its interrupts,
timers, history and outbox rows.

Each function runs inside the operation's savepoint (see ``batching``), so a write is
all or nothing, and rows get their ids in the order the engine listed them.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence

from engine.escalation import timer_kind
from engine.store.base import EventWrite, OutboxWrite, StepWrite
from engine.store.rows import dumps, spec_json


def append(
    conn: sqlite3.Connection,
    run_id: str,
    now: float,
    events: Sequence[EventWrite],
    outbox: Sequence[OutboxWrite],
) -> None:
    """Add history entries and outbox messages to a run."""
    if events:
        conn.executemany(
            "INSERT INTO events (run_id, at, type, data) VALUES (?, ?, ?, ?)",
            [(run_id, e.at or now, e.type, dumps(e.data)) for e in events],
        )
    if outbox:
        conn.executemany(
            "INSERT INTO outbox (run_id, interrupt_id, topic, data, created_at, next_at) "
            "VALUES (?, ?, ?, ?, ?, ?)",
            [(run_id, o.interrupt_id, o.topic, dumps(o.data), now, now) for o in outbox],
        )


def write_step(conn: sqlite3.Connection, run_id: str, step: StepWrite, now: float) -> None:
    """Record a step's result with the interrupts it opened, their timers, events, outbox."""
    conn.execute(
        "INSERT OR REPLACE INTO steps (run_id, path, name, status, output_json, "
        "error_json, attempts, started_at, finished_at) VALUES (?,?,?,?,?,?,?,?,?)",
        (
            run_id,
            step.path,
            step.name,
            step.status,
            step.output_json,
            step.error_json,
            step.attempts,
            step.started_at,
            step.finished_at,
        ),
    )
    for spec in step.interrupts:
        conn.execute(
            "INSERT INTO interrupts (run_id, id, path, step, kind, status, spec_json, "
            "expires_at, created_at, label) VALUES (?, ?, ?, ?, ?, 'pending', ?, ?, ?, ?)",
            (
                run_id,
                spec.id,
                step.path,
                step.name,
                spec.kind.value,
                spec_json(spec),
                spec.expires_at,
                now,
                spec.label,
            ),
        )
        timers = [(run_id, spec.id, "reminder", t) for t in spec.reminders]
        timers += [
            (run_id, spec.id, timer_kind(n), e["due_at"]) for n, e in enumerate(spec.escalations)
        ]
        if spec.expires_at is not None:
            timers.append((run_id, spec.id, "expiry", spec.expires_at))
        if timers:
            conn.executemany(
                "INSERT INTO timers (run_id, interrupt_id, kind, due_at) VALUES (?, ?, ?, ?)",
                timers,
            )
    append(conn, run_id, now, step.events, step.outbox)
