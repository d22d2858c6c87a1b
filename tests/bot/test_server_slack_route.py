"""``POST /slack/events`` under hostile input: verify first, then check the shape, never a 500.

Unsigned bodies are refused (401) before anything parses them; signed bodies bolt could not
handle are a 400; each refusal is one log line, never a traceback, and changes nothing.
"""

from __future__ import annotations

import hashlib
import hmac
import io
import json
import logging
import time
from typing import Any
from urllib.parse import urlencode

import aiohttp
import pytest

from bot.slack import action_ids
from engine import RunStatus
from tests.fakes.signing import interactive_body, sign
from tests.support.slack_bot import SECRET, Bot

UNPARSEABLE = [
    ("application/json", b"hello"),
    ("application/x-www-form-urlencoded", b"payload=hello"),
    ("application/json", b"{"),
    ("application/json", b"[" * 100_000),
    ("application/json", b"1" * 5000),
    ("application/x-www-form-urlencoded", b"payload=" + b"1" * 5000),
    ("text/plain", b"\xff\xfe not utf-8"),
]


async def post(bot: Bot, body: bytes, headers: dict[str, str]) -> tuple[int, str]:
    """POST raw bytes to /slack/events."""
    data = io.BytesIO(body)
    async with bot.http.post(f"{bot.url}/slack/events", data=data, headers=headers) as r:
        return r.status, await r.text()


def signed_headers(body: bytes, content_type: str, **options: Any) -> dict[str, str]:
    """Slack's signature headers for ``body`` (which must be UTF-8 to be signed)."""
    headers = sign(body.decode("utf-8", errors="surrogateescape"), secret=SECRET, **options)
    return {**headers, "Content-Type": content_type}


def problems(caplog: pytest.LogCaptureFixture) -> list[str]:
    """Log lines at ERROR and above, and any traceback."""
    return [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR or r.exc_info]


async def test_unsigned_bodies_are_refused_401_before_anything_parses_them(
    bot: Bot, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    now = int(time.time())
    bad_signatures: list[dict[str, str]] = [
        {},
        {"X-Slack-Request-Timestamp": str(now), "X-Slack-Signature": "v0=" + "0" * 64},
        {"X-Slack-Request-Timestamp": "²", "X-Slack-Signature": "v0=x"},
        {"X-Slack-Request-Timestamp": "9" * 5000, "X-Slack-Signature": "v0=x"},
        {"X-Slack-Request-Timestamp": str(now), "X-Slack-Signature": "v0=é"},
    ]
    for content_type, body in UNPARSEABLE:
        for headers in bad_signatures:
            status, text = await post(bot, body, {**headers, "Content-Type": content_type})
            assert status == 401, (body[:20], headers, text)
    stale = signed_headers(
        b"payload=%7B%7D", "application/x-www-form-urlencoded", timestamp=now - 301
    )
    assert (await post(bot, b"payload=%7B%7D", stale))[0] == 401

    assert problems(caplog) == []
    refusals = [r for r in caplog.records if r.name.startswith("signoff.refused")]
    assert len(refusals) == len(UNPARSEABLE) * len(bad_signatures) + 1  # one line each


async def test_a_signed_body_that_is_not_utf8_is_refused_401_with_one_line(
    bot: Bot, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    body = b"payload=\xff\xfe"
    timestamp = str(int(time.time()))
    mac = hmac.new(SECRET.encode(), f"v0:{timestamp}:".encode() + body, hashlib.sha256)
    headers = {
        "X-Slack-Request-Timestamp": timestamp,
        "X-Slack-Signature": "v0=" + mac.hexdigest(),
        "Content-Type": "application/x-www-form-urlencoded",
    }

    assert (await post(bot, body, headers))[0] == 401

    assert problems(caplog) == []
    refusals = [r.getMessage() for r in caplog.records if r.name.startswith("signoff.refused")]
    assert refusals == ["refused an unsigned Slack request: the body is not UTF-8"]


async def test_a_body_over_one_mebibyte_is_413_unread(bot: Bot) -> None:
    big = b"payload=" + b"x" * (1024 * 1024)
    status, _ = await post(bot, big, {"Content-Type": "application/x-www-form-urlencoded"})
    assert status == 413


def click(user: Any = "U0ALICE", actions: Any = None, **extra: Any) -> str:
    """A block_actions body with the given (possibly malformed) parts."""
    payload: dict[str, Any] = {
        "type": "block_actions",
        "user": {"id": user} if isinstance(user, str) else user,
        "actions": actions if actions is not None else [{"action_id": action_ids.APPROVE}],
        "container": {"type": "message", "channel_id": "C0APPROVALS"},
        **extra,
    }
    return interactive_body(payload)


def submission(**view: Any) -> str:
    """A view_submission body whose view has the given (possibly malformed) parts."""
    shown = {"type": "modal", "callback_id": "signoff:respond", "private_metadata": "", **view}
    return interactive_body({"type": "view_submission", "user": {"id": "U0ALICE"}, "view": shown})


MALFORMED = [
    "payload=null",
    "payload=%5B1%5D",  # [1]
    "payload=%22text%22",
    "payload=%7B%7D",  # {} has no type
    click(actions=[]),
    click(actions=[{"action_id": 5}]),
    click(actions="approve"),
    click(user=[]),
    click(user=7),
    click(user={"id": None}),
    click(team=5),
    click(authorizations=["x"]),
    click(container=[1]),
    submission(state=5),
    submission(state={"values": {"b": 5}}),
    submission(callback_id=9, state={"values": {}}),
    submission(type="workflow_step", state={"values": {}}),
    interactive_body({"type": "view_submission", "user": 7, "view": {"callback_id": "x"}}),
    interactive_body({"type": 5}),
    urlencode({"command": "/signoff", "text": "help"}),  # no user_id
    json.dumps({"type": "event_callback", "event": None}),
    json.dumps({"type": "event_callback", "event": {"type": "app_home_opened", "user": 5}}),
    json.dumps({"type": "url_verification"}),
    json.dumps(
        {
            "a": {
                "b": [
                    [[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]
                ]
            }
        }
    ),
]


async def test_signed_bodies_of_the_wrong_shape_are_400_with_one_line_and_change_nothing(
    bot: Bot, caplog: pytest.LogCaptureFixture
) -> None:
    run_id = await bot.start("change", {"service": "billing"})
    await bot.message(run_id)
    before = await bot.engine.get_run(run_id)
    caplog.set_level(logging.INFO)

    for body in MALFORMED:
        content_type = (
            "application/json" if body.startswith("{") else ("application/x-www-form-urlencoded")
        )
        reply = await bot.send(body, content_type=content_type)
        assert reply.status == 400, (body[:80], reply.text)

    assert problems(caplog) == []
    refusals = [r for r in caplog.records if r.name.startswith("signoff.refused")]
    assert len(refusals) == len(MALFORMED)
    assert await bot.engine.get_run(run_id) == before
    # A well-formed click still works afterwards.
    await bot.click(await bot.message(run_id), action_ids.APPROVE, user="U0ALICE")
    assert (await bot.finished(run_id)).status is RunStatus.COMPLETED


async def test_a_failure_inside_bolt_is_one_error_line_and_a_400_not_a_500(
    bot: Bot, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def broken(request: object) -> None:
        raise RuntimeError("a bug")

    monkeypatch.setattr(bot.slack.app, "async_dispatch", broken)
    reply = await bot.command("help")
    assert reply.status == 400
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert [r.getMessage() for r in errors] == ["handling a Slack command request failed"]
    assert errors[0].exc_info is not None  # a real bug keeps its traceback


async def test_url_verification_and_ssl_check_still_answer(bot: Bot) -> None:
    reply = await bot.send(
        json.dumps({"type": "url_verification", "challenge": "abc", "token": "t"}),
        content_type="application/json",
    )
    assert reply.status == 200 and "abc" in reply.text
    assert (await bot.send("ssl_check=1&token=t")).status == 200


async def test_unsigned_requests_never_reach_bolt(
    bot: Bot, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[object] = []
    monkeypatch.setattr(bot.slack.app, "async_dispatch", calls.append)
    async with (
        aiohttp.ClientSession() as http,
        http.post(
            f"{bot.url}/slack/events", data=click(), headers={"Content-Type": "text/plain"}
        ) as response,
    ):
        assert response.status == 401
    assert calls == []
