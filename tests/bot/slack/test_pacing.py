"""bot.slack.pacing: the notifier's Slack calls keep to Slack's limits instead of hitting them."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import pytest
from slack_sdk.http_retry.builtin_async_handlers import AsyncRateLimitErrorRetryHandler

from bot.slack import action_ids
from bot.slack.pacing import PacedWebClient, Pacer, PacingLimits, paced_client
from engine import InterruptStatus
from tests.fakes.ratelimits import SlackLimits
from tests.fakes.slack_api import FakeSlack
from tests.fakes.support import without_proxy
from tests.support.polling import eventually
from tests.support.slack_bot import Bot

CHANNEL = "C0APPROVALS"
SCALE = 1 / 20  # a "minute" lasts 3 s; one post per channel every 50 ms


@pytest.fixture(autouse=True)
def _no_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    without_proxy(monkeypatch)


@pytest.fixture
async def fake() -> AsyncIterator[FakeSlack]:
    async with FakeSlack() as running:
        yield running


def paced(fake: FakeSlack, **limits: object) -> PacedWebClient:
    return paced_client(fake.client(), Pacer(PacingLimits(time_scale=SCALE, **limits)))  # type: ignore[arg-type]


async def test_posts_to_one_channel_are_paced_without_429s(fake: FakeSlack) -> None:
    fake.enforce_limits(SlackLimits(time_scale=SCALE))
    client = paced(fake)
    started = time.monotonic()

    await asyncio.gather(
        *(client.chat_postMessage(channel=CHANNEL, text=f"m{i}") for i in range(30))
    )

    elapsed = time.monotonic() - started
    minimum = (30 - 3) * SCALE  # a burst of 3, then one a (scaled) second
    assert fake.rate_limit_hits == {}
    assert len(fake.messages(CHANNEL)) == 30
    assert minimum <= elapsed * 1.01 and elapsed <= minimum * 1.2 + 0.1


async def test_pending_updates_of_one_message_are_coalesced_latest_wins(fake: FakeSlack) -> None:
    ts = (await fake.client().chat_postMessage(channel=CHANNEL, text="v0"))["ts"]
    client = paced(fake, per_minute={"chat.update": 1})
    await client.chat_update(channel=CHANNEL, ts=ts, text="v1")  # uses the minute's budget

    results = await asyncio.gather(
        *(client.chat_update(channel=CHANNEL, ts=ts, text=f"v{i}") for i in range(2, 6))
    )

    assert [c.args["text"] for c in fake.calls("chat.update")] == ["v1", "v5"]
    assert all(r["ok"] for r in results)
    assert client.pacer.coalesced == 3
    assert fake.message(CHANNEL, ts).text == "v5"


async def test_a_new_request_goes_before_a_thread_reply_in_the_same_channel(
    fake: FakeSlack,
) -> None:
    client = paced(fake, post_message_burst=1)
    ts = (await client.chat_postMessage(channel=CHANNEL, text="first"))["ts"]

    reply = asyncio.ensure_future(client.chat_postMessage(channel=CHANNEL, thread_ts=ts, text="r"))
    await asyncio.sleep(0)
    post = asyncio.ensure_future(client.chat_postMessage(channel=CHANNEL, text="new request"))
    await asyncio.gather(reply, post)

    assert [c.args["text"] for c in fake.calls("chat.postMessage")] == ["first", "new request", "r"]


async def test_unbudgeted_methods_are_not_delayed(fake: FakeSlack) -> None:
    client = paced(fake, per_minute={})
    started = time.monotonic()
    for _ in range(20):
        await client.auth_test()
    assert time.monotonic() - started < 2


async def test_workers_share_the_budgets(fake: FakeSlack) -> None:
    client = paced_client(fake.client(), Pacer(PacingLimits(time_scale=SCALE), share=2))
    started = time.monotonic()
    await asyncio.gather(*(client.chat_postMessage(channel=CHANNEL, text="m") for i in range(11)))
    # Half the rate and a burst of 1: ten waits of two scaled seconds each.
    assert time.monotonic() - started >= 10 * 2 * SCALE


async def test_the_clicker_sees_the_outcome_through_response_url(bot: Bot) -> None:
    run_id = await bot.start("change", {"service": "billing"})
    message = await bot.message(run_id)

    await bot.click(message, action_ids.APPROVE, user="U0ALICE")

    posts = await eventually(bot.fake.response_url_posts, what="the response_url post")
    assert posts[0].body["replace_original"] is True
    assert "Approved" in str(posts[0].body["blocks"])
    assert (await bot.interrupt(run_id)).status is InterruptStatus.APPROVED


async def test_the_notifier_is_paced_and_listeners_are_not(bot: Bot) -> None:
    assert isinstance(bot._slack.notifier.client, PacedWebClient)
    assert not isinstance(bot._slack.client, PacedWebClient)


async def test_a_429_still_backs_off_by_retry_after(fake: FakeSlack) -> None:
    # Slack granted less than the budget says: the 429 is waited out, not lost.
    fake.enforce_limits(SlackLimits(time_scale=1 / 60).with_method("chat.update", 1))
    ts = (await fake.client().chat_postMessage(channel=CHANNEL, text="v0"))["ts"]
    retrying = fake.client(retry_handlers=[AsyncRateLimitErrorRetryHandler(max_retry_count=2)])
    client = paced_client(retrying, Pacer(PacingLimits(time_scale=1 / 60)))

    await client.chat_update(channel=CHANNEL, ts=ts, text="v1")
    await client.chat_update(channel=CHANNEL, ts=ts, text="v2")

    assert fake.rate_limit_hits["chat.update"] >= 1
    assert fake.message(CHANNEL, ts).text == "v2"


def test_the_bench_minimum_follows_the_limits() -> None:
    from bench.slack_limits import minimum_finish

    posts = minimum_finish([0.0] * 13, 1.0, "chat.postMessage")  # burst 3, then 1/s
    updates = minimum_finish([0.0] * 120, 1.0, "chat.update")  # 50 a minute
    late = minimum_finish([0.0, 100.0], 1.0, "chat.update")

    assert posts == 10.0
    assert updates == 120.0
    assert late == 100.0
