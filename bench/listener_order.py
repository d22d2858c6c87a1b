"""Bolt's dispatch of one click, by the order the listeners were registered in.

Bolt tries an app's listeners in registration order and calls each one's matchers with
introspected arguments, so every listener tried before the one that matches costs the
click some time. This builds a bare ``AsyncApp`` with Signoff's four listener patterns
(``bot.slack.action_ids``: clicks, snoozes, modal submissions, the Home tab event),
registered in the order Signoff used before (Home tab event and snooze first) and in
the one it uses now (clicks first), and dispatches one ``block_actions`` payload to each
``--dispatches`` times, listeners that only ack. Bolt's single-team authorization is
left out (it would call ``auth.test`` over the network); everything else is bolt's own
middleware. Prints one JSON line per order and round: CPU microseconds per dispatch
(``time.process_time``). Usage::

    .venv/bin/python bench/listener_order.py [--dispatches 3000] [--rounds 3]
"""

from __future__ import annotations

import os
import sys

if sys.path and os.path.abspath(sys.path[0]) == os.path.dirname(os.path.abspath(__file__)):
    sys.path.pop(0)  # see bench/engine.py

import argparse
import asyncio
import json
import time
from typing import Any

from slack_bolt.app.async_app import AsyncApp
from slack_bolt.request.async_request import AsyncBoltRequest
from slack_sdk.web.async_client import AsyncWebClient

from bot.slack import action_ids

CLICK: dict[str, Any] = {
    "type": "block_actions",
    "team": {"id": "T0BENCH"},
    "user": {"id": "U0ALICE"},
    "api_app_id": "A0BENCH",
    "trigger_id": "1.2.3",
    "actions": [
        {"action_id": action_ids.APPROVE, "block_id": "b", "value": "ref", "type": "button"}
    ],
    "container": {"type": "message", "channel_id": "C0BENCH", "message_ts": "1.1"},
    "channel": {"id": "C0BENCH"},
    "response_url": "http://127.0.0.1:9/response",
}


def build(click_first: bool) -> AsyncApp:
    """An app with Signoff's listener patterns, clicks first or as registered before."""
    app = AsyncApp(
        client=AsyncWebClient(token="xoxb-bench"),
        signing_secret="bench",
        process_before_response=True,
    )
    # No network in a benchmark: drop the middleware that calls auth.test.
    app._async_middleware_list = [
        m for m in app._async_middleware_list if "Authorization" not in type(m).__name__
    ]

    async def acks(ack: Any) -> None:
        await ack()

    async def home(event: dict[str, Any]) -> None:
        del event

    click = (action_ids.ACTION_ID_PATTERN, app.action)
    snooze = (action_ids.SNOOZE_PATTERN, app.action)
    submit = (action_ids.CALLBACK_ID_PATTERN, app.view)
    order = [click, snooze, submit] if click_first else [snooze, click, submit]
    if not click_first:
        app.event("app_home_opened")(home)
    for pattern, register in order:
        register(pattern)(acks)
    if click_first:
        app.event("app_home_opened")(home)
    return app


async def measure(click_first: bool, dispatches: int) -> float:
    """CPU microseconds per dispatch of ``CLICK`` (after 200 unmeasured ones)."""
    app = build(click_first)
    for _ in range(200):
        await app.async_dispatch(AsyncBoltRequest(body=CLICK, mode="socket_mode"))
    started = time.process_time()
    for _ in range(dispatches):
        response = await app.async_dispatch(AsyncBoltRequest(body=CLICK, mode="socket_mode"))
        if response.status != 200:
            raise RuntimeError(f"bolt answered {response.status}: {response.body}")
    return (time.process_time() - started) / dispatches * 1e6


async def main(dispatches: int, rounds: int) -> None:
    """Alternate the two orders ``rounds`` times, printing a JSON line for each."""
    for round_ in range(rounds):
        for click_first in (False, True):
            us = await measure(click_first, dispatches)
            order = "clicks first" if click_first else "home and snooze first"
            line = {"round": round_ + 1, "order": order, "us_per_dispatch": round(us, 1)}
            print(json.dumps(line), flush=True)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--dispatches", type=int, default=3000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    asyncio.run(main(args.dispatches, args.rounds))
