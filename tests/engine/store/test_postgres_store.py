"""The PostgreSQL store itself: URLs, migrations, refusing newer schemas, concurrent opens."""

from __future__ import annotations

import asyncio
import socket
import sys
from urllib.parse import parse_qs, urlparse

import asyncpg
import pytest

from engine import StoreError, open_store
from engine.store.postgres import PostgresStore
from engine.store.postgres.migrate import migrations

TABLES = {"runs", "steps", "interrupts", "responses", "events", "timers", "outbox", "workers"}


def test_postgres_urls_build_a_postgres_store() -> None:
    store = open_store("postgres://u:p@db.example:6543/signoff?search_path=s1&pool_max=4")
    assert isinstance(store, PostgresStore)
    assert (store.min_size, store.max_size) == (1, 4)
    parsed = urlparse(store.dsn)
    assert (parsed.hostname, parsed.port, parsed.path) == ("db.example", 6543, "/signoff")
    assert parse_qs(parsed.query) == {"search_path": ["s1"]}  # pool options are ours

    other = open_store("postgresql://db/signoff?pool_min=3&pool_max=20")
    assert isinstance(other, PostgresStore)
    assert (other.min_size, other.max_size) == (3, 20)


def test_a_missing_driver_says_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "asyncpg", None)  # makes `import asyncpg` fail
    for name in [m for m in sys.modules if m.startswith("engine.store.p")]:
        monkeypatch.delitem(sys.modules, name)

    with pytest.raises(ImportError, match=r"pip install signoff\[postgres\]"):
        open_store("postgresql://localhost/signoff")


async def test_opening_applies_the_migrations_once(url: str, peek: asyncpg.Connection) -> None:
    first = open_store(url)
    await first.open()
    await first.close()
    again = open_store(url)
    await again.open()
    await again.close()

    tables = {
        r[0]
        for r in await peek.fetch(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = current_schema()"
        )
    }
    assert TABLES | {"schema_migrations"} <= tables
    versions = [r[0] for r in await peek.fetch("SELECT version FROM schema_migrations")]
    assert versions == [v for v, _ in migrations()]


async def test_concurrent_opens_of_a_new_database_are_safe(
    url: str, peek: asyncpg.Connection
) -> None:
    stores = [open_store(url) for _ in range(5)]

    await asyncio.gather(*(s.open() for s in stores))

    assert await peek.fetchval("SELECT COUNT(*) FROM schema_migrations") == len(migrations())
    for s in stores:
        assert await s.count_runs() == {}
        await s.close()


async def test_a_schema_newer_than_this_code_is_refused(url: str, peek: asyncpg.Connection) -> None:
    store = open_store(url)
    await store.open()
    await store.close()
    await peek.execute("INSERT INTO schema_migrations (version) VALUES (99)")
    newer = open_store(url)

    with pytest.raises(StoreError, match="schema version 99 is newer"):
        await newer.open()

    assert isinstance(newer, PostgresStore) and newer._pool is None  # connections closed
    with pytest.raises(StoreError, match="not open"):
        await newer.count_runs()


async def test_an_unreachable_server_is_a_store_error() -> None:
    with socket.socket() as s:  # a port nothing listens on once the socket is closed
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    store = open_store(f"postgresql://signoff@127.0.0.1:{port}/signoff_test")

    with pytest.raises(StoreError, match="cannot connect"):
        await store.open()
