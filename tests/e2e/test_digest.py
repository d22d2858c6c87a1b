"""Digest reminders over real HTTP: reminders due together for a person with several
requests become one DM listing them all, with controls that work; a person with one
request keeps the per-request reminder in its thread."""

from __future__ import annotations

import asyncio
from typing import Any

from bot.slack import action_ids
from engine import RunStatus
from tests.fakes.slack_api import StoredMessage
from tests.support.polling import eventually
from tests.support.slack_bot import Bot


def digests(bot: Bot, user: str) -> list[Any]:
    return [
        c
        for c in bot.fake.calls("chat.postMessage")
        if c.ok
        and c.args.get("channel") == user
        and (c.args.get("metadata") or {}).get("event_payload", {}).get("kind") == "digest"
    ]


def reminder_replies(bot: Bot, message: StoredMessage) -> list[str]:
    return [
        m.text or ""
        for m in bot.fake.messages(message.channel)
        if m.thread_ts == message.ts and "Reminder" in (m.text or "")
    ]


async def test_five_reminders_due_together_become_one_digest_dm(bot: Bot) -> None:
    runs = [
        await bot.start(
            "change", {"service": f"s{n}", "approvers": ["U0ALICE"], "reminders": [1.5]}
        )
        for n in range(5)
    ]
    single = await bot.start(
        "change", {"service": "solo", "approvers": ["U0BOB"], "reminders": [1.5]}
    )
    messages = [await bot.message(r) for r in runs]
    bob_message = await bot.message(single)

    (digest,) = await eventually(lambda: digests(bot, "U0ALICE"), timeout=10, what="the digest")
    await eventually(lambda: reminder_replies(bot, bob_message), timeout=10, what="Bob's reminder")
    await asyncio.sleep(1.5)  # every reminder has fired by now

    assert len(digests(bot, "U0ALICE")) == 1  # one DM, not five
    assert all(reminder_replies(bot, m) == [] for m in messages)
    assert digests(bot, "U0BOB") == []  # one request: the per-request reminder stays
    assert "5 requests waiting for you" in digest.args["text"]
    listed = [tuple(r) for r in digest.args["metadata"]["event_payload"]["requests"]]
    assert sorted(r for r, _ in listed) == sorted(runs)
    assert bot.fake.validation_failures == []

    # its controls answer the request they sit under
    (stored,) = [
        m for m in bot.fake.messages("D0ALICE") if (m.text or "").startswith("Reminder: 5")
    ]
    reply = await bot.click(stored, action_ids.APPROVE, user="U0ALICE")
    assert reply.status == 200
    first_listed = listed[0][0]
    assert (await bot.finished(first_listed)).status is RunStatus.COMPLETED


async def test_digest_off_keeps_per_request_reminders(bot: Bot) -> None:
    reply = await bot.command("digest off", user="U0ALICE")
    assert "Reminder digest: *off*" in reply.text
    runs = [
        await bot.start(
            "change", {"service": f"s{n}", "approvers": ["U0ALICE"], "reminders": [1.0]}
        )
        for n in range(2)
    ]
    messages = [await bot.message(r) for r in runs]

    for message in messages:
        await eventually(lambda m=message: reminder_replies(bot, m), timeout=10, what="a reminder")
    assert digests(bot, "U0ALICE") == []
