"""The fake Slack Web API, specified over real HTTP through slack-sdk's AsyncWebClient."""

from __future__ import annotations

import json
import random
import select
import socket
import time
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from slack_sdk.errors import SlackApiError
from slack_sdk.http_retry.builtin_async_handlers import AsyncRateLimitErrorRetryHandler
from slack_sdk.models.blocks import ActionsBlock, ButtonElement, SectionBlock
from slack_sdk.models.views import View
from slack_sdk.web.async_client import AsyncWebClient
from slack_sdk.webhook.async_client import AsyncWebhookClient

from tests.fakes.slack_api import Failure, FakeSlack

CHANNEL = "C0APPROVALS"


def _section(text: str) -> dict[str, Any]:
    return {"type": "section", "text": {"type": "mrkdwn", "text": text}}


def _modal(**overrides: Any) -> dict[str, Any]:
    view = {
        "type": "modal",
        "callback_id": "signoff_respond",
        "title": {"type": "plain_text", "text": "Respond"},
        "submit": {"type": "plain_text", "text": "Submit"},
        "blocks": [
            {
                "type": "input",
                "block_id": "reason",
                "label": {"type": "plain_text", "text": "Reason"},
                "element": {"type": "plain_text_input", "action_id": "reason"},
            }
        ],
    }
    view.update(overrides)
    return view


async def test_a_valid_message_is_posted_stored_and_recorded_with_its_payload(
    fake_slack: FakeSlack, slack_client: AsyncWebClient
) -> None:
    blocks = [
        SectionBlock(text="Deploy *api* to prod?"),
        ActionsBlock(elements=[ButtonElement(text="Approve", action_id="a", value="ref")]),
    ]

    response = await slack_client.chat_postMessage(channel=CHANNEL, text="Deploy?", blocks=blocks)

    assert response["ok"] is True
    assert response["channel"] == CHANNEL
    assert response["message"]["blocks"] == [block.to_dict() for block in blocks]
    call = fake_slack.last_call("chat.postMessage")
    assert call.ok and call.token == fake_slack.token
    assert call.args["text"] == "Deploy?"
    assert call.args["blocks"] == [block.to_dict() for block in blocks]
    assert call.content_type == "application/json"
    [stored] = fake_slack.messages(CHANNEL)
    assert (stored.ts, stored.text) == (response["ts"], "Deploy?")
    assert fake_slack.validation_failures == []


@pytest.mark.parametrize(
    ("blocks", "expected"),
    [
        pytest.param(
            [_section(f"block {i}") for i in range(51)], "no more than 50", id="51-blocks"
        ),
        pytest.param(
            [{"type": "section", "fields": [{"type": "mrkdwn", "text": "x" * 2001}]}],
            "less than 2001",
            id="field-over-2000",
        ),
        pytest.param([_section("x" * 3001)], "3000", id="section-text-over-3000"),
        pytest.param(
            [
                {
                    "type": "actions",
                    "elements": [
                        {
                            "type": "checkboxes",
                            "action_id": "c",
                            "options": [
                                {"text": {"type": "plain_text", "text": str(i)}, "value": str(i)}
                                for i in range(11)
                            ],
                        }
                    ],
                }
            ],
            "no more than 10",
            id="11-checkboxes",
        ),
        pytest.param([{"type": "nonsense"}], "unsupported block type", id="unknown-block"),
        pytest.param(
            [{"type": "section", "text": {"type": "mrkdwn", "text": "hi"}, "colour": "red"}],
            "unsupported or empty property 'colour'",
            id="unknown-property",
        ),
        pytest.param([_section("")], "more than 0 characters", id="empty-text"),
        pytest.param(
            [{"type": "header", "text": {"type": "mrkdwn", "text": "*bold*"}}],
            "must be a plain_text object",
            id="mrkdwn-header",
        ),
    ],
)
async def test_an_over_limit_message_is_rejected_with_invalid_blocks(
    fake_slack: FakeSlack, slack_client: AsyncWebClient, blocks: list[Any], expected: str
) -> None:
    with pytest.raises(SlackApiError) as caught:
        await slack_client.chat_postMessage(channel=CHANNEL, text="t", blocks=blocks)

    assert caught.value.response["error"] == "invalid_blocks"
    messages = caught.value.response["response_metadata"]["messages"]
    assert any(expected in message for message in messages), messages
    [failure] = fake_slack.validation_failures
    assert failure.method == "chat.postMessage"
    assert any(expected in error for error in failure.errors)
    assert fake_slack.messages(CHANNEL) == []


async def test_a_429_is_retried_after_retry_after_seconds_by_the_rate_limit_handler(
    fake_slack: FakeSlack, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The handler sleeps int(Retry-After) + random.random(); pin the jitter so the wait is
    # exactly Retry-After (monkeypatch restores random.random after the test).
    monkeypatch.setattr(random, "random", lambda: 0.0)
    client = fake_slack.client(retry_handlers=[AsyncRateLimitErrorRetryHandler(max_retry_count=1)])
    fake_slack.fail_next("chat.postMessage", Failure.rate_limited(retry_after=1))

    response = await client.chat_postMessage(channel=CHANNEL, text="hello")

    assert response["ok"] is True
    first, second = fake_slack.calls("chat.postMessage")
    assert (first.status, first.response["error"]) == (429, "ratelimited")
    assert second.ok
    assert second.received_at - first.received_at >= 0.95


async def test_a_429_without_a_retry_handler_raises_with_the_retry_after_header(
    fake_slack: FakeSlack, slack_client: AsyncWebClient
) -> None:
    fake_slack.fail_next("chat.update", Failure.rate_limited(retry_after=7))

    with pytest.raises(SlackApiError) as caught:
        await slack_client.chat_update(channel=CHANNEL, ts="1.000001", text="x")

    assert caught.value.response.status_code == 429
    assert caught.value.response.headers["Retry-After"] == "7"


async def test_injected_failures_last_for_the_given_number_of_calls(
    fake_slack: FakeSlack, slack_client: AsyncWebClient
) -> None:
    fake_slack.fail_next("auth.test", Failure.server_error(), times=2)

    for _ in range(2):
        with pytest.raises(SlackApiError) as caught:
            await slack_client.auth_test()
        assert caught.value.response.status_code == 500

    assert (await slack_client.auth_test())["ok"] is True
    assert [call.status for call in fake_slack.calls("auth.test")] == [500, 500, 200]


async def test_a_wrong_token_gets_invalid_auth(fake_slack: FakeSlack) -> None:
    client = fake_slack.client(token="xoxb-not-the-right-one")

    with pytest.raises(SlackApiError) as caught:
        await client.chat_postMessage(channel=CHANNEL, text="hi")

    assert caught.value.response["error"] == "invalid_auth"
    assert fake_slack.last_call("chat.postMessage").token == "xoxb-not-the-right-one"


async def test_a_missing_token_gets_not_authed(fake_slack: FakeSlack) -> None:
    with pytest.raises(SlackApiError) as caught:
        await AsyncWebClient(base_url=fake_slack.api_url).auth_test()

    assert caught.value.response["error"] == "not_authed"


async def test_invalid_auth_can_be_injected_for_a_valid_token(
    fake_slack: FakeSlack, slack_client: AsyncWebClient
) -> None:
    fake_slack.fail_next("views.open", Failure.api_error("invalid_auth"))

    with pytest.raises(SlackApiError) as caught:
        await slack_client.views_open(trigger_id="1.2.3", view=_modal())

    assert caught.value.response["error"] == "invalid_auth"


async def test_form_json_and_query_arguments_are_read_alike(
    fake_slack: FakeSlack, slack_client: AsyncWebClient
) -> None:
    blocks = [_section("same")]

    await slack_client.api_call(
        "chat.postMessage",
        data={"channel": CHANNEL, "text": "form", "blocks": json.dumps(blocks)},
    )
    await slack_client.chat_postMessage(channel=CHANNEL, text="json", blocks=blocks)
    await slack_client.api_call("chat.postMessage", params={"channel": CHANNEL, "text": "query"})

    form, as_json, query = fake_slack.calls("chat.postMessage")
    assert form.content_type == "application/x-www-form-urlencoded"
    assert as_json.content_type == "application/json"
    assert form.args["blocks"] == as_json.args["blocks"] == blocks
    assert query.args == {"channel": CHANNEL, "text": "query"}
    assert [m.text for m in fake_slack.messages(CHANNEL)] == ["form", "json", "query"]


async def test_a_token_argument_in_a_form_body_authenticates(fake_slack: FakeSlack) -> None:
    async with aiohttp.ClientSession() as session:
        reply = await session.post(
            fake_slack.api_url + "auth.test", data={"token": fake_slack.token}
        )
        body = await reply.json()

    assert body["ok"] is True
    assert reply.headers["x-oauth-scopes"].startswith("chat:write")
    assert "token" not in fake_slack.last_call("auth.test").args


async def test_a_base_url_without_the_api_prefix_also_works(fake_slack: FakeSlack) -> None:
    client = AsyncWebClient(token=fake_slack.token, base_url=fake_slack.url)

    response = await client.auth_test()

    assert response["ok"] is True
    assert fake_slack.last_call("auth.test").ok


async def test_auth_test_describes_the_bot(slack_client: AsyncWebClient) -> None:
    response = await slack_client.auth_test()

    assert response["user_id"] == "U0SIGNOFF"
    assert response["bot_id"] == "B0SIGNOFF"
    assert response["team_id"] == "T0FAKE"


async def test_chat_update_replaces_the_stored_message_and_keeps_history(
    fake_slack: FakeSlack, slack_client: AsyncWebClient
) -> None:
    posted = await slack_client.chat_postMessage(
        channel=CHANNEL, text="pending", blocks=[_section("pending")]
    )

    updated = await slack_client.chat_update(
        channel=CHANNEL, ts=posted["ts"], text="approved", blocks=[_section("approved")]
    )

    assert updated["ts"] == posted["ts"]
    stored = fake_slack.message(CHANNEL, posted["ts"])
    assert stored.text == "approved"
    assert stored.blocks == [_section("approved")]
    assert [edit["text"] for edit in stored.edits] == ["pending"]


async def test_chat_update_of_an_unknown_message_or_by_user_id_fails(
    fake_slack: FakeSlack, slack_client: AsyncWebClient
) -> None:
    fake_slack.add_user("U0ALICE", name="alice")
    dm = await slack_client.chat_postMessage(channel="U0ALICE", text="hi")

    with pytest.raises(SlackApiError) as missing:
        await slack_client.chat_update(channel=CHANNEL, ts="1.999999", text="x")
    with pytest.raises(SlackApiError) as by_user:
        await slack_client.chat_update(channel="U0ALICE", ts=dm["ts"], text="x")

    assert missing.value.response["error"] == "message_not_found"
    assert by_user.value.response["error"] == "channel_not_found"


async def test_a_dm_posted_to_a_user_id_lands_in_the_im_channel(
    fake_slack: FakeSlack, slack_client: AsyncWebClient
) -> None:
    fake_slack.add_user("U0ALICE", name="alice")

    opened = await slack_client.conversations_open(users="U0ALICE")
    posted = await slack_client.chat_postMessage(channel="U0ALICE", text="please approve")

    assert opened["channel"]["id"] == posted["channel"] == "D0ALICE"
    assert [m.text for m in fake_slack.messages("D0ALICE")] == ["please approve"]
    assert fake_slack.last_call("conversations.open").args == {"users": "U0ALICE"}


async def test_unknown_users_cannot_be_messaged(slack_client: AsyncWebClient) -> None:
    with pytest.raises(SlackApiError) as post:
        await slack_client.chat_postMessage(channel="U0NOBODY", text="hi")
    with pytest.raises(SlackApiError) as im:
        await slack_client.conversations_open(users="U0NOBODY")

    assert post.value.response["error"] == "channel_not_found"
    assert im.value.response["error"] == "user_not_found"


async def test_users_info_and_usergroup_members_come_from_configured_data(
    fake_slack: FakeSlack, slack_client: AsyncWebClient
) -> None:
    fake_slack.add_user("U0BOB", name="bob", email="bob@example.com", tz="Asia/Tokyo")
    fake_slack.set_usergroup("S0ONCALL", ["U0BOB", "U0ALICE"])

    info = await slack_client.users_info(user="U0BOB")
    group = await slack_client.usergroups_users_list(usergroup="S0ONCALL")

    assert info["user"]["name"] == "bob"
    assert info["user"]["tz"] == "Asia/Tokyo"
    assert info["user"]["profile"]["email"] == "bob@example.com"
    assert group["users"] == ["U0BOB", "U0ALICE"]
    assert fake_slack.last_call("users.info").http_method == "GET"


async def test_unknown_users_and_usergroups_are_errors(slack_client: AsyncWebClient) -> None:
    with pytest.raises(SlackApiError) as user:
        await slack_client.users_info(user="U0NOBODY")
    with pytest.raises(SlackApiError) as group:
        await slack_client.usergroups_users_list(usergroup="S0NONE")

    assert user.value.response["error"] == "user_not_found"
    assert group.value.response["error"] == "no_such_subteam"


async def test_views_open_returns_the_view_with_an_id_and_spends_the_trigger(
    fake_slack: FakeSlack, slack_client: AsyncWebClient
) -> None:
    view = View(**_modal(private_metadata="ref-1"))

    opened = await slack_client.views_open(trigger_id="123.456.abc", view=view)
    with pytest.raises(SlackApiError) as reused:
        await slack_client.views_open(trigger_id="123.456.abc", view=view)

    assert opened["view"]["id"].startswith("V")
    assert opened["view"]["private_metadata"] == "ref-1"
    assert opened["view"]["blocks"] == view.to_dict()["blocks"]
    assert opened["view"]["root_view_id"] == opened["view"]["id"]
    assert reused.value.response["error"] == "exchanged_trigger_id"
    assert fake_slack.views()[opened["view"]["id"]]["callback_id"] == "signoff_respond"


async def test_an_expired_trigger_cannot_open_a_view(
    fake_slack: FakeSlack, slack_client: AsyncWebClient
) -> None:
    fake_slack.expire_trigger("1.2.old")

    with pytest.raises(SlackApiError) as caught:
        await slack_client.views_open(trigger_id="1.2.old", view=_modal())

    assert caught.value.response["error"] == "expired_trigger_id"


@pytest.mark.parametrize(
    ("view", "expected"),
    [
        pytest.param(
            _modal(title={"type": "plain_text", "text": "x" * 25}), "title", id="long-title"
        ),
        pytest.param(
            {k: v for k, v in _modal().items() if k != "submit"},
            "must define submit",
            id="input-without-submit",
        ),
        pytest.param(_modal(blocks=[_section(f"{i}") for i in range(101)]), "100", id="101-blocks"),
        pytest.param(_modal(private_metadata="x" * 3001), "private_metadata", id="metadata"),
        pytest.param(
            _modal(
                blocks=[
                    {
                        "type": "input",
                        "block_id": "b",
                        "label": {"type": "plain_text", "text": "L"},
                        "element": {
                            "type": "plain_text_input",
                            "action_id": "a",
                            "max_length": 5000,
                        },
                    }
                ]
            ),
            "max_length",
            id="input-max-length",
        ),
    ],
)
async def test_an_invalid_view_is_rejected_with_invalid_arguments(
    fake_slack: FakeSlack, slack_client: AsyncWebClient, view: dict[str, Any], expected: str
) -> None:
    with pytest.raises(SlackApiError) as caught:
        await slack_client.views_open(trigger_id="1.2.3", view=view)

    assert caught.value.response["error"] == "invalid_arguments"
    [failure] = fake_slack.validation_failures
    assert failure.method == "views.open"
    assert any(expected in error for error in failure.errors), failure.errors


async def test_views_update_checks_the_hash_and_push_stops_at_three(
    fake_slack: FakeSlack, slack_client: AsyncWebClient
) -> None:
    opened = (await slack_client.views_open(trigger_id="t1", view=_modal()))["view"]

    updated = await slack_client.views_update(
        view_id=opened["id"], hash=opened["hash"], view=_modal(private_metadata="v2")
    )
    with pytest.raises(SlackApiError) as conflict:
        await slack_client.views_update(view_id=opened["id"], hash=opened["hash"], view=_modal())
    await slack_client.views_push(trigger_id="t2", view=_modal())
    await slack_client.views_push(trigger_id="t3", view=_modal())
    with pytest.raises(SlackApiError) as full:
        await slack_client.views_push(trigger_id="t4", view=_modal())

    assert updated["view"]["id"] == opened["id"]
    assert updated["view"]["private_metadata"] == "v2"
    assert conflict.value.response["error"] == "hash_conflict"
    assert full.value.response["error"] == "push_limit_reached"


async def test_ephemeral_messages_are_recorded(
    fake_slack: FakeSlack, slack_client: AsyncWebClient
) -> None:
    fake_slack.add_user("U0ALICE")

    response = await slack_client.chat_postEphemeral(
        channel=CHANNEL, user="U0ALICE", text="Already decided"
    )

    assert response["message_ts"]
    [ephemeral] = fake_slack.ephemerals
    assert (ephemeral["user"], ephemeral["text"]) == ("U0ALICE", "Already decided")


async def test_response_url_posts_are_recorded_and_replace_the_original(
    fake_slack: FakeSlack, slack_client: AsyncWebClient
) -> None:
    posted = await slack_client.chat_postMessage(channel=CHANNEL, text="pending")
    url = fake_slack.response_url(channel=CHANNEL, ts=posted["ts"])

    reply = await AsyncWebhookClient(url).send(
        text="approved", blocks=[_section("approved")], replace_original=True
    )

    assert reply.status_code == 200
    [post] = fake_slack.response_url_posts(url)
    assert post.body["replace_original"] is True
    assert post.body["blocks"] == [_section("approved")]
    assert fake_slack.message(CHANNEL, posted["ts"]).text == "approved"


async def test_response_url_rejects_invalid_blocks_and_more_than_five_uses(
    fake_slack: FakeSlack,
) -> None:
    url = fake_slack.response_url()
    webhook = AsyncWebhookClient(url)

    invalid = await webhook.send(text="x", blocks=[{"type": "nonsense"}])
    statuses = [(await webhook.send(text=f"{i}")).status_code for i in range(5)]

    assert (invalid.status_code, invalid.body) == (400, "invalid_blocks")
    assert fake_slack.validation_failures[0].method == "response_url"
    assert statuses == [200, 200, 200, 200, 404]  # the invalid post was the first of five uses


async def test_a_burst_of_new_connections_waits_in_the_kernel_while_the_fake_is_busy(
    fake_slack: FakeSlack,
) -> None:
    """A client opening its whole pool at once (Signoff's 100 connections in a burst of
    updates) is not held back by the fake: with aiohttp's default accept queue of 128 the
    kernel dropped the other SYNs, and each of those connects waited 1 s for a retry."""
    somaxconn = Path("/proc/sys/net/core/somaxconn")
    if not somaxconn.exists() or int(somaxconn.read_text()) < 250:
        pytest.skip("the kernel caps every accept queue below this burst (net.core.somaxconn)")
    host, port = fake_slack.url.removeprefix("http://").rsplit(":", 1)
    sockets = [socket.socket() for _ in range(250)]
    try:
        for sock in sockets:
            sock.setblocking(False)
            sock.connect_ex((host, int(port)))
        time.sleep(0.2)  # blocks this loop: the fake accepts nothing meanwhile
        _, connected, _ = select.select([], sockets, [], 0)
        assert len(connected) == len(sockets)
        assert all(s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR) == 0 for s in sockets)
    finally:
        for sock in sockets:
            sock.close()
