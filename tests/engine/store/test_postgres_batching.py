"""Group commit in the PostgreSQL store: concurrent writes share a transaction, and a
write that fails (its fence, or a statement the server refuses) fails alone."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import asyncpg
import pytest

from engine import AlreadyResolved, InterruptStatus, RunNotFound, open_store
from engine.models import Interrupt, Run
from engine.store.base import LostOwnership, Resolution, ResolveResult
from engine.store.postgres import PostgresStore
from tests.engine.store.test_store_contract import (
    T0,
    approve,
    done_step,
    new_run,
    parked,
    resolve,
)

RUNS = 20


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


async def test_concurrent_resolves_of_many_runs_commit_together(
    store: PostgresStore, peek: asyncpg.Connection
) -> None:
    for n in range(RUNS):
        await parked(store, f"r{n:02}")

    results = await asyncio.gather(
        *(resolve(store, approve("bob"), run_id=f"r{n:02}") for n in range(RUNS))
    )

    assert all(r.interrupt.status is InterruptStatus.APPROVED for r in results)
    # Each parked run was taken over, with its state read inside the batch.
    assert all(
        r.claimed is not None and r.claimed.run.id == f"r{n:02}" for n, r in enumerate(results)
    )
    assert all(r.claimed is not None and set(r.claimed.steps) == {"0"} for r in results)
    assert await transactions(peek, "responses") <= 3
    owners = await peek.fetch("SELECT DISTINCT owner, status FROM runs")
    assert [tuple(r) for r in owners] == [("w2", "running")]


async def test_a_refused_decision_fails_only_its_own_resolve(
    store: PostgresStore, peek: asyncpg.Connection
) -> None:
    for n in range(RUNS):
        await parked(store, f"r{n:02}")

    def refuse(interrupt: Interrupt, run: Run) -> Resolution:
        raise RuntimeError("no")

    results = await asyncio.gather(
        *(
            resolve(store, refuse if n == 5 else approve("bob"), run_id=f"r{n:02}")
            for n in range(RUNS)
        ),
        resolve(store, approve("carol"), run_id="nope"),
        return_exceptions=True,
    )

    assert isinstance(results[5], RuntimeError)
    assert isinstance(results[RUNS], RunNotFound)
    assert all(isinstance(r, ResolveResult) for n, r in enumerate(results[:RUNS]) if n != 5)
    answered = {r[0] for r in await peek.fetch("SELECT run_id FROM responses")}
    assert answered == {f"r{n:02}" for n in range(RUNS) if n != 5}
    assert await transactions(peek, "responses") <= 3


async def test_resolves_of_one_run_in_a_burst_see_each_other(store: PostgresStore) -> None:
    for n in range(RUNS):
        await parked(store, f"r{n:02}")

    # Two answers to each interrupt at once: the first approves, the second finds it
    # already resolved (never two wins), while the other runs' resolves are batched.
    results = await asyncio.gather(
        *(resolve(store, approve(who), run_id=f"r{n:02}") for n in range(RUNS) for who in "ab"),
        return_exceptions=True,
    )

    wins = [r for r in results if isinstance(r, ResolveResult)]
    assert len(wins) == RUNS
    assert all(isinstance(r, AlreadyResolved) for r in results if not isinstance(r, ResolveResult))
