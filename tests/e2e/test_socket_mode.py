"""Socket Mode: with SLACK_APP_TOKEN, Slack's requests arrive over a websocket, not HTTP.

A local websocket plays Slack's Socket Mode endpoint (handed out by the fake's
``apps.connections.open``); envelopes carry the same payloads HTTP mode receives.
"""

from __future__ import annotations

import asyncio
import itertools
import json
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

from aiohttp import WSMsgType, web
from aiohttp.test_utils import TestServer

from bot.server import run_service
from bot.slack import action_ids
from tests.fakes.signing import block_actions_payload, slash_command_body
from tests.fakes.slack_api import FakeSlack
from tests.support.polling import eventually
from tests.support.slack_bot import CHANNEL, USERS, settings_for

APP_TOKEN = "xapp-1-test-app-token"


class SocketModeEndpoint:
    """Slack's side of a Socket Mode connection: sends envelopes, collects the acks."""

    def __init__(self) -> None:
        self.connected: asyncio.Future[web.WebSocketResponse] = asyncio.Future()
        self.acks: dict[str, Any] = {}
        self._ids = itertools.count(1)
        self.server: TestServer | None = None

    async def start(self) -> str:
        """Serve on 127.0.0.1; return the ws:// URL."""
        app = web.Application()
        app.router.add_get("/link", self._link)
        self.server = TestServer(app, host="127.0.0.1", port=None)
        await self.server.start_server()
        return str(self.server.make_url("/link")).replace("http://", "ws://")

    async def _link(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        await ws.send_json({"type": "hello", "num_connections": 1})
        if not self.connected.done():
            self.connected.set_result(ws)
        async for message in ws:
            if message.type == WSMsgType.TEXT:
                data = json.loads(message.data)
                self.acks[data["envelope_id"]] = data.get("payload")
        return ws

    async def send(self, kind: str, payload: dict[str, Any]) -> Any:
        """Deliver one envelope and wait for its ack's payload."""
        ws = await asyncio.wait_for(asyncio.shield(self.connected), 10)
        envelope_id = f"env-{next(self._ids)}"
        await ws.send_json(
            {
                "envelope_id": envelope_id,
                "type": kind,
                "payload": payload,
                "accepts_response_payload": True,
            }  # fmt: skip
        )
        await eventually(lambda: envelope_id in self.acks, what=f"the ack of {kind}")
        return self.acks[envelope_id]


async def test_commands_and_clicks_arrive_over_socket_mode(
    fake_slack: FakeSlack, tmp_path: Path
) -> None:
    for user in USERS:
        fake_slack.add_user(user, name=user.lower())
    endpoint = SocketModeEndpoint()
    url = await endpoint.start()
    fake_slack.valid_tokens.add(APP_TOKEN)

    async def connections_open(args: dict[str, Any]) -> dict[str, Any]:
        return {"ok": True, "url": url}

    fake_slack.add_method("apps.connections.open", connections_open)
    settings = settings_for(
        fake_slack,
        SLACK_APP_TOKEN=APP_TOKEN,
        SLACK_SIGNING_SECRET="",  # Socket Mode envelopes are not signed
        SIGNOFF_DATABASE_URL=f"sqlite:///{tmp_path / 'signoff.db'}",
        SIGNOFF_WORKFLOWS="tests.e2e.wf_approvals",
        SIGNOFF_PORT="0",
        SIGNOFF_POLL_INTERVAL="0.05",
        SIGNOFF_SLACK_PACING_TIME_SCALE="0.001",  # the fake enforces no Slack limits here
    )
    stop = asyncio.Event()
    service = asyncio.create_task(run_service(settings, stop=stop))
    try:
        command = dict(parse_qsl(slash_command_body(text="start change service=billing",
                                                    user_id="U0DAVE")))  # fmt: skip
        ack = await endpoint.send("slash_commands", command)
        assert "Started *Change*" in ack["text"]
        run_id = ack["text"].split("run `")[1].split("`")[0]

        (message,) = await eventually(lambda: fake_slack.messages(CHANNEL), what="the request")
        click = block_actions_payload(
            message=message.to_api(), action_id=action_ids.APPROVE, channel_id=CHANNEL,
            user_id="U0ALICE",
        )  # fmt: skip
        assert await endpoint.send("interactive", click) is None  # a bare ack

        replies = await eventually(
            lambda: [m for m in fake_slack.messages(CHANNEL) if m.thread_ts == message.ts],
            what="the thread reply",
        )
        assert f"Run `{run_id}` completed" in (replies[0].text or "")
        assert fake_slack.calls("apps.connections.open")[0].token == APP_TOKEN
    finally:
        stop.set()
        await asyncio.wait_for(service, 15)
        assert endpoint.server is not None
        await endpoint.server.close()
