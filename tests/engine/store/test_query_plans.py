"""Every hot query of both stores reads an index, never a whole big table.

The statements below mirror the stores' SQL (claims, due timers, the outbox claim,
``list_runs``'s filters, interrupt listings, the responder index behind inboxes and the
Home tab, a run's history). Each is planned on a freshly migrated database: SQLite's
``EXPLAIN QUERY PLAN`` must show no bare ``SCAN <table>``; PostgreSQL's ``EXPLAIN``,
with sequential scans priced out (``enable_seqscan=off``, so an empty table does not
make one look cheap), must show no ``Seq Scan`` of these tables. Dropping or changing an
index that one of them needs fails here instead of silently slowing a big deployment.

Not covered: the workers and preferences tables (one row per process / per person and
key), and releasing a dead worker's timer claims on SQLite (rare, and timers has no
claimant index there).
"""

from __future__ import annotations

import json
import re
import sqlite3
from typing import Any

import asyncpg
import pytest

from engine import open_store

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

_SQLITE_FREE = "(lease_until IS NULL OR lease_until < :now OR owner IN (:d0))"
_SQLITE_OUTBOX_FREE = (
    "({t}.claim_until IS NULL OR {t}.claim_until < :now OR {t}.claimed_by IN (:d0))"
)
_SQLITE_RESPONDERS = "responder IN (?, ?) AND NOT (requester IS ? AND allow_requester = 0)"

SQLITE: dict[str, str] = {
    "claim runs": "UPDATE runs SET owner=:me, lease_until=:until WHERE id IN (SELECT id FROM "
    f"runs WHERE status='running' AND {_SQLITE_FREE} LIMIT :n) RETURNING id",
    "heartbeat": "UPDATE runs SET lease_until=? WHERE owner=? AND status='running'",
    "claim timers": "UPDATE timers SET claimed_by=:me, claim_until=:until WHERE id IN (SELECT "
    "id FROM timers WHERE due_at <= :now AND (claim_until IS NULL OR claim_until < :now OR "
    "claimed_by IN (:d0)) ORDER BY due_at LIMIT :n) RETURNING id",
    "claim outbox": "UPDATE outbox SET claimed_by=:me, claim_until=:until WHERE id IN (SELECT "
    "o.id FROM outbox o WHERE o.done_at IS NULL AND o.next_at <= :now AND "
    f"{_SQLITE_OUTBOX_FREE.format(t='o')} AND NOT EXISTS (SELECT 1 FROM outbox p WHERE "
    "p.run_id = o.run_id AND p.id < o.id AND p.done_at IS NULL AND NOT (p.next_at <= :now "
    f"AND {_SQLITE_OUTBOX_FREE.format(t='p')})) ORDER BY o.id LIMIT :n) RETURNING id",
    "release dead outbox claims": "UPDATE outbox SET claimed_by=NULL, claim_until=NULL "
    "WHERE done_at IS NULL AND claimed_by=?",
    "count undone outbox": "SELECT COUNT(*) FROM outbox WHERE done_at IS NULL",
    "idempotency key": "SELECT id FROM runs WHERE idempotency_key=?",
    "resolve interrupt": "UPDATE interrupts SET status='resolved' "
    "WHERE run_id=? AND id=? AND status='pending'",
    "interrupt's timers": "DELETE FROM timers WHERE run_id=? AND interrupt_id=?",
    "run's timers": "DELETE FROM timers WHERE run_id=?",
    "run parked?": "SELECT 1 FROM interrupts WHERE run_id=? AND +status='pending' LIMIT 1",
    "run's steps": "SELECT * FROM steps WHERE run_id=?",
    "run's responses": "SELECT * FROM responses WHERE run_id=? ORDER BY at",
    "run's events": "SELECT id FROM events WHERE run_id=? AND id>? ORDER BY id LIMIT ?",
    "list runs": "SELECT id FROM runs ORDER BY created_at DESC, id LIMIT ?",
    "list runs by status": "SELECT id FROM runs WHERE status=? "
    "ORDER BY created_at DESC, id LIMIT ?",
    "list runs by workflow": "SELECT id FROM runs WHERE workflow=? "
    "ORDER BY created_at DESC, id LIMIT ?",
    "list runs by workflow and status": "SELECT id FROM runs WHERE status=? AND workflow=? "
    "ORDER BY created_at DESC, id LIMIT ?",
    "list runs by requester": "SELECT id FROM runs WHERE requester=? "
    "ORDER BY created_at DESC, id LIMIT ?",
    "list runs, next page": "SELECT id FROM runs WHERE status=? AND created_at<? AND "
    "(created_at<? OR id>?) ORDER BY created_at DESC, id LIMIT ?",
    "count runs": "SELECT status, COUNT(*) FROM runs GROUP BY status",
    "count runs by workflow": "SELECT workflow, status, COUNT(*) FROM runs "
    "GROUP BY workflow, status",
    "list interrupts by status": "SELECT i.id FROM interrupts i JOIN runs r ON r.id = i.run_id "
    "WHERE i.status=? ORDER BY i.created_at, i.id LIMIT ?",
    "list interrupts by label": "SELECT i.id FROM interrupts i JOIN runs r ON r.id = i.run_id "
    "WHERE i.status=? AND i.label=? ORDER BY i.created_at, i.id LIMIT ?",
    "list a run's interrupts": "SELECT i.id FROM interrupts i JOIN runs r ON r.id = i.run_id "
    "WHERE i.run_id=? ORDER BY i.created_at, i.id LIMIT ?",
    "inbox page": "SELECT run_id, interrupt_id, MIN(created_at) AS c FROM interrupt_responders "
    f"WHERE pending = 1 AND {_SQLITE_RESPONDERS} GROUP BY run_id, interrupt_id "
    "ORDER BY c DESC, interrupt_id DESC LIMIT ?",
    "inbox count": "SELECT COUNT(*) FROM (SELECT DISTINCT run_id, interrupt_id FROM "
    f"interrupt_responders WHERE pending = 1 AND {_SQLITE_RESPONDERS})",
    "recently decided": "SELECT run_id, interrupt_id, MAX(resolved_at) AS d FROM "
    "interrupt_responders WHERE pending = 0 AND responder IN (?, ?) "
    "GROUP BY run_id, interrupt_id ORDER BY d DESC, interrupt_id LIMIT ?",
    "pending responders": "WITH RECURSIVE d(r) AS (SELECT (SELECT MIN(responder) FROM "
    "interrupt_responders WHERE responder > ? AND pending = 1) UNION ALL SELECT (SELECT "
    "MIN(responder) FROM interrupt_responders WHERE responder > d.r AND pending = 1) FROM d "
    "WHERE d.r IS NOT NULL) SELECT r FROM d WHERE r IS NOT NULL AND r <> ?",
    "resolve's responder rows": "UPDATE interrupt_responders SET pending = 0 "
    "WHERE run_id=? AND interrupt_id=?",
}

_PG_FREE = "({t}lease_until IS NULL OR {t}lease_until < $3 OR {t}owner = ANY($4::text[]))"
_PG_CLAIM_FREE = (
    "({t}claim_until IS NULL OR {t}claim_until < $3 OR {t}claimed_by = ANY($4::text[]))"
)
_PG_RESPONDERS = (
    "responder = ANY($1::text[]) AND NOT (requester IS NOT DISTINCT FROM $2 "
    "AND NOT allow_requester)"
)

POSTGRES: dict[str, str] = {
    "claim runs": "UPDATE runs SET owner=$1, lease_until=$2 WHERE id IN (SELECT id FROM runs "
    f"WHERE status='running' AND {_PG_FREE.format(t='')} LIMIT $5 FOR UPDATE SKIP LOCKED) "
    "RETURNING id",
    "heartbeat": "UPDATE runs SET lease_until=$1 WHERE id IN (SELECT id FROM runs WHERE "
    "owner=$2 AND status='running' AND (lease_until IS NULL OR lease_until < $3) ORDER BY id "
    "FOR UPDATE)",
    "claim timers": "UPDATE timers SET claimed_by=$1, claim_until=$2 WHERE id IN (SELECT id "
    f"FROM timers WHERE due_at <= $3 AND {_PG_CLAIM_FREE.format(t='')} ORDER BY due_at "
    "LIMIT $5 FOR UPDATE SKIP LOCKED) RETURNING id",
    "claim outbox": "UPDATE outbox SET claimed_by=$1, claim_until=$2 WHERE id IN (SELECT o.id "
    f"FROM outbox o WHERE o.done_at IS NULL AND o.next_at <= $3 AND "
    f"{_PG_CLAIM_FREE.format(t='o.')} AND NOT EXISTS (SELECT 1 FROM outbox p WHERE "
    "p.run_id = o.run_id AND p.id < o.id AND p.done_at IS NULL AND NOT (p.next_at <= $3 AND "
    f"{_PG_CLAIM_FREE.format(t='p.')})) ORDER BY o.id LIMIT $5 FOR UPDATE OF o) RETURNING id",
    "release dead timer claims": "UPDATE timers SET claimed_by=NULL, claim_until=NULL "
    "WHERE claimed_by = ANY($1::text[])",
    "release dead outbox claims": "UPDATE outbox SET claimed_by=NULL, claim_until=NULL "
    "WHERE done_at IS NULL AND claimed_by = ANY($1::text[])",
    "count undone outbox": "SELECT COUNT(*) FROM outbox WHERE done_at IS NULL",
    "idempotency key": "SELECT id FROM runs WHERE idempotency_key=$1",
    "lock runs": "SELECT id FROM runs WHERE id = ANY($1::text[]) ORDER BY id FOR UPDATE",
    "resolve interrupt": "UPDATE interrupts SET status='resolved' "
    "WHERE run_id=$1 AND id=$2 AND status='pending'",
    "interrupt's timers": "DELETE FROM timers WHERE run_id=$1 AND interrupt_id=$2",
    "run's timers": "DELETE FROM timers WHERE run_id=$1",
    "run parked?": "SELECT 1 FROM interrupts WHERE run_id=$1 AND status='pending'",
    "run's steps": "SELECT * FROM steps WHERE run_id=$1",
    "run's responses": "SELECT * FROM responses x WHERE x.run_id=$1 AND x.interrupt_id=$2",
    "run's events": "SELECT id FROM events WHERE run_id=$1 AND id>$2 ORDER BY id LIMIT $3",
    "list runs": "SELECT id FROM runs ORDER BY created_at DESC, id LIMIT $1",
    "list runs by status": "SELECT id FROM runs WHERE status=$1 "
    "ORDER BY created_at DESC, id LIMIT $2",
    "list runs by workflow": "SELECT id FROM runs WHERE workflow=$1 "
    "ORDER BY created_at DESC, id LIMIT $2",
    "list runs by workflow and status": "SELECT id FROM runs WHERE status=$1 AND workflow=$2 "
    "ORDER BY created_at DESC, id LIMIT $3",
    "list runs by requester": "SELECT id FROM runs WHERE requester=$1 "
    "ORDER BY created_at DESC, id LIMIT $2",
    "list runs, next page": "SELECT id FROM runs WHERE status=$1 AND created_at<$2 AND "
    "(created_at<$3 OR id>$4) ORDER BY created_at DESC, id LIMIT $5",
    "count runs": "SELECT status, COUNT(*) FROM runs GROUP BY status",
    "count runs by workflow": "SELECT workflow, status, COUNT(*) FROM runs "
    "GROUP BY workflow, status",
    "list interrupts by status": "SELECT i.id FROM interrupts i JOIN runs r ON r.id = i.run_id "
    "WHERE i.status=$1 ORDER BY i.created_at, i.id LIMIT $2",
    "list interrupts by label": "SELECT i.id FROM interrupts i JOIN runs r ON r.id = i.run_id "
    "WHERE i.status=$1 AND i.label=$2 ORDER BY i.created_at, i.id LIMIT $3",
    "list a run's interrupts": "SELECT i.id FROM interrupts i JOIN runs r ON r.id = i.run_id "
    "WHERE i.run_id=$1 ORDER BY i.created_at, i.id LIMIT $2",
    "inbox page": "SELECT run_id, interrupt_id, MIN(created_at) AS c FROM "
    f"interrupt_responders WHERE pending AND {_PG_RESPONDERS} GROUP BY run_id, interrupt_id "
    "ORDER BY c DESC, interrupt_id DESC LIMIT $3",
    "inbox count": "SELECT COUNT(*) FROM (SELECT DISTINCT run_id, interrupt_id FROM "
    f"interrupt_responders WHERE pending AND {_PG_RESPONDERS}) x",
    "recently decided": "SELECT run_id, interrupt_id, MAX(resolved_at) AS d FROM "
    "interrupt_responders WHERE NOT pending AND responder = ANY($1::text[]) "
    "GROUP BY run_id, interrupt_id ORDER BY d DESC NULLS LAST, interrupt_id LIMIT $2",
    "pending responders": "WITH RECURSIVE d(r) AS (SELECT (SELECT MIN(responder) FROM "
    "interrupt_responders WHERE responder > $1 AND pending) UNION ALL SELECT (SELECT "
    "MIN(responder) FROM interrupt_responders WHERE responder > d.r AND pending) FROM d "
    "WHERE d.r IS NOT NULL) SELECT r FROM d WHERE r IS NOT NULL AND r <> $2",
    "resolve's responder rows": "UPDATE interrupt_responders SET pending = false "
    "WHERE run_id=$1 AND interrupt_id=$2",
}

_SCAN = re.compile(r"^SCAN (\w+)(?: USING (?:COVERING )?INDEX (\w+))?")
_ALIASES = {"i": "interrupts", "r": "runs", "o": "outbox", "p": "outbox"}
"""The table aliases the statements use (SQLite's plan names a table by its alias)."""

FULL_PASS = {"list runs", "count runs", "count runs by workflow"}
"""Queries that read every run by design (the first page of all runs, newest first,
stops after ``limit`` rows of an ordered index): for them only a table scan fails."""


def _sqlite_full_scans(conn: sqlite3.Connection, name: str, sql: str) -> list[str]:
    """The big tables ``sql``'s plan reads whole: a table scan, or a scan of all of a
    full (not partial) index."""
    partial = {
        n
        for n, ddl in conn.execute("SELECT name, sql FROM sqlite_master WHERE type='index'")
        if ddl and " WHERE " in ddl
    }
    keys = re.findall(r":(\w+)", sql)
    args: Any = dict.fromkeys(keys) if keys else [None] * sql.count("?")
    found = []
    for row in conn.execute(f"EXPLAIN QUERY PLAN {sql}", args).fetchall():
        m = _SCAN.match(row[3])
        if not m or _ALIASES.get(m.group(1), m.group(1)) not in BIG:  # e.g. a CTE
            continue
        if m.group(2) is None or (name not in FULL_PASS and m.group(2) not in partial):
            found.append(row[3])
    return found


def _pg_full_scans(
    node: dict[str, Any], name: str, leading: dict[str, tuple[str, str, bool]]
) -> list[str]:
    """The big tables a PostgreSQL JSON plan node (or a child) reads whole: a sequential
    scan, or an index scan not bounded by the index's first column, over a full (not
    partial) index. ``leading`` maps each index to (table, first column, partial)."""
    found = []
    if node.get("Node Type") == "Seq Scan" and node["Relation Name"] in BIG:
        found.append(f"Seq Scan on {node['Relation Name']}")
    elif "Index Name" in node:
        table, column, partial = leading[node["Index Name"]]
        bounded = re.search(rf"\b{column}\b", node.get("Index Cond", "")) is not None
        if table in BIG and not bounded and not partial and name not in FULL_PASS:
            found.append(f"{node['Node Type']} using {node['Index Name']}")
    for child in node.get("Plans", []):
        found += _pg_full_scans(child, name, leading)
    return found


@pytest.mark.parametrize("name", sorted(SQLITE))
@pytest.mark.sqlite_only
async def test_sqlite_hot_queries_use_an_index(store_url: str, name: str) -> None:
    store = open_store(store_url)
    await store.open()
    await store.close()
    conn = sqlite3.connect(store_url)
    try:
        scans = _sqlite_full_scans(conn, name, SQLITE[name])
    finally:
        conn.close()
    assert scans == [], f"{name}: full scan of {scans}"


async def test_postgres_hot_queries_use_an_index(backend: str, store_url: str) -> None:
    if backend != "postgres":
        pytest.skip("PostgreSQL's plans")
    store = open_store(store_url)
    await store.open()
    await store.close()
    conn = await asyncpg.connect(store_url)
    try:
        await conn.execute("SET enable_seqscan = off")
        # The plan for any parameter value: a prepared statement's generic plan (EXPLAIN
        # of a statement with parameters would plan it for the NULLs passed instead).
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
        for n, (name, sql) in enumerate(POSTGRES.items()):
            await conn.execute(f"PREPARE q{n} AS {sql}")
            params = ", ".join(["NULL"] * len(set(re.findall(r"\$(\d+)", sql))))
            plan_json = await conn.fetchval(
                f"EXPLAIN (FORMAT JSON) EXECUTE q{n}" + (f"({params})" if params else "")
            )
            scans = _pg_full_scans(json.loads(plan_json)[0]["Plan"], name, leading)
            if scans:
                failures[name] = scans
    finally:
        await conn.close()
    assert failures == {}
