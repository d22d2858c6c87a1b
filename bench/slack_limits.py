"""``python -m bench.slack --limits``: Signoff's Slack path under Slack's real rate limits.

The fake Slack enforces Slack's limits (``tests.fakes.ratelimits``: chat.postMessage about
1/s per channel with a burst of 3, chat.update Tier 3 50/min...), with every window
shortened by ``--time-scale`` (1/20: a minute lasts 3 s). For each ``--pacing`` setting a
fresh fake and a fresh ``signoff serve`` (SQLite) run two scenarios in one channel:

* ``requests``: ``--requests`` (500) runs started at once through the REST API, each posting
  a request message;
* ``decisions``: ``--decisions`` (200) of those messages approved by clicks on
  ``POST /slack/events`` spread evenly over one (scaled) minute; each click carries a
  ``response_url`` of the fake.

One JSON line per scenario: messages in their final state, lost, duplicated, 429s the fake
sent, the time until everything settled against the minimum the limits allow (a greedy
schedule of the same calls, at the times they became possible: run started, click sent),
their ratio, and for decisions the clicker's feedback latency (click sent -> its
response_url post received) p50/p99. ``*_s`` figures are real Slack time (scaled back);
``*_ms`` latencies are as measured.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import tempfile
import time
from collections import Counter, deque
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import aiohttp

from bench.slack import (
    APPROVE,
    CHANNEL,
    CLICKER,
    EVENTS_PATH,
    SECRET,
    Bench,
    Child,
    note,
    pct,
    spawn_helper,
    spawn_signoff,
)

BURST, PER_SECOND, POST_PER_MINUTE, UPDATES_PER_MINUTE = 3, 1.0, 300, 50


def minimum_finish(arrivals: Sequence[float], scale: float, method: str) -> float:
    """When the last call could be made at the earliest, each no sooner than it arrived,
    within the fake's limits (one channel), in bench time."""
    window = 60 * scale
    done: deque[float] = deque()
    tokens, at, last = float(BURST), None, 0.0
    cap = UPDATES_PER_MINUTE if method == "chat.update" else POST_PER_MINUTE
    for arrived in sorted(arrivals):
        t = arrived
        if len(done) >= cap:
            t = max(t, done[-cap] + window)
        if method == "chat.postMessage":
            rate = PER_SECOND / scale
            at = t if at is None else at
            tokens = min(BURST, tokens + (t - at) * rate)
            if tokens < 1:
                t += (1 - tokens) / rate
                tokens = 1.0
            tokens -= 1
            at = t
        done.append(t)
        last = t
    return last


async def scenario_requests(bench: Bench, count: int, scale: float) -> tuple[dict[str, Any], list]:
    await bench.fake("bench.enforce", time_scale=scale)
    started = time.monotonic()
    run_ids = await bench.start_runs(count)
    accepted = time.monotonic()
    deadline = started + max(120.0, 10 * count * scale)
    while True:
        seen = await bench.fake("bench.limited")
        top = [p for p in seen["posts"] if not p[2]]
        if len({p[3] for p in top}) >= count or time.monotonic() > deadline:
            break
        await asyncio.sleep(0.1)
    await asyncio.sleep(1.0)  # late duplicates, if any
    seen = await bench.fake("bench.limited")
    top = [p for p in seen["posts"] if not p[2]]
    by_run = Counter(p[3] for p in top)
    settled = max((p[0] for p in top), default=time.monotonic()) - started
    # Runs post as soon as they are accepted: the API answers in a burst, so every post
    # could go at `accepted` at the earliest (the API's own time is not Slack's limit).
    minimum = minimum_finish([accepted] * count, scale, "chat.postMessage") - started
    result = {
        "scenario": "requests",
        "messages": count,
        "messages_final": sum(1 for r in run_ids if by_run[r] >= 1),
        "lost": sum(1 for r in run_ids if by_run[r] == 0),
        "duplicated": sum(n - 1 for n in by_run.values() if n > 1),
        "rate_limited_429": sum(seen["hits"].values()),
        "settle_s": round(settled / scale, 1),
        "minimum_s": round(minimum / scale, 1),
        "ratio": round(settled / minimum, 3) if minimum > 0 else None,
    }
    return result, top


async def scenario_decisions(bench: Bench, posts: list, count: int, scale: float) -> dict[str, Any]:
    from tests.fakes.signing import block_actions_payload, interactive_body, signed_request

    chosen = sorted(posts)[:count]  # the oldest messages
    keys = [[CHANNEL, p[1]] for p in chosen]
    messages = []
    for chunk in range(0, len(keys), 100):
        messages += (await bench.fake("bench.messages", keys=keys[chunk : chunk + 100]))["messages"]
    bodies = []
    for (_, ts, _, _), message in zip(chosen, messages, strict=True):
        url = (await bench.fake("bench.mint", channel=CHANNEL, ts=ts))["url"]
        payload = block_actions_payload(
            message=message, action_id=APPROVE, channel_id=CHANNEL, user_id=CLICKER,
            user_name=CLICKER.lower(), response_url=url,
        )  # fmt: skip
        bodies.append((url.rsplit("/", 1)[-1], interactive_body(payload)))
    await asyncio.sleep(60 * scale * 1.1)  # a quiet minute: every budget is full again
    await bench.fake("bench.enforce", time_scale=scale)
    before = await bench.fake("bench.limited")
    spacing = 60 * scale / count
    sent: list[float] = [0.0] * count
    statuses: Counter[int] = Counter()
    started = time.monotonic()

    async def click(i: int) -> None:
        await asyncio.sleep(max(0.0, started + i * spacing - time.monotonic()))
        request = signed_request(bodies[i][1], secret=SECRET)
        sent[i] = time.monotonic()
        async with bench.http.post(
            bench.signoff_url + EVENTS_PATH, data=request.body.encode(), headers=request.headers
        ) as response:
            await response.read()
            statuses[response.status] += 1

    await asyncio.gather(*(click(i) for i in range(count)))
    wanted = {p[1] for p in chosen}
    deadline = started + max(120.0, 20 * 60 * scale * count / UPDATES_PER_MINUTE)
    while True:
        seen = await bench.fake("bench.limited", keys=sorted(wanted))
        replies = Counter(p[2] for p in seen["posts"] if p[2] in wanted)
        updated = {u[1] for u in seen["updates"] if u[1] in wanted}
        done = len(updated) == count and len(replies) == count and all(seen["shown"].values())
        if done or time.monotonic() > deadline:
            break
        await asyncio.sleep(0.1)
    await asyncio.sleep(1.0)
    seen = await bench.fake("bench.limited", keys=sorted(wanted))
    replies = Counter(p[2] for p in seen["posts"] if p[2] in wanted)
    reply_times = [p[0] for p in seen["posts"] if p[2] in wanted]
    update_times = [u[0] for u in seen["updates"] if u[1] in wanted]
    updated = Counter(u[1] for u in seen["updates"] if u[1] in wanted)
    final = sum(1 for ts in wanted if seen["shown"].get(ts) and updated[ts] and replies[ts])
    settled = max(reply_times + update_times, default=time.monotonic()) - started
    minimum = (
        max(
            minimum_finish(sent, scale, "chat.update"),
            minimum_finish(sent, scale, "chat.postMessage"),
        )
        - started
    )
    feedback = [
        (seen["feedback"][key] - sent[i]) * 1000
        for i, (key, _) in enumerate(bodies)
        if key in seen["feedback"]
    ]
    hits = Counter(seen["hits"])
    hits.subtract(Counter(before["hits"]))
    return {
        "scenario": "decisions",
        "messages": count,
        "acks": dict(statuses),
        "messages_final": final,
        "lost": count - final,
        "duplicated": sum(n - 1 for n in replies.values() if n > 1),
        "updates_per_message": round(sum(updated.values()) / count, 2),
        "rate_limited_429": sum(hits.values()),
        "settle_s": round(settled / scale, 1),
        "minimum_s": round(minimum / scale, 1),
        "ratio": round(settled / minimum, 3) if minimum > 0 else None,
        "feedback_p50_ms": pct(feedback, 50),
        "feedback_p99_ms": pct(feedback, 99),
        "feedback_count": len(feedback),
    }


async def run_limits(opts: argparse.Namespace) -> None:
    """Both scenarios, for each pacing setting, on fresh processes."""
    scale = float(opts.time_scale)
    for pacing in [p.strip() for p in opts.pacing.split(",") if p.strip()]:
        with tempfile.TemporaryDirectory(prefix="signoff-bench-limits-") as tmp:
            work = Path(tmp)
            children: list[Child] = []
            try:
                fake = await spawn_helper("fake", ["--role", "fake"], work)
                children.append(fake)
                api_url, token = str(fake.info["api_url"]), str(fake.info["token"])
                signoff = await spawn_signoff(
                    work, api_url, token,
                    SIGNOFF_SLACK_PACING=pacing,
                    SIGNOFF_SLACK_PACING_TIME_SCALE=repr(scale),
                    SIGNOFF_POLL_INTERVAL="0.05",
                )  # fmt: skip
                children.append(signoff)
                note(f"pacing {pacing}: {os.cpu_count()} CPUs, load {os.getloadavg()[0]:.2f}")
                async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as http:
                    bench = Bench(http, fake, signoff, signoff)
                    first, posts = await scenario_requests(bench, opts.requests, scale)
                    print(json.dumps({"pacing": pacing, "time_scale": scale, **first}), flush=True)
                    second = await scenario_decisions(bench, posts, opts.decisions, scale)
                    print(json.dumps({"pacing": pacing, "time_scale": scale, **second}), flush=True)
            except BaseException:
                for child in children:
                    note(f"{child.name} log:\n{child.tail()}")
                raise
            finally:
                for child in reversed(children):
                    await child.stop()
