"""bot.slack.feedback: the clicker sees the outcome through ``response_url`` when the
notifier's ``chat.update`` is paced, on connections of its own."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from bot.slack import action_ids
from tests.support.polling import eventually
from tests.support.slack_bot import BotFactory


class HangingHook:
    """A ``response_url`` host that takes each post and answers none until released."""

    def __init__(self) -> None:
        self.started = 0
        self.answered = 0
        self.release = asyncio.Event()

    async def handle(self, request: web.Request) -> web.Response:
        self.started += 1
        await self.release.wait()
        self.answered += 1
        return web.json_response({"ok": True})


@pytest.fixture
async def hook() -> AsyncIterator[tuple[HangingHook, str]]:
    hanging = HangingHook()
    app = web.Application()
    app.router.add_post("/hook", hanging.handle)
    server = TestServer(app, host="127.0.0.1", port=None)
    await server.start_server()
    yield hanging, str(server.make_url("/hook"))
    hanging.release.set()
    await server.close()


async def test_without_pacing_the_update_alone_shows_the_outcome(make_bot: BotFactory) -> None:
    bot = await make_bot(SIGNOFF_SLACK_PACING="false")
    run_id = await bot.start("change", {"service": "billing"})
    message = await bot.message(run_id)

    reply = await bot.click(message, action_ids.APPROVE, user="U0ALICE")
    await bot.thread_replies(message)  # the run's outcome: everything after the ack ran

    assert reply.status == 200
    assert bot.slack.deps.feedback is None
    assert "Approved" in str(bot.fake.message(message.channel, message.ts).blocks)
    assert len(bot.fake.calls("chat.update")) == 1
    assert bot.fake.response_url_posts() == []


async def test_a_hanging_response_url_does_not_hold_back_the_updates(
    make_bot: BotFactory, hook: tuple[HangingHook, str]
) -> None:
    # The Web API client's pool has two connections: were the feedback posts made on it,
    # the hanging ones would hold both and the notifier's chat.update calls would wait.
    hanging, url = hook
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=2)) as session:
        bot = await make_bot(session=session)
        run_ids = [await bot.start("change", {"service": f"svc-{n}"}) for n in range(3)]
        messages = [await bot.message(run_id) for run_id in run_ids]

        def to_hook(payload: dict[str, Any]) -> None:
            payload["response_url"] = url

        for message in messages:
            await bot.click(message, action_ids.APPROVE, user="U0ALICE", edit=to_hook)

        def updated() -> bool:
            return all(
                "Approved" in str(bot.fake.message(m.channel, m.ts).blocks) for m in messages
            )

        await eventually(updated, what="the three chat.update calls")
        await eventually(lambda: hanging.started == 3, what="the three response_url posts")
        assert hanging.answered == 0  # every feedback post still hangs
        assert len(bot.fake.calls("chat.update")) == 3
        hanging.release.set()
