"""Request API benchmark: create over HTTP -> posted -> signed click -> waiter woken ->
callback delivered, against a real ``signoff serve`` on SQLite and the fake Slack.

Processes (all on 127.0.0.1, real HTTP): this load generator, which also runs the
callback receiver; the FakeSlack Web API in a process of its own (``bench.slack --role
fake``); and ``signoff serve`` on a fresh SQLite file with named API tokens and a callback
secret. Phases, one JSON line each on stdout (progress on stderr):

* ``create``: ``--creates`` ``POST /api/requests`` from ``--concurrency`` clients:
  creates/s and latency percentiles (each create is a committed run; the posts to Slack
  follow in the background), then how long until every one was posted. ``cpu_ms_per_create``:
  CPU time (user + system, from ``/proc``) per create of the server (every process of
  ``signoff serve``: with ``--workers`` the supervisor and its workers), of this load
  generator and of the fake Slack, from the first create until every one was posted: the
  three share the machine's cores, so the server's share is the figure to compare.
* ``waiters_rss``: the server's RSS (``/proc/PID/status``) before and after opening
  ``--waiters`` concurrent ``GET /api/requests/{id}?wait=60`` long polls on pending
  requests, and the cost per waiter.
* ``decide``: ``--decide`` requests with a ``callback_url``, each with a long-poll waiter;
  signed Approve clicks, ``--click-concurrency`` at a time. ``woken_ms``: the waiter's
  answer read by the client minus the request's ``decided_at`` (stamped inside the
  transaction that resolves it; one wall clock on one machine); ``woken_after_click_ms``:
  the same minus when the click was sent (client clock only: it includes the click's own
  processing and commit); ``click_ms``: click sent -> acked;
  ``callback_ms``: callback received minus ``decided_at``; ``callbacks_once``: every
  request's callback arrived, exactly once; ``server_cpu_ms_per_request``: the server's
  CPU time (user + system, ``/proc/PID/stat``) from the first click until every callback
  arrived, per request (clicks, runs finishing, Slack updates, callbacks, long polls).

::

    python -m bench.requests [--creates 2000] [--concurrency 64] [--waiters 1000] [--decide 200]
                             [--workers 1] [--phases create,waiters_rss,decide]
"""

from __future__ import annotations

import os
import sys

_HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(_HERE)
if sys.path and os.path.abspath(sys.path[0] or os.curdir) == _HERE:
    sys.path.pop(0)  # bench/engine.py and bench/slack.py would shadow packages
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

import argparse  # noqa: E402
import asyncio  # noqa: E402
import contextlib  # noqa: E402
import json  # noqa: E402
import resource  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from collections import Counter  # noqa: E402
from collections.abc import Sequence  # noqa: E402
from datetime import datetime  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import aiohttp  # noqa: E402
from aiohttp import web  # noqa: E402

from bench.slack import (  # noqa: E402
    APPROVE,
    CHANNEL,
    CLICKER,
    SECRET,
    Child,
    child_env,
    cpu_seconds,
    pct,
    run_signoff,
    spawn_helper,
)

TOKEN = "bench-requests-token-0123456789"
CALLBACK_SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


def note(text: str) -> None:
    """Progress, on stderr (stdout carries only the JSON lines)."""
    print(f"[bench.requests] {text}", file=sys.stderr, flush=True)


def own_cpu_seconds() -> float:
    """User + system CPU time of this process (the load generator and the receiver)."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def rss_mb(pid: int) -> float:
    """Resident set size of ``pid`` in MB (Linux)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")


async def spawn_signoff(work: Path, api_url: str, token: str, workers: int = 1) -> Child:
    """``signoff serve`` with named tokens and a callback secret, on a fresh SQLite file."""
    env = child_env(
        SLACK_BOT_TOKEN=token,
        SLACK_SIGNING_SECRET=SECRET,
        SLACK_API_URL=api_url,
        SIGNOFF_SLACK_PACING="false",  # the fake enforces no Slack limits
        SIGNOFF_DATABASE_URL=f"sqlite:///{work / 'signoff.db'}",
        SIGNOFF_HOST="127.0.0.1",
        SIGNOFF_PORT="0",
        SIGNOFF_DEFAULT_CHANNEL=CHANNEL,
        SIGNOFF_API_TOKENS=json.dumps({"bench": TOKEN}),
        SIGNOFF_CALLBACK_SECRET=CALLBACK_SECRET,
    )
    return await run_signoff(work, env, "--workers", str(workers))


class Receiver:
    """The callback endpoint: when each webhook-id arrived, and how often."""

    def __init__(self) -> None:
        self.at: dict[str, float] = {}
        self.count: Counter[str] = Counter()
        self.url = ""

    async def handle(self, request: web.Request) -> web.Response:
        await request.read()
        key = request.headers.get("webhook-id", "")
        self.count[key] += 1
        self.at.setdefault(key, time.time())
        return web.Response(status=204)


class Bench:
    """Drives the server over HTTP."""

    def __init__(self, http: aiohttp.ClientSession, fake: Child, signoff: Child) -> None:
        self.http = http
        self.fake_api = str(fake.info["api_url"])
        self.fake_token = str(fake.info["token"])
        self.url = str(signoff.info["url"])
        self.pid = signoff.proc.pid
        self.fake_pid = fake.proc.pid
        self.db = signoff.log.parent / "signoff.db"

    async def fake(self, method: str, **args: Any) -> dict[str, Any]:
        """Call one of the fake's ``bench.*`` methods."""
        headers = {"Authorization": f"Bearer {self.fake_token}"}
        async with self.http.post(self.fake_api + method, json=args, headers=headers) as r:
            answer: dict[str, Any] = await r.json()
        return answer

    async def create(self, body: dict[str, Any]) -> tuple[str, float]:
        sent = time.monotonic()
        async with self.http.post(f"{self.url}/api/requests", json=body, headers=AUTH) as r:
            answer = await r.json()
            if r.status != 201:
                raise RuntimeError(f"create failed: {r.status} {answer}")
        return str(answer["id"]), (time.monotonic() - sent) * 1000

    async def creates(self, count: int, concurrency: int, **extra: Any) -> dict[str, Any]:
        ids: list[str] = []
        latencies: list[float] = []
        numbers = iter(range(count))

        async def client() -> None:
            for n in numbers:
                rid, ms = await self.create({"title": f"Deploy svc-{n:05d}", **extra})
                ids.append(rid)
                latencies.append(ms)

        started = time.monotonic()
        await asyncio.gather(*(client() for _ in range(concurrency)))
        took = time.monotonic() - started
        return {"ids": ids, "seconds": took, "latencies": latencies}

    async def wait_posted(self, total: int, timeout: float) -> float:
        started = time.monotonic()
        while True:
            posted = int((await self.fake("bench.summary"))["requests_posted"])
            if posted >= total:
                return time.monotonic() - started
            if time.monotonic() - started > timeout:
                raise RuntimeError(f"only {posted} of {total} posted after {timeout:.0f}s")
            await asyncio.sleep(0.1)

    async def messages(self, ids: Sequence[str]) -> dict[str, dict[str, Any]]:
        """Each request's posted message, as Slack returns it."""
        from bot import posted_messages
        from engine import open_store

        store = open_store(str(self.db))
        await store.open()
        keys: dict[str, tuple[str, str]] = {}
        try:
            for rid in ids:
                detail = await store.get_detail(rid)
                posted = (
                    posted_messages(detail.interrupts[0]) if detail and detail.interrupts else []
                )
                if posted:
                    keys[rid] = (posted[0].channel, posted[0].ts)
        finally:
            await store.close()
        found: dict[str, dict[str, Any]] = {}
        ordered = list(keys)
        for i in range(0, len(ordered), 100):
            chunk = ordered[i : i + 100]
            answer = await self.fake("bench.messages", keys=[keys[r] for r in chunk])
            found.update(zip(chunk, answer["messages"], strict=True))
        return found

    async def waiters_rss(self, ids: Sequence[str]) -> dict[str, Any]:
        before = rss_mb(self.pid)
        connector = aiohttp.TCPConnector(limit=0)
        async with aiohttp.ClientSession(connector=connector) as http:

            async def hold(rid: str) -> None:
                with contextlib.suppress(Exception):
                    async with http.get(
                        f"{self.url}/api/requests/{rid}?wait=60", headers=AUTH
                    ) as r:
                        await r.read()

            tasks = [asyncio.create_task(hold(rid)) for rid in ids]
            await asyncio.sleep(5)  # every long poll is parked in the server
            held = sum(1 for t in tasks if not t.done())
            during = rss_mb(self.pid)
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        return {
            "phase": "waiters_rss",
            "waiters": len(ids),
            "held": held,
            "rss_before_mb": round(before, 1),
            "rss_with_waiters_mb": round(during, 1),
            "delta_mb": round(during - before, 1),
            "kb_per_waiter": round((during - before) * 1024 / max(held, 1), 1),
        }

    async def decide(
        self, count: int, click_concurrency: int, receiver: Receiver
    ) -> dict[str, Any]:
        from tests.fakes.signing import block_actions_payload, interactive_body, signed_request

        made = await self.creates(count, 32, callback_url=receiver.url)
        ids: list[str] = made["ids"]
        while True:  # every message posted and its ref recorded
            messages = await self.messages(ids)
            if len(messages) == count:
                break
            await asyncio.sleep(0.2)
        woken: dict[str, float] = {}
        views: dict[str, dict[str, Any]] = {}
        connector = aiohttp.TCPConnector(limit=0)
        async with aiohttp.ClientSession(connector=connector) as waiters_http:

            async def wait(rid: str) -> None:
                url = f"{self.url}/api/requests/{rid}?wait=60"
                async with waiters_http.get(url, headers=AUTH) as r:
                    body = await r.json()
                woken[rid] = time.time()
                views[rid] = body

            waiting = [asyncio.create_task(wait(rid)) for rid in ids]
            await asyncio.sleep(2)  # every waiter parked
            bodies = [
                interactive_body(
                    block_actions_payload(
                        message=messages[rid], action_id=APPROVE, channel_id=CHANNEL,
                        user_id=CLICKER, user_name=CLICKER.lower(),
                    )
                )
                for rid in ids
            ]  # fmt: skip
            click_ms: list[float] = []
            clicked: dict[str, float] = {}
            statuses: Counter[int] = Counter()
            queue = iter(zip(ids, bodies, strict=True))

            async def clicker() -> None:
                for rid, body in queue:
                    signed = signed_request(body, secret=SECRET)
                    clicked[rid] = time.time()
                    sent = time.monotonic()
                    async with self.http.post(
                        f"{self.url}/slack/events",
                        data=signed.body.encode(),
                        headers=signed.headers,
                    ) as r:
                        await r.read()
                        statuses[r.status] += 1
                    click_ms.append((time.monotonic() - sent) * 1000)

            started = time.monotonic()
            cpu_before = cpu_seconds(self.pid)
            await asyncio.gather(*(clicker() for _ in range(click_concurrency)))
            await asyncio.wait_for(asyncio.gather(*waiting), 120)
            all_woken = time.monotonic() - started
        deadline = time.monotonic() + 60
        while len(receiver.count) < count and time.monotonic() < deadline:
            await asyncio.sleep(0.1)
        cpu_ms = (cpu_seconds(self.pid) - cpu_before) * 1000
        await asyncio.sleep(2)  # any duplicate would arrive now
        decided = {
            rid: datetime.fromisoformat(v["decided_at"]).timestamp()
            for rid, v in views.items()
            if v.get("decided_at")
        }
        woken_ms = [(woken[r] - decided[r]) * 1000 for r in decided]
        after_click_ms = [(woken[r] - clicked[r]) * 1000 for r in ids if r in woken]
        callback_ms = [
            (receiver.at[f"req_{r}"] - decided[r]) * 1000
            for r in decided
            if f"req_{r}" in receiver.at
        ]
        approved = sum(1 for v in views.values() if v.get("status") == "approved")
        once = all(receiver.count.get(f"req_{r}") == 1 for r in ids)
        return {
            "phase": "decide",
            "requests": count,
            "click_concurrency": click_concurrency,
            "clicks_ok": statuses.get(200, 0),
            "approved": approved,
            "all_woken_s": round(all_woken, 2),
            "click_ms": {"p50": pct(click_ms, 50), "p99": pct(click_ms, 99)},
            "woken_ms": {
                "p50": pct(woken_ms, 50),
                "p99": pct(woken_ms, 99),
                "max": pct(woken_ms, 100),
            },
            "woken_after_click_ms": {
                "p50": pct(after_click_ms, 50),
                "p99": pct(after_click_ms, 99),
            },
            "callbacks": sum(receiver.count.values()),
            "callbacks_distinct": len(receiver.count),
            "callbacks_once": once,
            "callback_ms": {"p50": pct(callback_ms, 50), "p99": pct(callback_ms, 99)},
            "server_cpu_ms_per_request": round(cpu_ms / count, 2),
        }


async def run_bench(opts: argparse.Namespace) -> None:
    """Start the processes and run the phases in turn."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, min(hard, 65536)), hard))
    note(f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f}")
    receiver = Receiver()
    app = web.Application()
    app.router.add_post("/hook", receiver.handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    host, port = runner.addresses[0][:2]
    receiver.url = f"http://{host}:{port}/hook"
    with tempfile.TemporaryDirectory(prefix="signoff-bench-requests-") as tmp:
        work = Path(tmp)
        children: list[Child] = []
        try:
            fake = await spawn_helper("fake", ["--role", "fake"], work)
            children.append(fake)
            signoff = await spawn_signoff(
                work, str(fake.info["api_url"]), str(fake.info["token"]), opts.workers
            )
            children.append(signoff)
            async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as http:
                bench = Bench(http, fake, signoff)
                await bench.creates(20, 4)  # warm up: imports, caches, auth.test
                await bench.wait_posted(20, 60)
                before = (cpu_seconds(bench.pid), own_cpu_seconds(), cpu_seconds(bench.fake_pid))
                made = await bench.creates(opts.creates, opts.concurrency)
                lat = made["latencies"]
                posted_s = await bench.wait_posted(20 + opts.creates, 60 + opts.creates * 0.05)
                after = (cpu_seconds(bench.pid), own_cpu_seconds(), cpu_seconds(bench.fake_pid))
                server, generator, fake_cpu = (
                    round((b - a) * 1000 / opts.creates, 3)
                    for a, b in zip(before, after, strict=True)
                )
                if "create" in opts.phases:
                    print(json.dumps({
                        "phase": "create",
                        "workers": opts.workers,
                        "creates": opts.creates,
                        "concurrency": opts.concurrency,
                        "creates_per_s": round(opts.creates / made["seconds"], 1),
                        "create_ms": {"p50": pct(lat, 50), "p99": pct(lat, 99)},
                        "all_posted_after_s": round(posted_s, 2),
                        "cpu_ms_per_create": {
                            "server": server, "generator": generator, "fake_slack": fake_cpu
                        },
                        "load_average": round(os.getloadavg()[0], 2),
                    }), flush=True)  # fmt: skip
                if "waiters_rss" in opts.phases:
                    waiters = made["ids"][: opts.waiters]
                    print(json.dumps(await bench.waiters_rss(waiters)), flush=True)
                if "decide" in opts.phases:
                    result = await bench.decide(opts.decide, opts.click_concurrency, receiver)
                    print(json.dumps(result), flush=True)
        except BaseException:
            for child in children:
                note(f"{child.name} log:\n{child.tail()}")
            raise
        finally:
            for child in reversed(children):
                await child.stop()
            await runner.cleanup()


def parse(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """Command-line options."""
    p = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    p.add_argument("--creates", type=int, default=2000, help="requests created in phase 1")
    p.add_argument("--concurrency", type=int, default=64, help="create clients")
    p.add_argument("--waiters", type=int, default=1000, help="concurrent long polls")
    p.add_argument("--decide", type=int, default=200, help="requests clicked, with callbacks")
    p.add_argument("--click-concurrency", type=int, default=50, help="click clients")
    p.add_argument("--workers", type=int, default=1, help="signoff serve --workers")
    p.add_argument(
        "--phases",
        type=lambda text: {p.strip() for p in text.split(",") if p.strip()},
        default={"create", "waiters_rss", "decide"},
        help="comma-separated: create, waiters_rss, decide (the creates run always: "
        "the later phases use them)",
    )
    opts = p.parse_args(argv)
    unknown = opts.phases - {"create", "waiters_rss", "decide"}
    if unknown:
        p.error(f"unknown phases: {', '.join(sorted(unknown))}")
    return opts


def main(argv: Sequence[str] | None = None) -> None:
    """Run the benchmark."""
    asyncio.run(run_bench(parse(argv)))


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        main()
