"""One-statement writes for the PostgreSQL store, built as data-modifying CTEs.

A state change inserts into up to five tables (steps, interrupts, timers, events,
outbox). Sent one ``INSERT`` at a time that is a round trip each, and round trips,
not the statements, are what a PostgreSQL store spends its time on. So the inserts
ride along with the statement that guards them: each one selects its run id from a
CTE named ``run`` (the fencing ``UPDATE ... RETURNING id``, the new run's ``INSERT``,
or a plain id), so nothing is written when the guard matched no row, and a single
statement is atomic without an explicit transaction.

Rows come from ``unnest`` over one array per column and are inserted ``ORDER BY``
their position, so ids are allocated in the order the engine listed the rows.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from engine.escalation import timer_kind
from engine.store.base import EventWrite, OutboxWrite, StepWrite
from engine.store.rows import encode_data, spec_json


class Params:
    """Numbered query parameters (``$1``, ``$2``, ...) collected while SQL is built."""

    def __init__(self, *values: Any) -> None:
        self.values: list[Any] = list(values)

    def add(self, value: Any, cast: str = "") -> str:
        """Append a value and return its placeholder (with a ``::cast`` if given)."""
        self.values.append(value)
        return f"${len(self.values)}" + (f"::{cast}" if cast else "")


Column = tuple[str, str, list[Any]]
"""A column to unnest: its name, its element type, its values."""


def _unnest(p: Params, columns: Sequence[Column]) -> str:
    """``unnest(...) WITH ORDINALITY AS x(col, ..., n)`` over one array per column."""
    arrays = ", ".join(p.add(values, f"{cast}[]") for _, cast, values in columns)
    names = ", ".join(name for name, _, _ in columns)
    return f"unnest({arrays}) WITH ORDINALITY AS x({names}, n)"


def write_ctes(
    p: Params,
    now: float,
    steps: Sequence[StepWrite] = (),
    events: Sequence[EventWrite] = (),
    outbox: Sequence[OutboxWrite] = (),
) -> list[str]:
    """CTEs writing ``steps`` (with their interrupts, timers, events and outbox rows),
    then ``events`` and ``outbox``, for the run the CTE ``run`` yields."""
    now_ps: list[str] = []

    def now_p() -> str:  # added on first use: PostgreSQL refuses unreferenced parameters
        if not now_ps:
            now_ps.append(p.add(now, "float8"))
        return now_ps[0]

    ctes: list[str] = []
    cols: list[Column]
    # The last write of a path wins, as with SQLite's INSERT OR REPLACE (and one upsert
    # statement may not touch a row twice).
    latest = list({s.path: s for s in steps}.values())
    if latest:
        cols = [
            ("path", "text", [s.path for s in latest]),
            ("name", "text", [s.name for s in latest]),
            ("status", "text", [s.status for s in latest]),
            ("output_json", "text", [s.output_json for s in latest]),
            ("error_json", "text", [s.error_json for s in latest]),
            ("attempts", "int4", [s.attempts for s in latest]),
            ("started_at", "float8", [s.started_at for s in latest]),
            ("finished_at", "float8", [s.finished_at for s in latest]),
        ]
        names = ", ".join(c[0] for c in cols)
        updates = ", ".join(f"{c[0]}=excluded.{c[0]}" for c in cols[1:])
        ctes.append(
            f"w_steps AS (INSERT INTO steps (run_id, {names}) "
            f"SELECT run.id, {', '.join('x.' + c[0] for c in cols)} FROM run, {_unnest(p, cols)} "
            f"ORDER BY x.n ON CONFLICT (run_id, path) DO UPDATE SET {updates})"
        )
    specs = [(s, spec) for s in steps for spec in s.interrupts]
    if specs:
        cols = [
            ("id", "text", [spec.id for _, spec in specs]),
            ("path", "text", [s.path for s, _ in specs]),
            ("step", "text", [s.name for s, _ in specs]),
            ("kind", "text", [spec.kind.value for _, spec in specs]),
            ("spec_json", "text", [spec_json(spec) for _, spec in specs]),
            ("expires_at", "float8", [spec.expires_at for _, spec in specs]),
            ("label", "text", [spec.label for _, spec in specs]),
        ]
        names = ", ".join(c[0] for c in cols)
        ctes.append(
            f"w_interrupts AS (INSERT INTO interrupts (run_id, {names}, status, created_at) "
            f"SELECT run.id, {', '.join('x.' + c[0] for c in cols)}, 'pending', {now_p()} "
            f"FROM run, {_unnest(p, cols)} ORDER BY x.n)"
        )
    timers: list[tuple[str, str, float]] = []
    for _, spec in specs:
        timers.extend((spec.id, "reminder", t) for t in spec.reminders)
        timers.extend((spec.id, timer_kind(n), e["due_at"]) for n, e in enumerate(spec.escalations))
        if spec.expires_at is not None:
            timers.append((spec.id, "expiry", spec.expires_at))
    if timers:
        cols = [
            ("interrupt_id", "text", [t[0] for t in timers]),
            ("kind", "text", [t[1] for t in timers]),
            ("due_at", "float8", [t[2] for t in timers]),
        ]
        ctes.append(
            "w_timers AS (INSERT INTO timers (run_id, interrupt_id, kind, due_at) "
            f"SELECT run.id, x.interrupt_id, x.kind, x.due_at FROM run, {_unnest(p, cols)} "
            "ORDER BY x.n)"
        )
    all_events = [e for s in steps for e in s.events] + list(events)
    all_outbox = [o for s in steps for o in s.outbox] + list(outbox)
    events_json, outbox_json = encode_data(all_events, all_outbox)
    if all_events:
        cols = [
            ("at", "float8", [e.at or now for e in all_events]),
            ("type", "text", [str(e.type) for e in all_events]),
            ("data", "text", events_json),
        ]
        ctes.append(
            "w_events AS (INSERT INTO events (run_id, at, type, data) "
            f"SELECT run.id, x.at, x.type, x.data FROM run, {_unnest(p, cols)} ORDER BY x.n)"
        )
    if all_outbox:
        cols = [
            ("interrupt_id", "text", [o.interrupt_id for o in all_outbox]),
            ("topic", "text", [o.topic for o in all_outbox]),
            ("data", "text", outbox_json),
        ]
        ctes.append(
            "w_outbox AS (INSERT INTO outbox (run_id, interrupt_id, topic, data, created_at, "
            f"next_at) SELECT run.id, x.interrupt_id, x.topic, x.data, {now_p()}, {now_p()} "
            f"FROM run, {_unnest(p, cols)} ORDER BY x.n)"
        )
    return ctes


def guarded(run_cte: str, ctes: Sequence[str], select: str) -> str:
    """``WITH run AS (<run_cte>), <ctes> <select>``: the whole write as one statement."""
    return "WITH " + ", ".join([f"run AS ({run_cte})", *ctes]) + f" {select}"
