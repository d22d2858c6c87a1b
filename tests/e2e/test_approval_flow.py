"""End to end over real HTTP: a run suspends, Slack shows it, people click, the run goes on.

Each test runs the engine and the aiohttp app in-process against the FakeSlack Web API;
Slack's requests are built and signed as Slack sends them.
"""

from __future__ import annotations

import asyncio
import copy
from typing import Any

from bot.slack import action_ids
from engine import EventType, InterruptStatus, RunStatus
from tests.fakes.blockkit import MESSAGE_BLOCKS_MAX
from tests.fakes.slack_api import StoredMessage
from tests.support.polling import eventually
from tests.support.slack_bot import CHANNEL, Bot


def block_types(message: StoredMessage) -> list[str]:
    """The types of the message's blocks, in order."""
    return [b["type"] for b in message.blocks]


def all_text(message: StoredMessage) -> str:
    """Every text in the message's blocks, joined (for 'shows X' assertions)."""
    parts: list[str] = []

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            if isinstance(node.get("text"), str):
                parts.append(node["text"])
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for item in node:
                walk(item)

    walk(message.blocks)
    return "\n".join(parts)


def request_posts(bot: Bot) -> list[Any]:
    """Successful chat.postMessage calls that were requests (not thread replies)."""
    return [c for c in bot.fake.calls("chat.postMessage") if c.ok and "thread_ts" not in c.args]


async def test_approve_resumes_the_run_updates_the_message_and_replies_in_the_thread(
    bot: Bot,
) -> None:
    run_id = await bot.start("change", {"service": "billing", "version": "2.4.1"})
    message = await bot.message(run_id)

    assert message.channel == CHANNEL
    assert block_types(message)[0] == "header" and block_types(message)[-1] == "actions"
    shown = all_text(message)
    assert "Change: Approve change" in shown
    assert "*Service*\nbilling" in shown and "*Version*\n2.4.1" in shown
    assert f"Run `{run_id}`" in shown and "Requested by <@U0CAROL>" in shown
    assert "May respond: anyone in the channel" in shown
    values = [e["value"] for e in message.blocks[-1]["elements"]]
    assert len(set(values)) == 1 and values[0].startswith("s1.")

    reply = await bot.click(message, action_ids.APPROVE, user="U0ALICE")
    assert (reply.status, reply.text) == (200, "")

    run = await bot.finished(run_id)
    assert run.status is RunStatus.COMPLETED
    assert run.output["approved_by"] == "U0ALICE"
    (thread,) = await bot.thread_replies(message)
    assert f"Run `{run_id}` completed" in thread and "*Approved by*: <@U0ALICE>" in thread

    updated = bot.fake.message(message.channel, message.ts)
    assert "actions" not in block_types(updated)
    assert ":white_check_mark: *Approved* by <@U0ALICE>" in all_text(updated)
    assert len(request_posts(bot)) == 1
    assert bot.fake.validation_failures == []


async def test_reject_ends_the_run_as_rejected_and_says_so(bot: Bot) -> None:
    run_id = await bot.start("change", {"service": "billing"})
    message = await bot.message(run_id)

    await bot.click(message, action_ids.REJECT, user="U0BOB")

    run = await bot.finished(run_id)
    assert run.status is RunStatus.REJECTED
    (thread,) = await bot.thread_replies(message)
    assert "was rejected: rejected by U0BOB" in thread
    await eventually(
        lambda: ":x: *Rejected* by <@U0BOB>" in all_text(bot.fake.message(CHANNEL, message.ts)),
        what="the message to show the rejection",
    )


async def test_a_run_that_fails_after_approval_reports_the_error_in_the_thread(bot: Bot) -> None:
    run_id = await bot.start("change", {"service": "billing", "fail_after": True})
    message = await bot.message(run_id)

    await bot.click(message, action_ids.APPROVE, user="U0ALICE")

    assert (await bot.finished(run_id)).status is RunStatus.FAILED
    (thread,) = await bot.thread_replies(message)
    assert "failed: `RuntimeError: deploy target unreachable`" in thread


async def test_modal_with_invalid_data_shows_errors_resumes_nothing_then_accepts_the_fix(
    bot: Bot,
) -> None:
    run_id = await bot.start("refund", {"customer": "ACME", "amount": 120})
    message = await bot.message(run_id)

    assert (await bot.click(message, action_ids.APPROVE_MODAL, user="U0ALICE")).status == 200
    opened = await eventually(lambda: bot.fake.calls("views.open"), what="views.open")
    assert opened[0].ok
    view = opened[0].args["view"]
    assert view["callback_id"] == "signoff_respond:approve"
    assert [b["block_id"] for b in view["blocks"] if b["type"] == "input"] == ["reason", "ticket"]

    invalid = await bot.submit(view, {"reason": "no", "ticket": "0"}, user="U0ALICE")
    assert invalid.status == 200
    assert invalid.json() == {
        "response_action": "errors",
        "errors": {"reason": "Must be at least 5 characters", "ticket": "Must be at least 1"},
    }
    interrupt = await bot.interrupt(run_id)
    assert interrupt.status is InterruptStatus.PENDING and interrupt.responses == []

    fixed = await bot.submit(view, {"reason": "double charged", "ticket": "42"}, user="U0ALICE")
    assert (fixed.status, fixed.text) == (200, "")  # an empty ack closes the modal

    run = await bot.finished(run_id)
    assert run.output == {"customer": "ACME", "approved": True, "reason": "double charged",
                          "ticket": 42}  # fmt: skip
    await eventually(
        lambda: "double charged" in all_text(bot.fake.message(CHANNEL, message.ts)),
        what="the outcome with the reason",
    )


async def test_an_unauthorized_click_is_told_who_may_respond_and_records_nothing(
    bot: Bot,
) -> None:
    run_id = await bot.start("change", {"service": "billing", "approvers": ["U0BOB"]})
    message = await bot.message(run_id)
    updates_before = len(bot.fake.calls("chat.update"))

    assert (await bot.click(message, action_ids.APPROVE, user="U0DAVE")).status == 200

    told = await bot.ephemeral("U0DAVE")
    assert "Only <@U0BOB> may respond" in told
    interrupt = await bot.interrupt(run_id)
    assert interrupt.status is InterruptStatus.PENDING and interrupt.responses == []
    assert len(bot.fake.calls("chat.update")) == updates_before


async def test_the_requester_may_not_approve_their_own_request(bot: Bot) -> None:
    run_id = await bot.start("change", {"service": "billing"}, requester="U0CAROL")
    message = await bot.message(run_id)

    await bot.click(message, action_ids.APPROVE, user="U0CAROL")

    told = await bot.ephemeral("U0CAROL")
    assert "You requested this, so you can't respond to it yourself" in told
    assert (await bot.interrupt(run_id)).responses == []

    allowed = await bot.start(
        "change", {"service": "billing", "allow_requester": True}, requester="U0CAROL"
    )
    await bot.click(await bot.message(allowed), action_ids.APPROVE, user="U0CAROL")
    assert (await bot.finished(allowed)).output["approved_by"] == "U0CAROL"


async def test_two_of_three_quorum_shows_progress_then_resolves_on_the_second(bot: Bot) -> None:
    approvers = ["U0ALICE", "U0BOB", "U0DAVE"]
    run_id = await bot.start(
        "change", {"service": "billing", "approvers": approvers, "quorum": 2, "channel": CHANNEL}
    )
    message = await bot.message(run_id)
    assert "2 approvals needed" in all_text(message)

    await bot.click(message, action_ids.APPROVE, user="U0ALICE")
    assert "1 of 2 approvals so far" in await bot.ephemeral("U0ALICE")
    progress = await eventually(
        lambda: "1 of 2 approvals" in all_text(m := bot.fake.message(CHANNEL, message.ts)) and m,
        what="the progress update",
    )
    assert "<@U0ALICE>" in all_text(progress) and "actions" in block_types(progress)
    progress = copy.deepcopy(progress)  # as the clickers' Slack clients still show it

    await bot.click(progress, action_ids.APPROVE, user="U0ALICE")  # the same person again
    assert "already responded" in await bot.ephemeral("U0ALICE", count=2)

    await bot.click(progress, action_ids.APPROVE, user="U0BOB")
    run = await bot.finished(run_id)
    assert run.status is RunStatus.COMPLETED
    final = await eventually(
        lambda: "*Approved*" in all_text(m := bot.fake.message(CHANNEL, message.ts)) and m,
        what="the final update",
    )
    assert "<@U0ALICE>, <@U0BOB>" in all_text(final) and "actions" not in block_types(final)

    await bot.click(progress, action_ids.APPROVE, user="U0DAVE")  # late
    assert "already approved by <@U0BOB>" in await bot.ephemeral("U0DAVE")


async def test_twenty_concurrent_clicks_resume_exactly_once(bot: Bot) -> None:
    run_id = await bot.start("change", {"service": "billing"})
    message = copy.deepcopy(await bot.message(run_id))
    # Ten people, each double-clicking: twenty requests at once.
    clickers = [f"U0CLICK{n:02d}" for n in range(10)] * 2

    replies = await asyncio.gather(
        *(bot.click(message, action_ids.APPROVE, user=user) for user in clickers)
    )

    assert [r.status for r in replies] == [200] * 20
    run = await bot.finished(run_id)
    winner = run.output["approved_by"]
    detail = await bot.engine.get_run(run_id)
    assert [e.type for e in detail.events].count(EventType.RESPONSE_RECORDED) == 1
    assert [r.actor for r in detail.interrupts[0].responses] == [winner]
    told = await eventually(
        lambda: len(bot.fake.ephemerals) >= 19 and bot.fake.ephemerals, what="19 refusals"
    )
    assert len(told) == 19
    assert all(f"already approved by <@{winner}>" in e["text"] for e in told)
    assert max(r.elapsed for r in replies) < 2.5  # every click acked well inside Slack's 3 s


async def test_a_choice_is_one_button_per_option(bot: Bot) -> None:
    run_id = await bot.start("triage", {"title": "db latency"})
    message = await bot.message(run_id)
    buttons = [e["action_id"] for e in message.blocks[-1]["elements"]]
    assert buttons == ["signoff:choose:low", "signoff:choose:medium", "signoff:choose:high"]

    await bot.click(message, "signoff:choose:high", user="U0ALICE")

    assert (await bot.finished(run_id)).output == {"severity": "high"}
    await eventually(
        lambda: "*High* chosen" in all_text(bot.fake.message(CHANNEL, message.ts)),
        what="the choice in the message",
    )


async def test_a_10000_character_payload_posts_a_valid_message(bot: Bot) -> None:
    body = "The quick brown fox <jumps> & runs. " * 280  # > 10,000 characters
    assert len(body) > 10_000
    run_id = await bot.start("long_text", {"body": body})
    message = await bot.message(run_id)

    assert bot.fake.validation_failures == []
    texts = [b["text"]["text"] for b in message.blocks if b["type"] == "section" and "text" in b]
    assert texts and all(len(t) <= 3000 for t in texts)
    assert "&lt;jumps&gt; &amp; runs" in texts[0] and texts[0].endswith("…")
    await bot.click(message, action_ids.APPROVE, user="U0ALICE")
    assert (await bot.finished(run_id)).output is True


async def test_a_40_field_payload_posts_a_valid_message(bot: Bot) -> None:
    payload = {f"field_{n:02d}": f"value {n}" for n in range(40)}
    run_id = await bot.start("wide", payload)
    message = await bot.message(run_id)

    assert bot.fake.validation_failures == []
    assert len(message.blocks) <= MESSAGE_BLOCKS_MAX
    shown = all_text(message)
    assert "*Field 00*\nvalue 0" in shown and "*Field 39*\nvalue 39" in shown
    await bot.click(message, action_ids.APPROVE, user="U0ALICE")
    assert (await bot.finished(run_id)).output is True


async def test_reminders_go_to_the_thread_and_expiry_updates_the_message(bot: Bot) -> None:
    run_id = await bot.start("change", {"service": "billing", "expires": 1.0, "reminders": [0.2]})
    message = copy.deepcopy(await bot.message(run_id))  # as Slack still shows it
    assert "Expires <!date^" in all_text(message)

    (reminder,) = await bot.thread_replies(message)
    assert reminder.startswith(":bell: Reminder: this request is still waiting")

    run = await bot.finished(run_id)
    assert run.status is RunStatus.REJECTED
    expired = await eventually(
        lambda: "*Expired*" in all_text(m := bot.fake.message(CHANNEL, message.ts)) and m,
        what="the expired update",
    )
    assert "nobody answered in time" in all_text(expired)
    assert "actions" not in block_types(expired)
    replies = await bot.thread_replies(message, count=2)
    assert "was rejected: nobody answered in time" in replies[1]

    await bot.click(message, action_ids.APPROVE, user="U0ALICE")  # a stale button
    assert "expired" in await bot.ephemeral("U0ALICE")


async def test_requests_to_named_approvers_go_to_their_dms_and_all_are_updated(
    bot: Bot,
) -> None:
    run_id = await bot.start("change", {"service": "billing", "approvers": ["U0ALICE", "U0BOB"]})
    alice_dm, bob_dm = await bot.posted(run_id, count=2)

    assert {alice_dm.channel, bob_dm.channel} == {"D0ALICE", "D0BOB"}
    opened = sorted(c.args["users"] for c in bot.fake.calls("conversations.open"))
    assert opened == ["U0ALICE", "U0BOB"]

    await bot.click(alice_dm, action_ids.APPROVE, user="U0ALICE")

    await bot.finished(run_id)
    for dm in (alice_dm, bob_dm):
        await eventually(
            lambda dm=dm: (
                "*Approved* by <@U0ALICE>" in all_text(bot.fake.message(dm.channel, dm.ts))
            ),
            what=f"the update in {dm.channel}",
        )


async def test_user_group_members_may_respond_and_others_are_refused(bot: Bot) -> None:
    bot.fake.set_usergroup("S0OPS", ["U0BOB", "U0ERIN"])
    run_id = await bot.start("change", {"service": "billing", "approvers": ["group:S0OPS"]})
    message = await bot.message(run_id)  # groups only: posted to the default channel
    assert message.channel == CHANNEL and "<!subteam^S0OPS>" in all_text(message)

    await bot.click(message, action_ids.APPROVE, user="U0DAVE")
    assert "Only <!subteam^S0OPS> may respond" in await bot.ephemeral("U0DAVE")
    assert (await bot.interrupt(run_id)).responses == []

    await bot.click(message, action_ids.APPROVE, user="U0BOB")
    assert (await bot.finished(run_id)).output["approved_by"] == "U0BOB"
    lookups = bot.fake.calls("usergroups.users.list")
    assert [c.args["usergroup"] for c in lookups] == ["S0OPS"]  # cached between the clicks
