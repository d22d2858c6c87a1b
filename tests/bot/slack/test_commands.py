"""The slash command: start, pending, status, cancel, list, help, and helpful errors."""

from __future__ import annotations

import pytest

from bot.slack import commands
from bot.slack.commands import parse_input
from engine import RunStatus
from tests.support.polling import eventually
from tests.support.slack_bot import ADMIN, Bot

# -- parsing the input ---------------------------------------------------------------------


def test_key_value_pairs_stay_strings_for_pydantic_to_convert() -> None:
    assert parse_input('service=billing version=1.10 quorum=2 note="ship it"') == {
        "service": "billing", "version": "1.10", "quorum": "2", "note": "ship it",
    }  # fmt: skip


def test_json_values_mentions_and_smart_quotes_are_understood() -> None:
    text = 'approvers=["<@U0BOB|bob>","U0DAVE"] channel=<#C0OPS|ops> note=“hi there”'
    assert parse_input(text) == {
        "approvers": ["U0BOB", "U0DAVE"],
        "channel": "C0OPS",
        "note": "hi there",
    }


def test_slack_escaping_is_undone() -> None:
    assert parse_input("note=&lt;b&gt;&amp;co reviewer=<@U0BOB>") == {
        "note": "<b>&co",
        "reviewer": "U0BOB",
    }
    assert parse_input('tags=["a b", "c"] n=1') == {"tags": ["a b", "c"], "n": "1"}


def test_a_json_object_is_the_whole_input() -> None:
    assert parse_input('{"service": "billing", "quorum": 2}') == {"service": "billing", "quorum": 2}


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("service", "is not `key=value`"),
        ("a=1 a=2", "given twice"),
        ('note="unclosed', "check the quotes"),
        ('a="x"y', "needs a space"),
        ("{not json", "JSON is not valid"),
        ("[1, 2]", "is not `key=value`"),
        ('["a"]', "is not `key=value`"),
        ("tags=[1,", "not valid JSON"),
    ],
)
def test_unreadable_input_says_what_is_wrong(text: str, problem: str) -> None:
    with pytest.raises(ValueError, match=problem.replace("[", r"\[")):
        parse_input(text)


# -- over HTTP -----------------------------------------------------------------------------


async def test_start_validates_records_the_requester_and_posts_the_request(bot: Bot) -> None:
    reply = await bot.command("start change service=billing version=2.0", user="U0DAVE")

    assert reply.status == 200 and reply.text.startswith(":rocket: Started *Change*: run `")
    run_id = reply.text.split("run `")[1].split("`")[0]
    run = (await bot.engine.get_run(run_id)).run
    assert run.requester == "U0DAVE" and run.input["version"] == "2.0"
    await bot.message(run_id)


async def test_start_lists_input_errors_and_starts_nothing(bot: Bot) -> None:
    reply = await bot.command("start change quorum=lots", user="U0DAVE")

    assert "The input is not valid for `change`; nothing was started." in reply.text
    assert "• `service`: Field required" in reply.text
    assert "• `quorum`: Input should be a valid integer" in reply.text
    assert "input: `service`, `version` (optional)" in reply.text
    assert await bot.engine.list_runs() == []


async def test_start_explains_unknown_workflows_and_unreadable_input(bot: Bot) -> None:
    unknown = await bot.command("start deploy service=x")
    assert "There is no workflow `deploy`" in unknown.text and "`change` v1" in unknown.text

    unreadable = await bot.command('start change note="oops')
    assert "I couldn't read the input" in unreadable.text and "Usage:" in unreadable.text

    bare = await bot.command("start")
    assert "Usage:" in bare.text and "Workflows you can start" in bare.text


async def test_pending_lists_what_waits_for_me_including_through_groups(bot: Bot) -> None:
    assert "Nothing is waiting for you" in (await bot.command("pending", user="U0ALICE")).text
    bot.fake.set_usergroup("S0OPS", ["U0ALICE"])
    mine = await bot.start("change", {"service": "mine", "approvers": ["U0ALICE"]})
    via_group = await bot.start("change", {"service": "ops", "approvers": ["group:S0OPS"]})
    anyone = await bot.start("change", {"service": "open"})
    not_mine = await bot.start("change", {"service": "bob", "approvers": ["U0BOB"]})
    own = await bot.start("change", {"service": "own"}, requester="U0ALICE")
    await bot.posted(mine)

    reply = await bot.command("pending", user="U0ALICE")

    assert reply.text.startswith("*3 request(s) waiting for you:*")
    for run_id in (mine, via_group, anyone):
        assert run_id in reply.text
    for run_id in (not_mine, own):
        assert run_id not in reply.text
    assert "in your DMs" in reply.text and "<!subteam^S0OPS>" in reply.text

    others = await bot.command("pending", user="U0ERIN")  # only the open ones
    assert anyone in others.text and own in others.text and mine not in others.text


async def test_pending_says_where_the_requests_it_does_not_list_are(bot: Bot) -> None:
    for n in range(commands.LIST_MAX + 2):
        await bot.start("change", {"service": f"s{n}", "approvers": ["U0BOB"]})

    reply = await bot.command("pending", user="U0BOB")

    assert reply.text.startswith(f"*{commands.LIST_MAX + 2} request(s) waiting for you:*")
    assert reply.text.count("\n• ") == commands.LIST_MAX
    assert reply.text.endswith("…and 2 more, all on the app's Home tab.")


async def test_status_shows_where_a_run_is(bot: Bot) -> None:
    run_id = await bot.start("change", {"service": "billing", "quorum": 1})

    waiting = await bot.command(f"status {run_id}")
    assert f"*Run `{run_id}`*" in waiting.text and "*suspended*" in waiting.text
    assert "Waiting for:" in waiting.text and "requested by <@U0CAROL>" in waiting.text

    await bot.engine.resume(run_id, (await bot.interrupt(run_id)).id, {"approved": True},
                            actor="U0ALICE")  # fmt: skip
    await bot.finished(run_id)
    done = await bot.command(f"status {run_id}")
    assert "*completed*" in done.text and "completed." in done.text

    assert "There is no run `nope`" in (await bot.command("status nope")).text
    assert "Usage:" in (await bot.command("status")).text


async def test_only_the_requester_or_an_admin_may_cancel(bot: Bot) -> None:
    first = await bot.start("change", {"service": "billing"}, requester="U0CAROL")
    second = await bot.start("change", {"service": "payroll"}, requester="U0CAROL")
    message = await bot.message(first)

    refused = await bot.command(f"cancel {first}", user="U0ALICE")
    assert "Only the run's requester or a Signoff admin" in refused.text
    assert "<@U0CAROL>" in refused.text
    assert (await bot.engine.get_run(first)).run.status is RunStatus.SUSPENDED

    done = await bot.command(f"cancel {first} no longer needed", user="U0CAROL")
    assert done.text == f":no_entry_sign: Cancelled run `{first}`: no longer needed"
    assert (await bot.finished(first)).status is RunStatus.CANCELLED
    (thread,) = await bot.thread_replies(message)
    assert "was cancelled by <@U0CAROL>: no longer needed" in thread
    await eventually(
        lambda: "*Cancelled* by <@U0CAROL>" in str(bot.fake.message(message.channel,
                                                                     message.ts).blocks),
        what="the cancelled message",
    )  # fmt: skip

    assert "Cancelled run" in (await bot.command(f"cancel {second}", user=ADMIN)).text
    again = await bot.command(f"cancel {second}", user=ADMIN)
    assert "already finished: it is cancelled" in again.text


async def test_list_shows_workflows_and_recent_runs(bot: Bot) -> None:
    run_id = await bot.start("change", {"service": "billing"})

    everything = await bot.command("list")
    assert "*Workflows you can start:*" in everything.text and "`refund` v1" in everything.text
    assert run_id in everything.text

    assert run_id not in (await bot.command("list refund")).text
    assert run_id in (await bot.command("list change")).text
    assert "There is no workflow `nope`" in (await bot.command("list nope")).text


async def test_help_and_unknown_subcommands_are_helpful(bot: Bot) -> None:
    for text in ("", "help"):
        reply = await bot.command(text)
        assert reply.text.startswith("*Signoff* · `/signoff <subcommand>`")
    unknown = await bot.command("approve everything")
    assert unknown.text.startswith(":thinking_face: I don't know `approve`.")
    assert "`/signoff pending`" in unknown.text


async def test_the_command_name_is_configurable(make_bot: object) -> None:
    bot: Bot = await make_bot(SIGNOFF_SLASH_COMMAND="/approvals")  # type: ignore[operator]

    reply = await bot.command("help")

    assert reply.text.startswith("*Signoff* · `/approvals <subcommand>`")


async def test_a_slow_reply_is_acked_at_once_and_sent_to_the_response_url(
    bot: Bot, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(commands, "COMMAND_BUDGET", 0.0)
    url = bot.fake.response_url()

    reply = await bot.command("help", response_url=url)

    assert reply.text == ":hourglass_flowing_sand: Working on it…"
    posts = await eventually(lambda: bot.fake.response_url_posts(url), what="the late reply")
    assert posts[0].body["text"].startswith("*Signoff*")
    assert posts[0].body["response_type"] == "ephemeral"
