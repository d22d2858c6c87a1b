"""Group commit in the PostgreSQL store: concurrent writes share a transaction, and a
write that fails (its fence, or a statement the server refuses) fails alone."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import asyncpg
import pytest

from engine import open_store
from engine.store.base import LostOwnership
from engine.store.postgres import PostgresStore
from tests.engine.store.test_store_contract import T0, done_step, new_run
from tests.pg import PostgresServer

RUNS = 20


@pytest.fixture
def url(postgres_server: PostgresServer) -> str:
    """A fresh, empty schema."""
    return postgres_server.fresh_url()


@pytest.fixture
async def store(url: str) -> AsyncIterator[PostgresStore]:
    """An opened PostgreSQL store."""
    s = open_store(url)
    assert isinstance(s, PostgresStore)
    await s.open()
    try:
        yield s
    finally:
        await s.close()


@pytest.fixture
async def peek(url: str) -> AsyncIterator[asyncpg.Connection]:
    """A plain connection to the test's schema, to look behind the store's back."""
    conn = await asyncpg.connect(url)
    try:
        yield conn
    finally:
        await conn.close()


async def transactions(peek: asyncpg.Connection, table: str) -> int:
    """How many transactions wrote the table's rows (rows of one share its ``xmin``)."""
    return int(await peek.fetchval(f"SELECT COUNT(DISTINCT xmin::text) FROM {table}"))


async def test_concurrent_writes_of_many_runs_commit_together(
    store: PostgresStore, peek: asyncpg.Connection
) -> None:
    await asyncio.gather(*(store.create_run(new_run(f"r{n:02}")) for n in range(RUNS)))
    await asyncio.gather(
        *(store.commit_steps(f"r{n:02}", "w1", [done_step("0")], T0) for n in range(RUNS))
    )

    # The first write of each burst goes alone (nothing waits), the rest are batched.
    assert await transactions(peek, "runs") <= 3
    assert await transactions(peek, "steps") <= 3
    assert await peek.fetchval("SELECT COUNT(*) FROM steps") == RUNS
    assert await peek.fetchval("SELECT COUNT(*) FROM events") == RUNS  # one "started" each


async def test_a_lost_fence_fails_only_its_own_write(
    store: PostgresStore, peek: asyncpg.Connection
) -> None:
    for n in range(RUNS):
        await store.create_run(new_run(f"r{n:02}"))

    results = await asyncio.gather(
        *(
            store.commit_steps(f"r{n:02}", "w2" if n == 7 else "w1", [done_step("0")], T0)
            for n in range(RUNS)
        ),
        return_exceptions=True,
    )

    assert [n for n, r in enumerate(results) if r is not None] == [7]
    assert isinstance(results[7], LostOwnership)
    written = {r[0] for r in await peek.fetch("SELECT run_id FROM steps")}
    assert written == {f"r{n:02}" for n in range(RUNS) if n != 7}
    assert await transactions(peek, "steps") <= 3


async def test_a_refused_statement_fails_alone_and_the_rest_commit(
    store: PostgresStore, peek: asyncpg.Connection
) -> None:
    for n in range(RUNS):
        await store.create_run(new_run(f"r{n:02}"))

    # PostgreSQL refuses a NUL character in text: that statement aborts its batch's
    # transaction, and the batch runs again one write at a time.
    results = await asyncio.gather(
        *(
            store.commit_steps(
                f"r{n:02}", "w1", [done_step("0", '"\x00"' if n == 3 else '{"ok": 1}')], T0
            )
            for n in range(RUNS)
        ),
        return_exceptions=True,
    )

    assert [n for n, r in enumerate(results) if r is not None] == [3]
    assert isinstance(results[3], asyncpg.PostgresError)
    written = {r[0] for r in await peek.fetch("SELECT run_id FROM steps")}
    assert written == {f"r{n:02}" for n in range(RUNS) if n != 3}
