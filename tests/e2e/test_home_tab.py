"""The App Home tab over real HTTP: each person sees what they may answer, and answering
from it is the same exactly-once click as on the channel message.

The bolt app, the engine and the FakeSlack Web API run in-process; Slack's events and
clicks are built and signed as Slack sends them.
"""

from __future__ import annotations

from typing import Any

from bot.slack import action_ids
from engine import InterruptStatus, RunStatus
from tests.fakes.signing import (
    JSON_CONTENT_TYPE,
    app_home_opened_body,
    home_block_actions_payload,
    interactive_body,
)
from tests.support.polling import eventually
from tests.support.slack_bot import Bot

OPS = "S0OPS"


async def open_home(bot: Bot, user: str) -> dict[str, Any]:
    """Open ``user``'s Home tab (a signed app_home_opened event); the view published."""
    before = bot.fake.home_view(user)
    reply = await bot.send(app_home_opened_body(user_id=user), content_type=JSON_CONTENT_TYPE)
    assert reply.status == 200
    view: dict[str, Any] = await eventually(
        lambda: (v := bot.fake.home_view(user)) is not None and v is not before and v,
        what=f"the Home tab of {user}",
    )
    return view


def waiting_runs(view: dict[str, Any]) -> list[str]:
    """Run ids of the requests in the view's "Waiting for you" section, in order."""
    found = []
    for block in view["blocks"]:
        if block["type"] == "header" and block["text"]["text"] == "Your requests":
            break
        text = (block.get("text") or {}).get("text", "")
        if block["type"] == "section" and "run `" in text:
            found.append(text.split("run `", 1)[1].split("`", 1)[0])
    return found


def home_click(view: dict[str, Any], run_index: int, action_id: str, user: str) -> str:
    """A signed-ready body for clicking ``action_id`` of the ``run_index``-th waiting request
    in a Home ``view``."""
    payload = home_block_actions_payload(
        view=view, action_id=action_id, user_id=user, block_index=run_index
    )
    return interactive_body(payload)


async def test_each_home_tab_shows_what_its_person_may_answer_and_answers_it_once(
    bot: Bot,
) -> None:
    bot.fake.set_usergroup(OPS, ["U0BOB"])
    both = await bot.start("change", {"service": "both", "approvers": ["U0ALICE", OPS]})
    group = await bot.start("change", {"service": "group", "approvers": [OPS]})
    anyone = await bot.start("change", {"service": "anyone"}, requester="U0ALICE")
    message = await bot.message(both)
    for run_id in (group, anyone):
        await bot.message(run_id)

    alice = await open_home(bot, "U0ALICE")
    bob = await open_home(bot, "U0BOB")
    carol = await open_home(bot, "U0CAROL")

    # a group member sees group requests; a requester never sees their own as answerable
    assert waiting_runs(alice) == [both]
    assert waiting_runs(bob) == [both, group, anyone]
    assert waiting_runs(carol) == [anyone]
    assert "Waiting for you (3)" in str(bob["blocks"][0])
    assert anyone in str(alice)  # under "Your requests"
    assert bot.fake.validation_failures == []

    reply = await bot.send(home_click(alice, 0, action_ids.APPROVE, "U0ALICE"))
    assert reply.status == 200
    run = await bot.finished(both)
    assert run.status is RunStatus.COMPLETED and run.output["approved_by"] == "U0ALICE"
    await eventually(
        lambda: "Approved* by <@U0ALICE>" in str(bot.fake.message(message.channel, message.ts)),
        what="the channel message to show the approval",
    )
    # both approvers' tabs are refreshed without it; the decision is under "Recently decided"
    await eventually(
        lambda: waiting_runs(bot.fake.home_view("U0ALICE") or {"blocks": []}) == [],
        what="Alice's tab refreshed",
    )
    await eventually(
        lambda: waiting_runs(bot.fake.home_view("U0BOB") or {"blocks": []}) == [group, anyone],
        what="Bob's tab refreshed",
    )
    assert "approved* by <@U0ALICE>" not in str(bot.fake.home_view("U0ALICE"))
    assert ":white_check_mark: approved by <@U0ALICE>" in str(bot.fake.home_view("U0BOB"))

    # Bob clicks the stale copy of his tab: nothing changes, and he is told who decided
    stale = await bot.send(home_click(bob, 0, action_ids.APPROVE, "U0BOB"))
    assert stale.status == 200
    dm = await eventually(
        lambda: [
            c.args["text"]
            for c in bot.fake.calls("chat.postMessage")
            if c.args.get("channel") == "U0BOB" and "already" in str(c.args.get("text"))
        ],
        what="Bob told it was decided",
    )
    assert "already approved by <@U0ALICE>" in dm[0]
    interrupt = await bot.interrupt(both)
    assert interrupt.status is InterruptStatus.APPROVED
    assert [r.actor for r in interrupt.responses] == ["U0ALICE"]


async def test_slash_pending_lists_what_the_home_tab_shows(bot: Bot) -> None:
    bot.fake.set_usergroup(OPS, ["U0BOB"])
    group = await bot.start("change", {"service": "group", "approvers": [OPS]})
    mine = await bot.start("change", {"service": "own"}, requester="U0BOB")
    await bot.message(group)
    await bot.message(mine)

    reply = await bot.command("pending", user="U0BOB")
    home = await open_home(bot, "U0BOB")

    text = reply.text if reply.text.startswith("*") else str(reply.json())
    assert "1 request(s) waiting for you" in text and group in text and mine not in text
    assert waiting_runs(home) == [group]
