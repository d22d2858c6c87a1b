"""The Home tab's limits and refresh pacing: capped to Slack's 100 blocks with a count,
refreshes coalesced per person and paced under views.publish's Tier 4."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

from bot.slack import commands
from bot.slack.blocks.home import HOME_BLOCKS_MAX, WAITING_MAX
from bot.slack.home import HomeTab
from engine import OutboxMessage
from tests.fakes.signing import JSON_CONTENT_TYPE, app_home_opened_body
from tests.support.polling import eventually
from tests.support.slack_bot import Bot, BotFactory


def home_of(bot: Bot) -> HomeTab:
    home = bot.slack.deps.home
    assert home is not None
    return home


async def test_a_tab_with_more_waiting_than_fits_is_capped_with_a_count(bot: Bot) -> None:
    count = WAITING_MAX + 5
    for n in range(count):  # each parked before the tab opens, so its first view counts all
        await bot.start("change", {"service": f"s{n}", "approvers": ["U0BOB"]})

    await bot.send(app_home_opened_body(user_id="U0BOB"), content_type=JSON_CONTENT_TYPE)
    view = await eventually(lambda: bot.fake.home_view("U0BOB"), what="the Home tab")

    assert len(view["blocks"]) <= HOME_BLOCKS_MAX
    assert view["blocks"][0]["text"]["text"] == f"Waiting for you ({count})"
    assert "…and 5 more, oldest first" in str(view["blocks"])
    assert "console" not in str(view["blocks"])  # no SIGNOFF_PUBLIC_URL: nothing to link
    assert sum(b["type"] == "actions" for b in view["blocks"]) == WAITING_MAX
    assert bot.fake.validation_failures == []


async def test_what_does_not_fit_is_found_through_the_console(make_bot: BotFactory) -> None:
    bot = await make_bot(SIGNOFF_PUBLIC_URL="https://signoff.example.com")
    for n in range(WAITING_MAX + 2):
        await bot.start("change", {"service": f"s{n}", "approvers": ["U0BOB"]})

    await bot.send(app_home_opened_body(user_id="U0BOB"), content_type=JSON_CONTENT_TYPE)
    view = await eventually(lambda: bot.fake.home_view("U0BOB"), what="the Home tab")
    pending = await bot.command("pending", user="U0BOB")

    (note,) = [b for b in view["blocks"] if "more" in str(b)]
    assert "…and 2 more" in str(note) and "<https://signoff.example.com/|The console>" in str(note)
    # The command lists fewer than the tab: it says where the rest are, not "all there".
    listed = commands.LIST_MAX
    assert f"…and {WAITING_MAX + 2 - listed} more: the oldest {WAITING_MAX} are" in pending.text
    assert "<https://signoff.example.com/|the console>" in pending.text


async def test_refreshes_are_coalesced_per_person(bot: Bot) -> None:
    home = home_of(bot)
    home.viewers.update({"U0ALICE", "U0BOB"})
    before = home.published

    for _ in range(5):
        home.schedule("U0ALICE", "U0BOB")
    await eventually(lambda: home.published - before >= 2, what="two publishes")
    await asyncio.sleep(0.1)

    assert home.published - before == 2


async def test_refreshes_past_the_burst_are_paced_per_minute(bot: Bot) -> None:
    now = [0.0]
    home = HomeTab(
        bot.engine,
        bot.slack.client,
        bot.slack.deps.signer,
        bot.settings,
        bot.slack.deps.authorizer,
        per_minute=100,
        burst=2,
        clock=lambda: now[0],
    )
    waited: list[float] = []

    async def fake_sleep(seconds: float) -> None:
        waited.append(seconds)
        now[0] += seconds

    real_sleep = asyncio.sleep
    asyncio.sleep = fake_sleep  # type: ignore[assignment]
    try:
        for _ in range(4):
            await home._pace()
    finally:
        asyncio.sleep = real_sleep
    # two at once, then one every 0.6 s (100 a minute)
    assert [round(w, 2) for w in waited] == [0.6, 0.6]


async def test_a_request_change_reads_nothing_while_no_tab_is_open(bot: Bot) -> None:
    home = home_of(bot)
    reads: list[str] = []
    real = bot.engine.get_interrupt

    async def counted(run_id: str, interrupt_id: str) -> object:
        reads.append(run_id)
        return await real(run_id, interrupt_id)

    run_id = await bot.engine.start("change", {"service": "s", "approvers": ["U0BOB"]})
    await bot.posted(run_id)
    interrupt = await bot.interrupt(run_id)
    message = OutboxMessage(
        id=10_000, topic="interrupt.created", run_id=run_id, interrupt_id=interrupt.id,
        data={}, created_at=datetime.now(UTC), attempt=1,
    )  # fmt: skip
    bot.engine.get_interrupt = counted  # type: ignore[method-assign]
    try:
        home.viewers.clear()
        await home.on_outbox(message)
        assert reads == [] and not home._due

        home.viewers.add("U0BOB")  # Bob's tab is open: it is read and refreshed
        await home.on_outbox(message)
        assert reads == [run_id]
        await eventually(lambda: bot.fake.home_view("U0BOB"), what="Bob's tab published")
    finally:
        del bot.engine.get_interrupt
