"""A request nobody can see is not silent: history, /metrics, the API, the requester, admins."""

from __future__ import annotations

import asyncio
import logging

import pytest

from bot.slack.app import attach_slack
from engine import Engine, EventType, open_store
from tests.e2e.wf_approvals import WORKFLOWS
from tests.fakes.slack_api import Failure, FakeSlack
from tests.support.polling import eventually
from tests.support.slack_bot import ADMIN, Bot, BotFactory, settings_for

TOKEN = "api-token-for-undelivered-tests"


def dm_texts(bot: Bot, user: str) -> list[str]:
    """Messages the bot sent straight to ``user`` (their DM channel)."""
    return [m.text or "" for m in bot.fake.messages("D" + user[1:])]


async def undelivered_events(bot: Bot, run_id: str) -> list[dict[str, object]]:
    detail = await bot.engine.get_run(run_id)
    return [e.data for e in detail.events if e.type is EventType.UNDELIVERED]


async def test_a_request_with_no_destination_is_recorded_counted_shown_and_told(
    make_bot: BotFactory,
) -> None:
    bot = await make_bot(SIGNOFF_DEFAULT_CHANNEL="", SIGNOFF_API_TOKEN=TOKEN)
    # Only a user group may answer, and there is no channel to show it in.
    run_id = await bot.start("change", {"service": "billing", "approvers": ["S0OPS"]})

    (event,) = await eventually(lambda: undelivered_events(bot, run_id), what="the record")
    assert event["target"] is None and event["reason"] == "no_destination"
    for user in ("U0CAROL", ADMIN):  # the requester and the admin are told, once each
        (text,) = await eventually(lambda u=user: dm_texts(bot, u), what=f"a DM to {user}")
        assert run_id in text and "no default channel" in text
    async with bot.http.get(
        f"{bot.url}/api/runs/{run_id}", headers={"Authorization": f"Bearer {TOKEN}"}
    ) as response:
        shown = await response.json()
    assert any(e["type"] == "undelivered" for e in shown["events"])
    async with bot.http.get(f"{bot.url}/metrics") as response:
        metrics = await response.text()
    assert 'signoff_requests_undelivered_total{reason="no_destination"} 1.0' in metrics

    await asyncio.sleep(0.3)
    assert len(dm_texts(bot, "U0CAROL")) == 1 and len(dm_texts(bot, ADMIN)) == 1


@pytest.mark.parametrize("error", ["channel_not_found", "not_in_channel", "is_archived"])
async def test_a_post_slack_refuses_for_good_is_reported_undelivered_once(
    bot: Bot, error: str
) -> None:
    bot.fake.fail_next("chat.postMessage", Failure.api_error(error))

    run_id = await bot.start("change", {"service": "billing", "channel": "C0GONE"})

    (event,) = await eventually(lambda: undelivered_events(bot, run_id), what="the record")
    assert (event["target"], event["reason"]) == ("C0GONE", error)
    (text,) = await eventually(lambda: dm_texts(bot, ADMIN), what="the admin told")
    assert "C0GONE" in text
    assert not bot.fake.messages("C0GONE")


async def test_a_notice_redelivered_tells_nobody_twice(bot: Bot) -> None:
    bot.fake.fail_next("chat.postMessage", Failure.api_error("is_archived"))
    run_id = await bot.start("change", {"service": "billing", "channel": "C0GONE"})
    await eventually(lambda: dm_texts(bot, ADMIN), what="the admin told")
    interrupt = await bot.interrupt(run_id)
    await bot.engine.report_undelivered(run_id, interrupt.id, target="C0GONE", reason="is_archived")

    await asyncio.sleep(0.5)  # the second notice is delivered by now
    assert len(dm_texts(bot, ADMIN)) == 1 and len(dm_texts(bot, "U0CAROL")) == 1


async def test_start_up_warns_once_when_requests_may_have_nowhere_to_go(
    fake_slack: FakeSlack, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="signoff.bot.undelivered")
    engine = Engine(open_store("sqlite:///:memory:"), workflows=WORKFLOWS)

    attach_slack(engine, settings_for(fake_slack, SIGNOFF_DEFAULT_CHANNEL=""))
    attach = [r for r in caplog.records if "SIGNOFF_DEFAULT_CHANNEL is not set" in r.message]
    assert len(attach) == 1 and "change" in attach[0].message

    caplog.clear()
    other = Engine(open_store("sqlite:///:memory:"), workflows=WORKFLOWS)
    attach_slack(other, settings_for(fake_slack))  # a default channel: nothing to say
    assert not caplog.records
