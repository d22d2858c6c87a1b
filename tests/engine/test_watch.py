"""Waiting on other processes' commits: one look at the store per interval for every waiter.

``wait``, ``wait_interrupt`` and ``wait_for_history`` are woken at once by this engine's
commits; another process's commits (here: a second engine on the same file) are seen by
the engine's ``RunWatch``, which reads the newest history entry of every waited-on run
in one query per ``watch_interval`` instead of each waiter reading its run.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence

import pytest

from engine import Engine, InterruptStatus, RunStatus, StepContext, Workflow, step, watch
from tests.engine.conftest import EngineFactory
from tests.engine.wf_common import Approval, Done, Req, Shown
from tests.support.polling import eventually

INTERVAL = 0.05


@step
async def ask(r: Req, ctx: StepContext[Shown, Approval]) -> Done:
    """One question, interrupt ``ok``."""
    answer = await ctx.suspend(Shown(question=f"ok {r.name}?"), interrupt_id="ok")
    return Done(name=r.name, approved=answer.approved)


ASKING = Workflow("asking", version=1, input=Req, output=Done).then(ask)


class Reads:
    """Counts the store reads the watch makes, and the runs each asked for."""

    def __init__(self, engine: Engine, monkeypatch: pytest.MonkeyPatch) -> None:
        self.asked: list[list[str]] = []
        real = engine.store.latest_event_ids

        async def counted(run_ids: Sequence[str]) -> dict[str, int]:
            self.asked.append(list(run_ids))
            return await real(run_ids)

        monkeypatch.setattr(engine.store, "latest_event_ids", counted)


async def watched_engine(engine_factory: EngineFactory) -> Engine:
    """An engine that never polls for work in a test's time, whose watch looks every
    ``INTERVAL``."""
    return await engine_factory(ASKING, poll_interval=30.0, watch_interval=INTERVAL)


async def parked(engine: Engine, count: int) -> list[str]:
    """``count`` runs waiting for their answer."""
    runs = [await engine.start("asking", {"name": f"r{n}"}) for n in range(count)]
    for run_id in runs:
        await engine.wait(run_id, until={RunStatus.SUSPENDED}, timeout=10)
    return runs


async def newest(engine: Engine, run_id: str) -> int:
    """The id of the run's newest history entry, read directly."""
    return (await engine.events(run_id))[-1].id


async def test_idle_waiters_share_one_read_per_interval(
    engine_factory: EngineFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    engine = await watched_engine(engine_factory)
    runs = await parked(engine, 3)
    reads = Reads(engine, monkeypatch)
    after = {run_id: await newest(engine, run_id) for run_id in runs}

    started = time.monotonic()
    woken = await asyncio.gather(
        *(
            engine.wait_for_history(run_id, after_id=after[run_id], timeout=0.5)
            for run_id in runs
            for _ in range(20)
        )
    )
    elapsed = time.monotonic() - started

    assert woken == [False] * 60  # nothing new: every wait ran out
    # One read per interval for all 60 (about 10 in 0.5 s; more if a loaded machine
    # stretches the waits), not one per waiter (60 and more).
    assert 1 <= len(reads.asked) <= elapsed / INTERVAL + 1, (elapsed, reads.asked)
    # Each read names every waited-on run once: all three while their waits overlap (a
    # last read may come as the first waits run out, and name fewer).
    assert sorted(reads.asked[0]) == sorted(runs), reads.asked
    assert all(len(set(asked)) == len(asked) <= 3 for asked in reads.asked), reads.asked
    assert all(set(asked) <= set(runs) for asked in reads.asked), reads.asked


async def test_long_waits_for_decisions_cost_no_read_each_while_nothing_happens(
    engine_factory: EngineFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    engine = await watched_engine(engine_factory)
    runs = await parked(engine, 5)
    reads = Reads(engine, monkeypatch)
    looked: list[str] = []
    real = engine.store.get_interrupt

    async def get_interrupt(run_id: str, interrupt_id: str) -> object:
        looked.append(run_id)
        return await real(run_id, interrupt_id)

    monkeypatch.setattr(engine.store, "get_interrupt", get_interrupt)
    waiters = [
        asyncio.create_task(engine.wait_interrupt(run_id, "ok", timeout=30))
        for run_id in runs
        for _ in range(10)
    ]
    await eventually(lambda: engine.watch.watched == 50, what="every waiter registered")
    # A waiter that read before the watch had looked at its run is woken by the next look
    # (it could not know what the run's history held before its read) and reads once more
    # with that look's entry id in hand; two more looks leave time for that.
    first = len(reads.asked)
    await eventually(lambda: len(reads.asked) >= first + 3, what="three more looks")
    settled, start = len(looked), len(reads.asked)

    await asyncio.sleep(10 * INTERVAL)

    # Then nothing happens and no waiter reads: one look per interval covers them all.
    assert len(looked) == settled
    window = reads.asked[start:]
    assert 1 <= len(window) <= 12, window
    assert all(sorted(asked) == sorted(runs) for asked in window)
    # In all, each waiter read its interrupt once or twice.
    assert all(10 <= looked.count(run_id) <= 20 for run_id in runs), looked
    for waiter in waiters:
        waiter.cancel()
    await asyncio.gather(*waiters, return_exceptions=True)


async def test_a_decision_by_another_process_wakes_its_waiters_within_an_interval(
    engine_factory: EngineFactory,
) -> None:
    engine = await watched_engine(engine_factory)
    other = await engine_factory(ASKING, poll_interval=30.0, watch_interval=30.0)
    decided, quiet = await parked(engine, 2)
    waiters = [asyncio.create_task(engine.wait_interrupt(decided, "ok", timeout=30))]
    waiters.append(asyncio.create_task(engine.wait_interrupt(quiet, "ok", timeout=30)))
    waiters.append(asyncio.create_task(engine.wait(decided, until={RunStatus.COMPLETED})))
    await asyncio.sleep(2 * INTERVAL)
    assert not any(w.done() for w in waiters)

    await other.resume(decided, "ok", {"approved": True}, actor="U0ALICE")
    interrupt, run = await asyncio.wait_for(asyncio.gather(waiters[0], waiters[2]), 5.0)

    assert interrupt.status is InterruptStatus.APPROVED
    assert run.status is RunStatus.COMPLETED
    await asyncio.sleep(2 * INTERVAL)
    assert not waiters[1].done()  # nothing happened to the other run
    waiters[1].cancel()


@pytest.mark.parametrize("watched_before", [False, True], ids=["new run", "watched run"])
async def test_a_commit_between_a_waiters_read_and_its_sleep_is_not_missed(
    engine_factory: EngineFactory, monkeypatch: pytest.MonkeyPatch, watched_before: bool
) -> None:
    engine = await watched_engine(engine_factory)
    other = await engine_factory(ASKING, poll_interval=30.0, watch_interval=30.0)
    (run_id,) = await parked(engine, 1)
    if watched_before:  # the watch knows the run's newest entry from an earlier look
        follower = asyncio.create_task(
            engine.wait_for_history(run_id, after_id=await newest(engine, run_id), timeout=30)
        )
        await asyncio.sleep(3 * INTERVAL)
        assert engine.watch.seen(run_id) == await newest(engine, run_id)
    real = engine.store.get_interrupt
    reads = 0

    async def get_interrupt(run: str, interrupt_id: str) -> object:
        nonlocal reads
        reads += 1
        found = await real(run, interrupt_id)
        if reads == 1:  # the waiter saw it pending; another process decides it now
            await other.resume(run_id, "ok", {"approved": False}, actor="U0BOB")
        return found

    monkeypatch.setattr(engine.store, "get_interrupt", get_interrupt)

    decided = await asyncio.wait_for(engine.wait_interrupt(run_id, "ok", timeout=30), 5.0)

    assert decided.status is InterruptStatus.REJECTED and reads == 2
    if watched_before:
        assert await follower is True


async def test_a_waiter_behind_its_run_is_woken_at_the_first_look(
    engine_factory: EngineFactory,
) -> None:
    engine = await watched_engine(engine_factory)
    (run_id,) = await parked(engine, 1)

    loop = asyncio.get_running_loop()
    began = loop.time()
    assert await engine.wait_for_history(run_id, after_id=0, timeout=5.0) is True
    assert loop.time() - began < 1.0


async def test_a_run_without_history_wakes_its_waiters(engine_factory: EngineFactory) -> None:
    # A run that is not there (or lost its history): the waiter reads and finds out.
    engine = await watched_engine(engine_factory)
    assert await engine.wait_for_history("no-such-run", after_id=0, timeout=5.0) is True


async def test_this_engines_own_commits_wake_history_waiters_at_once(
    engine_factory: EngineFactory,
) -> None:
    engine = await engine_factory(ASKING, poll_interval=30.0)  # the watch looks every 30 s
    (run_id,) = await parked(engine, 1)
    waiter = asyncio.create_task(
        engine.wait_for_history(run_id, after_id=await newest(engine, run_id), timeout=20)
    )
    await asyncio.sleep(0.05)

    await engine.resume(run_id, "ok", {"approved": True}, actor="U0ALICE")

    assert await asyncio.wait_for(waiter, 5.0) is True


async def test_many_runs_are_read_a_chunk_at_a_time(
    engine_factory: EngineFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(watch, "CHUNK", 2)
    engine = await watched_engine(engine_factory)
    runs = await parked(engine, 5)
    reads = Reads(engine, monkeypatch)
    after = {run_id: await newest(engine, run_id) for run_id in runs}

    await asyncio.gather(
        *(engine.wait_for_history(r, after_id=after[r], timeout=0.12) for r in runs)
    )

    assert reads.asked, "the watch never looked"
    assert max(len(asked) for asked in reads.asked) == 2
    assert sorted(sum(reads.asked[:3], [])) == sorted(runs)  # one look: three reads


async def test_closing_the_engine_wakes_every_waiter(engine_factory: EngineFactory) -> None:
    engine = await watched_engine(engine_factory)
    runs = await parked(engine, 2)
    waiters = [
        asyncio.create_task(
            engine.wait_for_history(r, after_id=await newest(engine, r), timeout=30)
        )
        for r in runs
    ]
    await asyncio.sleep(2 * INTERVAL)

    await engine.close(grace=1.0)

    assert await asyncio.wait_for(asyncio.gather(*waiters), 2.0) == [True, True]


async def test_a_failed_read_wakes_the_waiters_and_the_watch_goes_on(
    engine_factory: EngineFactory,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    engine = await watched_engine(engine_factory)
    (run_id,) = await parked(engine, 1)
    after = await newest(engine, run_id)
    real = engine.store.latest_event_ids
    failures = [ConnectionError("database is down")]

    async def flaky(run_ids: Sequence[str]) -> dict[str, int]:
        if failures:
            raise failures.pop()
        return await real(run_ids)

    monkeypatch.setattr(engine.store, "latest_event_ids", flaky)

    with caplog.at_level(logging.WARNING, logger="signoff.engine.watch"):
        assert await engine.wait_for_history(run_id, after_id=after, timeout=5.0) is True
    assert "database is down" in caplog.text
    assert await engine.wait_for_history(run_id, after_id=after, timeout=0.2) is False
    assert await engine.wait_for_history(run_id, after_id=after - 1, timeout=5.0) is True


async def test_the_watch_stops_reading_when_nobody_waits(
    engine_factory: EngineFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    engine = await watched_engine(engine_factory)
    (run_id,) = await parked(engine, 1)
    reads = Reads(engine, monkeypatch)
    await engine.wait_for_history(run_id, after_id=await newest(engine, run_id), timeout=0.2)
    await asyncio.sleep(2 * INTERVAL)  # a look already under way may still finish
    before = len(reads.asked)

    await asyncio.sleep(5 * INTERVAL)

    assert before > 0 and len(reads.asked) == before
    assert engine.watch.watched == 0
