"""Fixtures for the engine tests: a fresh database per test on each backend, engines."""

from __future__ import annotations

import contextlib
import os
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from pathlib import Path
from typing import Any, Protocol

import pytest

from engine import Engine, OutboxMessage, Workflow, open_store
from tests.pg import PostgresServer  # the postgres_server fixture: tests/conftest.py

BACKENDS = ("sqlite", "postgres")
"""Every test that uses the database runs once per backend, unless marked ``sqlite_only``
or ``postgres_only`` (or ``SIGNOFF_TEST_BACKENDS=sqlite`` narrows the list for a quick
local run)."""


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Parametrize ``backend`` (used by ``store_url``, hence ``db_path``) over BACKENDS."""
    if "backend" not in metafunc.fixturenames:
        return
    wanted = os.environ.get("SIGNOFF_TEST_BACKENDS", ",".join(BACKENDS)).split(",")
    if metafunc.definition.get_closest_marker("sqlite_only"):
        wanted = ["sqlite"]
    if metafunc.definition.get_closest_marker("postgres_only"):
        wanted = [b for b in wanted if b == "postgres"]  # none in a SQLite-only quick loop
    metafunc.parametrize("backend", [b for b in BACKENDS if b in wanted])


@pytest.fixture
def backend() -> str:
    """The storage backend under test (parametrized by ``pytest_generate_tests``)."""
    return "sqlite"


@pytest.fixture
def store_url(backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> str:
    """A fresh, empty database for this test: a SQLite file or a PostgreSQL schema URL."""
    if backend == "sqlite":
        return str(tmp_path / "x.db")
    server: PostgresServer = request.getfixturevalue("postgres_server")
    return server.fresh_url()


@pytest.fixture
def db_path(store_url: str) -> str:
    """The test's fresh database: a SQLite file path, or a PostgreSQL URL (see BACKENDS)."""
    return store_url


class EngineFactory(Protocol):
    """Builds and opens an Engine on the test database; closed at teardown."""

    def __call__(
        self,
        *workflows: Workflow,
        db: str | None = None,
        poll_interval: float = 0.05,
        lease: float = 2.0,
        **kwargs: Any,
    ) -> Awaitable[Engine]: ...


@pytest.fixture
async def engine_factory(db_path: str) -> AsyncIterator[EngineFactory]:
    """Build opened engines: ``engine = await engine_factory(wf1, wf2, authorizer=...)``.

    Every engine uses ``db_path`` unless ``db=`` names another file; extra keyword
    arguments go to ``Engine`` (``worker_id``, ``authorizer``, ``clock``, ...). Engines
    still open at the end of the test are closed, newest first. Several engines on the
    same file behave like several worker processes.
    """
    opened: list[Engine] = []

    async def build(
        *workflows: Workflow,
        db: str | None = None,
        poll_interval: float = 0.05,
        lease: float = 2.0,
        **kwargs: Any,
    ) -> Engine:
        engine = Engine(
            open_store(db or db_path),
            workflows=workflows,
            poll_interval=poll_interval,
            lease=lease,
            **kwargs,
        )
        await engine.start_background()
        opened.append(engine)
        return engine

    yield build
    for engine in reversed(opened):
        with contextlib.suppress(Exception):
            await engine.close(grace=1.0)


@pytest.fixture
async def engine(engine_factory: EngineFactory) -> Engine:
    """An opened engine with no workflows yet: call ``engine.register(...)``."""
    return await engine_factory()


@pytest.fixture
def collect() -> Callable[..., list[OutboxMessage]]:
    """``got = collect(engine, topics=None)``: every delivered outbox message, in order."""

    def subscribe(engine: Engine, topics: Iterable[str] | None = None) -> list[OutboxMessage]:
        got: list[OutboxMessage] = []

        async def handler(message: OutboxMessage) -> None:
            got.append(message)

        name = f"collect-{len(engine.dispatcher.subscriptions)}"
        engine.subscribe(handler, topics=topics, name=name)
        return got

    return subscribe
