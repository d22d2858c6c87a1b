"""``POST /slack/events``: Slack's HTTP requests handed to bolt, like bolt's aiohttp adapter.

Bolt does the work (signature check over the raw body, ack, dispatch); this module only
turns an aiohttp request into a ``BoltRequest`` and the ``BoltResponse`` back.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from aiohttp import web
from slack_bolt.adapter.aiohttp import to_aiohttp_response, to_bolt_request
from slack_bolt.app.async_app import AsyncApp

from bot.settings import Settings
from bot.slack.app import SLACK_BOT
from engine import Engine

__all__ = ["SLACK_EVENTS_PATH", "install_slack_routes", "slack_events_handler"]

SLACK_EVENTS_PATH = "/slack/events"


def slack_events_handler(bolt: AsyncApp) -> Callable[[web.Request], Awaitable[web.Response]]:
    """The aiohttp handler dispatching one Slack request to ``bolt``."""

    async def slack_events(request: web.Request) -> web.Response:
        # Bolt verifies the signature over the raw body and answers 401 when it is wrong.
        response = await bolt.async_dispatch(await to_bolt_request(request))
        return await to_aiohttp_response(response)

    return slack_events


def install_slack_routes(app: web.Application, engine: Engine, settings: Settings) -> None:
    """``POST /slack/events``: events, interactivity and slash commands, signed by Slack.

    Not mounted in Socket Mode (Slack then delivers over the websocket) or without Slack
    credentials.
    """
    if SLACK_BOT not in app or settings.socket_mode:
        return
    app.router.add_post(SLACK_EVENTS_PATH, slack_events_handler(app[SLACK_BOT].app))
