"""What a state change inserts in the SQLite store: a step's record with its interrupts
(and their rows in the responder index), timers, history and outbox rows.

Each function runs inside the operation's savepoint (see ``batching``), so a write is
all or nothing, and rows get their ids in the order the engine listed them.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence

from engine.escalation import timer_kind
from engine.store.base import EventWrite, OutboxWrite, StepWrite
from engine.store.rows import ANYONE, encode_data, spec_json


def append(
    conn: sqlite3.Connection,
    run_id: str,
    now: float,
    events: Sequence[EventWrite],
    outbox: Sequence[OutboxWrite],
) -> None:
    """Add history entries and outbox messages to a run."""
    events_json, outbox_json = encode_data(events, outbox)
    if events:
        conn.executemany(
            "INSERT INTO events (run_id, at, type, data) VALUES (?, ?, ?, ?)",
            [(run_id, e.at or now, e.type, d) for e, d in zip(events, events_json, strict=True)],
        )
    if outbox:
        conn.executemany(
            "INSERT INTO outbox (run_id, interrupt_id, topic, data, created_at, next_at) "
            "VALUES (?, ?, ?, ?, ?, ?)",
            [
                (run_id, o.interrupt_id, o.topic, d, now, now)
                for o, d in zip(outbox, outbox_json, strict=True)
            ],
        )


def write_steps(
    conn: sqlite3.Connection,
    run_id: str,
    steps: Sequence[StepWrite],
    now: float,
    events: Sequence[EventWrite] = (),
    outbox: Sequence[OutboxWrite] = (),
) -> None:
    """Record steps' results with the interrupts they opened, their responder-index rows,
    timers, events and outbox rows, then ``events`` and ``outbox``: one statement per
    table.

    Rows get their ids in the order listed (the steps' in order, then the extra ones);
    a later write of the same path replaces an earlier one, as separate writes would.
    """
    step_rows = []
    interrupt_rows = []
    timer_rows: list[tuple[str, str, str, float]] = []
    responder_rows: list[tuple[object, ...]] = []
    all_events: list[EventWrite] = []
    all_outbox: list[OutboxWrite] = []
    for step in steps:
        step_rows.append(
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
            )
        )
        for spec in step.interrupts:
            interrupt_rows.append(
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
                )
            )
            responder_rows += [
                (run_id, spec.id, who, spec.kind.value, run_id, int(spec.allow_requester), now)
                for who in (spec.responders or [ANYONE])
            ]
            timer_rows += [(run_id, spec.id, "reminder", t) for t in spec.reminders]
            timer_rows += [
                (run_id, spec.id, timer_kind(n), e["due_at"])
                for n, e in enumerate(spec.escalations)
            ]
            if spec.expires_at is not None:
                timer_rows.append((run_id, spec.id, "expiry", spec.expires_at))
        all_events += step.events
        all_outbox += step.outbox
    if step_rows:
        conn.executemany(
            "INSERT OR REPLACE INTO steps (run_id, path, name, status, output_json, "
            "error_json, attempts, started_at, finished_at) VALUES (?,?,?,?,?,?,?,?,?)",
            step_rows,
        )
    if interrupt_rows:
        # The responder index's rows first: the insert trigger (migration 0006) then finds
        # them and skips its own slower pass over the spec's JSON.
        conn.executemany(
            "INSERT OR IGNORE INTO interrupt_responders (run_id, interrupt_id, responder, kind, "
            "pending, requester, allow_requester, created_at, resolved_at) "
            "VALUES (?, ?, ?, ?, 1, (SELECT requester FROM runs WHERE id = ?), ?, ?, NULL)",
            responder_rows,
        )
        conn.executemany(
            "INSERT INTO interrupts (run_id, id, path, step, kind, status, spec_json, "
            "expires_at, created_at, label) VALUES (?, ?, ?, ?, ?, 'pending', ?, ?, ?, ?)",
            interrupt_rows,
        )
    if timer_rows:
        conn.executemany(
            "INSERT INTO timers (run_id, interrupt_id, kind, due_at) VALUES (?, ?, ?, ?)",
            timer_rows,
        )
    append(conn, run_id, now, [*all_events, *events], [*all_outbox, *outbox])
