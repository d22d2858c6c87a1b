"""Fixtures of the request service tests: an engine with the request workflow."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from bot.requests.workflow import request_workflow
from engine import Engine, open_store


@pytest.fixture
async def engine(tmp_path: Path) -> AsyncIterator[Engine]:
    """An engine on a fresh SQLite file that never polls in a test's time: what wakes a
    waiter is the commit."""
    eng = Engine(
        open_store(str(tmp_path / "requests.db")),
        workflows=[request_workflow],
        poll_interval=30.0,
        tune_gc=False,
    )
    await eng.start_background()
    yield eng
    await eng.close(grace=1.0)
