"""What open followers of requests cost the service, and how fast they hear of a change.

Starts ``signoff serve`` (a fresh SQLite file, no Slack) and, for each level N of
``--streams``: creates ``--requests`` requests, opens N followers of them (spread evenly
over the requests, one connection each), lets them sit idle for ``--seconds`` while it
measures the service's CPU, then cancels every request at once and times how long each
follower takes to hear of it. A follower is, with ``--kind stream`` (the default), a
stream of the request's history (``GET /api/requests/{id}/stream``) until its ``end``
event; with ``--kind wait``, a long poll (``GET /api/requests/{id}?wait=60``, what the
Python client and ``signoff ask`` hold) until it answers. One JSON line per level::

    .venv/bin/python bench/streams.py [--streams 0,200,1000] [--requests 50] [--seconds 10]
        [--kind stream|wait]

``idle_cpu_pct``: the service's CPU (all threads) while the followers wait, as a share of
one core; ``end_p50_ms`` / ``end_p99_ms``: from the cancels being sent until a follower
heard of its request's end (every follower must: ``all_ended``).
"""

from __future__ import annotations

import os
import sys

_HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(_HERE)
if sys.path and os.path.abspath(sys.path[0] or os.curdir) == _HERE:
    sys.path.pop(0)  # bench/engine.py would shadow the engine package
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

import argparse  # noqa: E402
import asyncio  # noqa: E402
import json  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from collections.abc import Sequence  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import aiohttp  # noqa: E402

from bench.slack import child_env, cpu_seconds, pct, run_signoff  # noqa: E402

TOKEN = "bench-streams-token-0123456789"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


def note(text: str) -> None:
    """Progress, on stderr (stdout carries only the JSON lines)."""
    print(f"[bench.streams] {text}", file=sys.stderr, flush=True)


async def follow(http: aiohttp.ClientSession, url: str, opened: asyncio.Event) -> float | None:
    """Read one stream until its ``end`` event; when that arrived (monotonic), or None."""
    timeout = aiohttp.ClientTimeout(total=None, sock_read=None)
    async with http.get(url, headers=AUTH, timeout=timeout) as response:
        if response.status != 200:
            raise RuntimeError(f"stream {url}: {response.status} {await response.text()}")
        opened.set()
        async for line in response.content:
            if line.startswith(b"event: end"):
                return time.monotonic()
    return None


async def long_poll(http: aiohttp.ClientSession, url: str, opened: asyncio.Event) -> float | None:
    """Hold one ``?wait=60`` long poll until it answers; when (monotonic) if the request
    was cancelled by then, else None."""
    opened.set()  # the server answers only at the end: count it open once it is sent
    async with http.get(f"{url}?wait=60", headers=AUTH) as response:
        body = await response.json()
        if response.status != 200:
            raise RuntimeError(f"long poll {url}: {response.status} {body}")
        return time.monotonic() if body["status"] == "cancelled" else None


async def level(
    http: aiohttp.ClientSession,
    url: str,
    pid: int,
    streams: int,
    requests: int,
    seconds: float,
    kind: str,
) -> dict[str, Any]:
    """One level: create, open, idle (CPU), cancel (latency)."""
    ids: list[str] = []
    for i in range(requests):
        body = {"title": f"stream bench {i}", "channel": "C0BENCH"}
        async with http.post(f"{url}/api/requests", json=body, headers=AUTH) as r:
            if r.status != 201:
                raise RuntimeError(f"create: {r.status} {await r.text()}")
            ids.append(str((await r.json())["id"]))
    opened = [asyncio.Event() for _ in range(streams)]
    follower, suffix = (follow, "/stream") if kind == "stream" else (long_poll, "")
    tasks = [
        asyncio.create_task(
            follower(http, f"{url}/api/requests/{ids[i % requests]}{suffix}", opened[i])
        )
        for i in range(streams)
    ]
    await asyncio.wait_for(asyncio.gather(*(o.wait() for o in opened)), 120)
    await asyncio.sleep(2)  # past the streams' first reads
    cpu0, t0 = cpu_seconds(pid), time.monotonic()
    await asyncio.sleep(seconds)
    idle = (cpu_seconds(pid) - cpu0) / (time.monotonic() - t0)
    sent = time.monotonic()

    async def cancel(request_id: str) -> None:
        async with http.post(f"{url}/api/requests/{request_id}/cancel", headers=AUTH) as r:
            if r.status != 200:
                raise RuntimeError(f"cancel: {r.status} {await r.text()}")

    await asyncio.gather(*(cancel(i) for i in ids))
    ends = await asyncio.wait_for(asyncio.gather(*tasks), 60)
    latencies = [(end - sent) * 1000 for end in ends if end is not None]
    return {
        "kind": kind,
        "streams": streams,
        "requests": requests,
        "idle_seconds": seconds,
        "idle_cpu_pct": round(100 * idle, 2),
        "end_p50_ms": pct(latencies, 50),
        "end_p99_ms": pct(latencies, 99),
        "end_max_ms": round(max(latencies), 3) if latencies else None,
        "all_ended": len(latencies) == streams,
    }


async def run(opts: argparse.Namespace) -> None:
    """Start the service and measure each level in turn."""
    levels = [int(x) for x in opts.streams.split(",") if x.strip()]
    with tempfile.TemporaryDirectory(prefix="bench-streams-") as tmp:
        work = Path(tmp)
        env = child_env(
            SIGNOFF_DATABASE_URL=f"sqlite:///{work / 'signoff.db'}",
            SIGNOFF_HOST="127.0.0.1",
            SIGNOFF_PORT="0",
            SIGNOFF_API_TOKEN=TOKEN,
        )
        signoff = await run_signoff(work, env)
        try:
            connector = aiohttp.TCPConnector(limit=0)
            async with aiohttp.ClientSession(connector=connector) as http:
                for n in levels:
                    note(f"{n} streams over {opts.requests} requests, idle {opts.seconds} s")
                    result = await level(
                        http, str(signoff.info["url"]), signoff.proc.pid, n, opts.requests,
                        opts.seconds, opts.kind,
                    )  # fmt: skip
                    print(json.dumps(result), flush=True)
        finally:
            await signoff.stop()


def parse(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """Command-line options."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--streams", default="0,200,1000", help="levels, comma-separated")
    parser.add_argument("--requests", type=int, default=50, help="requests per level")
    parser.add_argument("--seconds", type=float, default=10.0, help="idle time measured")
    parser.add_argument(
        "--kind",
        choices=("stream", "wait"),
        default="stream",
        help="followers: SSE streams, or ?wait=60 long polls of GET /api/requests/{id}",
    )
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> None:
    """Entry point."""
    asyncio.run(run(parse(argv)))


if __name__ == "__main__":
    main()
