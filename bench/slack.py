"""Slack click benchmark: Approve clicks through Signoff's real ``POST /slack/events``.

Processes (all on 127.0.0.1, real HTTP): this load generator; the FakeSlack Web API
(``tests.fakes``) in a child process of its own, so recording Slack calls costs neither the
load generator nor the server; the Signoff service (``python -m bot.cli serve``, its real
entry point) on a fresh SQLite file in a temporary directory, running ``change`` from
``tests.e2e.wf_approvals`` (one approval from anyone in the channel); and a bare slack-bolt
``AsyncApp`` on aiohttp, default settings, whose only listener is ``await ack()``: the
floor any bolt app pays on this machine.

Before anything is timed, runs are started through Signoff's REST API until each is
suspended and its request message is posted to the fake; the clicks are ``block_actions``
payloads built from those posted messages (so they carry the real signed references of
the Approve buttons), and each is signed like Slack signs it.

For each concurrency level, ``C`` client tasks (one ``aiohttp`` session, connection limit
``C``, connections opened before timing) send the clicks as fast as they are answered:

* ``ack_*``: click sent -> HTTP response read, for Signoff (one click per interrupt);
* ``e2e_*``: click sent -> the ``chat.update`` of that message (matched by channel + ts)
  received by the fake (``time.monotonic`` is one system-wide clock on Linux);
* ``bare_bolt_ack_*``: the same bodies, freshly signed, at the same concurrency, to the
  bare bolt app;
* ``all_resumed_once``: every click got 200; every run completed with its interrupt
  approved by one recorded response (read from the engine's database); every message was
  updated exactly once, shows the approval, and got one thread reply; nobody was refused.

Prints one JSON line per level on stdout (progress goes to stderr)::

    python -m bench.slack [--clicks 200] [--sequential-clicks 100] [--levels 1,50,200]
                          [--workers 1]
"""

from __future__ import annotations

import os
import sys

# Run as a script, bench/ would be first on sys.path, where engine.py (the engine bench)
# would shadow the engine package and this file the legacy ``slack`` package.
_HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(_HERE)
if sys.path and os.path.abspath(sys.path[0] or os.curdir) == _HERE:
    sys.path.pop(0)
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

import argparse  # noqa: E402
import asyncio  # noqa: E402
import contextlib  # noqa: E402
import json  # noqa: E402
import math  # noqa: E402
import re  # noqa: E402
import signal  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from collections import Counter, deque  # noqa: E402
from collections.abc import Awaitable, Callable, Sequence  # noqa: E402
from dataclasses import dataclass, field  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import aiohttp  # noqa: E402

SECRET = "bench-signing-secret-0123456789abcdef"
API_TOKEN = "bench-api-token-0123456789"
CHANNEL = "C0APPROVALS"
REQUESTER = "U0CAROL"
CLICKER = "U0ALICE"
USERS = ("U0ALICE", "U0BOB", "U0CAROL")
EVENTS_PATH = "/slack/events"
WORKFLOW_MODULE = "tests.e2e.wf_approvals"
WORKFLOW = "change"
APPROVE = "signoff:approve"  # bot.slack.action_ids.APPROVE
LISTENING = re.compile(r"listening on (http://127\.0\.0\.1:\d+)")
_DROPPED_ENV = ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy", "ALL_PROXY", "all_proxy")


def note(text: str) -> None:
    """Progress, on stderr (stdout carries only the JSON lines)."""
    print(f"[bench.slack] {text}", file=sys.stderr, flush=True)


# -- child processes: the fake Slack and the bare bolt app -------------------------------------


async def _stdin_closed() -> None:
    """Return when the parent closes our stdin (or dies)."""
    loop = asyncio.get_running_loop()
    await loop.run_in_executor(None, sys.stdin.buffer.read)


class Records(list[Any]):
    """The fake's call log, telling ``FakeIndex`` about each call as it is recorded."""

    def __init__(self, index: FakeIndex) -> None:
        super().__init__()
        self.sink = index

    def append(self, call: Any) -> None:
        super().append(call)
        self.sink.record(call)


class FakeIndex:
    """Counts over the fake's calls, served as ``bench.*`` methods of the fake."""

    def __init__(self, fake: Any) -> None:
        self.fake = fake
        self.ok: Counter[str] = Counter()
        self.failed: Counter[str] = Counter()
        self.thread_replies: Counter[tuple[str, str]] = Counter()
        self.updates: list[tuple[str, str, float]] = []  # channel, ts, received_at
        self.first_update: dict[tuple[str, str], float] = {}
        self.waiters: dict[tuple[str, str], list[asyncio.Future[None]]] = {}

    def record(self, call: Any) -> None:
        if call.method.startswith("bench."):
            return
        if not call.ok:
            self.failed[call.method] += 1
            return
        self.ok[call.method] += 1
        args = call.args
        if call.method == "chat.update":
            key = (str(args["channel"]), str(args["ts"]))
            self.updates.append((*key, call.received_at))
            self.first_update.setdefault(key, call.received_at)
        elif call.method == "chat.postMessage" and args.get("thread_ts"):
            key = (str(call.response["channel"]), str(args["thread_ts"]))
            self.thread_replies[key] += 1
        else:
            return
        if self.done(key):
            for waiter in self.waiters.pop(key, []):
                if not waiter.done():
                    waiter.set_result(None)

    def done(self, key: tuple[str, str]) -> bool:
        """Whether the message was updated and the run's outcome replied in its thread."""
        return key in self.first_update and self.thread_replies[key] > 0

    async def wait_done(self, args: dict[str, Any]) -> dict[str, Any]:
        """Answer once ``done`` holds for the message (channel, ts), or after timeout."""
        key = (str(args["channel"]), str(args["ts"]))
        if not self.done(key):
            waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            self.waiters.setdefault(key, []).append(waiter)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(waiter, float(args.get("timeout", 30)))
        return {"ok": True, "done": self.done(key)}

    async def summary(self, args: dict[str, Any]) -> dict[str, Any]:
        return {
            "ok": True,
            "calls": dict(self.ok),
            "failed": dict(self.failed),
            "updates": len(self.updates),
            "thread_replies": sum(self.thread_replies.values()),
            "requests_posted": self.ok["chat.postMessage"] - sum(self.thread_replies.values()),
            "ephemerals": len(self.fake.ephemerals),
            "validation_failures": len(self.fake.validation_failures),
        }

    async def updates_since(self, args: dict[str, Any]) -> dict[str, Any]:
        return {"ok": True, "updates": self.updates[int(args.get("since", 0)) :]}

    async def messages(self, args: dict[str, Any]) -> dict[str, Any]:
        found = []
        for channel, ts in args["keys"]:
            try:
                found.append(self.fake.message(channel, ts).to_api())
            except KeyError:
                found.append(None)
        return {"ok": True, "messages": found}

    async def check(self, args: dict[str, Any]) -> dict[str, Any]:
        """Per message: updates received, thread replies, and what it shows now."""
        per_key = Counter((channel, ts) for channel, ts, _ in self.updates)
        result = []
        for channel, ts in args["keys"]:
            key = (channel, ts)
            blocks = self.fake.message(channel, ts).blocks
            result.append(
                {
                    "updates": per_key[key],
                    "replies": self.thread_replies[key],
                    "approved": f"*Approved* by <@{CLICKER}>" in json.dumps(blocks),
                    "buttons": any(b.get("type") == "actions" for b in blocks),
                }
            )
        return {"ok": True, "messages": result}


async def run_fake() -> None:
    """Child: serve the FakeSlack until stdin closes; print its address first."""
    from tests.fakes.slack_api import FakeSlack

    fake = FakeSlack()
    for user in USERS:
        fake.add_user(user, name=user.lower())
    index = FakeIndex(fake)
    fake.records = Records(index)
    fake.add_method("bench.summary", index.summary)
    fake.add_method("bench.updates", index.updates_since)
    fake.add_method("bench.messages", index.messages)
    fake.add_method("bench.check", index.check)
    fake.add_method("bench.wait_done", index.wait_done)
    add_limit_methods(fake)
    await fake.start()
    print(json.dumps({"api_url": fake.api_url, "token": fake.token}), flush=True)
    try:
        await _stdin_closed()
    finally:
        await fake.stop()


def add_limit_methods(fake: Any) -> None:
    """``bench.enforce``, ``bench.mint`` and ``bench.limited``: the ``--limits`` scenarios."""
    from tests.fakes.ratelimits import SlackLimits

    feedback: dict[str, float] = {}  # response_url key -> first post received
    urls = fake._response_urls  # time each response_url post as it arrives
    handle = urls.handle

    async def timed(request: Any) -> Any:
        feedback.setdefault(request.match_info["key"], time.monotonic())
        return await handle(request)

    urls.handle = timed

    async def enforce(args: dict[str, Any]) -> dict[str, Any]:
        fake.enforce_limits(SlackLimits(time_scale=float(args["time_scale"])))
        return {"ok": True}

    async def mint(args: dict[str, Any]) -> dict[str, Any]:
        return {"ok": True, "url": fake.response_url(channel=args["channel"], ts=args["ts"])}

    async def mint_many(args: dict[str, Any]) -> dict[str, Any]:
        """One ``response_url`` per (channel, ts), as Slack sends with each click."""
        urls = [fake.response_url(channel=channel, ts=ts) for channel, ts in args["keys"]]
        return {"ok": True, "urls": urls}

    async def feedback_times(args: dict[str, Any]) -> dict[str, Any]:
        """When the first post to each minted ``response_url`` arrived, by key."""
        return {"ok": True, "feedback": feedback}

    async def limited(args: dict[str, Any]) -> dict[str, Any]:
        """Every call of the channel: posts (with run id), updates, 429s, feedback times."""
        posts, updates = [], []
        for call in fake.calls():
            if not call.ok:
                continue
            if call.method == "chat.postMessage" and call.response.get("channel") == CHANNEL:
                meta = (call.args.get("metadata") or {}).get("event_payload") or {}
                posts.append([call.received_at, call.response["ts"], call.args.get("thread_ts"),
                              meta.get("run_id")])  # fmt: skip
            elif call.method == "chat.update":
                updates.append([call.received_at, call.args["ts"]])
        shown = {}
        for ts in args.get("keys", []):
            blocks = json.dumps(fake.message(CHANNEL, ts).blocks)
            shown[ts] = f"*Approved* by <@{CLICKER}>" in blocks and '"actions"' not in blocks
        return {"ok": True, "posts": posts, "updates": updates, "shown": shown,
                "hits": dict(fake.rate_limit_hits), "feedback": feedback}  # fmt: skip

    fake.add_method("bench.enforce", enforce)
    fake.add_method("bench.mint", mint)
    fake.add_method("bench.mint_many", mint_many)
    fake.add_method("bench.feedback", feedback_times)
    fake.add_method("bench.limited", limited)


async def run_bare_bolt(api_url: str, token: str) -> None:
    """Child: a default bolt AsyncApp on aiohttp whose action listener only acks."""
    from aiohttp import web
    from slack_bolt.app.async_app import AsyncApp
    from slack_bolt.context.ack.async_ack import AsyncAck
    from slack_sdk.web.async_client import AsyncWebClient

    from tests.fakes.slack_api import ACCEPT_QUEUE

    app = AsyncApp(client=AsyncWebClient(token=token, base_url=api_url), signing_secret=SECRET)

    async def on_action(ack: AsyncAck) -> None:
        await ack()

    app.action(APPROVE)(on_action)
    runner = web.AppRunner(app.web_app(path=EVENTS_PATH))
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0, backlog=ACCEPT_QUEUE)  # as Signoff's
    await site.start()
    host, port = runner.addresses[0][:2]
    print(json.dumps({"url": f"http://{host}:{port}"}), flush=True)
    try:
        await _stdin_closed()
    finally:
        await runner.cleanup()


# -- the load generator -------------------------------------------------------------------------


@dataclass
class Child:
    """A child process with its stderr in a log file."""

    name: str
    proc: asyncio.subprocess.Process
    log: Path
    info: dict[str, Any] = field(default_factory=dict)

    def tail(self, lines: int = 30) -> str:
        text = self.log.read_text(errors="replace") if self.log.exists() else ""
        return "\n".join(text.splitlines()[-lines:])

    async def stop(self) -> None:
        if self.proc.returncode is not None:
            return
        if self.proc.stdin is not None:
            self.proc.stdin.close()  # the helpers exit when stdin closes
        else:
            self.proc.send_signal(signal.SIGTERM)  # Signoff shuts down gracefully
        try:
            await asyncio.wait_for(self.proc.wait(), 20)
        except TimeoutError:
            self.proc.kill()
            await self.proc.wait()


def child_env(**extra: str) -> dict[str, str]:
    """The environment without proxies (slack-sdk ignores NO_PROXY) or Slack/Signoff settings."""
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in _DROPPED_ENV and not k.startswith(("SLACK_", "SIGNOFF_"))
    }
    env["PYTHONPATH"] = os.pathsep.join(p for p in (ROOT, env.get("PYTHONPATH")) if p)
    env["PYTHONUNBUFFERED"] = "1"
    env.update(extra)
    return env


async def spawn_helper(name: str, args: Sequence[str], work: Path) -> Child:
    """Start ``python -m bench.slack --role ...`` and read the JSON line it prints."""
    log = work / f"{name}.log"
    with open(log, "wb") as err:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "bench.slack", *args,
            cwd=work, env=child_env(), stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE, stderr=err,
        )  # fmt: skip
    child = Child(name, proc, log)
    assert proc.stdout is not None
    line = await asyncio.wait_for(proc.stdout.readline(), 30)
    if not line:
        raise RuntimeError(f"{name} did not start:\n{child.tail()}")
    child.info = json.loads(line)
    return child


async def spawn_signoff(
    work: Path,
    api_url: str,
    token: str,
    database_options: str = "",
    workers: int = 1,
    **extra: str,
) -> Child:
    """Start the Signoff service (``signoff serve --workers N``) and wait until it listens;
    ``database_options`` is appended to its SQLite URL (e.g. ``?inline_writes=1``)."""
    env = child_env(
        **extra,
        SLACK_BOT_TOKEN=token,
        SLACK_SIGNING_SECRET=SECRET,
        SLACK_API_URL=api_url,
        SIGNOFF_DATABASE_URL=f"sqlite:///{work / 'signoff.db'}{database_options}",
        SIGNOFF_WORKFLOWS=WORKFLOW_MODULE,
        SIGNOFF_HOST="127.0.0.1",
        SIGNOFF_PORT="0",
        SIGNOFF_DEFAULT_CHANNEL=CHANNEL,
        SIGNOFF_API_TOKEN=API_TOKEN,
    )
    return await run_signoff(work, env, "--workers", str(workers))


async def run_signoff(work: Path, env: dict[str, str], *args: str) -> Child:
    """Run ``signoff serve [args]`` in ``work`` with ``env`` and wait until it listens."""
    log = work / "signoff.log"
    with open(log, "wb") as err:
        # cwd is the temporary directory, so no stray .env file changes the settings.
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "bot.cli", "serve", *args,
            cwd=work, env=env, stdin=asyncio.subprocess.DEVNULL,
            stdout=err, stderr=err,
        )  # fmt: skip
    child = Child("signoff", proc, log)
    deadline = time.monotonic() + 60
    while True:
        found = LISTENING.search(log.read_text(errors="replace"))
        if found:
            child.info = {"url": found.group(1)}
            return child
        if proc.returncode is not None or time.monotonic() > deadline:
            await child.stop()
            raise RuntimeError(f"Signoff did not start:\n{child.tail()}")
        await asyncio.sleep(0.05)


@dataclass(frozen=True)
class Click:
    """One Approve click on one suspended run's posted message."""

    run_id: str
    channel: str
    ts: str
    body: str  # the form body Slack would POST
    response_url: str  # minted by the fake for this click, as Slack mints one per click


@dataclass(frozen=True)
class Sample:
    """One request: when it was sent and answered, and the answer."""

    sent: float
    answered: float
    status: int
    text: str

    @property
    def ms(self) -> float:
        return (self.answered - self.sent) * 1000


class Bench:
    """Drives the three processes over HTTP."""

    def __init__(
        self,
        http: aiohttp.ClientSession,
        fake: Child,
        signoff: Child,
        bare: Child,
        *,
        pace_on_ack: bool = False,
    ) -> None:
        self.http = http
        self.pace_on_ack = pace_on_ack
        self.fake_api = str(fake.info["api_url"])
        self.token = str(fake.info["token"])
        self.signoff_url = str(signoff.info["url"])
        self.bare_url = str(bare.info["url"])
        self.signoff_pid = signoff.proc.pid
        self.fake_pid = fake.proc.pid
        self.bare_pid = bare.proc.pid
        self.db = Path(signoff.log.parent, "signoff.db")

    async def fake(self, method: str, **args: Any) -> dict[str, Any]:
        """Call one of the fake's ``bench.*`` methods."""
        async with self.http.post(
            self.fake_api + method, json=args, headers={"Authorization": f"Bearer {self.token}"}
        ) as response:
            answer: dict[str, Any] = await response.json()
        if not answer.get("ok"):
            raise RuntimeError(f"{method}: {answer}")
        return answer

    # -- preparation ----------------------------------------------------------------------

    async def start_runs(self, count: int) -> list[str]:
        """Start ``count`` runs through the REST API (16 at a time)."""
        gate = asyncio.Semaphore(16)
        headers = {"Authorization": f"Bearer {API_TOKEN}"}

        async def one(n: int) -> str:
            body = {
                "workflow": WORKFLOW,
                "input": {"service": f"svc-{n:04d}", "version": "1.0.0", "channel": CHANNEL},
                "requester": REQUESTER,
            }
            async with (
                gate,
                self.http.post(
                    f"{self.signoff_url}/api/runs", json=body, headers=headers
                ) as response,  # fmt: skip
            ):
                answer = await response.json()
                if response.status != 202:
                    raise RuntimeError(f"starting a run failed: {response.status} {answer}")
                return str(answer["run_id"])

        return list(await asyncio.gather(*(one(n) for n in range(count))))

    async def wait_for(self, what: str, check: Callable[[], Awaitable[Any]], timeout: float) -> Any:
        """Poll ``check`` until it returns something truthy; return that."""
        deadline = time.monotonic() + timeout
        while True:
            result = await check()
            if result:
                return result
            if time.monotonic() > deadline:
                raise RuntimeError(f"timed out after {timeout:.0f}s waiting for {what}")
            await asyncio.sleep(0.02)

    async def posted(self, run_ids: list[str]) -> dict[str, tuple[str, str]]:
        """Each run's request message (channel, ts), from the interrupt refs in the engine."""
        from bot import posted_messages
        from engine import open_store

        store = open_store(str(self.db))
        await store.open()
        try:
            found: dict[str, tuple[str, str]] = {}
            for run_id in run_ids:
                detail = await store.get_detail(run_id)
                if detail is None or not detail.interrupts:
                    continue
                messages = posted_messages(detail.interrupts[0])
                if messages:
                    found[run_id] = (messages[0].channel, messages[0].ts)
            return found
        finally:
            await store.close()

    async def prepare(self, count: int) -> list[Click]:
        """Start ``count`` runs, wait until each is suspended and posted, build the clicks."""
        from tests.fakes.signing import block_actions_payload, interactive_body

        started = time.monotonic()
        note(f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f}")
        run_ids = await self.start_runs(count)

        async def all_posted() -> bool:
            return int((await self.fake("bench.summary"))["requests_posted"]) >= count

        await self.wait_for(f"{count} request messages", all_posted, 60 + count * 0.2)

        async def all_recorded() -> dict[str, tuple[str, str]] | None:
            found = await self.posted(run_ids)
            return found if len(found) == count else None

        where = await self.wait_for("the message refs", all_recorded, 30)
        clicks: list[Click] = []
        for chunk in range(0, count, 100):
            ids = run_ids[chunk : chunk + 100]
            keys = [where[run_id] for run_id in ids]
            messages = (await self.fake("bench.messages", keys=keys))["messages"]
            urls = (await self.fake("bench.mint_many", keys=keys))["urls"]
            for run_id, (channel, ts), message, url in zip(ids, keys, messages, urls, strict=True):
                payload = block_actions_payload(
                    message=message,
                    action_id=APPROVE,
                    channel_id=channel,
                    user_id=CLICKER,
                    user_name=CLICKER.lower(),
                    response_url=url,
                )
                clicks.append(Click(run_id, channel, ts, interactive_body(payload), url))
        note(f"prepared {count} suspended runs in {time.monotonic() - started:.1f}s")
        return clicks

    # -- measuring ------------------------------------------------------------------------

    async def fire(
        self,
        url: str,
        bodies: Sequence[str],
        concurrency: int,
        after: Callable[[int], Awaitable[Any]] | None = None,
    ) -> list[Sample]:
        """POST each body, signed now, with ``concurrency`` clients; time each answer.

        A client sends its next request once the last one is answered and, with ``after``,
        once ``after(index)`` has returned too; after its last request it awaits nothing
        (callers wait for everything to settle themselves).
        """
        from tests.fakes.signing import signed_request

        signed = [signed_request(body, secret=SECRET) for body in bodies]
        requests = [(r.body.encode(), r.headers) for r in signed]
        samples: list[Sample | None] = [None] * len(requests)
        pending = deque(range(len(requests)))
        connector = aiohttp.TCPConnector(limit=concurrency)
        async with aiohttp.ClientSession(connector=connector) as http:
            # Open the connections first (a GET is answered 405 by aiohttp's router).
            await asyncio.gather(*(self._touch(http, url) for _ in range(concurrency)))

            async def client() -> None:
                while pending:
                    i = pending.popleft()
                    data, headers = requests[i]
                    sent = time.monotonic()
                    async with http.post(url, data=data, headers=headers) as response:
                        text = await response.text()
                    samples[i] = Sample(sent, time.monotonic(), response.status, text)
                    # Only before a next request: awaited after the last one too, this RPC
                    # to the fake went out while other clients' answers were arriving and
                    # delayed reading them, time the bare app (no `after`) is not charged.
                    if after is not None and pending:
                        await after(i)

            await asyncio.gather(*(client() for _ in range(concurrency)))
        return [s for s in samples if s is not None]

    @staticmethod
    async def _touch(http: aiohttp.ClientSession, url: str) -> None:
        async with http.get(url) as response:
            await response.read()

    async def level(self, clicks: list[Click], concurrency: int) -> dict[str, Any]:
        """Measure one concurrency level on its own, not yet clicked, interrupts."""
        before = await self.fake("bench.summary")
        bodies = [c.body for c in clicks]

        async def done(i: int) -> None:
            # A click is in flight until all it causes in Slack happened: the message
            # shows the outcome and the run's end is replied in its thread.
            await self.fake("bench.wait_done", channel=clicks[i].channel, ts=clicks[i].ts)

        pace = None if self.pace_on_ack else done
        cpu_before = cpu_seconds(self.signoff_pid)
        fake_cpu_before = cpu_seconds(self.fake_pid)
        acks = await self.fire(self.signoff_url + EVENTS_PATH, bodies, concurrency, pace)
        n = len(clicks)

        async def settled() -> dict[str, Any] | None:
            now = await self.fake("bench.summary")
            updated = now["updates"] >= before["updates"] + n
            replied = now["thread_replies"] >= before["thread_replies"] + n
            return now if updated and replied else None

        try:
            after = await self.wait_for("the updates", settled, 30 + n * 0.5)
        except RuntimeError as exc:
            note(str(exc))
            after = await self.fake("bench.summary")
        cpu = cpu_seconds(self.signoff_pid) - cpu_before
        fake_cpu = cpu_seconds(self.fake_pid) - fake_cpu_before
        posted = (await self.fake("bench.feedback"))["feedback"]
        feedback = [
            (posted[key] - s.sent) * 1000
            for c, s in zip(clicks, acks, strict=True)
            if (key := c.response_url.rsplit("/", 1)[-1]) in posted
        ]
        updates = (await self.fake("bench.updates", since=before["updates"]))["updates"]
        first: dict[tuple[str, str], float] = {}
        for channel, ts, at in updates:
            first.setdefault((channel, ts), at)
        e2e = [
            (first[(c.channel, c.ts)] - s.sent) * 1000
            for c, s in zip(clicks, acks, strict=True)
            if (c.channel, c.ts) in first
        ]
        verified = await self.verify(clicks, acks, before, after)
        await asyncio.sleep(0.2)  # let Signoff's last writes finish before the floor
        bare_before = cpu_seconds(self.bare_pid)
        bare = await self.fire(self.bare_url + EVENTS_PATH, bodies, concurrency)
        bare_cpu = cpu_seconds(self.bare_pid) - bare_before
        if any(s.status != 200 for s in bare):
            note(f"bare bolt statuses: {Counter(s.status for s in bare)}")
        return {
            "concurrency": concurrency,
            "ack_p50_ms": pct([s.ms for s in acks], 50),
            "ack_p99_ms": pct([s.ms for s in acks], 99),
            "e2e_p50_ms": pct(e2e, 50),
            "e2e_p99_ms": pct(e2e, 99),
            "feedback_p50_ms": pct(feedback, 50),
            "feedback_p99_ms": pct(feedback, 99),
            "bare_bolt_ack_p50_ms": pct([s.ms for s in bare], 50),
            "bare_bolt_ack_p99_ms": pct([s.ms for s in bare], 99),
            "cpu_ms_per_click": round(cpu * 1000 / n, 3),
            "bare_bolt_cpu_ms_per_click": round(bare_cpu * 1000 / n, 3),
            "fake_slack_cpu_ms_per_click": round(fake_cpu * 1000 / n, 3),
            "all_resumed_once": verified and len(e2e) == n,
        }

    async def verify(
        self,
        clicks: list[Click],
        acks: list[Sample],
        before: dict[str, Any],
        after: dict[str, Any],
    ) -> bool:
        """Every click acked, resumed exactly once (engine), updated exactly once (fake)."""
        problems: list[str] = []
        statuses = Counter((s.status, s.text) for s in acks)
        if statuses != Counter({(200, ""): len(clicks)}):
            problems.append(f"acks: {dict(statuses)}")
        for key in ("ephemerals", "validation_failures"):
            if after[key] != before[key]:
                problems.append(f"{key}: {before[key]} -> {after[key]}")
        if after["failed"] != before["failed"]:
            problems.append(f"failed Slack calls: {before['failed']} -> {after['failed']}")
        keys = [[c.channel, c.ts] for c in clicks]
        shown = (await self.fake("bench.check", keys=keys))["messages"]
        for click, message in zip(clicks, shown, strict=True):
            expected = {"updates": 1, "replies": 1, "approved": True, "buttons": False}
            if message != expected:
                problems.append(f"message of {click.run_id}: {message}")
        problems += await self.verify_engine([c.run_id for c in clicks])
        for problem in problems[:10]:
            note(f"NOT VERIFIED: {problem}")
        return not problems

    async def verify_engine(self, run_ids: list[str]) -> list[str]:
        """Each run completed, its interrupt approved by the one response recorded."""
        from engine import EventType, InterruptStatus, RunStatus, open_store

        store = open_store(str(self.db))
        await store.open()
        problems = []
        try:
            for run_id in run_ids:
                detail = await store.get_detail(run_id)
                if detail is None:
                    problems.append(f"run {run_id} is missing")
                    continue
                events = Counter(e.type for e in detail.events)
                if len(detail.interrupts) != 1:
                    problems.append(f"run {run_id}: {len(detail.interrupts)} interrupts")
                    continue
                interrupt = detail.interrupts[0]
                ok = (
                    detail.run.status is RunStatus.COMPLETED
                    and interrupt.status is InterruptStatus.APPROVED
                    and [r.actor for r in interrupt.responses] == [CLICKER]
                    and interrupt.resolved_by == CLICKER
                    and events[EventType.RESPONSE_RECORDED] == 1
                    and events[EventType.RESOLVED] == 1
                    and (detail.run.output or {}).get("approved_by") == CLICKER
                )
                if not ok:
                    problems.append(
                        f"run {run_id}: {detail.run.status.value}, interrupt "
                        f"{interrupt.status.value}, {len(interrupt.responses)} responses, "
                        f"events {dict(events)}"
                    )
        finally:
            await store.close()
        return problems


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of ``pid`` and its descendants still running (Linux
    ``/proc``): with ``--workers N`` the service's pid is a supervisor of N workers."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0.0
    pending = [pid]
    while pending:
        current = pending.pop()
        with contextlib.suppress(OSError):
            fields = Path(f"/proc/{current}/stat").read_text().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / tick  # utime, stime
            children = Path(f"/proc/{current}/task/{current}/children").read_text().split()
            pending.extend(int(c) for c in children)
    return total


def pct(values: Sequence[float], q: float) -> float | None:
    """The ``q``-th percentile (linear interpolation), in ms rounded to 3 decimals."""
    if not values:
        return None
    ordered = sorted(values)
    rank = (len(ordered) - 1) * q / 100
    low = math.floor(rank)
    high = min(low + 1, len(ordered) - 1)
    return round(ordered[low] + (ordered[high] - ordered[low]) * (rank - low), 3)


async def run_bench(opts: argparse.Namespace) -> None:
    """Start the processes, prepare every run, then measure each level in turn."""
    levels = [int(x) for x in opts.levels.split(",") if x.strip()]
    sizes = [opts.sequential_clicks if c == 1 else opts.clicks for c in levels]
    with tempfile.TemporaryDirectory(prefix="signoff-bench-slack-") as tmp:
        work = Path(tmp)
        children: list[Child] = []
        try:
            fake = await spawn_helper("fake", ["--role", "fake"], work)
            children.append(fake)
            api_url, token = str(fake.info["api_url"]), str(fake.info["token"])
            # This fake enforces no Slack limits: measure Signoff, not the pacer (--limits).
            signoff = await spawn_signoff(
                work,
                api_url,
                token,
                opts.database_options,
                opts.workers,
                SIGNOFF_SLACK_PACING="false",
            )
            children.append(signoff)
            bare = await spawn_helper(
                "bare-bolt", ["--role", "bare-bolt", "--api-url", api_url, "--token", token], work
            )
            children.append(bare)
            # Control calls (API, the fake's bench.* methods): no connection limit, since
            # every click client may be waiting on the fake at once.
            async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as http:
                bench = Bench(http, fake, signoff, bare, pace_on_ack=opts.pace_on_ack)
                clicks = await bench.prepare(opts.warmup + sum(sizes))
                # First requests: auth.test, imports, caches. One connection per click:
                # the kernel spreads connections over --workers' processes (SO_REUSEPORT),
                # and a worker left cold answered its first burst up to 1.5x slower.
                for click in clicks[: opts.warmup]:
                    await bench.level([click], 1)
                if opts.warmup:
                    note(f"warmed up with {opts.warmup} clicks")
                offset = opts.warmup
                for concurrency, size in zip(levels, sizes, strict=True):
                    await asyncio.sleep(0.5)
                    result = await bench.level(clicks[offset : offset + size], concurrency)
                    offset += size
                    print(json.dumps(result), flush=True)
                    note(f"load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
        except BaseException:
            for child in children:
                note(f"{child.name} log:\n{child.tail()}")
            raise
        finally:
            for child in reversed(children):
                await child.stop()


def parse(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """Command-line options."""
    p = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    p.add_argument("--clicks", type=int, default=200, help="clicks per level (C > 1)")
    p.add_argument("--sequential-clicks", type=int, default=100, help="clicks at concurrency 1")
    p.add_argument("--levels", default="1,50,200", help="comma-separated concurrency levels")
    p.add_argument("--warmup", type=int, default=10, help="sequential clicks before timing")
    p.add_argument("--workers", type=int, default=1, help="signoff serve --workers N")
    p.add_argument(
        "--pace-on-ack",
        action="store_true",
        help="send a client's next click once the last is acked, not once its message is "
        "updated (Signoff's background work then queues up: a throughput test)",
    )
    p.add_argument("--database-options", default="",
                   help="appended to Signoff's SQLite URL, e.g. '?inline_writes=1'")  # fmt: skip
    p.add_argument("--limits", action="store_true",
                   help="the fake enforces Slack's rate limits: the burst scenarios, "
                   "pacing off then on")  # fmt: skip
    p.add_argument("--time-scale", type=float, default=1 / 20,
                   help="with --limits: a Slack minute lasts 60 * this seconds")  # fmt: skip
    p.add_argument("--requests", type=int, default=500, help="with --limits: new requests")
    p.add_argument("--decisions", type=int, default=200, help="with --limits: decisions")
    p.add_argument("--pacing", default="off,on", help="with --limits: pacing settings to run")
    p.add_argument("--role", choices=("bench", "fake", "bare-bolt"), default="bench",
                   help=argparse.SUPPRESS)  # fmt: skip
    p.add_argument("--api-url", help=argparse.SUPPRESS)
    p.add_argument("--token", help=argparse.SUPPRESS)
    return p.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> None:
    """Run the benchmark (or, with ``--role``, one of its helper processes)."""
    opts = parse(argv)
    if opts.role == "fake":
        asyncio.run(run_fake())
    elif opts.role == "bare-bolt":
        asyncio.run(run_bare_bolt(opts.api_url, opts.token))
    elif opts.limits:
        from bench.slack_limits import run_limits

        asyncio.run(run_limits(opts))
    else:
        asyncio.run(run_bench(opts))


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        main()
