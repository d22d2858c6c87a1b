"""Snooze against a real ``signoff serve`` process: the timer is durable across kill -9,
fires once, reminds only the person who snoozed, and leaves the request's expiry alone."""

from __future__ import annotations

import asyncio
import sqlite3
import time
from pathlib import Path
from typing import Any

import aiohttp

from bot.slack import action_ids
from tests.fakes.signing import (
    JSON_CONTENT_TYPE,
    app_home_opened_body,
    home_block_actions_payload,
    interactive_body,
    signed_request,
    slash_command_body,
)
from tests.fakes.slack_api import FakeSlack
from tests.support.polling import eventually
from tests.support.service import ServiceProcess, service_env
from tests.support.slack_bot import CHANNEL, SECRET, USERS


async def send(service: ServiceProcess, body: str, **sign: Any) -> int:
    request = signed_request(body, secret=SECRET, **sign)
    async with (
        aiohttp.ClientSession() as http,
        http.post(f"{service.url}/slack/events", data=request.body, headers=request.headers) as r,
    ):
        return r.status


def home_snooze_click(view: dict[str, Any], action_id: str, user: str) -> str:
    """Click a snooze button of the first waiting request in a Home ``view``, as Slack does."""
    return interactive_body(
        home_block_actions_payload(view=view, action_id=action_id, user_id=user)
    )


def snooze_dms(fake: FakeSlack, user: str) -> list[Any]:
    return [
        c
        for c in fake.calls("chat.postMessage")
        if c.ok
        and c.args.get("channel") == user
        and str(c.args.get("text", "")).startswith("Reminder, as you asked")
    ]


async def test_a_snooze_survives_kill_9_and_fires_once(
    fake_slack: FakeSlack, tmp_path: Path
) -> None:
    for user in USERS:
        fake_slack.add_user(user, name=user.lower())
    db = tmp_path / "signoff.db"
    env = service_env(
        api_url=fake_slack.api_url,
        token=fake_slack.token,
        secret=SECRET,
        db=db,
        SIGNOFF_DEFAULT_CHANNEL=CHANNEL,
    )
    first = await ServiceProcess.start(env)
    try:
        # a request for Alice and Bob, expiring in an hour
        command = slash_command_body(
            text='start change service=billing approvers=["U0ALICE","U0BOB"] expires=3600',
            user_id="U0CAROL",
            response_url=fake_slack.response_url(),
        )
        assert await send(first, command) == 200
        await eventually(lambda: snooze_timers(db) is not None and expiry(db), what="a request")
        assert (
            await send(
                first, app_home_opened_body(user_id="U0ALICE"), content_type=JSON_CONTENT_TYPE
            )
            == 200
        )
        view = await eventually(lambda: fake_slack.home_view("U0ALICE"), what="Alice's tab")
        expires_before = expiry(db)

        assert await send(first, home_snooze_click(view, action_ids.SNOOZE_HOUR, "U0ALICE")) == 200
        # recorded before the ack: durable now, whatever happens to the process
        (due,) = snooze_timers(db)
        assert abs(due - (time.time() + 3600)) < 60
    finally:
        await first.kill()

    # An hour passes while no process runs (the timer is moved, not the clock).
    with sqlite3.connect(db) as conn:
        conn.execute("UPDATE timers SET due_at=? WHERE kind='snooze'", (time.time() - 1,))

    second = await ServiceProcess.start(env)
    try:
        (dm,) = await eventually(
            lambda: snooze_dms(fake_slack, "U0ALICE"), timeout=15, what="the DM"
        )
        assert dm.args["metadata"]["event_payload"]["kind"] == "snooze"
        assert any(b["type"] == "actions" for b in dm.args["blocks"])  # answerable from there
    finally:
        await second.kill()
    third = await ServiceProcess.start(env)  # a restart after it fired: nothing again
    try:
        await asyncio.sleep(1.0)
    finally:
        await third.kill()

    assert len(snooze_dms(fake_slack, "U0ALICE")) == 1
    assert snooze_dms(fake_slack, "U0BOB") == []
    assert snooze_timers(db) == []
    assert expiry(db) == expires_before  # the request's own expiry is untouched
    with sqlite3.connect(db) as conn:
        (snoozed,) = conn.execute("SELECT COUNT(*) FROM events WHERE type='snoozed'").fetchone()
    assert snoozed == 1


def snooze_timers(db: Path) -> list[float] | None:
    try:
        with sqlite3.connect(db) as conn:
            rows = conn.execute("SELECT due_at FROM timers WHERE kind='snooze'").fetchall()
    except sqlite3.OperationalError:
        return None
    return [r[0] for r in rows]


def expiry(db: Path) -> float | None:
    try:
        with sqlite3.connect(db) as conn:
            row = conn.execute("SELECT due_at FROM timers WHERE kind='expiry'").fetchone()
    except sqlite3.OperationalError:
        return None
    return row[0] if row else None
