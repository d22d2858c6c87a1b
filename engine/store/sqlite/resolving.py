"""Resolves of many runs in one pass: a dozen statements for a whole burst of answers.

A resolve alone (``ResolveOp`` called with the connection) runs about eleven
statements: read the run, the interrupt and the run's answers, write the answer, the
history, the outbox, the interrupt, the run, then read the run's steps and other
interrupts to take it over. Under a burst the write batch runs on the connection's
thread beside a busy event loop, and that thread gives up the GIL at every statement
step and must win it back from the loop each time: a burst's resolves crawled at
0.3-1.85 ms each while clicks were still arriving (docs/perf-history.md, "Eighth
pass"), against about 0.2 ms alone.

So the write batch (``batching.run_batch``) hands queued resolves of distinct runs to
``resolve_together`` (``passes``), which does the same work for all of them with a
fixed number of statements, each one step: every read returns its rows as one JSON array
(``json_group_array``), every write takes its rows as one JSON array (``json_each``).
Times cross as JSON text at 17 significant digits (``printf('%!.17g')`` out, the
shortest round-trip repr in), which converts back to the very same double. A pass of 200
answers takes about 18 ms (89 us each, 6 of the 18 ms in SQLite); ``bench/engine.py``
resumed 10.5% more runs per second with it (docs/perf-history.md, "Ninth pass").

The outcome equals running the resolves one after another: each touches only its own
run's rows, and two resolves of one run never share a pass (the second goes into the
next one, so it sees the first one's answer). A ``decide`` that raises, or a run or
interrupt that does not exist, fails only its own resolve and writes nothing for it.
Anything else that goes wrong (a statement refused, an interrupt no longer pending)
raises, and ``run_batch`` rolls the batch back and runs it again one operation at a
time, each resolve alone.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from engine.errors import StoreError
from engine.models import Interrupt, InterruptStatus, Response, Run, RunStatus, StepRecord
from engine.store.base import Resolution, ResolveResult, RunState
from engine.store.deciding import QueuedResolve
from engine.store.rows import (
    dt,
    dumps,
    encode_data,
    interrupt_from_row,
    loads,
    replace,
    resolved_interrupt,
    response_from_row,
    step_from_row,
)
from engine.store.sqlite import ops

Outcome = tuple[bool, Any]
"""An operation's result as ``run_batch`` hands it on: (True, value) or (False, error)."""


def _real(col: str) -> str:
    """SQL of a REAL column as JSON text that converts back to the same double."""
    return f"iif({col} IS NULL, NULL, printf('%!.17g', {col}))"


def _rows(json_rows: str, reals: Sequence[int]) -> list[list[Any]]:
    """Rows from a ``json_group_array`` of ``json_array``s, with the ``reals`` columns
    (sent as text by ``_real``) turned back into floats."""
    rows: list[list[Any]] = loads(json_rows)
    for row in rows:
        for n in reals:
            if row[n] is not None:
                row[n] = float(row[n])
    return rows


def _each(cols: str, *, in_order: bool = False) -> str:
    """SQL selecting ``cols`` (comma-separated names) from a JSON array of arrays;
    ``in_order`` where rows get their ids in that order (events, outbox)."""
    names = [c.strip() for c in cols.split(",")]
    picks = ", ".join(f"json_extract(value, '$[{n}]') AS {c}" for n, c in enumerate(names))
    return f"SELECT {picks} FROM json_each(?)" + (" ORDER BY key" if in_order else "")


_IN_RUNS = "IN (SELECT value FROM json_each(?))"
# A parked run's every interrupt and answer (its take-over needs them, as
# `ops.load_state`); of a run being driven, only the interrupts answered (a run asking
# many people at once gets their answers in many passes: each reads only its own).
_WANTED = (
    "(r.status = 'suspended' OR ({run}, {id}) IN "
    "(SELECT json_extract(value, '$[0]'), json_extract(value, '$[1]') FROM json_each(?)))"
)

_RUNS = (
    "SELECT json_group_array(json_array(id, workflow, version, status, input_json, "
    f"output_json, error_json, requester, {_real('created_at')}, {_real('updated_at')}, "
    f"wake_seq)) FROM runs WHERE id {_IN_RUNS}"
)
_INTERRUPTS = (
    "SELECT json_group_array(json_array(i.run_id, i.id, i.path, i.step, i.kind, i.status, "
    f"i.spec_json, {_real('i.expires_at')}, {_real('i.created_at')}, "
    f"{_real('i.resolved_at')}, i.resolved_by, i.data_json, i.refs_json, r.workflow, "
    f"r.version, r.requester)) FROM interrupts i JOIN runs r ON r.id = i.run_id "
    f"WHERE i.run_id {_IN_RUNS} AND {_WANTED.format(run='i.run_id', id='i.id')}"
)
_RESPONSES = (
    "SELECT json_group_array(json_array(a.run_id, a.interrupt_id, a.actor, a.data_json, "
    f"a.approved, {_real('a.at')})) FROM responses a JOIN runs r ON r.id = a.run_id "
    f"WHERE a.run_id {_IN_RUNS} AND {_WANTED.format(run='a.run_id', id='a.interrupt_id')}"
)
_STEPS = (
    "SELECT json_group_array(json_array(run_id, path, name, status, output_json, "
    f"error_json, attempts, {_real('started_at')}, {_real('finished_at')})) "
    f"FROM steps WHERE run_id {_IN_RUNS}"
)

_ADD_RESPONSES = (
    "INSERT INTO responses (run_id, interrupt_id, actor, data_json, approved, at) "
    + _each("run_id, interrupt_id, actor, data_json, approved, at")
)
_ADD_EVENTS = "INSERT INTO events (run_id, at, type, data) " + _each(
    "run_id, at, type, data", in_order=True
)
_ADD_OUTBOX = (
    "INSERT INTO outbox (run_id, interrupt_id, topic, data, created_at, next_at) "
    + _each("run_id, interrupt_id, topic, data, created_at, next_at", in_order=True)
)
CLOSE_INTERRUPTS = (  # public for the test that pins its plan
    "UPDATE interrupts SET status = j.status, resolved_at = j.at, "
    "resolved_by = j.resolved_by, data_json = j.data_json "
    f"FROM ({_each('run_id, id, status, at, resolved_by, data_json')}) AS j "
    "WHERE interrupts.run_id = j.run_id AND interrupts.id = j.id "
    # `+`: by primary key, one row per answer. Given the status index, SQLite walked
    # every pending interrupt and, for each, the whole JSON array (19 ms for 200).
    "AND +interrupts.status = 'pending'"
)
_DROP_TIMERS = (
    "DELETE FROM timers WHERE (run_id, interrupt_id) IN "
    "(SELECT json_extract(value, '$[0]'), json_extract(value, '$[1]') FROM json_each(?))"
)
# A run taken over (``owner`` set) becomes running with the new owner and lease; one
# being driven only sees its ``wake_seq`` move, as in ``ops.apply_resolution``.
_WAKE_RUNS = (
    "UPDATE runs SET wake_seq = wake_seq + 1, updated_at = j.at, "
    "status = iif(j.owner IS NULL, runs.status, 'running'), "
    "owner = iif(j.owner IS NULL, runs.owner, j.owner), "
    "lease_until = iif(j.owner IS NULL, runs.lease_until, j.lease_until) "
    f"FROM ({_each('id, at, owner, lease_until')}) AS j WHERE runs.id = j.id"
)


@dataclass
class ResolveOp(QueuedResolve):
    """One queued ``Store.resolve``: an operation of its own (``op(conn)``), which
    ``run_batch`` may run together with its neighbours (``resolve_together``)."""

    def __call__(self, conn: sqlite3.Connection) -> ResolveResult:
        """Resolve alone: apply ``decide``; take the run over if it is parked."""
        row = ops.run_row(conn, self.run_id)
        where = "i.run_id = ? AND i.id = ?"
        found = ops.interrupts(conn, where, (self.run_id, self.interrupt_id)) if row else []
        run, before, res, at = self.decide_on(row, found[0] if found else None)
        assert row is not None  # decide_on raised otherwise
        # This operation holds the write lock: the run's status read above is current.
        claim = (self.claim_owner, self.lease_until) if run.status is RunStatus.SUSPENDED else None
        ops.apply_resolution(conn, self.run_id, before, res, at, claim)
        after = resolved_interrupt(before, res, at)
        claimed = None
        if claim is not None and res.status is not InterruptStatus.PENDING:
            # Taken over: the run as just written, without reading its row again.
            taken = replace(run, {"status": RunStatus.RUNNING, "updated_at": dt(at)})
            claimed = ops.load_state(conn, self.run_id, known=after, run=(taken, row[10] + 1))
        return ResolveResult(interrupt=after, claimed=claimed)


def passes(queued: Sequence[Callable[[sqlite3.Connection], Any]]) -> Iterator[list[int]]:
    """The positions in ``queued`` in the order to run them: each other operation alone,
    and each stretch of consecutive ``ResolveOp``s in passes of distinct runs (for
    ``resolve_together``): a run's first resolve in the stretch goes in the first pass,
    its second in the second, and so on. Only resolves of one run depend on each other's
    order, and they keep it."""
    stretch: list[list[int]] = []  # the passes of the current stretch
    seen: dict[str, int] = {}  # run id -> how many of its resolves the stretch holds
    for n, op in enumerate(queued):
        if isinstance(op, ResolveOp):
            k = seen.get(op.run_id, 0)
            seen[op.run_id] = k + 1
            if k == len(stretch):
                stretch.append([])
            stretch[k].append(n)
            continue
        yield from stretch
        stretch, seen = [], {}
        yield [n]
    yield from stretch


def run_in_passes(
    conn: sqlite3.Connection, queued: Sequence[Callable[[sqlite3.Connection], Any]]
) -> list[Outcome]:
    """Run ``queued`` (``run_batch``'s first try), resolves of distinct runs together:
    the outcomes in queue order. What an operation run alone raises propagates."""
    results: list[Outcome] = [(False, None)] * len(queued)
    for indexes in passes(queued):
        if len(indexes) == 1:
            results[indexes[0]] = (True, queued[indexes[0]](conn))
            continue
        calls = [op for op in (queued[n] for n in indexes) if isinstance(op, ResolveOp)]
        for n, outcome in zip(indexes, resolve_together(conn, calls), strict=True):
            results[n] = outcome
    return results


@dataclass
class _Decided:
    """A resolve whose ``decide`` returned: what it writes and returns."""

    call: ResolveOp
    after: Interrupt
    taken: bool
    run: Run
    wake_seq: int


def resolve_together(conn: sqlite3.Connection, calls: list[ResolveOp]) -> list[Outcome]:
    """Run ``calls`` (each of a different run) as if one after another; their outcomes."""
    asked = dumps([[c.run_id, c.interrupt_id] for c in calls])
    runs, interrupts = _read(conn, dumps(sorted({c.run_id for c in calls})), asked)
    outcomes: list[Outcome] = []
    decided: dict[int, _Decided] = {}
    writes = _Writes()
    for n, call in enumerate(calls):
        row = runs.get(call.run_id)
        found = interrupts.get(call.run_id, {}).get(call.interrupt_id)
        try:
            run, found, res, at = call.decide_on(row, found)
        except Exception as exc:  # this resolve fails alone, having written nothing
            outcomes.append((False, exc))
            continue
        assert row is not None  # decide_on raised otherwise
        taken = res.status is not InterruptStatus.PENDING and run.status is RunStatus.SUSPENDED
        writes.add(call, found, res, at, taken)
        after = resolved_interrupt(found, res, at)
        decided[n] = _Decided(call, after, taken, run, row[10])
        outcomes.append((True, ResolveResult(interrupt=after, claimed=None)))
    writes.run(conn)
    _take_over(conn, decided, interrupts, outcomes)
    return outcomes


def _read(
    conn: sqlite3.Connection, run_ids: str, asked: str
) -> tuple[dict[str, list[Any]], dict[str, dict[str, Interrupt]]]:
    """The runs ``run_ids`` (a JSON array; rows of ``RUN_COLS``) and, by run id, the
    interrupts ``asked`` ([run id, interrupt id] pairs) with every other interrupt of a
    parked run, as ``ResolveOp`` reads them: oldest first, each with its answers oldest
    first."""
    runs = {r[0]: r for r in _rows(conn.execute(_RUNS, (run_ids,)).fetchone()[0], (8, 9))}
    answers: dict[tuple[str, str], list[tuple[float, Response]]] = {}
    for r in _rows(conn.execute(_RESPONSES, (run_ids, asked)).fetchone()[0], (5,)):
        answers.setdefault((r[0], r[1]), []).append((r[5], response_from_row(*r[2:])))
    interrupts: dict[str, dict[str, Interrupt]] = {}
    found = _rows(conn.execute(_INTERRUPTS, (run_ids, asked)).fetchone()[0], (7, 8, 9))
    for r in sorted(found, key=lambda r: (r[8], r[1])):
        # A stable sort keeps answers given at the same time in the order read.
        given = [a for _, a in sorted(answers.get((r[0], r[1]), []), key=lambda a: a[0])]
        interrupts.setdefault(r[0], {})[r[1]] = interrupt_from_row(r, given)
    return runs, interrupts


@dataclass
class _Writes:
    """The rows a group's resolves write, one JSON array per statement
    (``ops.apply_resolution``'s statements, for many resolves at once)."""

    responses: list[list[Any]] = field(default_factory=list)
    events: list[list[Any]] = field(default_factory=list)
    outbox: list[list[Any]] = field(default_factory=list)
    closed: list[list[Any]] = field(default_factory=list)
    timers: list[list[str]] = field(default_factory=list)
    woken: list[list[Any]] = field(default_factory=list)

    def add(
        self, call: ResolveOp, before: Interrupt, res: Resolution, at: float, taken: bool
    ) -> None:
        """Add what ``res`` writes for ``before`` (``taken``: the run is taken over)."""
        run_id, interrupt_id = call.run_id, call.interrupt_id
        if res.response_actor is not None:
            self.responses.append(
                [run_id, interrupt_id, res.response_actor, res.response_json]
                + [res.response_approved, at]
            )
        events_json, outbox_json = encode_data(res.events, res.outbox)
        for e, d in zip(res.events, events_json, strict=True):
            self.events.append([run_id, e.at or at, e.type, d])
        for o, d in zip(res.outbox, outbox_json, strict=True):
            self.outbox.append([run_id, o.interrupt_id, o.topic, d, at, at])
        if res.status is InterruptStatus.PENDING:
            return
        self.closed.append(
            [run_id, interrupt_id, res.status.value, at, res.resolved_by, res.data_json]
        )
        if before.expires_at is not None or before.reminders or before.escalations:
            self.timers.append([run_id, interrupt_id])  # timers exist only for these
        claim = [call.claim_owner, call.lease_until] if taken else [None, None]
        self.woken.append([run_id, at, *claim])

    def run(self, conn: sqlite3.Connection) -> None:
        """Write the rows: one statement per table."""
        for sql, rows in (
            (_ADD_RESPONSES, self.responses),
            (_ADD_EVENTS, self.events),
            (_ADD_OUTBOX, self.outbox),
            (_DROP_TIMERS, self.timers),
        ):
            if rows:
                conn.execute(sql, (dumps(rows),))
        if self.closed:
            cur = conn.execute(CLOSE_INTERRUPTS, (dumps(self.closed),))
            if cur.rowcount != len(self.closed):  # each `decide` saw its interrupt pending
                raise StoreError("an interrupt changed underneath a batch of resolves")
        if self.woken:
            cur = conn.execute(_WAKE_RUNS, (dumps(self.woken),))
            if cur.rowcount != len(self.woken):
                raise StoreError("a run changed underneath a batch of resolves")


def _take_over(
    conn: sqlite3.Connection,
    decided: dict[int, _Decided],
    interrupts: dict[str, dict[str, Interrupt]],
    outcomes: list[Outcome],
) -> None:
    """Give each resolve that took its run over the run's state, as ``ops.load_state``
    reads it after the write (the other interrupts are as read before: the group
    changed none of them)."""
    taking = {n: d for n, d in decided.items() if d.taken}
    if not taking:
        return
    ids = dumps(sorted(d.call.run_id for d in taking.values()))
    steps: dict[str, dict[str, StepRecord]] = {}
    outputs: dict[str, dict[str, str | None]] = {}
    for r in _rows(conn.execute(_STEPS, (ids,)).fetchone()[0], (7, 8)):
        steps.setdefault(r[0], {})[r[1]] = step_from_row(r[1:])
        outputs.setdefault(r[0], {})[r[1]] = r[4]  # output JSON, decoded only where read
    for n, d in taking.items():
        run_id, at = d.call.run_id, d.after.resolved_at
        assert at is not None  # a final resolution stamps it
        found = {i: x for i, x in interrupts[run_id].items() if i != d.after.id}
        found[d.after.id] = d.after
        # Taken over: the run as just written, without reading its row again.
        taken = replace(d.run, {"status": RunStatus.RUNNING, "updated_at": at})
        state = RunState(
            run=taken,
            wake_seq=d.wake_seq + 1,
            steps=steps.get(run_id, {}),
            step_outputs=outputs.get(run_id, {}),
            interrupts=found,
        )
        outcomes[n] = (True, ResolveResult(interrupt=d.after, claimed=state))
