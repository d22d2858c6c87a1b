"""Run the service's HTTP routes on 127.0.0.1 against a real engine, for the tests."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from bot.settings import Settings
from bot.web.api import install_api
from bot.web.guard import ConnectionGuard, GuardedSite, Limits
from bot.web.metrics import install_metrics
from bot.web.webhooks import install_webhooks, sign
from engine import Engine, Workflow, open_store
from tests.bot.web.workflows import WORKFLOWS

Installer = Callable[[web.Application, Engine, Settings], None]
INSTALLERS: tuple[Installer, ...] = (install_webhooks, install_api, install_metrics)

TOKEN = "test-api-token-123"
SECRET = "test-webhook-secret"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


@dataclass
class Service:
    """A running service: its engine, settings and an HTTP client bound to it."""

    engine: Engine
    settings: Settings
    client: TestClient[web.Request, web.Application]


def make_settings(db: str, **env: Any) -> Settings:
    """Settings from keyword arguments named like the variables (SIGNOFF_API_TOKEN=...)."""
    return Settings(_env_file=None, SIGNOFF_DATABASE_URL=db, **env)


@asynccontextmanager
async def running_service(
    db: str,
    *,
    workflows: Sequence[Workflow] = WORKFLOWS,
    installers: Sequence[Installer] = INSTALLERS,
    **env: Any,
) -> AsyncIterator[Service]:
    """Open an engine on ``db``, mount the routes and serve them on an ephemeral port."""
    env.setdefault("SIGNOFF_API_TOKEN", TOKEN)
    env.setdefault("SIGNOFF_WEBHOOK_SECRET", SECRET)
    settings = make_settings(db, **{k: v for k, v in env.items() if v is not None})
    engine = Engine(open_store(db), workflows=workflows, poll_interval=0.05, lease=2.0)
    await engine.start_background()
    try:
        app = web.Application()
        for install in installers:
            install(app, engine, settings)
        server = TestServer(app, host="127.0.0.1")
        client: TestClient[web.Request, web.Application] = TestClient(server)
        async with client:
            yield Service(engine, settings, client)
    finally:
        await engine.close(grace=1.0)


@asynccontextmanager
async def serving_like_signoff(
    db: str, *, workflows: Sequence[Workflow] = WORKFLOWS, **env: Any
) -> AsyncIterator[tuple[Engine, str]]:
    """Like ``running_service``, but served as ``signoff serve`` serves: an ``AppRunner``
    without handler cancellation (aiohttp's test server cancels handlers when a client
    disconnects, so their reads never see the disconnect) behind ``GuardedSite``.
    Yields the engine and the base URL."""
    env.setdefault("SIGNOFF_API_TOKEN", TOKEN)
    env.setdefault("SIGNOFF_WEBHOOK_SECRET", SECRET)
    settings = make_settings(db, **{k: v for k, v in env.items() if v is not None})
    engine = Engine(open_store(db), workflows=workflows, poll_interval=0.05, lease=2.0)
    await engine.start_background()
    app = web.Application()
    for install in INSTALLERS:
        install(app, engine, settings)
    runner = web.AppRunner(app)
    await runner.setup()
    try:
        site = GuardedSite(
            runner, "127.0.0.1", 0, guard=ConnectionGuard(Limits.from_settings(settings))
        )
        await site.start()
        host, port = runner.addresses[0][:2]
        yield engine, f"http://{host}:{port}"
    finally:
        await runner.cleanup()
        await engine.close(grace=1.0)


def signed(
    body: Any, *, secret: str = SECRET, timestamp: int | None = None, raw: bytes | None = None
) -> tuple[bytes, dict[str, str]]:
    """A JSON body and the headers that sign it."""
    data = raw if raw is not None else json.dumps(body).encode()
    ts = int(time.time()) if timestamp is None else timestamp
    headers = {
        "Content-Type": "application/json",
        "X-Signoff-Timestamp": str(ts),
        "X-Signoff-Signature": sign(secret, ts, data),
    }
    return data, headers
