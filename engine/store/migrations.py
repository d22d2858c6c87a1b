"""Schema migrations shared by both backends: finding the shipped SQL files, versioning.

Each backend ships its own SQL in ``engine/store/<backend>/migrations/NNNN_name.sql``
(the dialects differ); the number before the first ``_`` is the schema version the file
brings the database to. How the applied version is recorded differs too (SQLite's
``PRAGMA user_version``, PostgreSQL's ``schema_migrations`` table), but the rules are
these: files apply in version order, each at most once, and a database whose schema is
newer than every shipped file is refused rather than misread.
"""

from __future__ import annotations

from importlib import resources
from typing import NamedTuple

from engine.errors import StoreError


class Migration(NamedTuple):
    """One shipped migration file."""

    version: int
    sql: str


def discover(package: str) -> list[Migration]:
    """The migrations shipped in ``package``'s ``migrations`` folder, oldest first.

    Args:
        package: the backend's package, e.g. ``"engine.store.sqlite"``.
    """
    folder = resources.files(package) / "migrations"
    found = [
        Migration(int(item.name.split("_", 1)[0]), item.read_text())
        for item in folder.iterdir()
        if item.name.endswith(".sql")
    ]
    return sorted(found)


def pending(current: int, known: list[Migration]) -> list[Migration]:
    """The migrations a database at schema version ``current`` still needs, in order.

    Raises:
        StoreError: the database's schema is newer than this code knows.
    """
    latest = known[-1].version
    if current > latest:
        raise StoreError(
            f"database schema version {current} is newer than this Signoff "
            f"(knows up to {latest}); upgrade Signoff"
        )
    return [m for m in known if m.version > current]
