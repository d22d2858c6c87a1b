"""No duplicate posts: a post that may have reached Slack is looked for before it is redone.

Slack can accept a post whose answer never comes back (a crash, a lost response, a
timeout). Each message carries metadata naming its interrupt, target and kind, so a
retried post reads the conversation back and adopts its earlier copy.
"""

from __future__ import annotations

import asyncio
from typing import Any

from bot.slack import action_ids
from engine import RunStatus
from tests.fakes.slack_api import Failure, FakeSlack, StoredMessage
from tests.support.polling import eventually
from tests.support.slack_bot import CHANNEL, Bot, BotFactory


def top_level(fake: FakeSlack) -> list[StoredMessage]:
    return [m for m in fake.messages(CHANNEL) if m.thread_ts is None]


def has_controls(message: StoredMessage) -> bool:
    return any(block.get("type") == "actions" for block in message.blocks)


async def test_request_messages_carry_metadata_naming_their_interrupt(bot: Bot) -> None:
    run_id = await bot.start("change", {"service": "billing"})
    message = await bot.message(run_id)
    interrupt = await bot.interrupt(run_id)

    assert message.metadata == {
        "event_type": "signoff_request",
        "event_payload": {
            "run_id": run_id, "interrupt_id": interrupt.id, "target": CHANNEL, "kind": "request",
        },
    }  # fmt: skip


async def test_a_post_whose_answer_was_lost_is_found_in_history_not_posted_again(
    make_bot: BotFactory,
) -> None:
    bot = await make_bot(SIGNOFF_SLACK_RETRIES="0")
    bot.fake.fail_next("chat.postMessage", Failure.lost_answer())  # posted, answer lost

    run_id = await bot.start("change", {"service": "billing"})
    (posted,) = await bot.posted(run_id)

    assert [c.status for c in bot.fake.calls("chat.postMessage")] == [503]  # not posted again
    assert bot.fake.calls("conversations.history")  # looked before posting again
    (only,) = top_level(bot.fake)
    assert (posted.ts, has_controls(only)) == (only.ts, True)


async def test_copies_found_twice_keep_the_oldest_and_the_others_lose_their_buttons(
    make_bot: BotFactory,
) -> None:
    bot = await make_bot(SIGNOFF_SLACK_RETRIES="0")
    bot.fake.fail_next("chat.postMessage", Failure.server_error(status=503))
    run_id = await bot.start("change", {"service": "billing"})
    await eventually(lambda: bot.fake.calls("chat.postMessage"), what="the failed post")
    interrupt = await bot.interrupt(run_id)
    # Two earlier copies whose answers were lost (as two crashed attempts would leave).
    blocks: list[dict[str, Any]] = [{"type": "section", "text": {"type": "mrkdwn", "text": "x"}}]
    blocks.append({"type": "actions", "elements": [
        {"type": "button", "action_id": action_ids.APPROVE, "value": "v",
         "text": {"type": "plain_text", "text": "Approve"}},
    ]})  # fmt: skip
    metadata = {"event_type": "signoff_request", "event_payload": {
        "run_id": run_id, "interrupt_id": interrupt.id, "target": CHANNEL, "kind": "request",
    }}  # fmt: skip
    client = bot.fake.client()
    for _ in range(2):
        await client.chat_postMessage(channel=CHANNEL, text="t", blocks=blocks, metadata=metadata)
    older, newer = top_level(bot.fake)

    (kept,) = await bot.posted(run_id)  # the outbox's retry adopted a copy

    assert kept.ts == older.ts and len(top_level(bot.fake)) == 2
    await eventually(lambda: not has_controls(bot.fake.message(CHANNEL, newer.ts)),
                     what="the newer copy superseded")  # fmt: skip
    assert "Superseded" in str(bot.fake.message(CHANNEL, newer.ts).blocks)
    superseded = bot.fake.message(CHANNEL, newer.ts).metadata or {}
    assert superseded["event_payload"]["superseded"] is True


async def test_a_thread_reply_whose_answer_was_lost_is_not_posted_again(
    make_bot: BotFactory,
) -> None:
    bot = await make_bot(SIGNOFF_SLACK_RETRIES="0")
    run_id = await bot.start("change", {"service": "billing"})
    message = await bot.message(run_id)
    bot.fake.fail_next("chat.postMessage", Failure.lost_answer())  # the outcome reply

    await bot.click(message, action_ids.APPROVE, user="U0ALICE")
    assert (await bot.finished(run_id)).status is RunStatus.COMPLETED
    await eventually(lambda: bot.fake.calls("conversations.replies"), timeout=10,
                     what="the retry reading the thread back")  # fmt: skip
    await asyncio.sleep(0.3)  # anything the retry would post, it has posted by now

    replies = [m for m in bot.fake.messages(CHANNEL) if m.thread_ts == message.ts]
    assert len(replies) == 1 and "completed" in (replies[0].text or "")
