"""Versioned schema migrations for the SQLite store (``sqlite/migrations/NNNN_*.sql``).

Applied in one ``BEGIN IMMEDIATE`` transaction (SQLite's DDL is transactional too), so
processes opening the same file at once wait for each other's write lock and the schema
is created exactly once. ``PRAGMA user_version`` records the version; a file migrated by
a newer Signoff is refused rather than misread.
"""

from __future__ import annotations

import sqlite3

from engine.store.migrations import Migration, discover, pending


def migrations() -> list[Migration]:
    """The shipped SQLite migrations, oldest first."""
    return discover("engine.store.sqlite")


def migrate(conn: sqlite3.Connection, known: list[Migration]) -> None:
    """Apply the pending ones of ``known`` (run on the connection's thread)."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        current = conn.execute("PRAGMA user_version").fetchone()[0]
        for version, sql in pending(current, known):
            # sqlite3 runs one statement per execute(): split the file (comments first,
            # since they may contain semicolons).
            lines = [ln for ln in sql.splitlines() if not ln.lstrip().startswith("--")]
            for statement in statements("\n".join(lines)):
                conn.execute(statement)
            conn.execute(f"PRAGMA user_version={version}")
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise


def statements(script: str) -> list[str]:
    """Split ``script`` into statements; a trigger's body keeps its inner semicolons."""
    found: list[str] = []
    pending = ""
    for piece in script.split(";"):
        pending += piece + ";"
        if sqlite3.complete_statement(pending):
            if pending.strip(" \n\t;"):
                found.append(pending)
            pending = ""
    if pending.strip(" \n\t;"):
        found.append(pending)
    return found
