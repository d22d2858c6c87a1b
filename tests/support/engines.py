"""Engines for the tests that drive one directly."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from pathlib import Path

from engine import Engine, Workflow, open_store

__all__ = ["quiet_engine"]


@asynccontextmanager
async def quiet_engine(path: Path, workflows: Sequence[Workflow]) -> AsyncIterator[Engine]:
    """A started engine on a fresh SQLite file at ``path`` that never polls in a test's
    time: what wakes a waiter is a commit, or the code under test."""
    engine = Engine(
        open_store(str(path)), workflows=list(workflows), poll_interval=30.0, tune_gc=False
    )
    await engine.start_background()
    try:
        yield engine
    finally:
        await engine.close(grace=1.0)
