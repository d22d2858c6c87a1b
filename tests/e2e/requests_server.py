"""A real ``signoff serve`` process for the request tests, plus Slack-like helpers.

``signoff`` runs as a subprocess on a SQLite file, talking to the FakeSlack in the test
process; tests reach it over HTTP on 127.0.0.1 and click as Slack users do.
"""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from bot.slack import action_ids
from tests.e2e.test_process import Service
from tests.fakes.signing import (
    block_actions_payload,
    interactive_body,
    view_submission_payload,
)
from tests.fakes.slack_api import FakeSlack, StoredMessage
from tests.support.polling import eventually
from tests.support.service import service_env
from tests.support.slack_bot import CHANNEL, SECRET, USERS

__all__ = [
    "CALLBACK_SECRET",
    "TOKEN",
    "Receiver",
    "RequestsServer",
    "receiver",
    "requests_server",
]

TOKEN = "ci-token-0123456789abcdef"
CALLBACK_SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"


@dataclass
class RequestsServer:
    """A running service and how to act on it like Slack's users do."""

    fake: FakeSlack
    env: dict[str, str]
    service: Service
    started: list[Service] = field(default_factory=list)

    @property
    def url(self) -> str:
        """The service's base URL."""
        return self.service.url

    def client_env(self) -> dict[str, str]:
        """The environment a client process needs (URL and token)."""
        return {**self.env, "SIGNOFF_URL": self.url, "SIGNOFF_TOKEN": TOKEN}

    async def restart(self) -> None:
        """Start a new process on the same database (after a kill)."""
        self.service = await Service.start(self.env)
        self.started.append(self.service)

    def posts(self) -> list[StoredMessage]:
        """Request messages in the channel (not thread replies)."""
        return [m for m in self.fake.messages(CHANNEL) if m.thread_ts is None]

    async def message_for(self, request_id: str) -> StoredMessage:
        """The Slack message of ``request_id``, once posted."""

        def find() -> StoredMessage | None:
            for m in self.posts():
                if request_id in str(m.blocks):
                    return m
            return None

        found: StoredMessage = await eventually(find, timeout=15, what=f"post of {request_id}")
        return found

    async def click(
        self, message: StoredMessage, action: str = action_ids.APPROVE, *, user: str = "U0ALICE"
    ) -> int:
        """Click a button of ``message`` as ``user``; the HTTP status of the service."""
        payload = block_actions_payload(
            message=message.to_api(), action_id=action, channel_id=CHANNEL, user_id=user
        )
        status, _ = await self.service.send(interactive_body(payload))
        return status

    async def open_modal(
        self, message: StoredMessage, action: str, *, user: str = "U0ALICE"
    ) -> dict[str, Any]:
        """Click ``action`` (a button that opens a modal); the modal Slack then shows."""
        before = set(self.fake.views())
        assert await self.click(message, action, user=user) == 200

        def opened() -> dict[str, Any] | None:
            new = [v for k, v in self.fake.views().items() if k not in before]
            return new[-1] if new else None

        view: dict[str, Any] = await eventually(opened, timeout=10, what="the modal")
        return view

    async def submit(
        self, view: dict[str, Any], answers: dict[str, Any], *, user: str = "U0ALICE"
    ) -> dict[str, Any]:
        """Submit ``view`` with ``answers`` (by block id) as ``user``; the JSON answered
        to Slack (``{}`` when the modal simply closes)."""
        payload = view_submission_payload(view=view, answers=answers, user_id=user)
        status, text = await self.service.send(interactive_body(payload))
        assert status == 200, text
        return json.loads(text) if text.strip() else {}


@pytest.fixture
async def requests_server(
    fake_slack: FakeSlack, tmp_path: Path
) -> AsyncIterator[Callable[..., Awaitable[RequestsServer]]]:
    """``await requests_server(**env)``: a running ``python -m bot`` wired to the fake."""
    for user in USERS:
        fake_slack.add_user(user, name=user.lower())
    made: list[RequestsServer] = []

    async def start(**extra: str) -> RequestsServer:
        settings: dict[str, str | None] = {
            "SIGNOFF_DEFAULT_CHANNEL": CHANNEL,
            "SIGNOFF_SHUTDOWN_GRACE": "2",
            "SIGNOFF_API_TOKENS": f'{{"ci": "{TOKEN}"}}',
            "SIGNOFF_CALLBACK_SECRET": CALLBACK_SECRET,
            "SIGNOFF_WORKFLOWS": None,  # requests need no workflow of their own
            "SIGNOFF_WEBHOOK_SECRET": None,
            "SIGNOFF_API_TOKEN": None,  # only the named token
            **extra,
        }
        env = service_env(
            api_url=fake_slack.api_url,
            token=fake_slack.token,
            secret=SECRET,
            db=tmp_path / "signoff.db",
            **settings,
        )
        service = await Service.start(env)
        server = RequestsServer(fake_slack, env, service, [service])
        made.append(server)
        return server

    yield start
    for server in made:
        for service in server.started:
            if service.proc.returncode is None:
                await service.kill()


@dataclass
class Receiver:
    """An HTTP endpoint collecting callbacks; it fails the first ``fail`` deliveries."""

    url: str = ""
    fail: int = 0
    received: list[tuple[dict[str, str], bytes, float]] = field(default_factory=list)
    refused: int = 0

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        if self.refused < self.fail:
            self.refused += 1
            return web.Response(status=503)
        loop = asyncio.get_running_loop()
        self.received.append((dict(request.headers), body, loop.time()))
        return web.Response(status=204)


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    """A callback receiver on 127.0.0.1."""
    found = Receiver()
    app = web.Application()
    app.router.add_post("/hook", found.handle)
    server = TestServer(app, host="127.0.0.1", port=None)
    await server.start_server()
    found.url = str(server.make_url("/hook"))
    yield found
    await server.close()


def auth() -> dict[str, str]:
    """The bearer header of the test token."""
    return {"Authorization": f"Bearer {TOKEN}"}


async def api(
    method: str, url: str, *, json: Any = None, headers: dict[str, str] | None = None
) -> tuple[int, Any]:
    """One API call: (status, JSON body)."""
    async with (
        aiohttp.ClientSession() as http,
        http.request(method, url, json=json, headers={**auth(), **(headers or {})}) as resp,
    ):
        return resp.status, await resp.json(content_type=None)


def python() -> str:
    """This interpreter (the venv's), for subprocesses."""
    return sys.executable
