"""The fake's enforcing rate-limit mode, through slack-sdk's AsyncWebClient."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable
from typing import Any

import pytest
from slack_sdk.errors import SlackApiError
from slack_sdk.http_retry.builtin_async_handlers import AsyncRateLimitErrorRetryHandler
from slack_sdk.web.async_client import AsyncWebClient

from tests.fakes.ratelimits import TIER_2, TIER_3, TIER_4, SlackLimits
from tests.fakes.slack_api import FakeSlack
from tests.fakes.support import without_proxy

CHANNEL = "C0APPROVALS"


class _Clock:
    """A monotonic clock the test moves by hand, so windows are exact."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture(autouse=True)
def _no_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    without_proxy(monkeypatch)


@pytest.fixture
async def fake() -> AsyncIterator[FakeSlack]:
    async with FakeSlack() as running:
        running.add_user("U0ALICE", name="alice")
        running.set_usergroup("S0APPROVERS", ["U0ALICE"])
        yield running


@pytest.fixture
def client(fake: FakeSlack) -> AsyncWebClient:
    return fake.client()


def _frozen(fake: FakeSlack, limits: SlackLimits | None = None) -> _Clock:
    clock = _Clock()
    fake.enforce_limits(limits).clock = clock
    return clock


async def _refused(call: Awaitable[Any]) -> SlackApiError:
    with pytest.raises(SlackApiError) as caught:
        await call
    return caught.value


async def test_limits_are_off_by_default(fake: FakeSlack, client: AsyncWebClient) -> None:
    for i in range(10):
        await client.chat_postMessage(channel=CHANNEL, text=f"m{i}")
    for _ in range(TIER_2 + 5):
        await client.usergroups_users_list(usergroup="S0APPROVERS")

    assert fake.limiter is None and not fake.rate_limit_hits


async def _call(client: AsyncWebClient, method: str) -> Any:
    if method == "usergroups.users.list":
        return await client.usergroups_users_list(usergroup="S0APPROVERS")
    if method == "users.info":
        return await client.users_info(user="U0ALICE")
    return await client.conversations_history(channel=CHANNEL)


@pytest.mark.parametrize(
    ("method", "per_minute"),
    [
        ("usergroups.users.list", TIER_2),
        ("conversations.history", TIER_3),
        ("users.info", TIER_4),
    ],
)
async def test_a_tier_allows_exactly_its_calls_per_minute_then_429s(
    fake: FakeSlack, client: AsyncWebClient, method: str, per_minute: int
) -> None:
    clock = _frozen(fake)
    for _ in range(per_minute):
        await _call(client, method)

    error = await _refused(_call(client, method))
    clock.now += 59.5
    later = await _refused(_call(client, method))
    clock.now += 0.5
    await _call(client, method)

    assert error.response.status_code == 429
    assert error.response["error"] == "ratelimited"
    assert error.response.headers["Retry-After"] == "60"
    assert later.response.headers["Retry-After"] == "1"  # 0.5 s rounded up
    assert fake.rate_limit_hits == {method: 2}
    assert fake.last_call(method).ok
    assert [c.status for c in fake.calls(method)][-3:] == [429, 429, 200]


async def test_a_sliding_window_frees_one_slot_per_expired_call(
    fake: FakeSlack, client: AsyncWebClient
) -> None:
    clock = _frozen(fake, SlackLimits().with_method("users.info", 2))
    await client.users_info(user="U0ALICE")
    clock.now += 10
    await client.users_info(user="U0ALICE")

    first = await _refused(client.users_info(user="U0ALICE"))
    clock.now += 50  # the first call leaves the window
    await client.users_info(user="U0ALICE")
    second = await _refused(client.users_info(user="U0ALICE"))

    assert first.response.headers["Retry-After"] == "50"
    assert second.response.headers["Retry-After"] == "10"


async def test_post_message_allows_a_burst_then_one_per_second_per_channel(
    fake: FakeSlack, client: AsyncWebClient
) -> None:
    clock = _frozen(fake)
    for i in range(3):
        await client.chat_postMessage(channel="U0ALICE", text=f"m{i}")

    refused = await _refused(client.chat_postMessage(channel="D0ALICE", text="x"))
    other = await client.chat_postMessage(channel=CHANNEL, text="elsewhere")
    clock.now += 1
    await client.chat_postMessage(channel="U0ALICE", text="m3")
    again = await _refused(client.chat_postMessage(channel="U0ALICE", text="m4"))

    assert refused.response.status_code == 429
    assert refused.response.headers["Retry-After"] == "1"
    assert other["ok"]
    assert again.response.status_code == 429
    assert [m.text for m in fake.messages("D0ALICE")] == ["m0", "m1", "m2", "m3"]
    assert fake.rate_limit_hits == {"chat.postMessage": 2}


async def test_post_message_has_a_workspace_wide_cap(
    fake: FakeSlack, client: AsyncWebClient
) -> None:
    clock = _frozen(fake, SlackLimits(post_message_per_minute=5))
    for i in range(5):
        await client.chat_postMessage(channel=f"C0ROOM{i}", text="hi")

    error = await _refused(client.chat_postMessage(channel="C0ROOM9", text="hi"))
    clock.now += 60
    await client.chat_postMessage(channel="C0ROOM9", text="hi")

    assert error.response.headers["Retry-After"] == "60"
    assert len(fake.messages("C0ROOM9")) == 1


async def test_a_refused_call_does_not_take_effect(fake: FakeSlack, client: AsyncWebClient) -> None:
    ts = (await client.chat_postMessage(channel=CHANNEL, text="Deploy?"))["ts"]
    _frozen(fake, SlackLimits().with_method("chat.update", 1))
    await client.chat_update(channel=CHANNEL, ts=ts, text="first")
    settled = fake.settled_at(CHANNEL, ts)

    error = await _refused(client.chat_update(channel=CHANNEL, ts=ts, text="second"))

    assert error.response.status_code == 429
    assert fake.message(CHANNEL, ts).text == "first"
    assert fake.settled_at(CHANNEL, ts) == settled


async def test_waiting_retry_after_seconds_succeeds(
    fake: FakeSlack, client: AsyncWebClient
) -> None:
    fake.enforce_limits(SlackLimits(time_scale=1 / 30).with_method("users.info", 3))  # 2 s window
    for _ in range(3):
        await client.users_info(user="U0ALICE")

    error = await _refused(client.users_info(user="U0ALICE"))
    retry_after = int(error.response.headers["Retry-After"])
    await asyncio.sleep(retry_after)
    response = await client.users_info(user="U0ALICE")

    assert retry_after in (1, 2)
    assert response["ok"]


async def test_the_sdk_rate_limit_retry_handler_recovers(fake: FakeSlack) -> None:
    fake.enforce_limits(SlackLimits(time_scale=1 / 60).with_method("users.info", 2))  # 1 s window
    client = fake.client(retry_handlers=[AsyncRateLimitErrorRetryHandler(max_retry_count=2)])
    for _ in range(2):
        await client.users_info(user="U0ALICE")

    started = time.monotonic()
    response = await client.users_info(user="U0ALICE")

    assert response["ok"]
    assert fake.rate_limit_hits["users.info"] >= 1
    assert time.monotonic() - started >= 1  # it slept Retry-After (plus jitter)
    assert [c.status for c in fake.calls("users.info")][-1] == 200
