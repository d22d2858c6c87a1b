"""The real service: ``python -m bot`` as a subprocess, killed and restarted on the same file.

The FakeSlack runs in the test process; the service reaches it through ``SLACK_API_URL``,
and the test reaches the service over HTTP on 127.0.0.1, signing requests like Slack.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from bot.slack import action_ids
from tests.fakes.signing import (
    block_actions_payload,
    interactive_body,
    signed_request,
    slash_command_body,
)
from tests.fakes.slack_api import FakeSlack, StoredMessage
from tests.support.polling import eventually
from tests.support.service import ServiceProcess, service_env
from tests.support.slack_bot import CHANNEL, SECRET, USERS


class Service(ServiceProcess):
    """One ``python -m bot`` process (``tests.support.service``), plus Slack-signed posts."""

    async def send(self, body: str, **sign: Any) -> tuple[int, str]:
        """POST a Slack-signed body to /slack/events."""
        request = signed_request(body, secret=SECRET, **sign)
        async with (
            aiohttp.ClientSession() as http,
            http.post(
                f"{self.url}/slack/events", data=request.body, headers=request.headers
            ) as response,  # fmt: skip
        ):
            return response.status, await response.text()

    async def terminate(self) -> int:
        """SIGTERM and wait for the exit code."""
        code = await self.stop()
        assert code is not None
        return code


ServiceFactory = Callable[[], "asyncio.Future[Service] | Any"]


@pytest.fixture
async def services(fake_slack: FakeSlack, tmp_path: Path) -> AsyncIterator[Any]:
    """``await services()`` starts a service on this test's database; all stopped after."""
    for user in USERS:
        fake_slack.add_user(user, name=user.lower())
    env = service_env(
        api_url=fake_slack.api_url,
        token=fake_slack.token,
        secret=SECRET,
        db=tmp_path / "signoff.db",
        SIGNOFF_DEFAULT_CHANNEL=CHANNEL,
        SIGNOFF_SHUTDOWN_GRACE="2",
        SIGNOFF_WEBHOOK_SECRET=None,
        SIGNOFF_API_TOKEN=None,
    )
    started: list[Service] = []

    async def start() -> Service:
        service = await Service.start(env)
        started.append(service)
        return service

    yield start
    for service in started:
        if service.proc.returncode is None:
            await service.kill()


def request_messages(fake: FakeSlack) -> list[StoredMessage]:
    """The request messages in the channel (not thread replies)."""
    return [m for m in fake.messages(CHANNEL) if m.thread_ts is None]


async def test_a_restart_between_post_and_click_still_completes_the_run(
    services: Any, fake_slack: FakeSlack
) -> None:
    first: Service = await services()
    status, text = await first.send(
        slash_command_body(
            text="start change service=billing version=3.1",
            user_id="U0DAVE",
            response_url=fake_slack.response_url(),
        )  # fmt: skip
    )
    assert status == 200 and "Started *Change*" in text, text
    run_id = text.split("run `")[1].split("`")[0]
    (message,) = await eventually(lambda: request_messages(fake_slack), what="the request post")
    await first.kill()

    second: Service = await services()
    click = block_actions_payload(
        message=message.to_api(), action_id=action_ids.APPROVE, channel_id=CHANNEL,
        user_id="U0ALICE",
    )  # fmt: skip
    click_sent_at = time.monotonic()
    assert (await second.send(interactive_body(click)))[0] == 200

    def thread() -> list[str]:
        return [m.text or "" for m in fake_slack.messages(CHANNEL) if m.thread_ts == message.ts]

    (reply,) = await eventually(thread, timeout=15, what="the outcome in the thread")
    assert f"Run `{run_id}` completed" in reply and "<@U0ALICE>" in reply
    updated = fake_slack.message(CHANNEL, message.ts)
    assert "Approved" in str(updated.blocks) and "actions" not in str(updated.blocks)
    assert len(request_messages(fake_slack)) == 1  # posted once across both processes
    # The service reuses one HTTP session: its Slack calls share connections.
    after_restart = [c for c in fake_slack.records if c.received_at >= click_sent_at]
    assert len(after_restart) >= 2
    assert len({c.client for c in after_restart}) < len(after_restart)

    assert (await second.send(interactive_body(click), wrong_secret="nope"))[0] == 401
    assert await second.terminate() == 0
    assert any("stopped" in line for line in second.log), second.log
