"""Versioned schema migrations for the PostgreSQL store (``postgres/migrations/NNNN_*.sql``).

Applied in one transaction (PostgreSQL's DDL is transactional) under an advisory
lock, so processes opening the same database at once wait for each other and the
schema is created exactly once. ``schema_migrations`` records what was applied; a
database migrated by a newer Signoff is refused rather than misread.
"""

from __future__ import annotations

from engine.store.migrations import Migration, discover, pending
from engine.store.postgres.ops import Conn

MIGRATION_LOCK = 0x5349474E4F4646
"""Advisory lock key serialising migrations ("SIGNOFF" in ASCII: any fixed bigint)."""


def migrations() -> list[Migration]:
    """The shipped PostgreSQL migrations, oldest first."""
    return discover("engine.store.postgres")


async def migrate(conn: Conn) -> None:
    """Apply pending migrations; concurrent openers wait on the advisory lock."""
    await conn.execute("SELECT pg_advisory_xact_lock($1)", MIGRATION_LOCK)
    await conn.execute(
        "CREATE TABLE IF NOT EXISTS schema_migrations ("
        "version INTEGER PRIMARY KEY, applied_at TIMESTAMPTZ NOT NULL DEFAULT now())"
    )
    current = int(await conn.fetchval("SELECT COALESCE(MAX(version), 0) FROM schema_migrations"))
    for version, sql in pending(current, migrations()):
        await conn.execute(sql)  # no arguments: simple protocol, many statements
        await conn.execute("INSERT INTO schema_migrations (version) VALUES ($1)", version)
