"""Runtime helpers for the engine behaviour tests: a step probe, waits and history peeks.

Steps are defined at module level (as users write them), so what they observe goes to
one shared ``Probe`` that the ``probe`` fixture resets for every test; tests/conftest.py
registers this module as a plugin, so any test can ask for ``probe``.
"""

from __future__ import annotations

import asyncio
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from engine import (
    Engine,
    Event,
    EventType,
    OutboxMessage,
    Run,
    RunDetail,
    RunStatus,
    open_store,
)

Collect = Callable[..., list[OutboxMessage]]
"""The type of the ``collect`` fixture (tests/engine/conftest.py)."""

FINAL = frozenset({RunStatus.COMPLETED, RunStatus.FAILED, RunStatus.REJECTED, RunStatus.CANCELLED})


class Probe:
    """What steps did: how often each ran, what they saw, and gates that hold them."""

    def __init__(self) -> None:
        self.calls: Counter[str] = Counter()
        self.seen: defaultdict[str, list[Any]] = defaultdict(list)
        self._gates: dict[str, asyncio.Event] = {}

    def hit(self, name: str, value: Any = None) -> None:
        """Record one execution of ``name`` (with what it saw)."""
        self.calls[name] += 1
        self.seen[name].append(value)

    def gate(self, name: str) -> asyncio.Event:
        """The gate ``name`` (closed until set)."""
        return self._gates.setdefault(name, asyncio.Event())

    async def wait(self, name: str) -> None:
        """Block the calling step until the gate ``name`` is opened."""
        await self.gate(name).wait()

    def reset(self) -> None:
        """Forget everything (between tests)."""
        self.calls.clear()
        self.seen.clear()
        self._gates.clear()


PROBE = Probe()
"""The probe that module-level steps report to."""


@pytest.fixture(name="probe")
def probe_fixture() -> Iterator[Probe]:
    """The shared step probe, reset before and after the test."""
    PROBE.reset()
    yield PROBE
    PROBE.reset()


async def finished(engine: Engine, run_id: str, timeout: float = 10.0) -> Run:
    """Wait until the run reached a final status."""
    return await engine.wait(run_id, until=FINAL, timeout=timeout)


async def parked(engine: Engine, run_id: str, timeout: float = 10.0) -> Run:
    """Wait until the run waits for something (suspended, nothing driving it)."""
    run = await engine.wait(run_id, timeout=timeout)
    assert run.status is RunStatus.SUSPENDED, run
    return run


async def history(engine: Engine, run_id: str, *types: EventType) -> list[Event]:
    """The run's history entries, only those of ``types`` if any are given."""
    events = await engine.events(run_id)
    return [e for e in events if not types or e.type in types]


async def stored_run(db_path: str, run_id: str | None = None) -> RunDetail:
    """A run (by default the only one) read straight from the file.

    No engine is involved, so nothing is recovered or driven by looking.
    """
    store = open_store(db_path)
    await store.open()
    try:
        if run_id is None:
            (run,) = await store.list_runs(status=None, workflow=None, limit=2, offset=0)
            run_id = run.id
        detail = await store.get_detail(run_id)
        assert detail is not None, f"no run {run_id}"
        return detail
    finally:
        await store.close()
