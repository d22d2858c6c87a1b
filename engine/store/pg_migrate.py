"""Versioned schema migrations for the PostgreSQL store (``migrations_pg/NNNN_*.sql``).

Applied in one transaction (PostgreSQL's DDL is transactional) under an advisory
lock, so processes opening the same database at once wait for each other and the
schema is created exactly once. ``schema_migrations`` records what was applied; a
database migrated by a newer Signoff is refused rather than misread.
"""

from __future__ import annotations

from importlib import resources

from engine.errors import StoreError
from engine.store.pg_ops import Conn

MIGRATION_LOCK = 0x5349474E4F4646
"""Advisory lock key serialising migrations ("SIGNOFF" in ASCII: any fixed bigint)."""


def migrations() -> list[tuple[int, str]]:
    """The shipped PostgreSQL migrations as (version, sql), in order."""
    folder = resources.files("engine.store") / "migrations_pg"
    found = [
        (int(item.name.split("_", 1)[0]), item.read_text())
        for item in folder.iterdir()
        if item.name.endswith(".sql")
    ]
    return sorted(found)


async def migrate(conn: Conn) -> None:
    """Apply pending migrations; concurrent openers wait on the advisory lock."""
    await conn.execute("SELECT pg_advisory_xact_lock($1)", MIGRATION_LOCK)
    await conn.execute(
        "CREATE TABLE IF NOT EXISTS schema_migrations ("
        "version INTEGER PRIMARY KEY, applied_at TIMESTAMPTZ NOT NULL DEFAULT now())"
    )
    current = int(await conn.fetchval("SELECT COALESCE(MAX(version), 0) FROM schema_migrations"))
    known = migrations()
    latest = known[-1][0]
    if current > latest:
        raise StoreError(
            f"database schema version {current} is newer than this Signoff "
            f"(knows up to {latest}); upgrade Signoff"
        )
    for version, sql in known:
        if version > current:
            await conn.execute(sql)  # no arguments: simple protocol, many statements
            await conn.execute("INSERT INTO schema_migrations (version) VALUES ($1)", version)
