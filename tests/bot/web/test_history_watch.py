"""``HistoryWatch``: one look at the store per interval for every followed run's history."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Sequence
from pathlib import Path

import pytest

from bot.web import history_watch
from bot.web.history_watch import HistoryWatch
from engine import Engine, RunStatus
from tests.bot.web.workflows import Order, order
from tests.support.engines import quiet_engine

INTERVAL = 0.05


@pytest.fixture
async def engine(tmp_path: Path) -> AsyncIterator[Engine]:
    """An engine on a fresh SQLite file that never polls in a test's time."""
    async with quiet_engine(tmp_path / "watch.db", [order]) as eng:
        yield eng


class Reads:
    """Counts the watch's reads of the store, and the runs each asked for."""

    def __init__(self, engine: Engine, monkeypatch: pytest.MonkeyPatch) -> None:
        self.asked: list[list[str]] = []
        real = engine.latest_event_ids

        async def counted(run_ids: Sequence[str]) -> dict[str, int]:
            self.asked.append(list(run_ids))
            return await real(run_ids)

        monkeypatch.setattr(engine, "latest_event_ids", counted)


async def parked(engine: Engine, count: int) -> list[str]:
    """``count`` order runs waiting for their approval."""
    runs = [await engine.start("order", Order(item=f"item {n}")) for n in range(count)]
    for run_id in runs:
        await engine.wait(run_id, until={RunStatus.SUSPENDED})
    return runs


async def newest(engine: Engine, run_id: str) -> int:
    """The id of the run's newest history entry, read directly."""
    return (await engine.events(run_id))[-1].id


async def test_idle_followers_share_one_read_per_interval(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    runs = await parked(engine, 3)
    reads = Reads(engine, monkeypatch)
    watch = HistoryWatch(engine, INTERVAL)
    after = {run_id: await newest(engine, run_id) for run_id in runs}

    woken = await asyncio.gather(
        *(watch.wait(run_id, after[run_id], 0.5) for run_id in runs for _ in range(20))
    )

    assert woken == [False] * 60  # nothing new: every wait ran out
    # One read per interval for all 60 (about 10 in 0.5 s), not one per follower.
    assert 4 <= len(reads.asked) <= 12, reads.asked
    assert all(sorted(asked) == sorted(runs) for asked in reads.asked)


async def test_a_new_entry_wakes_the_followers_of_its_run_and_no_others(engine: Engine) -> None:
    changed, quiet = await parked(engine, 2)
    watch = HistoryWatch(engine, INTERVAL)
    followers = [
        asyncio.create_task(watch.wait(run_id, await newest(engine, run_id), 5.0))
        for run_id in (changed, changed, quiet)
    ]
    await asyncio.sleep(2 * INTERVAL)
    assert not any(f.done() for f in followers)

    await engine.cancel(changed, reason="test", actor="carol")
    done, pending = await asyncio.wait(followers, timeout=1.0)

    assert followers[:2] == sorted(done, key=followers.index)
    assert all(f.result() is True for f in done)
    assert pending == {followers[2]}
    assert watch.followed == 1
    followers[2].cancel()


async def test_a_follower_behind_its_run_is_woken_at_the_first_look(engine: Engine) -> None:
    (run_id,) = await parked(engine, 1)
    watch = HistoryWatch(engine, INTERVAL)

    loop = asyncio.get_running_loop()
    began = loop.time()
    assert await watch.wait(run_id, 0, 5.0) is True
    assert loop.time() - began < 1.0


async def test_a_run_without_history_wakes_its_followers(engine: Engine) -> None:
    # A run that is not there (or lost its history): the stream reads and ends itself.
    watch = HistoryWatch(engine, INTERVAL)
    assert await watch.wait("no-such-run", 0, 5.0) is True


async def test_many_runs_are_read_a_chunk_at_a_time(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(history_watch, "CHUNK", 2)
    runs = await parked(engine, 5)
    reads = Reads(engine, monkeypatch)
    watch = HistoryWatch(engine, INTERVAL)
    after = {run_id: await newest(engine, run_id) for run_id in runs}

    await asyncio.gather(*(watch.wait(run_id, after[run_id], 0.12) for run_id in runs))

    assert reads.asked, "the watch never looked"
    assert max(len(asked) for asked in reads.asked) == 2
    assert sorted(sum(reads.asked[:3], [])) == sorted(runs)  # one look: three reads


async def test_closing_wakes_every_follower_and_later_waits_return_at_once(
    engine: Engine,
) -> None:
    runs = await parked(engine, 2)
    watch = HistoryWatch(engine, INTERVAL)
    followers = [
        asyncio.create_task(watch.wait(run_id, await newest(engine, run_id), 30.0))
        for run_id in runs
    ]
    await asyncio.sleep(2 * INTERVAL)

    watch.close()

    assert await asyncio.wait_for(asyncio.gather(*followers), 1.0) == [True, True]
    assert await asyncio.wait_for(watch.wait(runs[0], 10**9, 30.0), 1.0) is True


async def test_a_failed_read_wakes_the_followers_and_the_watch_goes_on(
    engine: Engine, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    (run_id,) = await parked(engine, 1)
    after = await newest(engine, run_id)
    real = engine.latest_event_ids
    failures = [ConnectionError("database is down")]

    async def flaky(run_ids: Sequence[str]) -> dict[str, int]:
        if failures:
            raise failures.pop()
        return await real(run_ids)

    monkeypatch.setattr(engine, "latest_event_ids", flaky)
    watch = HistoryWatch(engine, INTERVAL)

    with caplog.at_level(logging.WARNING, logger="signoff.web.streams"):
        assert await watch.wait(run_id, after, 5.0) is True  # woken to read for itself
    assert "database is down" in caplog.text
    assert await watch.wait(run_id, after, 0.2) is False  # back to looking: nothing new
    assert await watch.wait(run_id, after - 1, 5.0) is True


async def test_the_watch_stops_reading_when_nobody_follows(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    (run_id,) = await parked(engine, 1)
    reads = Reads(engine, monkeypatch)
    watch = HistoryWatch(engine, INTERVAL)
    await watch.wait(run_id, await newest(engine, run_id), 0.2)
    await asyncio.sleep(2 * INTERVAL)  # a look already under way may still finish
    before = len(reads.asked)

    await asyncio.sleep(5 * INTERVAL)

    assert before > 0 and len(reads.asked) == before
    assert watch.followed == 0
