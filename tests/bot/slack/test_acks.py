"""bot.slack.acks: Slack requests waiting for their answer go before the notifier's work."""

from __future__ import annotations

import asyncio

from bot.slack.acks import AckFirst
from engine import RunStatus
from tests.support.polling import eventually
from tests.support.slack_bot import Bot


async def test_a_turn_is_free_when_no_request_waits() -> None:
    acks = AckFirst()
    await acks.turn()
    assert acks.deferred == 0


async def test_a_turn_waits_until_the_requests_are_answered() -> None:
    acks = AckFirst(max_defer=30)
    order: list[str] = []

    async def background() -> None:
        await acks.turn()
        order.append("background")

    with acks.answering(), acks.answering():
        task = asyncio.ensure_future(background())
        await eventually(lambda: acks.deferred == 1, what="the background task to wait")
        order.append("answered")
    await task
    assert order == ["answered", "background"]
    assert acks.waiting == 0 and acks.deferred == 0


async def test_a_turn_comes_after_max_defer_however_busy() -> None:
    acks = AckFirst(max_defer=0.01)
    with acks.answering():
        await acks.turn()  # returns although a request still waits
        assert acks.waiting == 1
    assert acks.deferred == 0


async def test_the_notifier_updates_slack_once_the_waiting_acks_are_sent(bot: Bot) -> None:
    run_id = await bot.start("change", {"service": "billing"})
    message = await bot.message(run_id)
    interrupt = await bot.interrupt(run_id)
    acks = bot.slack.acks
    acks.max_defer = 30

    with acks.answering():  # as if a click were being acked
        await bot.engine.resume(run_id, interrupt.id, {"approved": True}, actor="U0ALICE")
        await eventually(lambda: acks.deferred >= 1, what="the notifier to wait its turn")
        assert bot.fake.calls("chat.update") == []

    await eventually(lambda: bot.fake.calls("chat.update"), what="the update")
    assert "Approved" in str(bot.fake.message(message.channel, message.ts).blocks)


async def test_an_answered_run_goes_on_once_the_waiting_acks_are_sent(bot: Bot) -> None:
    """The click's answer is committed at once; the run's next steps wait for the acks."""
    run_id = await bot.start("change", {"service": "billing"})
    interrupt = await bot.interrupt(run_id)
    acks = bot.slack.acks
    acks.max_defer = 30

    with acks.answering():  # as if a click were being acked
        outcome = await bot.engine.resume(run_id, interrupt.id, {"approved": True}, actor="U0ALICE")
        assert outcome.resolved
        await eventually(lambda: acks.deferred >= 1, what="the run's driver to wait its turn")
        run = await bot.engine.find_run(run_id)
        assert run is not None and run.status is RunStatus.RUNNING

    finished = await bot.engine.wait(run_id, timeout=10)
    assert finished.status is RunStatus.COMPLETED
