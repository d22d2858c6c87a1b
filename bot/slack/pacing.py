"""Client-side pacing of Slack Web API calls: stay under Slack's limits instead of hitting them.

Slack limits calls per method and workspace (Tier 2 20/min, Tier 3 50/min, Tier 4 100/min)
and ``chat.postMessage`` to about one message per second per channel with a short burst
(slack-facts §3.2). An app that keeps exceeding them gets 429s and risks being disabled, so
the notifier's calls go through a ``Pacer``:

* a sliding 60-second window per method (``DEFAULT_BUDGETS``, overridable), and for
  ``chat.postMessage`` a burst then one a second per channel, plus a workspace-wide window;
  a call counts until its answer is back, so a slow network never makes one early;
* priorities: 1, the ``chat.update`` of a message (someone just acted on it); 2, new request
  posts (and the ``conversations.open`` before a DM); 3, thread replies (reminders, run
  outcomes) and read-backs. A call waits while a more urgent call waits for the same budget;
* coalescing: pending ``chat.update`` calls for the same channel + ts become one, the latest
  content wins (the notifier always renders the current state), and every caller gets its
  result.

Only outbox handlers wait here (they run after the commit: a decision never waits for
Slack). A 429 that still happens is retried after ``Retry-After`` by slack-sdk's handler, and
what still fails goes back to the outbox, as before. Budgets are per process: with
``signoff serve --workers N`` each worker gets 1/N of every budget (``Pacer(share=N)``).

``PacedWebClient`` is an ``AsyncWebClient`` whose every call (``api_call``) is paced, so the
notifier needs no change: ``paced_client(client, pacer)`` makes one sharing the client's
session and retry handlers.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from slack_sdk.web.async_client import AsyncWebClient
from slack_sdk.web.async_slack_response import AsyncSlackResponse

__all__ = [
    "DEFAULT_BUDGETS",
    "PacedWebClient",
    "Pacer",
    "PacingLimits",
    "paced_client",
    "pacer_from_settings",
    "priority_of",
]

log = logging.getLogger("signoff.bot.pacing")

POST_MESSAGE = "chat.postMessage"
UPDATE = "chat.update"
# Calls per minute by method (Slack's tiers; slack-facts §3.2).
DEFAULT_BUDGETS: dict[str, int] = {
    UPDATE: 50,
    "chat.delete": 50,
    "chat.postEphemeral": 100,
    "conversations.open": 50,
    "conversations.history": 50,
    "conversations.replies": 50,
    "usergroups.users.list": 20,
    "users.info": 100,
    "views.publish": 100,
}
URGENT, NEW, LATER = 1, 2, 3  # priorities: smaller goes first
# Slack's windows and ours are measured on different clocks, a network hop apart: keep a
# little room so a call released exactly on time is not counted in the previous window.
MARGIN = 0.01
SLACK_JITTER = 0.005  # seconds, on top


@dataclass(frozen=True)
class PacingLimits:
    """The budgets to keep to; every figure is for the whole workspace (see ``share``)."""

    per_minute: Mapping[str, int] = field(default_factory=lambda: dict(DEFAULT_BUDGETS))
    post_message_per_second: float = 1.0  # per channel
    post_message_burst: int = 3
    post_message_per_minute: int = 300  # across the workspace
    time_scale: float = 1.0  # multiplies every window (tests and benchmarks only)


class _Window:
    """At most ``cap`` calls in any sliding ``length`` seconds.

    A call counts from its release until ``length`` after its *response* arrived: Slack
    counts it when the request arrives, which is somewhere in between, so however late a
    request travels (a loaded host, a slow network), the window never frees too early.
    """

    def __init__(self, cap: int, length: float) -> None:
        self.cap = max(1, cap)
        self.length = length
        self.slots: list[list[float | None]] = []  # [answered at], None while in flight

    def wait(self, now: float) -> float:
        self.slots = [s for s in self.slots if s[0] is None or s[0] > now - self.length]
        if len(self.slots) < self.cap:
            return 0.0
        frees = sorted(s[0] + self.length for s in self.slots if s[0] is not None)
        need = len(self.slots) - self.cap + 1
        # Slots in flight free only once answered; the answer wakes the dispatcher.
        return frees[need - 1] - now if len(frees) >= need else self.length

    def take(self, now: float) -> list[float | None]:
        slot: list[float | None] = [None]
        self.slots.append(slot)
        return slot


@dataclass
class _Entry:
    priority: int
    seq: int
    method: str
    channel: str | None
    call: Callable[[], Awaitable[Any]]
    done: asyncio.Future[Any]
    key: tuple[str, str] | None = None  # (channel, ts) of a coalescible chat.update
    waiters: int = 1
    slots: list[list[float | None]] = field(default_factory=list)


class Pacer:
    """Releases Slack calls in priority order, within per-method and per-channel budgets.

    Args:
        limits: The workspace's budgets.
        share: How many processes share them (each keeps to 1/share of each).
        clock: For tests.
    """

    def __init__(
        self,
        limits: PacingLimits | None = None,
        *,
        share: int = 1,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.limits = limits or PacingLimits()
        self.share = max(1, share)
        self.clock = clock
        self.window = 60.0 * self.limits.time_scale * (1 + MARGIN) + SLACK_JITTER
        self._windows: dict[str, _Window] = {}
        self._channels: dict[str, _Window] = {}
        self._pending: list[_Entry] = []
        self._updates: dict[tuple[str, str], _Entry] = {}
        self._seq = itertools.count()
        self._wake: asyncio.Event | None = None
        self._runner: asyncio.Task[None] | None = None
        self.coalesced = 0  # chat.update calls merged into a later one
        self.waited = 0.0  # seconds callers spent waiting for their turn, summed

    async def run(
        self,
        method: str,
        call: Callable[[], Awaitable[Any]],
        *,
        channel: str | None = None,
        priority: int = NEW,
        coalesce: tuple[str, str] | None = None,
    ) -> Any:
        """Run ``call`` (a ``method`` call) when its budgets allow; return its result.

        With ``coalesce`` (channel, ts), a pending call with the same key is replaced by
        this one (the latest content wins) and both callers get this call's result.
        """
        if not self._limited(method):
            return await call()
        started = self.clock()
        entry = self._updates.get(coalesce) if coalesce else None
        if entry is not None and not entry.done.done():
            entry.call = call  # the latest content wins
            entry.priority = min(entry.priority, priority)
            entry.waiters += 1
            self.coalesced += 1
        else:
            loop = asyncio.get_running_loop()
            entry = _Entry(priority, next(self._seq), method, channel, call, loop.create_future())
            entry.key = coalesce
            if coalesce:
                self._updates[coalesce] = entry
            self._pending.append(entry)
        self._kick()
        try:
            return await asyncio.shield(entry.done)
        except asyncio.CancelledError:
            entry.waiters -= 1
            if entry.waiters <= 0 and entry in self._pending:
                self._pending.remove(entry)
                self._forget(entry)
            raise
        finally:
            self.waited += self.clock() - started

    def _limited(self, method: str) -> bool:
        return method == POST_MESSAGE or method in self.limits.per_minute

    def _kick(self) -> None:
        if self._wake is None:
            self._wake = asyncio.Event()
        self._wake.set()
        if self._runner is None or self._runner.done():
            self._runner = asyncio.ensure_future(self._dispatch())

    def _forget(self, entry: _Entry) -> None:
        if entry.key is not None and self._updates.get(entry.key) is entry:
            del self._updates[entry.key]

    def _budgets(self, entry: _Entry, now: float) -> list[_Window]:
        found: list[_Window] = []
        if entry.method == POST_MESSAGE:
            found.append(self._window(POST_MESSAGE, self.limits.post_message_per_minute))
            if entry.channel:
                # Slack's bucket (a burst, then `rate` a second) as a window of `burst`
                # calls per `burst / rate` seconds: the same rate, never over the bucket.
                channel = self._channels.get(entry.channel)
                if channel is None:
                    burst = max(1, self.limits.post_message_burst // self.share)
                    rate = self.limits.post_message_per_second / self.limits.time_scale
                    length = burst * self.share / rate * (1 + MARGIN) + SLACK_JITTER
                    channel = self._channels[entry.channel] = _Window(burst, length)
                found.append(channel)
        else:
            found.append(self._window(entry.method, self.limits.per_minute[entry.method]))
        return found

    def _window(self, name: str, per_minute: int) -> _Window:
        window = self._windows.get(name)
        if window is None:
            window = self._windows[name] = _Window(per_minute // self.share, self.window)
        return window

    async def _dispatch(self) -> None:
        """Release every call whose budgets have room, most urgent first; sleep until the
        next one may go (or a new call arrives)."""
        assert self._wake is not None
        while self._pending:
            self._wake.clear()
            now = self.clock()
            claimed: set[int] = set()
            sleep = None
            for entry in sorted(self._pending, key=lambda e: (e.priority, e.seq)):
                budgets = self._budgets(entry, now)
                ids = {id(b) for b in budgets}
                if ids & claimed:
                    continue  # a more urgent call waits for the same budget
                wait = max(b.wait(now) for b in budgets)
                if wait > 0:
                    claimed |= ids
                    sleep = wait if sleep is None else min(sleep, wait)
                    continue
                entry.slots = [budget.take(now) for budget in budgets]
                self._pending.remove(entry)
                self._forget(entry)
                asyncio.ensure_future(self._release(entry))
            if not self._pending:
                break
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), sleep if sleep is not None else 1.0)

    async def _release(self, entry: _Entry) -> None:
        try:
            result = await entry.call()
        except BaseException as exc:  # handed to the callers, who raise it
            if not entry.done.done():
                entry.done.set_exception(exc)
            if not isinstance(exc, Exception):
                raise
        else:
            if not entry.done.done():
                entry.done.set_result(result)
        finally:
            answered = self.clock()
            for slot in entry.slots:
                slot[0] = answered
            if self._pending:
                self._kick()
        # Nobody may be waiting any more (all cancelled): mark the exception retrieved.
        if entry.done.done() and not entry.done.cancelled():
            entry.done.exception()


def priority_of(method: str, args: Mapping[str, Any]) -> int:
    """How urgent a call is: message updates first, then new posts, then the rest."""
    if method == UPDATE:
        return URGENT
    if method == POST_MESSAGE:
        return LATER if args.get("thread_ts") else NEW
    if method == "conversations.open":
        return NEW
    return LATER


class PacedWebClient(AsyncWebClient):
    """An ``AsyncWebClient`` whose calls wait for their turn in a ``Pacer``."""

    pacer: Pacer

    async def api_call(self, api_method: str, **kwargs: Any) -> AsyncSlackResponse:
        args: dict[str, Any] = {}
        for part in ("json", "params", "data"):
            value = kwargs.get(part)
            if isinstance(value, Mapping):
                args.update(value)
        channel = args.get("channel")
        channel = str(channel) if channel else None
        key = (
            (channel, str(args["ts"]))
            if api_method == UPDATE and channel and args.get("ts")
            else None
        )
        call = super().api_call
        response: AsyncSlackResponse = await self.pacer.run(
            api_method,
            lambda: call(api_method, **kwargs),
            channel=channel,
            priority=priority_of(api_method, args),
            coalesce=key,
        )
        return response


def paced_client(client: AsyncWebClient, pacer: Pacer) -> PacedWebClient:
    """A paced client with ``client``'s token, URL, session and retry handlers."""
    paced = PacedWebClient(
        token=client.token,
        base_url=client.base_url,
        timeout=client.timeout,
        ssl=client.ssl,
        proxy=client.proxy,
        session=client.session,
        headers=dict(client.headers),
        retry_handlers=list(client.retry_handlers),
    )
    paced.pacer = pacer
    return paced


def pacer_from_settings(settings: Any) -> Pacer | None:
    """The pacer ``settings`` ask for (``SIGNOFF_SLACK_PACING*``), or None when it is off."""
    if not settings.slack_pacing:
        return None
    budgets = {**DEFAULT_BUDGETS, **settings.slack_pacing_budgets}
    limits = PacingLimits(
        per_minute={k: v for k, v in budgets.items() if k != POST_MESSAGE},
        post_message_per_second=settings.slack_pacing_post_per_second,
        post_message_per_minute=budgets.get(POST_MESSAGE, 300),
        time_scale=settings.slack_pacing_time_scale,
    )
    return Pacer(limits, share=settings.workers)
