"""What a killed instance held in the PostgreSQL database, and when others took it over.

Read with plain SQL (owners and claims are not part of the engine's API): the runs it
drove, the outbox messages and timers it had claimed. ``Takeover.watch`` polls until
none of them is held by the dead worker any more and records how long each kind took.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field

import asyncpg


@dataclass
class Held:
    """Work a dead worker held at the moment it died."""

    worker: str
    runs: set[str]
    outbox: set[int]
    timers: set[int]


@dataclass
class Takeover:
    """Seconds from the kill until each kind of held work was released or done."""

    held: Held
    seconds: dict[str, float] = field(default_factory=dict)
    clicks_repeated: int = 0  # clicks it acked but never acted on, sent again elsewhere

    @classmethod
    async def snapshot(cls, url: str, host: str, pid: int) -> Takeover:
        """What the worker ``host``/``pid`` holds now (call right after killing it)."""
        conn = await asyncpg.connect(_dsn(url), server_settings=_settings(url))
        try:
            # The row's host is the engine's host identity: the name, then more after "/".
            worker = await conn.fetchval(
                "SELECT id FROM workers WHERE split_part(host, '/', 1) = $1 AND pid = $2",
                host,
                pid,
            )
            assert worker is not None, f"no worker row for {host}/{pid}"
            runs = await conn.fetch(
                "SELECT id FROM runs WHERE owner=$1 AND status='running'", worker
            )
            outbox = await conn.fetch(
                "SELECT id FROM outbox WHERE claimed_by=$1 AND done_at IS NULL", worker
            )
            timers = await conn.fetch("SELECT id FROM timers WHERE claimed_by=$1", worker)
        finally:
            await conn.close()
        held = Held(
            worker,
            {r[0] for r in runs},
            {int(r[0]) for r in outbox},
            {int(r[0]) for r in timers},
        )
        return cls(held)

    async def watch(self, url: str, killed_at: float, timeout: float) -> None:
        """Poll every 50 ms until nothing is held by the dead worker (or ``timeout``)."""
        conn = await asyncpg.connect(_dsn(url), server_settings=_settings(url))
        w = self.held.worker
        queries = {
            "runs": "SELECT COUNT(*) FROM runs WHERE owner=$1 AND status='running'",
            "outbox": "SELECT COUNT(*) FROM outbox WHERE claimed_by=$1 AND done_at IS NULL",
            "timers": "SELECT COUNT(*) FROM timers WHERE claimed_by=$1",
        }
        try:
            deadline = time.monotonic() + timeout
            while len(self.seconds) < len(queries) and time.monotonic() < deadline:
                for kind, sql in queries.items():
                    if kind not in self.seconds and await conn.fetchval(sql, w) == 0:
                        self.seconds[kind] = time.monotonic() - killed_at
                await asyncio.sleep(0.05)
        finally:
            await conn.close()


def _dsn(url: str) -> str:
    return url.split("?", 1)[0]


def _settings(url: str) -> dict[str, str]:
    # The test schema travels as ?search_path=... (see tests/pg.py fresh_url).
    query = url.split("?", 1)[1] if "?" in url else ""
    return dict(part.split("=", 1) for part in query.split("&") if "=" in part)
