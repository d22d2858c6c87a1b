"""Fixtures of the request service tests: an engine with the request workflow."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from bot.requests.workflow import request_workflow
from engine import Engine
from tests.support.engines import quiet_engine


@pytest.fixture
async def engine(tmp_path: Path) -> AsyncIterator[Engine]:
    """An engine on a fresh SQLite file that never polls in a test's time: what wakes a
    waiter is the commit."""
    async with quiet_engine(tmp_path / "requests.db", [request_workflow]) as eng:
        yield eng
