"""A button's reference is bound to the message it was posted in; the ack means recorded."""

from __future__ import annotations

from typing import Any

from bot.slack import action_ids
from engine import InterruptStatus
from tests.support.polling import eventually
from tests.support.slack_bot import Bot


def _approve_value(message: Any) -> str:
    for block in message.blocks:
        for element in block.get("elements") or []:
            if element.get("action_id") == action_ids.APPROVE:
                return str(element["value"])
    raise AssertionError("no Approve button")


async def test_a_reference_naming_another_request_than_the_clicked_message_changes_nothing(
    bot: Bot,
) -> None:
    first = await bot.start("change", {"service": "billing"})
    second = await bot.start("change", {"service": "search"})
    clicked, other = await bot.message(first), await bot.message(second)
    other_ref = _approve_value(other)

    def swap(payload: dict[str, Any]) -> None:
        payload["actions"][0]["value"] = other_ref  # authentic, but not this message's

    reply = await bot.click(clicked, action_ids.APPROVE, user="U0ALICE", edit=swap)

    assert reply.status == 200
    assert "does not belong to this message" in await bot.ephemeral("U0ALICE")
    for run_id in (first, second):
        interrupt = await bot.interrupt(run_id)
        assert interrupt.status is InterruptStatus.PENDING and not interrupt.responses


async def test_a_click_from_a_view_has_no_message_to_be_bound_to_and_still_answers(
    bot: Bot,
) -> None:
    # e.g. a request shown in App Home: the container is the view, not a message.
    run_id = await bot.start("change", {"service": "billing"})
    message = await bot.message(run_id)

    def from_a_view(payload: dict[str, Any]) -> None:
        payload["container"] = {"type": "view", "view_id": "V0HOME"}
        payload.pop("message")
        payload.pop("channel")

    reply = await bot.click(message, action_ids.APPROVE, user="U0ALICE", edit=from_a_view)

    assert reply.status == 200
    assert (await bot.interrupt(run_id)).resolved_by == "U0ALICE"


async def test_a_deciding_click_is_recorded_before_its_ack(bot: Bot) -> None:
    run_id = await bot.start("change", {"service": "billing"})
    message = await bot.message(run_id)

    reply = await bot.click(message, action_ids.APPROVE, user="U0ALICE")

    assert reply.status == 200
    # No waiting: the answer was committed before the 200 was sent.
    interrupt = await bot.interrupt(run_id)
    assert interrupt.status is InterruptStatus.APPROVED
    assert [r.actor for r in interrupt.responses] == ["U0ALICE"]


async def test_a_quorum_receipt_is_sent_after_the_ack_with_the_vote_already_counted(
    bot: Bot,
) -> None:
    run_id = await bot.start("change", {"service": "billing", "quorum": 2})
    message = await bot.message(run_id)

    await bot.click(message, action_ids.APPROVE, user="U0ALICE")

    assert (await bot.interrupt(run_id)).approvals == 1
    receipt = await eventually(lambda: bot.ephemerals("U0ALICE"), what="the receipt")
    assert "1 of 2 approvals" in receipt[0]


async def test_a_copy_not_recorded_yet_is_bound_by_its_own_metadata(bot: Bot) -> None:
    # As a post that reached Slack just before a crash, before its ref was written.
    run_id = await bot.start("change", {"service": "billing"})
    message = await bot.message(run_id)
    posted = await bot.fake.client().chat_postMessage(
        channel=message.channel, text="copy", blocks=message.blocks, metadata=message.metadata
    )
    copy = bot.fake.message(message.channel, posted["ts"])

    reply = await bot.click(copy, action_ids.APPROVE, user="U0ALICE")

    assert reply.status == 200
    assert (await bot.interrupt(run_id)).resolved_by == "U0ALICE"
