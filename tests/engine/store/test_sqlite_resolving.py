"""Resolves of many runs in one pass on SQLite (``engine.store.sqlite.resolving``): a burst
of resolves writes and returns exactly what the same resolves one after another do, a
resolve that fails fails alone, and two answers to one run never share a pass."""

from __future__ import annotations

import asyncio
import json
import sqlite3
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from engine import AlreadyResolved, InterruptStatus, open_store
from engine.models import Interrupt, Run
from engine.store.base import Resolution, ResolveResult, RunState
from engine.store.sqlite import SQLiteStore, resolving
from tests.engine.store.test_store_contract import (
    LEASE,
    T0,
    approve,
    ask,
    done_step,
    new_run,
    parked,
    resolve,
    suspended_step,
)

pytestmark = pytest.mark.sqlite_only  # it compares database files

TABLES = ("runs", "steps", "interrupts", "responses", "events", "timers", "outbox")
TABLES += ("interrupt_responders",)

Groups = list[list[str]]


@pytest.fixture
def passes(monkeypatch: pytest.MonkeyPatch) -> Groups:
    """The run ids of each pass of resolves run together, and ``["alone", id]`` for
    each resolve run on its own (alone, or again after its batch was rolled back)."""
    seen: Groups = []
    real = resolving.resolve_together
    real_alone = resolving.ResolveOp.__call__

    def recording(conn: sqlite3.Connection, calls: list[resolving.ResolveOp]) -> Any:
        seen.append([c.run_id for c in calls])
        return real(conn, calls)

    def alone(self: resolving.ResolveOp, conn: sqlite3.Connection) -> ResolveResult:
        seen.append(["alone", self.run_id])
        return real_alone(self, conn)

    monkeypatch.setattr(resolving, "resolve_together", recording)
    monkeypatch.setattr(resolving.ResolveOp, "__call__", alone)
    return seen


async def opened(path: Path) -> SQLiteStore:
    """An opened store on a new file at ``path``."""
    store = open_store(str(path))
    assert isinstance(store, SQLiteStore)
    await store.open()
    return store


@pytest.fixture
async def pair(tmp_path: Path) -> AsyncIterator[tuple[SQLiteStore, SQLiteStore]]:
    """Two stores on two files, to be given the same history."""
    a, b = await opened(tmp_path / "a.db"), await opened(tmp_path / "b.db")
    try:
        yield a, b
    finally:
        await a.close()
        await b.close()


def dump(path: str) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every table the resolves write, in a fixed order."""
    conn = sqlite3.connect(path)
    try:
        return {t: sorted(conn.execute(f"SELECT * FROM {t}"), key=repr) for t in TABLES}
    finally:
        conn.close()


def seen_by_caller(outcome: ResolveResult | BaseException) -> Any:
    """What a caller gets back, as plain data (an error by its type and message)."""
    if isinstance(outcome, BaseException):
        return (type(outcome).__name__, str(outcome))
    state = outcome.claimed

    def plain(s: RunState) -> Any:
        return (
            s.run.model_dump(),
            s.wake_seq,
            {p: r.model_dump() for p, r in s.steps.items()},
            s.step_outputs,
            [(i, x.model_dump()) for i, x in s.interrupts.items()],  # in order
        )

    return (outcome.interrupt.model_dump(), None if state is None else plain(state))


def refuse(interrupt: Interrupt, run: Run) -> Resolution:
    """A decision that fails (as one from an unauthorized person does)."""
    raise PermissionError(f"no answer to {run.id}/{interrupt.id}")


def stamped(decide: Callable[[Interrupt, Run], Resolution], at: float) -> Any:
    """``decide``, with the decision stamped at ``at`` (as the engine does)."""

    def stamping(interrupt: Interrupt, run: Run) -> Resolution:
        res = decide(interrupt, run)
        res.at = at
        return res

    return stamping


async def history(store: SQLiteStore) -> None:
    """Runs in the shapes a resolve meets: parked on one interrupt or three, with a quorum
    and a vote already given, with an expiry and reminders (timers), with steps done
    before, and one that is still being driven."""
    await parked(store, "one")
    await store.create_run(new_run("three"))  # asked at three times, ids not in that order
    for n, iid in enumerate("zam"):
        await store.commit_steps("three", "w1", [suspended_step(ask(iid), path=str(n))], T0 + n)
    assert await store.release_run("three", "w1", 0, T0 + 2)
    await parked(store, "quorum", ask("i1", quorum=3))
    await resolve(store, approve("carol"), run_id="quorum")  # its run stays parked
    await parked(store, "timed", ask("i1", expires_at=T0 + 60, reminders=(T0 + 10, T0 + 20)))
    await store.create_run(new_run("stepped"))
    await store.commit_steps("stepped", "w1", [done_step("0", '{"a": [1, 2]}')], T0 + 1)
    await store.commit_steps("stepped", "w1", [suspended_step(ask(), path="1")], T0 + 2)
    assert await store.release_run("stepped", "w1", 0, T0 + 2)
    await store.create_run(new_run("driven"))
    await store.commit_steps("driven", "w1", [suspended_step(ask())], T0)  # not released


# (run, interrupt, decide): every outcome a resolve can have. Times with many digits,
# which must come back as the very same doubles.
CALLS: list[tuple[str, str, Any]] = [
    ("one", "i1", stamped(approve("bob"), T0 + 5.123456789012)),
    ("three", "a", approve("bob")),
    ("quorum", "i1", approve("bob")),  # a vote: the interrupt stays pending
    ("timed", "i1", stamped(approve("carol"), 1_764_567_890.0987654)),
    ("stepped", "i1", approve("carol")),
    ("driven", "i1", approve("bob")),  # not parked: not taken over
    ("nope", "i1", approve("bob")),  # no such run
    ("other", "nope", approve("bob")),  # no such interrupt
    ("refused", "i1", refuse),
]


async def test_a_burst_writes_and_returns_what_one_resolve_after_another_does(
    pair: tuple[SQLiteStore, SQLiteStore], passes: Groups
) -> None:
    together, alone = pair
    for store in pair:
        await history(store)
        await parked(store, "other")
        await parked(store, "refused")
    passes.clear()

    def call(store: SQLiteStore, n: int) -> Awaitable[ResolveResult]:
        run_id, iid, decide = CALLS[n]
        now = T0 + 5 + n * 0.1234567891
        return store.resolve(run_id, iid, decide, claim_owner="w2", lease_until=LEASE, now=now)

    burst = await asyncio.gather(
        *(call(together, n) for n in range(len(CALLS))), return_exceptions=True
    )
    assert passes == [[c[0] for c in CALLS]]  # one pass, never run again one by one
    passes.clear()
    one_by_one: list[ResolveResult | BaseException] = []
    for n in range(len(CALLS)):
        try:
            one_by_one.append(await call(alone, n))
        except Exception as exc:
            one_by_one.append(exc)
    assert all(p[0] == "alone" for p in passes)  # no pass: each resolve ran on its own

    assert [seen_by_caller(r) for r in burst] == [seen_by_caller(r) for r in one_by_one]
    assert dump(together.path) == dump(alone.path)
    # And the outcomes are the ones each shape calls for.
    kinds = [type(r).__name__ for r in burst]
    assert kinds == ["ResolveResult"] * 6 + ["RunNotFound", "InterruptNotFound", "PermissionError"]
    results = [r for r in burst if isinstance(r, ResolveResult)]
    claimed = [r.interrupt.run_id for r in results if r.claimed is not None]
    assert claimed == ["one", "three", "timed", "stepped"]
    assert results[2].interrupt.status is InterruptStatus.PENDING
    conn = sqlite3.connect(together.path)
    try:  # the very same doubles, to the last bit (a datetime keeps only microseconds)
        times = conn.execute(
            "SELECT resolved_at, (SELECT at FROM responses WHERE run_id = 'timed') "
            "FROM interrupts WHERE run_id = 'timed'"
        ).fetchone()
    finally:
        conn.close()
    assert times == (1_764_567_890.0987654, 1_764_567_890.0987654)
    assert await together.next_timer_at() is None  # the expiry and reminders went


async def test_a_statement_refused_in_a_pass_fails_only_its_own_resolve(
    store: SQLiteStore, passes: Groups
) -> None:
    for n in range(6):
        await parked(store, f"r{n}", ask("i1", quorum=2))
    await resolve(store, approve("bob"), run_id="r3")
    passes.clear()

    def again(interrupt: Interrupt, run: Run) -> Resolution:
        # Skips the quorum's own check, so the answer table refuses the duplicate.
        return Resolution(
            InterruptStatus.PENDING, None, None, response_actor="bob", response_json="{}"
        )

    results = await asyncio.gather(
        *(resolve(store, again if n == 3 else approve("bob"), run_id=f"r{n}") for n in range(6)),
        return_exceptions=True,
    )

    # Tried together, then (rolled back) one by one.
    assert passes == [[f"r{n}" for n in range(6)]] + [["alone", f"r{n}"] for n in range(6)]
    assert isinstance(results[3], sqlite3.IntegrityError)
    assert all(isinstance(r, ResolveResult) for n, r in enumerate(results) if n != 3)
    for n in range(6):
        stored = await store.get_interrupt(f"r{n}", "i1")
        assert stored is not None and [r.actor for r in stored.responses] == ["bob"]


async def test_two_answers_to_one_run_never_share_a_pass(
    store: SQLiteStore, passes: Groups
) -> None:
    for n in range(10):
        await parked(store, f"r{n}")

    results = await asyncio.gather(
        *(resolve(store, approve(who), run_id=f"r{n}") for n in range(10) for who in "ab"),
        return_exceptions=True,
    )

    wins = [r for r in results if isinstance(r, ResolveResult)]
    assert len(wins) == 10 and all(w.claimed is not None for w in wins)
    assert all(isinstance(r, AlreadyResolved) for r in results if not isinstance(r, ResolveResult))
    # The first answers in one pass, the second ones in the next.
    assert passes == [[f"r{n}" for n in range(10)]] * 2


async def test_a_resolve_queued_with_other_writes_keeps_its_place(
    store: SQLiteStore, passes: Groups
) -> None:
    await parked(store, "r1")
    await parked(store, "r2")
    await store.create_run(new_run("r3"))

    # A write of another kind between two resolves ends the first pass.
    results = await asyncio.gather(
        resolve(store, approve("bob"), run_id="r1"),
        store.commit_steps("r3", "w1", [done_step("0")], T0 + 3),
        resolve(store, approve("bob"), run_id="r2"),
    )

    assert passes == [["alone", "r1"], ["alone", "r2"]]  # a pass of one resolve: alone
    assert isinstance(results[0], ResolveResult) and isinstance(results[2], ResolveResult)
    state = await store.load_state("r3")
    assert state is not None and set(state.steps) == {"0"}


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SQLiteStore]:
    """An opened store on a fresh file."""
    s = await opened(tmp_path / "signoff.db")
    try:
        yield s
    finally:
        await s.close()


async def test_a_pass_closes_each_interrupt_by_its_key_however_many_wait(
    store: SQLiteStore,
) -> None:
    for n in range(300):
        await parked(store, f"r{n:03}")
    answers = [[f"r{n:03}", "i1", "approved", T0 + 5, "bob", "{}"] for n in range(300)]

    conn = sqlite3.connect(store.path)
    try:
        plan = [
            row[3]
            for row in conn.execute(
                f"EXPLAIN QUERY PLAN {resolving.CLOSE_INTERRUPTS}", (json.dumps(answers),)
            )
        ]
    finally:
        conn.close()

    # Not the index of pending interrupts, walking the whole array once for each of them.
    assert plan == [
        "SCAN json_each VIRTUAL TABLE INDEX 1:",
        "SEARCH interrupts USING PRIMARY KEY (run_id=? AND id=?)",
    ]


async def test_a_pass_reads_a_driven_runs_answered_interrupt_not_its_others(
    store: SQLiteStore, passes: Groups, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A run asking fifty people at once, still being driven (not parked), and two parked.
    await store.create_run(new_run("wide"))
    fifty = [ask(f"i{n}") for n in range(50)]
    await store.commit_steps("wide", "w1", [suspended_step(*fifty)], T0)
    await parked(store, "p1")
    await parked(store, "p2")
    built: list[str] = []
    real = resolving.interrupt_from_row

    def counting(row: Any, responses: Any) -> Interrupt:
        built.append(row[0])
        return real(row, responses)

    monkeypatch.setattr(resolving, "interrupt_from_row", counting)

    results = await asyncio.gather(
        resolve(store, approve("bob"), run_id="wide", iid="i7"),
        resolve(store, approve("bob"), run_id="p1"),
        resolve(store, approve("bob"), run_id="p2"),
    )

    assert passes == [["wide", "p1", "p2"]]
    assert sorted(built) == ["p1", "p2", "wide"]  # not the 49 other asks of "wide"
    assert results[0].claimed is None  # its driver goes on: nothing to take over
    assert results[1].claimed is not None and results[2].claimed is not None
