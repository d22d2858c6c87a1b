"""Signed Events API deliveries from tests.fakes.signing, checked by slack-sdk and bolt."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
from slack_bolt.app.async_app import AsyncApp
from slack_bolt.request.async_request import AsyncBoltRequest
from slack_sdk.signature import SignatureVerifier
from slack_sdk.web.async_client import AsyncWebClient

from tests.fakes.signing import (
    JSON_CONTENT_TYPE,
    app_home_opened_body,
    event_callback_body,
    signed_event,
    url_verification_body,
)
from tests.fakes.slack_api import FakeSlack
from tests.fakes.support import without_proxy

SECRET = "events-signing-secret"


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    without_proxy(monkeypatch)
    for name in ("SLACK_CLIENT_ID", "SLACK_CLIENT_SECRET", "SLACK_SIGNING_SECRET"):
        monkeypatch.delenv(name, raising=False)  # they would switch bolt into OAuth mode


@pytest.fixture
async def fake() -> AsyncIterator[FakeSlack]:
    async with FakeSlack() as running:
        running.add_user("U0ALICE", name="alice")
        yield running


def _app(fake: FakeSlack, seen: list[dict[str, Any]]) -> AsyncApp:
    app = AsyncApp(client=fake.client(), signing_secret=SECRET, process_before_response=True)

    async def home_opened(event: dict[str, Any], client: AsyncWebClient, request: Any) -> None:
        seen.append({"event": event, "retry": request.headers.get("x-slack-retry-num")})
        blocks = [{"type": "section", "text": {"type": "mrkdwn", "text": "Your approvals"}}]
        await client.views_publish(user_id=event["user"], view={"type": "home", "blocks": blocks})

    app.event("app_home_opened")(home_opened)
    return app


async def _dispatch(app: AsyncApp, body: str, headers: dict[str, Any]) -> Any:
    return await app.async_dispatch(AsyncBoltRequest(body=body, headers=dict(headers.items())))


def test_an_event_is_json_and_signed_over_its_raw_body() -> None:
    body = app_home_opened_body(user_id="U0ALICE", event_id="Ev0001")
    request = signed_event(body, secret=SECRET)

    verifier = SignatureVerifier(SECRET)
    assert verifier.is_valid_request(request.body, request.headers)
    assert request.headers["Content-Type"] == JSON_CONTENT_TYPE
    delivery = json.loads(request.body)
    assert (delivery["type"], delivery["event_id"], delivery["team_id"]) == (
        "event_callback",
        "Ev0001",
        "T0FAKE",
    )
    assert set(delivery) >= {"token", "api_app_id", "event", "event_time"}
    event = delivery["event"]
    assert (event["type"], event["user"], event["channel"], event["tab"]) == (
        "app_home_opened",
        "U0ALICE",
        "D0ALICE",
        "home",
    )
    assert float(event["event_ts"]) > 0


def test_a_redelivery_carries_the_retry_headers_and_the_same_body() -> None:
    body = event_callback_body({"type": "app_home_opened", "user": "U0ALICE"})
    first = signed_event(body, secret=SECRET)
    retry = signed_event(body, secret=SECRET, retry_num=2, retry_reason="http_error")

    assert "X-Slack-Retry-Num" not in first.headers
    assert (retry.headers["X-Slack-Retry-Num"], retry.headers["X-Slack-Retry-Reason"]) == (
        "2",
        "http_error",
    )
    assert json.loads(retry.body)["event_id"] == json.loads(first.body)["event_id"]


async def test_bolt_accepts_app_home_opened_and_the_handler_publishes_home(
    fake: FakeSlack,
) -> None:
    seen: list[dict[str, Any]] = []
    app = _app(fake, seen)
    body = app_home_opened_body(user_id="U0ALICE")

    first = await _dispatch(app, body, signed_event(body, secret=SECRET).headers)
    retried = await _dispatch(app, body, signed_event(body, secret=SECRET, retry_num=1).headers)

    assert (first.status, retried.status) == (200, 200)
    assert [s["retry"] for s in seen] == [None, ["1"]]  # bolt keeps header values as lists
    home = fake.home_view("U0ALICE")
    assert home is not None and home["blocks"][0]["text"]["text"] == "Your approvals"


async def test_bolt_answers_url_verification_with_the_challenge(fake: FakeSlack) -> None:
    body = url_verification_body("chall-42")

    response = await _dispatch(_app(fake, []), body, signed_event(body, secret=SECRET).headers)

    assert response.status == 200
    assert json.loads(response.body) == {"challenge": "chall-42"}


@pytest.mark.parametrize(
    "options", [{"stale": True}, {"wrong_secret": "not-it"}], ids=["stale", "wrong-secret"]
)
async def test_bolt_refuses_a_badly_signed_event(fake: FakeSlack, options: dict[str, Any]) -> None:
    body = app_home_opened_body()

    response = await _dispatch(
        _app(fake, []), body, signed_event(body, secret=SECRET, **options).headers
    )

    assert response.status == 401
