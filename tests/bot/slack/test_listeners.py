"""Listener paths that are rare in practice but must still answer Slack correctly."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from bot.slack import action_ids, listeners
from engine import ResumeValidationError, RunStatus
from tests.support.polling import eventually
from tests.support.slack_bot import Bot


async def open_refund_modal(bot: Bot) -> tuple[str, dict[str, Any]]:
    """Start a refund run and open its Approve modal; return the run id and the view."""
    run_id = await bot.start("refund", {"customer": "ACME", "amount": 5})
    await bot.click(await bot.message(run_id), action_ids.APPROVE_MODAL, user="U0ALICE")
    opened = await eventually(lambda: bot.fake.calls("views.open"), what="views.open")
    return run_id, opened[0].args["view"]


async def test_engine_validation_errors_are_shown_under_the_modal_fields(
    bot: Bot, monkeypatch: pytest.MonkeyPatch
) -> None:
    run_id, view = await open_refund_modal(bot)

    async def refuse(run: str, interrupt: str, data: Any, *, actor: str) -> Any:
        raise ResumeValidationError(run, interrupt, {"ticket": "Ticket is closed", "": "No"})

    monkeypatch.setattr(bot.engine, "resume", refuse)

    reply = await bot.submit(view, {"reason": "double charged", "ticket": "9"})

    assert reply.json() == {
        "response_action": "errors",
        "errors": {"ticket": "Ticket is closed", "reason": "No"},  # "" goes to the first field
    }


def over_budget(bot: Bot, monkeypatch: pytest.MonkeyPatch) -> None:
    """Make every resume take 0.3 s, six times the listeners' budget (0.05 s)."""
    resume = bot.engine.resume

    async def slow_resume(*args: Any, **kwargs: Any) -> Any:
        await asyncio.sleep(0.3)
        return await resume(*args, **kwargs)

    monkeypatch.setattr(bot.engine, "resume", slow_resume)
    monkeypatch.setattr(listeners, "SUBMIT_BUDGET", 0.05)


async def test_a_submission_slower_than_the_budget_is_acked_and_still_recorded(
    bot: Bot, monkeypatch: pytest.MonkeyPatch
) -> None:
    run_id, view = await open_refund_modal(bot)
    over_budget(bot, monkeypatch)

    reply = await bot.submit(view, {"reason": "double charged", "ticket": "9"})

    assert reply.elapsed < 0.3
    body = reply.json()
    assert body["response_action"] == "update" and "being recorded" in str(body["view"])
    assert (await bot.finished(run_id)).status is RunStatus.COMPLETED


async def test_a_click_slower_than_the_budget_is_acked_and_still_recorded(
    bot: Bot, monkeypatch: pytest.MonkeyPatch
) -> None:
    run_id = await bot.start("change", {"service": "billing"})
    message = await bot.message(run_id)
    over_budget(bot, monkeypatch)

    reply = await bot.click(message, action_ids.APPROVE, user="U0ALICE")

    assert reply.status == 200 and reply.elapsed < 0.3  # acked before the answer was in
    assert (await bot.interrupt(run_id)).responses == []
    finished = await bot.finished(run_id)
    assert finished.status is RunStatus.COMPLETED
    assert (await bot.interrupt(run_id)).resolved_by == "U0ALICE"


async def test_an_expired_trigger_tells_the_clicker_to_click_again(bot: Bot) -> None:
    run_id = await bot.start("refund", {"customer": "ACME", "amount": 5})
    message = await bot.message(run_id)
    bot.fake.expire_trigger("1.2.expired")

    def expired_trigger(payload: dict[str, Any]) -> None:
        payload["trigger_id"] = "1.2.expired"

    await bot.click(message, action_ids.APPROVE_MODAL, user="U0ALICE", edit=expired_trigger)

    assert "please click again" in await bot.ephemeral("U0ALICE")
    assert (await bot.interrupt(run_id)).responses == []


async def test_an_unauthorized_person_gets_no_modal(bot: Bot) -> None:
    run_id = await bot.start("refund", {"customer": "ACME", "amount": 5}, requester="U0ALICE")
    message = await bot.message(run_id)

    await bot.click(message, action_ids.APPROVE_MODAL, user="U0ALICE")  # the requester

    assert "You requested this" in await bot.ephemeral("U0ALICE")
    assert bot.fake.calls("views.open") == []


async def test_a_select_menu_carries_its_reference_in_the_block_id(bot: Bot) -> None:
    run_id = await bot.start("regions", {"title": "failover"})
    message = await bot.message(run_id)
    assert message.blocks[-1]["elements"][0]["type"] == "static_select"
    assert message.blocks[-1]["block_id"].startswith("s1.")

    await bot.click(message, action_ids.SELECT, user="U0BOB", selected="eu-west-1")

    assert (await bot.finished(run_id)).output == {"region": "eu-west-1"}
