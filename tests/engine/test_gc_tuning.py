"""A worker raises the garbage collector's first two thresholds (engine.gc_tuning), unless told."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest

from engine import Engine, open_store
from engine.gc_tuning import GEN0_THRESHOLD, GEN1_THRESHOLD, tune_gc


@pytest.fixture(autouse=True)
def thresholds() -> Iterator[None]:
    saved = gc.get_threshold()
    gc.set_threshold(700, 10, 10)
    yield
    gc.set_threshold(*saved)


def test_tune_gc_raises_the_first_two_thresholds_and_keeps_the_third() -> None:
    tune_gc()
    assert gc.get_threshold() == (GEN0_THRESHOLD, GEN1_THRESHOLD, 10)


def test_tune_gc_never_lowers_a_threshold_nor_enables_a_disabled_collector() -> None:
    gc.set_threshold(50_000, 200, 30)
    tune_gc()
    assert gc.get_threshold() == (50_000, 200, 30)
    gc.set_threshold(50_000, 20, 30)
    tune_gc()
    assert gc.get_threshold() == (50_000, GEN1_THRESHOLD, 30)
    gc.set_threshold(0, 10, 10)
    tune_gc()
    assert gc.get_threshold() == (0, 10, 10)


async def test_a_worker_tunes_the_collector_and_a_client_does_not(db_path: str) -> None:
    client = Engine(open_store(db_path))
    await client.open_readonly()
    await client.close()
    assert gc.get_threshold()[0] == 700

    async with Engine(open_store(db_path), tune_gc=False):
        assert gc.get_threshold()[0] == 700
    async with Engine(open_store(db_path)):
        assert gc.get_threshold()[:2] == (GEN0_THRESHOLD, GEN1_THRESHOLD)
