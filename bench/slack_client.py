"""What one Slack Web API call costs the caller's CPU: through slack-sdk, and through aiohttp.

The update phase of a click burst (``bench/slack.py``) is mostly Web API calls: each
answered request's message is updated (``chat.update``) and its thread gets a reply. This
script measures the floor of that work in one process: ``--calls`` ``chat.update`` calls
with blocks the size of a Signoff request message (about 1.1 KB), ``--concurrency`` at a time,
against the fake Slack in a process of its own (``bench.slack --role fake``):

* ``sdk``: ``AsyncWebClient.chat_update`` on one long-lived aiohttp session, as the
  service makes them (``bot.slack.app.make_client``, without retry handlers: no call
  fails here);
* ``aiohttp``: the same request (JSON body, bearer token) posted with that session.

Rounds alternate the two. Output: one JSON line with the medians of the CPU time per call
(user + system of this process) and of the calls per second::

    .venv/bin/python bench/slack_client.py [--calls 2000] [--concurrency 32] [--rounds 3]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import time
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp
from slack_sdk.web.async_client import AsyncWebClient

CHANNEL = "C0APPROVALS"  # a channel the benchmark's fake Slack knows (bench/slack.py)
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def message_blocks() -> list[dict[str, Any]]:
    """Blocks the size of a Signoff outcome message: a header, fields, context lines."""

    def text(kind: str, value: str) -> dict[str, str]:
        return {"type": kind, "text": value}

    outcome = ":white_check_mark: *Approved* by <@U0CLICKER> " + "x" * 300
    return [
        {"type": "header", "text": text("plain_text", "Deploy api to production")},
        {"type": "section", "text": text("mrkdwn", "Requested by <@U0REQUESTER>")},
        {
            "type": "section",
            "fields": [text("mrkdwn", f"*Field {i}*\nvalue number {i} of it") for i in range(6)],
        },
        {"type": "section", "text": text("mrkdwn", outcome)},
        {
            "type": "context",
            "elements": [text("mrkdwn", "run 0192d5c3a1b27c3e8f4a · step approval")],
        },
    ]


async def timed(
    call: Callable[[int], Awaitable[None]], calls: int, concurrency: int
) -> tuple[float, float]:
    """CPU seconds per call and calls per second for ``calls`` calls, ``concurrency`` at once."""
    gate = asyncio.Semaphore(concurrency)

    async def one(i: int) -> None:
        async with gate:
            await call(i)

    cpu0, t0 = time.process_time(), time.perf_counter()
    await asyncio.gather(*(one(i) for i in range(calls)))
    return (time.process_time() - cpu0) / calls, calls / (time.perf_counter() - t0)


async def main(calls: int, concurrency: int, rounds: int) -> dict[str, Any]:
    """Start the fake, post one message, then update it ``calls`` times per side and round."""
    fake = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bench.slack", "--role", "fake",
        cwd=ROOT, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.DEVNULL,
    )  # fmt: skip
    assert fake.stdout is not None and fake.stdin is not None
    try:
        info = json.loads(await fake.stdout.readline())
        url, token = str(info["api_url"]), str(info["token"])
        blocks = message_blocks()
        async with aiohttp.ClientSession() as session:
            client = AsyncWebClient(token=token, base_url=url, session=session)
            posted = await client.chat_postMessage(channel=CHANNEL, text="request")
            channel, ts = str(posted["channel"]), str(posted["ts"])

            async def sdk(i: int) -> None:
                await client.chat_update(channel=channel, ts=ts, text=f"update {i}", blocks=blocks)

            async def plain(i: int) -> None:
                body = {"channel": channel, "ts": ts, "text": f"update {i}", "blocks": blocks}
                headers = {"Authorization": f"Bearer {token}"}
                async with session.post(f"{url}chat.update", json=body, headers=headers) as resp:
                    answer = await resp.json()
                if not answer.get("ok"):
                    raise RuntimeError(f"chat.update failed: {answer}")

            await timed(sdk, 50, concurrency)  # warm both paths and the connection pool
            await timed(plain, 50, concurrency)
            results: dict[str, list[tuple[float, float]]] = {"sdk": [], "aiohttp": []}
            for _ in range(rounds):
                results["sdk"].append(await timed(sdk, calls, concurrency))
                results["aiohttp"].append(await timed(plain, calls, concurrency))
    finally:
        fake.stdin.close()
        await fake.wait()
    out: dict[str, Any] = {"calls": calls, "concurrency": concurrency, "rounds": rounds}
    for side, values in results.items():
        out[f"{side}_cpu_us_per_call"] = round(statistics.median(v[0] for v in values) * 1e6, 1)
        out[f"{side}_calls_per_s"] = round(statistics.median(v[1] for v in values), 1)
    out["sdk_extra_cpu_us_per_call"] = round(
        out["sdk_cpu_us_per_call"] - out["aiohttp_cpu_us_per_call"], 1
    )
    return out


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--calls", type=int, default=2000, help="calls per side and round")
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=3, help="alternated rounds (medians)")
    args = parser.parse_args()
    print(json.dumps(asyncio.run(main(args.calls, args.concurrency, args.rounds))))
