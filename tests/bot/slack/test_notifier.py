"""The outbox subscriber: posts once, retries what Slack may accept later, drops the rest."""

from __future__ import annotations

import asyncio
import copy
import logging
from datetime import UTC, datetime

import pytest

from bot import posted_messages
from bot.slack import action_ids
from engine import Interrupt, OutboxMessage, RunStatus
from tests.fakes.slack_api import Failure
from tests.support.polling import eventually
from tests.support.slack_bot import CHANNEL, Bot


def request_posts(bot: Bot) -> list[object]:
    """chat.postMessage calls that were not thread replies (any outcome), nor notices sent
    straight to a user id (requests to users go to their DM's D… id)."""
    return [
        c
        for c in bot.fake.calls("chat.postMessage")
        if "thread_ts" not in c.args and not str(c.args.get("channel")).startswith(("U", "W"))
    ]


async def test_a_429_on_post_is_retried_after_retry_after_and_posted_once(bot: Bot) -> None:
    bot.fake.fail_next("chat.postMessage", Failure.rate_limited(retry_after=1))

    run_id = await bot.start("change", {"service": "billing"})
    await bot.message(run_id)

    calls = request_posts(bot)
    assert [c.status for c in calls] == [429, 200]  # type: ignore[attr-defined]
    waited = calls[1].received_at - calls[0].received_at  # type: ignore[attr-defined]
    assert waited >= 1.0  # slack-sdk honoured Retry-After
    assert len(bot.fake.messages(CHANNEL)) == 1


async def test_server_errors_beyond_the_sdk_retries_are_retried_by_the_outbox(
    make_bot: object,
) -> None:
    bot: Bot = await make_bot(SIGNOFF_SLACK_RETRIES="0")  # type: ignore[operator]
    bot.fake.fail_next("chat.postMessage", Failure.server_error(status=503))

    run_id = await bot.start("change", {"service": "billing"})
    await bot.message(run_id)

    assert [c.status for c in request_posts(bot)] == [503, 200]  # type: ignore[attr-defined]
    assert len(bot.fake.messages(CHANNEL)) == 1


async def test_a_redelivered_created_message_does_not_post_twice(bot: Bot) -> None:
    run_id = await bot.start("change", {"service": "billing"})
    await bot.message(run_id)
    interrupt = await bot.interrupt(run_id)
    again = OutboxMessage(
        id=10_000, topic="interrupt.created", run_id=run_id, interrupt_id=interrupt.id,
        data={}, created_at=datetime.now(UTC), attempt=2,
    )  # fmt: skip

    await bot.slack.notifier(again)
    await bot.slack.notifier(again)

    assert len(request_posts(bot)) == 1
    assert len(posted_messages(await bot.interrupt(run_id))) == 1


async def test_a_permanent_slack_error_is_logged_not_retried_and_the_run_goes_on(
    bot: Bot, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.ERROR, logger="signoff.bot.notifier")
    run_id = await bot.start("change", {"service": "billing", "channel": "nowhere"})
    await eventually(lambda: request_posts(bot), what="the post attempt")
    interrupt = await bot.interrupt(run_id)

    await bot.engine.resume(run_id, interrupt.id, {"approved": True}, actor="U0ALICE")

    assert (await bot.finished(run_id)).status is RunStatus.COMPLETED
    await asyncio.sleep(1.2)  # longer than the outbox's first backoff
    assert len(request_posts(bot)) == 1
    assert "channel_not_found" in caplog.text
    assert posted_messages(await bot.interrupt(run_id)) == []


async def test_a_request_with_nowhere_to_go_is_logged(
    make_bot: object, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.ERROR, logger="signoff.bot.notifier")
    bot: Bot = await make_bot(SIGNOFF_DEFAULT_CHANNEL="")  # type: ignore[operator]
    bot.fake.set_usergroup("S0OPS", ["U0BOB"])

    await bot.start("change", {"service": "billing", "approvers": ["S0OPS"]})

    await eventually(lambda: "names no channel" in caplog.text, what="the error log")
    assert request_posts(bot) == []


async def test_resolving_outside_slack_still_updates_the_message(bot: Bot) -> None:
    run_id = await bot.start("change", {"service": "billing"})
    message = copy.deepcopy(await bot.message(run_id))
    interrupt = await bot.interrupt(run_id)

    await bot.engine.resume(run_id, interrupt.id, {"approved": False}, actor="api-user")

    await eventually(
        lambda: "*Rejected* by api-user" in str(bot.fake.message(CHANNEL, message.ts).blocks),
        what="the update",
    )
    assert (await bot.finished(run_id)).status is RunStatus.REJECTED
    await bot.click(message, action_ids.APPROVE, user="U0ALICE")
    assert "already rejected by api-user" in await bot.ephemeral("U0ALICE")


async def test_the_subscribers_of_a_decision_share_one_read_of_the_interrupt(
    bot: Bot, monkeypatch: pytest.MonkeyPatch
) -> None:
    run_id = await bot.start("change", {"service": "billing"})
    message = await bot.message(run_id)
    interrupt = await bot.interrupt(run_id)

    async def settled() -> bool:
        return await bot.engine.outbox_backlog() == 0

    await eventually(settled, what="the request's messages delivered")
    reads: list[str] = []
    get_interrupt = bot.engine.get_interrupt

    async def counted(run: str, interrupt_id: str) -> Interrupt:
        reads.append(interrupt_id)
        return await get_interrupt(run, interrupt_id)

    monkeypatch.setattr(bot.engine, "get_interrupt", counted)
    await bot.engine.resume(run_id, interrupt.id, {"approved": True}, actor="api-user")
    await eventually(settled, what="every outbox message delivered")
    assert "*Approved* by api-user" in str(bot.fake.message(CHANNEL, message.ts).blocks)
    # The notifier reads it; the metrics take the notifier's read (not another one).
    assert reads == [interrupt.id]
