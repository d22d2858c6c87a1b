"""Index write cost: what each of the engine's row writes costs at a given schema version.

Runs the row writes of a start and a resume directly on the store's tables (no engine,
so only the database's own work is measured): a run inserted and parked, its interrupt
inserted (the responder trigger writes two responder rows) and resolved (the trigger
marks them decided), the run taken back and finished, and an outbox message inserted,
claimed and done. ``--runs`` rows per statement, ``--batch`` per transaction.

Compares schemas: ``--versions 4,5`` migrates a fresh database to each version (only the
shipped migrations up to it) and alternates them ``--rounds`` times, so one process and
one machine state measure both. Per statement and row it prints:

* SQLite (default, a fresh file, WAL, ``synchronous=NORMAL``): CPU microseconds
  (``time.process_time``, everything SQLite does runs in this process), including the
  statement's share of its transaction's COMMIT;
* PostgreSQL (``--db postgresql://...``, a schema of its own per round): WAL bytes
  (``pg_current_wal_lsn`` before and after, so use a server nothing else writes to).

Medians over the rounds, one JSON line per version. Usage::

    .venv/bin/python bench/index_writes.py
    .venv/bin/python bench/index_writes.py --db 'postgresql://signoff@127.0.0.1:55432/bench'
"""

from __future__ import annotations

import os
import sys

if sys.path and os.path.abspath(sys.path[0]) == os.path.dirname(os.path.abspath(__file__)):
    sys.path.pop(0)  # see bench/engine.py

import argparse
import asyncio
import json
import sqlite3
import statistics
import tempfile
import time
from collections.abc import Callable
from typing import Any

from engine.store.postgres.migrate import migrations as pg_migrations
from engine.store.sqlite.migrate import migrate as sqlite_migrate
from engine.store.sqlite.migrate import migrations as sqlite_migrations

Args = Callable[[int], tuple[Any, ...]]

SPEC = '{"responders": ["U1", "U2"]}'


def statements(p: Callable[[int], str]) -> list[tuple[str, str, Args]]:
    """(name, SQL, arguments for row i) in the order a start and a resume write them;
    ``p(n)`` spells the n-th parameter in the backend's style."""

    def run(i: int) -> str:
        return f"r{i:07d}"

    return [
        (
            "insert_run",
            "INSERT INTO runs (id, workflow, version, status, input_json, requester, owner, "
            f"lease_until, created_at, updated_at) VALUES ({p(1)}, 'wf', '1', 'running', '{{}}', "
            f"'alice', 'w1', 1e12, {p(2)}, {p(2)})",
            lambda i: (run(i), float(i)),
        ),
        (
            "park_run",
            "UPDATE runs SET status='waiting', owner=NULL, lease_until=NULL, "
            f"updated_at={p(1)} WHERE id={p(2)}",
            lambda i: (float(i), run(i)),
        ),
        (
            "insert_interrupt",
            "INSERT INTO interrupts (run_id, id, path, step, kind, status, spec_json, "
            f"created_at) VALUES ({p(1)}, 'a', 'p', 's', 'approval', 'pending', '{SPEC}', {p(2)})",
            lambda i: (run(i), float(i)),
        ),
        (
            "resolve_interrupt",
            f"UPDATE interrupts SET status='resolved', resolved_at={p(1)}, resolved_by='U1' "
            f"WHERE run_id={p(2)} AND id='a' AND status='pending'",
            lambda i: (float(i), run(i)),
        ),
        (
            "take_run",
            "UPDATE runs SET status='running', owner='w1', lease_until=1e12, "
            f"wake_seq=wake_seq+1, updated_at={p(1)} WHERE id={p(2)}",
            lambda i: (float(i), run(i)),
        ),
        (
            "finish_run",
            "UPDATE runs SET status='completed', output_json='{}', owner=NULL, "
            f"lease_until=NULL, updated_at={p(1)} WHERE id={p(2)}",
            lambda i: (float(i), run(i)),
        ),
        (
            "insert_outbox",
            "INSERT INTO outbox (run_id, topic, data, created_at, next_at) "
            f"VALUES ({p(1)}, 't', '{{}}', {p(2)}, {p(2)})",
            lambda i: (run(i), float(i)),
        ),
        (
            "claim_outbox",
            f"UPDATE outbox SET claimed_by='w1', claim_until=1e12 WHERE id={p(1)}",
            lambda i: (i + 1,),
        ),
        (
            "done_outbox",
            f"UPDATE outbox SET done_at={p(1)}, claimed_by=NULL, claim_until=NULL WHERE id={p(2)}",
            lambda i: (float(i), i + 1),
        ),
    ]


def sqlite_round(version: int, runs: int, batch: int) -> dict[str, float]:
    """CPU microseconds per row of each statement on a fresh file at ``version``."""
    folder = tempfile.mkdtemp(prefix="signoff-index-bench-")
    conn = sqlite3.connect(os.path.join(folder, "x.db"), isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    sqlite_migrate(conn, [m for m in sqlite_migrations() if m.version <= version])
    found = {}
    for name, sql, args in statements(lambda n: f"?{n}"):
        t0 = time.process_time()
        for start in range(0, runs, batch):
            conn.execute("BEGIN")
            conn.executemany(sql, [args(i) for i in range(start, min(start + batch, runs))])
            conn.execute("COMMIT")
        found[name] = (time.process_time() - t0) / runs * 1e6
    conn.close()
    return found


async def postgres_round(
    url: str, version: int, runs: int, batch: int, tag: str
) -> dict[str, float]:
    """WAL bytes per row of each statement in a fresh schema at ``version``."""
    import asyncpg

    conn = await asyncpg.connect(url)
    schema = f"index_bench_{tag}"
    await conn.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE; CREATE SCHEMA {schema}")
    await conn.execute(f"SET search_path={schema}")
    for migration in pg_migrations():
        if migration.version <= version:
            await conn.execute(migration.sql)
    lsn = "SELECT pg_current_wal_lsn() - '0/0'::pg_lsn"
    found = {}
    for name, sql, args in statements(lambda n: f"${n}"):
        before = await conn.fetchval(lsn)
        for start in range(0, runs, batch):
            async with conn.transaction():
                await conn.executemany(
                    sql, [args(i) for i in range(start, min(start + batch, runs))]
                )
        found[name] = float(await conn.fetchval(lsn) - before) / runs
    await conn.execute(f"DROP SCHEMA {schema} CASCADE")
    await conn.close()
    return found


def main() -> None:
    """Parse the arguments, alternate the schema versions, print the medians."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--db", default=None, help="a PostgreSQL URL (default: SQLite)")
    parser.add_argument("--versions", default="4,5", help="schema versions to compare")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--runs", type=int, default=4000)
    parser.add_argument("--batch", type=int, default=250)
    opts = parser.parse_args()
    versions = [int(v) for v in opts.versions.split(",")]
    results: dict[int, list[dict[str, float]]] = {v: [] for v in versions}
    for n in range(opts.rounds):
        for v in versions:
            if opts.db:
                got = asyncio.run(postgres_round(opts.db, v, opts.runs, opts.batch, f"{v}_{n}"))
            else:
                got = sqlite_round(v, opts.runs, opts.batch)
            results[v].append(got)
    unit = "wal_bytes_per_row" if opts.db else "cpu_us_per_row"
    for v, rounds in results.items():
        medians = {k: round(statistics.median(r[k] for r in rounds), 1) for k in rounds[0]}
        line = {"schema_version": v, "backend": "postgres" if opts.db else "sqlite", unit: medians}
        print(json.dumps({**line, "rounds": opts.rounds, "runs": opts.runs}), flush=True)


if __name__ == "__main__":
    main()
