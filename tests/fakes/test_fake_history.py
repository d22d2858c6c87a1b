"""Message metadata and conversations.history, through slack-sdk's AsyncWebClient."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from typing import Any

import pytest
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from tests.fakes.slack_api import FakeSlack
from tests.fakes.support import without_proxy

CHANNEL = "C0APPROVALS"
META = {"event_type": "signoff_request", "event_payload": {"run_id": "r-1", "step": "deploy"}}


@pytest.fixture(autouse=True)
def _no_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    without_proxy(monkeypatch)


@pytest.fixture
async def fake() -> AsyncIterator[FakeSlack]:
    async with FakeSlack() as running:
        yield running


@pytest.fixture
def client(fake: FakeSlack) -> AsyncWebClient:
    return fake.client()


async def _post(client: AsyncWebClient, n: int, channel: str = CHANNEL) -> list[str]:
    return [(await client.chat_postMessage(channel=channel, text=f"m{i}"))["ts"] for i in range(n)]


async def test_metadata_is_stored_and_returned_only_with_include_all_metadata(
    fake: FakeSlack, client: AsyncWebClient
) -> None:
    posted = await client.chat_postMessage(channel=CHANNEL, text="Deploy?", metadata=META)

    assert posted["message"]["metadata"] == META
    assert fake.message(CHANNEL, posted["ts"]).metadata == META
    plain = await client.conversations_history(channel=CHANNEL)
    assert "metadata" not in plain["messages"][0]
    full = await client.conversations_history(channel=CHANNEL, include_all_metadata=True)
    assert full["messages"][0]["metadata"] == META


async def test_chat_update_replaces_metadata_and_marks_the_message_edited(
    fake: FakeSlack, client: AsyncWebClient
) -> None:
    ts = (await client.chat_postMessage(channel=CHANNEL, text="Deploy?", metadata=META))["ts"]
    settled = fake.settled_at(CHANNEL, ts)
    done = {"event_type": "signoff_decided", "event_payload": {"run_id": "r-1"}}

    await client.chat_update(channel=CHANNEL, ts=ts, text="Approved", metadata=done)

    [message] = (await client.conversations_history(channel=CHANNEL, include_all_metadata=True))[
        "messages"
    ]
    assert (message["text"], message["metadata"]) == ("Approved", done)
    assert "edited" in message
    assert fake.settled_at(CHANNEL, ts) > settled >= fake.message(CHANNEL, ts).posted_at


@pytest.mark.parametrize(
    "metadata",
    [
        pytest.param({"event_payload": {}}, id="no-event-type"),
        pytest.param({"event_type": 7, "event_payload": {}}, id="event-type-not-a-string"),
        pytest.param({"event_type": "x", "event_payload": [1]}, id="payload-not-an-object"),
        pytest.param({"event_type": "x"}, id="no-payload"),
        pytest.param(["x"], id="not-an-object"),
    ],
)
async def test_malformed_metadata_is_rejected_and_nothing_is_posted(
    fake: FakeSlack, client: AsyncWebClient, metadata: Any
) -> None:
    with pytest.raises(SlackApiError) as caught:
        await client.chat_postMessage(channel=CHANNEL, text="x", metadata=metadata)

    assert caught.value.response["error"] == "invalid_metadata_format"
    assert fake.messages(CHANNEL) == []


async def test_history_is_newest_first_and_pages_with_a_cursor(client: AsyncWebClient) -> None:
    posted = await _post(client, 7)

    seen: list[str] = []
    cursor = None
    pages = 0
    while True:
        page = await client.conversations_history(channel=CHANNEL, limit=3, cursor=cursor)
        pages += 1
        seen += [m["ts"] for m in page["messages"]]
        cursor = page["response_metadata"]["next_cursor"]
        assert page["has_more"] is bool(cursor)
        if not cursor:
            break

    assert seen == list(reversed(posted))
    assert pages == 3


async def test_the_sdk_paginator_walks_every_page(client: AsyncWebClient) -> None:
    posted = await _post(client, 5)

    seen = []
    async for page in await client.conversations_history(channel=CHANNEL, limit=2):
        seen += [m["ts"] for m in page["messages"]]

    assert seen == list(reversed(posted))


async def test_limit_defaults_to_100_and_is_capped_at_999(
    fake: FakeSlack, client: AsyncWebClient
) -> None:
    for i in range(1001):
        fake.state.post_message(CHANNEL, {"text": f"m{i}"})

    default = await client.conversations_history(channel=CHANNEL)
    capped = await client.conversations_history(channel=CHANNEL, limit=5000)

    assert (len(default["messages"]), default["has_more"]) == (100, True)
    assert (len(capped["messages"]), capped["has_more"]) == (999, True)


async def test_latest_and_oldest_bound_the_range_exclusively_unless_inclusive(
    client: AsyncWebClient,
) -> None:
    t = await _post(client, 5)

    exclusive = await client.conversations_history(channel=CHANNEL, oldest=t[1], latest=t[3])
    inclusive = await client.conversations_history(
        channel=CHANNEL, oldest=t[1], latest=t[3], inclusive=True
    )

    assert [m["ts"] for m in exclusive["messages"]] == [t[2]]
    assert [m["ts"] for m in inclusive["messages"]] == [t[3], t[2], t[1]]


async def test_thread_replies_are_left_out_and_counted_on_their_parent(
    client: AsyncWebClient,
) -> None:
    parent = (await client.chat_postMessage(channel=CHANNEL, text="Deploy?"))["ts"]
    await client.chat_postMessage(channel=CHANNEL, text="r1", thread_ts=parent)
    last = (await client.chat_postMessage(channel=CHANNEL, text="r2", thread_ts=parent))["ts"]

    [message] = (await client.conversations_history(channel=CHANNEL))["messages"]

    assert message["ts"] == parent
    assert (message["thread_ts"], message["reply_count"], message["latest_reply"]) == (
        parent,
        2,
        last,
    )


async def test_a_dm_posted_to_a_user_id_is_in_the_history_of_its_d_channel(
    fake: FakeSlack, client: AsyncWebClient
) -> None:
    fake.add_user("U0ALICE", name="alice")
    posted = await client.chat_postMessage(channel="U0ALICE", text="hi", metadata=META)

    history = await client.conversations_history(
        channel=posted["channel"], include_all_metadata=True
    )

    assert posted["channel"].startswith("D")
    assert [(m["ts"], m["metadata"]) for m in history["messages"]] == [(posted["ts"], META)]
    assert history["messages"][0]["bot_id"] == fake.state.bot_id


@pytest.mark.parametrize(
    ("kwargs", "error"),
    [
        pytest.param({"channel": "U0ALICE"}, "channel_not_found", id="user-id"),
        pytest.param({"channel": "nope"}, "channel_not_found", id="not-an-id"),
        pytest.param({"channel": CHANNEL, "cursor": "garbage!"}, "invalid_cursor", id="cursor"),
    ],
)
async def test_history_errors(client: AsyncWebClient, kwargs: dict[str, Any], error: str) -> None:
    with pytest.raises(SlackApiError) as caught:
        await client.conversations_history(**kwargs)

    assert caught.value.response["error"] == error


async def test_an_empty_channel_has_an_empty_history(client: AsyncWebClient) -> None:
    history = await client.conversations_history(channel="C0EMPTY")

    assert (history["messages"], history["has_more"]) == ([], False)
    assert history["response_metadata"]["next_cursor"] == ""


async def test_replies_read_a_thread_back_parent_first_with_metadata_and_pages(
    client: AsyncWebClient,
) -> None:
    parent = (await client.chat_postMessage(channel=CHANNEL, text="Deploy?"))["ts"]
    replies = [
        (await client.chat_postMessage(channel=CHANNEL, thread_ts=parent, text=f"r{i}",
                                       metadata=META))["ts"]
        for i in range(3)
    ]  # fmt: skip
    await client.chat_postMessage(channel=CHANNEL, text="another thread")

    first = await client.conversations_replies(
        channel=CHANNEL, ts=parent, limit=2, include_all_metadata=True
    )
    assert [m["ts"] for m in first["messages"]] == [parent, replies[0]]
    assert first["messages"][1]["metadata"] == META
    assert first["has_more"] is True
    rest = await client.conversations_replies(
        channel=CHANNEL, ts=parent, cursor=first["response_metadata"]["next_cursor"]
    )
    assert [m["ts"] for m in rest["messages"]] == replies[1:]
    assert "metadata" not in rest["messages"][0]
    assert rest["has_more"] is False


async def test_replies_of_an_unknown_thread_are_refused(client: AsyncWebClient) -> None:
    with pytest.raises(SlackApiError) as raised:
        await client.conversations_replies(channel=CHANNEL, ts="1.000001")
    assert raised.value.response["error"] == "thread_not_found"


async def test_message_timestamps_follow_the_clock_like_slacks(client: AsyncWebClient) -> None:
    before = time.time()
    ts = [(await client.chat_postMessage(channel=CHANNEL, text=f"m{i}"))["ts"] for i in range(3)]

    assert before - 1 <= float(ts[0]) <= time.time() + 1
    assert ts == sorted(ts, key=float) and len(set(ts)) == 3
