"""Fixtures of the PostgreSQL store tests: a fresh schema and a plain connection to it."""

from __future__ import annotations

from collections.abc import AsyncIterator

import asyncpg
import pytest

from tests.pg import PostgresServer


@pytest.fixture
def url(postgres_server: PostgresServer) -> str:
    """A fresh, empty schema."""
    return postgres_server.fresh_url()


@pytest.fixture
async def peek(url: str) -> AsyncIterator[asyncpg.Connection]:
    """A plain connection to the test's schema, to look behind the store's back."""
    conn = await asyncpg.connect(url)
    try:
        yield conn
    finally:
        await conn.close()
