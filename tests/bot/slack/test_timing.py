"""Slack's 3-second rule: clicks are acked before any slow work; submissions answer fast."""

from __future__ import annotations

import time

from bot.slack import action_ids
from tests.support.polling import eventually
from tests.support.slack_bot import Bot

SLOW = 1.5  # seconds each slowed Slack call takes


async def test_a_click_is_acked_before_slow_slack_calls_finish(bot: Bot) -> None:
    run_id = await bot.start("change", {"service": "billing", "approvers": ["U0BOB"],
                                        "channel": "C0APPROVALS"})  # fmt: skip
    message = await bot.message(run_id)
    bot.fake.slow_down("chat.postEphemeral", SLOW)
    sent = time.monotonic()

    reply = await bot.click(message, action_ids.APPROVE, user="U0DAVE")

    assert reply.status == 200 and reply.elapsed < 0.5
    await eventually(lambda: bot.ephemerals("U0DAVE"), what="the refusal")
    assert time.monotonic() - sent >= SLOW  # the reply went out long before the work ended


async def test_a_click_that_opens_a_modal_is_acked_before_views_open(bot: Bot) -> None:
    run_id = await bot.start("refund", {"customer": "ACME", "amount": 5})
    message = await bot.message(run_id)
    bot.fake.slow_down("views.open", SLOW)

    reply = await bot.click(message, action_ids.APPROVE_MODAL, user="U0ALICE")

    assert reply.status == 200 and reply.elapsed < 0.5
    opened = await eventually(lambda: bot.fake.calls("views.open"), what="views.open")
    assert opened[0].ok


async def test_a_modal_submission_resumes_and_acks_well_within_the_budget(bot: Bot) -> None:
    run_id = await bot.start("refund", {"customer": "ACME", "amount": 5})
    await bot.click(await bot.message(run_id), action_ids.APPROVE_MODAL, user="U0ALICE")
    view = (await eventually(lambda: bot.fake.calls("views.open"), what="views.open"))[0]

    reply = await bot.submit(view.args["view"], {"reason": "duplicate", "ticket": "3"})

    assert (reply.status, reply.text) == (200, "")
    assert reply.elapsed < 1.0
    assert (await bot.interrupt(run_id)).responses[0].actor == "U0ALICE"
