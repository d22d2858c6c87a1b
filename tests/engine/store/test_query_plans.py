"""Every statement the stores run on a representative workload reads an index, never a
whole big table.

The statements are not copies: a workload goes through the engine's public API on a
freshly migrated database (runs with quorum, responders and reminders; claims and a
recovery pass by a second engine that sees the first as dead; answers, a cancel, a retry;
``list_runs`` with each filter and a next page, counts, interrupt listings, the inbox
queries, a run's history, outbox delivery, due timers) while every statement the store
sends is recorded: on SQLite through a ``sqlite3.Connection`` subclass handed to
aiosqlite (it sees the SQL text with its ``?`` placeholders, where a trace callback only
gets it with the values inlined), on PostgreSQL through asyncpg's query logger on each
pooled connection. Then each distinct statement is planned: SQLite's ``EXPLAIN QUERY
PLAN`` with the parameters it ran with; PostgreSQL's generic plan (``PREPARE`` + ``EXPLAIN
EXECUTE`` under ``plan_cache_mode=force_generic_plan``, the plan for any parameter value)
with sequential scans priced out (``enable_seqscan=off``, so an empty table does not make
one look cheap). The UPDATE and DELETE statements in the bodies of the schema's triggers
are planned too, read from the database (they run inside the store's statements, where
neither the capture nor EXPLAIN sees them).

A plan fails if it reads a big table whole: a table scan, or a full scan of a whole (not
partial) index, unless the statement matches ``READS_ALL`` (a whole index is fine) or
``SCANS_TABLE`` (a table scan is fine), each with its reason. ``HOT_PATHS`` checks the
workload reached each hot query, so the test cannot pass for lack of statements; and
after dropping an index one of them needs (``DROPPED``, inside a rolled-back
transaction) the same check must fail for it.
"""

from __future__ import annotations

import asyncio
import json
import re
import sqlite3
import time
from collections.abc import Callable, Iterable
from datetime import timedelta
from typing import Any

import aiosqlite
import asyncpg
import pytest

from engine import Engine, Interrupt, RunStatus, StepContext, Workflow, open_store, step
from tests.engine.wf_common import Approval, Done, Req, Shown

BIG = {
    "runs",
    "steps",
    "interrupts",
    "responses",
    "events",
    "timers",
    "outbox",
    "interrupt_responders",
}
"""Tables that grow with use; the workers and preferences tables stay small (one row
per process / per person and key) and are not checked."""

READS_ALL: dict[str, str] = {
    r"^SELECT status, COUNT\(\*\) FROM runs GROUP BY status": "count_runs counts every run",
    r"^SELECT workflow, status, COUNT\(\*\) FROM runs GROUP BY workflow, status": (
        "count_runs_by_workflow counts every run"
    ),
    r"FROM runs WHERE (?:1=1|TRUE) ORDER BY created_at DESC, id LIMIT": (
        "list_runs without a filter: all runs, newest first, stopping after `limit` rows "
        "of an ordered index"
    ),
    r"FROM interrupts i JOIN runs r ON r.id = i.run_id WHERE (?:1=1|TRUE) ORDER BY": (
        "list_interrupts(status=None) without a filter: every interrupt, oldest first, "
        "stopping after `limit` rows of an ordered index"
    ),
}
"""Statements that read all of a big table by design, by a pattern of their SQL, with the
reason: for them a scan of a whole index is fine (a table scan still fails)."""

SCANS_TABLE: dict[str, str] = {
    r"^UPDATE timers SET claimed_by=NULL, claim_until=NULL WHERE claimed_by=\?$": (
        "SQLite, releasing a dead worker's timer claims: once per worker death, and the "
        "timers table has no claimant index there (an index would cost every timer write)"
    ),
}
"""Statements allowed to scan a whole big table, by a pattern of their SQL, with the
reason."""

HOT_PATHS: dict[str, str] = {
    "claim runs": r"^UPDATE runs SET owner",
    "heartbeat": r"^UPDATE runs SET lease_until",
    "claim timers": r"^UPDATE timers SET claimed_by",
    "claim outbox": r"^UPDATE outbox SET claimed_by",
    "release dead outbox claims": r"^UPDATE outbox SET claimed_by=NULL",
    "list runs by status": r"FROM runs WHERE \S+ AND \W?status ?= ?\S+ ORDER BY",
    "list runs by workflow": r"FROM runs WHERE \S+ AND \W?workflow ?=",
    "list runs by workflow and status": r"FROM runs WHERE \S+ AND \W?status ?= ?\S+ AND "
    r"\W?workflow ?=",
    "list runs by requester": r"FROM runs WHERE \S+ AND \W?requester ?=",
    "list runs, next page": r"FROM runs WHERE .*created_at ?<",
    "list interrupts by label": r"FROM interrupts .*label",
    "inbox page": r"FROM interrupt_responders WHERE pending.*ORDER BY",
    "inbox count": r"COUNT\(\*\) FROM \(SELECT DISTINCT run_id, interrupt_id FROM "
    r"interrupt_responders",
    "recently decided": r"WHERE responder = \S+ AND (?:pending = 0|NOT pending).*"
    r"ORDER BY resolved_at DESC",
    "pending responders": r"WITH RECURSIVE d\(r\)",
    "run's events": r"FROM events WHERE run_id",
    "runs' newest events": r"\(SELECT MAX\(e\.id\) FROM events e WHERE e\.run_id",
    "run's steps": r"FROM steps WHERE run_id",
    "idempotency key": r"idempotency_key=",
    "release dead timer claims": r"^UPDATE timers SET claimed_by=NULL",
    "resolve interrupt": r"^UPDATE interrupts SET status=",
    "resolve's responder rows": r"^UPDATE interrupt_responders SET pending",
    "pending interrupts counted": r"WHERE i.status = 'pending' GROUP BY r.workflow, i.kind",
}
"""Each hot query, by a pattern of its SQL: the workload must have run at least one
statement matching it."""

SQLITE_HOT_PATHS: dict[str, str] = {
    "resolves of many runs: their runs": r"FROM runs WHERE id IN \(SELECT value FROM json_each",
    "resolves of many runs: their interrupts": r"^UPDATE interrupts SET status = j\.status",
    "resolves of many runs: their runs woken": r"^UPDATE runs SET wake_seq = wake_seq \+ 1, "
    r"updated_at = j\.at",
}
"""Hot queries of the SQLite store alone (``resolving``: a pass over queued resolves),
checked like ``HOT_PATHS``."""

NARROWED: dict[str, str] = {
    "list runs by workflow and status": "(workflow=? AND status=?",
    "recently decided": "USING INDEX responders_decided_newest (responder=?",
    # Without the index the plan still says "SEARCH e", for a walk back through every row.
    "runs' newest events": "USING COVERING INDEX events_by_run (run_id=?)",
}
"""Hot queries that must not only use an index but narrow it as given (SQLite's plan
text), without a sort: an index on a prefix of the columns alone would read, and filter
or sort row by row, every row under that prefix (a workflow's every run, to find the
few parked; a person's every decision, to show the last ten)."""

DROPPED = [
    ("runs_by_status_newest", "list runs by status"),
    ("responders_pending", "inbox page"),
]
"""An index and a hot query that needs it: without the index that query must fail."""

_RELEASE = re.compile(r"UPDATE outbox SET claimed_by=NULL")
"""The statement that shows a recovery pass released a dead worker's claims."""

_DML = re.compile(r"^\s*(SELECT|INSERT|UPDATE|DELETE|WITH)\b", re.IGNORECASE)


# -- the workload ------------------------------------------------------------------------
def _workflows() -> list[Workflow]:
    @step
    async def vote(r: Req, ctx: StepContext[Shown, Approval]) -> Done:
        answer = await ctx.suspend(
            Shown(question="ship?"),
            responders=["ann", "bo", "group:ops"],
            quorum=2,
            reminders=[0.05],
            expires=timedelta(hours=1),
            label="vote",
        )
        await ctx.emit(f"voted {answer.approved}")
        return Done(name=r.name, approved=answer.approved)

    @step
    async def sign(d: Done, ctx: StepContext[Shown, Approval]) -> Done:
        await ctx.suspend(Shown(question="sign?"), responders=["ann"], label="sign")
        return d

    @step
    async def boom(r: Req) -> Done:
        raise RuntimeError("fails so that it can be retried")

    return [
        Workflow("plan", input=Req, output=Done).then(vote).then(sign),
        Workflow("boom", input=Req, output=Done).then(boom),
    ]


class _Groups:
    """An authorizer that knows groups, so the inbox asks for the pending responders."""

    async def __call__(self, interrupt: Interrupt, actor: str) -> bool:
        return actor == "ops1" and "group:ops" in interrupt.responders

    async def groups_of(self, actor: str, responders: Iterable[str]) -> list[str]:
        return ["group:ops"] if actor == "ops1" and "group:ops" in responders else []


async def _until(check: Callable[[], Any], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not await check():
        assert time.monotonic() < deadline, "the workload did not get there"
        await asyncio.sleep(0.02)


async def _workload(url: str, recovered: Callable[[], bool]) -> None:
    """Drive the engine's public API over every hot path of the store at ``url``;
    ``recovered`` says whether the store has released a dead worker's claims yet."""
    delivered: list[Any] = []

    async def handler(message: Any) -> None:
        delivered.append(message)

    first = Engine(
        open_store(url),
        workflows=_workflows(),
        worker_id="w1",
        poll_interval=0.02,
        lease=1.0,
        authorizer=_Groups(),
    )
    first.subscribe(handler, name="plans")
    await first.start_background()
    try:
        runs = [
            await first.start("plan", {"name": f"r{n}"}, requester="req", idempotency_key=f"k{n}")
            for n in range(3)
        ]
        await first.start("plan", {"name": "r0"}, requester="req", idempotency_key="k0")
        failed = await first.start("boom", {"name": "b"}, requester="req")
        for run_id in [*runs, failed]:
            await first.wait(run_id, timeout=10)
        # The inbox: an actor named, a group member, counts, decided, another page.
        await first.list_interrupts(actor="ann")
        await first.list_interrupts(actor="ops1")
        await first.count_interrupts(actor="ann")
        (vote,) = await first.list_interrupts(run_id=runs[0])
        # Two runs' answers at once: resolved in one transaction (on SQLite, one pass).
        await asyncio.gather(
            *(first.resume(r, vote.id, {"approved": True}, actor="ann") for r in runs[:2])
        )
        # And a deciding answer with another vote: on SQLite, one pass for both.
        await asyncio.gather(
            first.resume(runs[0], vote.id, {"approved": True}, actor="bo"),
            first.resume(runs[2], vote.id, {"approved": True}, actor="ann"),
        )
        await first.wait(runs[0], timeout=10)
        await first.list_decided(actor="ann")
        # Interrupt listings by each filter, the reminder timer firing, delivery.
        await first.list_interrupts(label="vote", workflow="plan", kind="input")
        await first.list_interrupts(status=None, limit=-1)
        await _until(lambda: _reminded(first, runs[1]))
        await _until(lambda: _delivered(first, delivered))
        # Runs: each filter, a next page, counts, one run's detail and history.
        page = await first.list_runs(limit=2)
        await first.list_runs(limit=2, before=(page[-1].created_at, page[-1].id))
        await first.list_runs(status=RunStatus.SUSPENDED, limit=2)
        await first.list_runs(workflow="plan", status=RunStatus.SUSPENDED)
        await first.list_runs(workflow="plan")
        await first.list_runs(requester="req", offset=1)
        await first.list_runs(created_after=page[-1].created_at)
        await first.count_runs()
        await first.count_runs_by_workflow()
        await first.count_pending_interrupts()
        await first.outbox_backlog()
        await first.get_run(runs[0])
        await first.events(runs[0], after_id=1)
        await first.wait_for_history(runs[0], after_id=0, timeout=5)
        await first.set_interrupt_ref(runs[1], vote.id, "ts", "1.2")
        await first.cancel(runs[2], reason="plans", actor="req")
        await first.retry(failed, actor="req")
        await first.wait(failed, timeout=10)
    except BaseException:
        await first.close(grace=1.0)
        raise
    # A second engine whose clock is a minute ahead finds the first one's heartbeat
    # stale: its recovery pass removes the "dead" worker, releases its claims, claims.
    second = Engine(
        open_store(url),
        workflows=_workflows(),
        worker_id="w2",
        poll_interval=0.02,
        lease=1.0,
        clock=lambda: time.time() + 60,
    )
    try:
        await second.start_background()

        async def released() -> bool:
            return recovered()

        await _until(released)
    finally:
        await second.close(grace=1.0)
        await first.close(grace=1.0)


async def _reminded(engine: Engine, run_id: str) -> bool:
    return any(e.type == "reminded" for e in await engine.events(run_id))


async def _delivered(engine: Engine, delivered: list[Any]) -> bool:
    return bool(delivered) and await engine.outbox_backlog() == 0


# -- capturing what the store runs -------------------------------------------------------
async def _migrated(url: str) -> None:
    """Apply the migrations before capturing: their one-off backfills read whole tables."""
    store = open_store(url)
    await store.open()
    await store.close()


class _Recording(sqlite3.Connection):
    """A sqlite3 connection that records each statement it runs, with its parameters."""

    seen: list[tuple[str, Any]] = []

    def execute(self, sql: str, parameters: Any = (), /) -> sqlite3.Cursor:
        """Record, then run."""
        self.seen.append((sql, parameters))
        return super().execute(sql, parameters)

    def executemany(self, sql: str, parameters: Iterable[Any], /) -> sqlite3.Cursor:
        """Record with the first row of parameters, then run them all."""
        rows = list(parameters)
        if rows:
            self.seen.append((sql, rows[0]))
        return super().executemany(sql, rows)


async def _sqlite_statements(url: str, monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """Each distinct DML statement the SQLite store runs on the workload, with the
    parameters of one run of it."""
    connect = aiosqlite.connect

    def recording(path: Any, **kwargs: Any) -> aiosqlite.Connection:
        return connect(path, factory=_Recording, **kwargs)

    await _migrated(url)
    monkeypatch.setattr(aiosqlite, "connect", recording)
    seen: list[tuple[str, Any]] = []
    monkeypatch.setattr(_Recording, "seen", seen)
    await _workload(url, lambda: any(_RELEASE.match(sql) for sql, _ in list(seen)))
    monkeypatch.undo()
    statements = {sql: args for sql, args in seen if _planned(sql)}
    conn = sqlite3.connect(url)
    try:
        for (ddl,) in conn.execute("SELECT sql FROM sqlite_master WHERE type='trigger'"):
            body = ddl[ddl.upper().index("BEGIN") + 5 : ddl.upper().rindex("END")]
            for sql in _trigger_writes(body):
                sql = _ROW_FIELD.sub("?", sql)
                statements[sql] = [None] * sql.count("?")
    finally:
        conn.close()
    return statements


async def _pg_statements(url: str, monkeypatch: pytest.MonkeyPatch) -> set[str]:
    """Each distinct DML statement the PostgreSQL store sends on the workload."""
    seen: set[str] = set()
    create_pool = asyncpg.create_pool

    async def init(conn: asyncpg.Connection) -> None:
        conn.add_query_logger(lambda q: seen.add(q.query))

    def logging_pool(*args: Any, **kwargs: Any) -> Any:
        assert "init" not in kwargs, "the store has an init hook now: chain it here"
        return create_pool(*args, init=init, **kwargs)

    await _migrated(url)
    monkeypatch.setattr(asyncpg, "create_pool", logging_pool)
    await _workload(url, lambda: any(_RELEASE.match(sql) for sql in list(seen)))
    monkeypatch.undo()
    return {sql for sql in seen if _planned(sql)}


_ROW_FIELD = re.compile(r"\b(?:NEW|OLD)\.(\w+)")
"""A trigger's reference to a field of the row it fires for: a parameter when planned."""


def _trigger_writes(body: str) -> list[str]:
    """The UPDATE and DELETE statements of a trigger's body: they look rows up, so they
    run inside the store's statements where neither capture nor EXPLAIN sees them. (Its
    INSERTs only read a run by its key.)"""
    found = []
    for sql in body.split(";"):
        sql = " ".join(sql.split())
        if re.match(r"(UPDATE|DELETE)\b", sql, re.IGNORECASE):
            found.append(sql)
    return found


# -- planning ----------------------------------------------------------------------------
_SCAN = re.compile(r"^SCAN (\w+)(?: USING (?:COVERING )?INDEX (\w+))?")
_ALIAS = re.compile(
    r"\b(?:FROM|JOIN|UPDATE)\s+(\w+)(?:\s+(?:AS\s+)?(?!WHERE|ON|SET|JOIN|"
    r"ORDER|GROUP|LIMIT|USING|INNER|LEFT|WHERE)(\w+))?",
    re.IGNORECASE,
)


def _planned(sql: str) -> bool:
    """Whether ``sql`` is a statement on a big table (not a PRAGMA, BEGIN, a lock, a
    migration's bookkeeping or asyncpg's own type introspection)."""
    return _DML.match(sql) is not None and bool(_aliases(sql))


def _matches(patterns: Iterable[str], sql: str) -> bool:
    flat = " ".join(sql.split())
    return any(re.search(p, flat) for p in patterns)


def _aliases(sql: str) -> dict[str, str]:
    """Alias -> table for the big tables ``sql`` names (SQLite's plan uses the alias)."""
    found = {}
    for table, alias in _ALIAS.findall(sql):
        if table in BIG:
            found[table] = table
            if alias:
                found[alias] = table
    return found


def _sqlite_full_scans(conn: sqlite3.Connection, sql: str, args: Any) -> list[str]:
    """The big tables ``sql``'s plan reads whole: a table scan, or a scan of all of a
    full (not partial) index."""
    partial = {
        n
        for n, ddl in conn.execute("SELECT name, sql FROM sqlite_master WHERE type='index'")
        if ddl and " WHERE " in ddl
    }
    aliases = _aliases(sql)
    found = []
    for row in conn.execute(f"EXPLAIN QUERY PLAN {sql}", args).fetchall():
        m = _SCAN.match(row[3])
        if not m or m.group(1) not in aliases:  # e.g. a CTE, or a small table
            continue
        if m.group(2) is None and _matches(SCANS_TABLE, sql):
            continue
        if m.group(2) is None or (not _matches(READS_ALL, sql) and m.group(2) not in partial):
            found.append(row[3])
    return found


def _pg_full_scans(node: dict[str, Any], sql: str, leading: dict[str, Any]) -> list[str]:
    """The big tables a PostgreSQL JSON plan node (or a child) reads whole: a sequential
    scan, or an index scan not bounded by the index's first column, over a full (not
    partial) index. ``leading`` maps each index to (table, first column, partial)."""
    found = []
    seq = node.get("Node Type") == "Seq Scan"
    if seq and node["Relation Name"] in BIG and not _matches(SCANS_TABLE, sql):
        found.append(f"Seq Scan on {node['Relation Name']}")
    elif "Index Name" in node:
        table, column, partial = leading[node["Index Name"]]
        bounded = re.search(rf"\b{column}\b", node.get("Index Cond", "")) is not None
        if table in BIG and not bounded and not partial and not _matches(READS_ALL, sql):
            found.append(f"{node['Node Type']} using {node['Index Name']}")
    for child in node.get("Plans", []):
        found += _pg_full_scans(child, sql, leading)
    return found


def _sqlite_failures(url: str, statements: dict[str, Any]) -> dict[str, list[str]]:
    conn = sqlite3.connect(url)
    try:
        failures = {}
        for sql, args in statements.items():
            scans = _sqlite_full_scans(conn, sql, args)
            if scans:
                failures[sql] = scans
        return failures
    finally:
        conn.close()


async def _pg_trigger_writes(conn: asyncpg.Connection) -> dict[str, list[str]]:
    """The UPDATE and DELETE statements of the schema's trigger functions, each with the
    types of its parameters (the fields of the row the trigger fires for)."""
    found: dict[str, list[str]] = {}
    for table, src in await conn.fetch(
        "SELECT c.relname, p.prosrc FROM pg_trigger t JOIN pg_proc p ON p.oid = t.tgfoid "
        "JOIN pg_class c ON c.oid = t.tgrelid "
        "WHERE NOT t.tgisinternal AND c.relnamespace = current_schema()::regnamespace"
    ):
        types: dict[str, str] = {
            r[0]: r[1]
            for r in await conn.fetch(
                "SELECT attname, format_type(atttypid, atttypmod) FROM pg_attribute "
                "WHERE attrelid = $1::regclass AND attnum > 0",
                table,
            )
        }
        body = src[src.upper().index("BEGIN") + 5 : src.upper().rindex("END")]
        for sql in _trigger_writes(body):
            fields = list(dict.fromkeys(_ROW_FIELD.findall(sql)))
            for k, field in enumerate(fields, 1):
                sql = re.sub(rf"\b(?:NEW|OLD)\.{field}\b", f"${k}", sql)
            found[sql] = [types[f] for f in fields]
    return found


async def _pg_failures(
    conn: asyncpg.Connection, statements: Iterable[str], typed: dict[str, list[str]]
) -> dict[str, Any]:
    await conn.execute("SET enable_seqscan = off")
    # The plan for any parameter value: a prepared statement's generic plan (EXPLAIN of
    # a statement with parameters would plan it for the NULLs passed instead).
    await conn.execute("SET plan_cache_mode = force_generic_plan")
    leading = {
        r[0]: (r[1], r[2], r[3])
        for r in await conn.fetch(
            "SELECT c.relname, t.relname, a.attname, i.indpred IS NOT NULL "
            "FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid "
            "JOIN pg_class t ON t.oid = i.indrelid "
            "JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = i.indkey[0] "
            "WHERE c.relnamespace = current_schema()::regnamespace"
        )
    }
    failures = {}
    for n, sql in enumerate(sorted(statements)):
        types = f"({', '.join(typed[sql])})" if typed.get(sql) else ""
        await conn.execute(f"PREPARE plan{n}{types} AS {sql}")
        count = max((int(k) for k in re.findall(r"\$(\d+)", sql)), default=0)
        params = f"({', '.join(['NULL'] * count)})" if count else ""
        plan = await conn.fetchval(f"EXPLAIN (FORMAT JSON) EXECUTE plan{n}{params}")
        await conn.execute(f"DEALLOCATE plan{n}")
        scans = _pg_full_scans(json.loads(plan)[0]["Plan"], sql, leading)
        if scans:
            failures[sql] = scans
    return failures


def _missing_paths(statements: Iterable[str], paths: dict[str, str] = HOT_PATHS) -> list[str]:
    flat = [" ".join(s.split()) for s in statements]
    return [name for name, p in paths.items() if not any(re.search(p, s) for s in flat)]


def _listing(statements: Iterable[str]) -> str:
    """The captured statements, one a line (what a hot path's pattern must match)."""
    return "\n".join(sorted(" ".join(s.split()) for s in statements))


def _report(failures: dict[str, list[str]]) -> str:
    """Each statement that reads a big table whole, with what its plan reads whole."""
    return "full scans:\n" + "\n".join(
        f"{scans} in: {' '.join(sql.split())}" for sql, scans in failures.items()
    )


def _of_path(statements: Iterable[str], name: str) -> list[str]:
    return [s for s in statements if re.search(HOT_PATHS[name], " ".join(s.split()))]


# -- the tests ---------------------------------------------------------------------------
@pytest.mark.sqlite_only
async def test_sqlite_statements_use_an_index(
    store_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    statements = await _sqlite_statements(store_url, monkeypatch)
    assert _missing_paths(statements, HOT_PATHS | SQLITE_HOT_PATHS) == [], _listing(statements)
    failures = _sqlite_failures(store_url, statements)
    assert not failures, _report(failures)
    # Without an index a hot query needs, the same check fails for that query.
    conn = sqlite3.connect(store_url, isolation_level=None)
    try:
        for path, columns in NARROWED.items():
            for sql in _of_path(statements, path):
                plan = str(conn.execute(f"EXPLAIN QUERY PLAN {sql}", statements[sql]).fetchall())
                assert columns in plan and "TEMP B-TREE" not in plan, f"{path}: {plan}"
        for index, path in DROPPED:
            conn.execute("BEGIN")
            conn.execute(f"DROP INDEX {index}")
            scans = [
                _sqlite_full_scans(conn, sql, statements[sql]) for sql in _of_path(statements, path)
            ]
            conn.execute("ROLLBACK")
            assert any(scans), f"dropping {index} went unnoticed by {path}"
    finally:
        conn.close()


@pytest.mark.postgres_only
async def test_postgres_statements_use_an_index(
    store_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    statements = await _pg_statements(store_url, monkeypatch)
    conn = await asyncpg.connect(store_url)
    try:
        typed = await _pg_trigger_writes(conn)
        statements |= set(typed)
        assert _missing_paths(statements) == [], _listing(statements)
        failures = await _pg_failures(conn, statements, typed)
        assert not failures, _report(failures)
        # Without an index a hot query needs, the same check fails for that query.
        for index, path in DROPPED:
            tx = conn.transaction()
            await tx.start()
            await conn.execute(f"DROP INDEX {index}")
            failures = await _pg_failures(conn, _of_path(statements, path), typed)
            await tx.rollback()
            assert failures, f"dropping {index} went unnoticed by {path}"
    finally:
        await conn.close()
