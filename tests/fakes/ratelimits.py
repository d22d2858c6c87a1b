"""An enforcing rate limiter for the fake Slack Web API (off unless asked for).

Slack's limits (slack-facts §3.2-3.3) are per method, per workspace, per app; the fake is
one workspace and one app, so they are per method here:

* tiered methods: at most N calls in any sliding 60-second window (Tier 2 20, Tier 3 50,
  Tier 4 100 per minute);
* ``chat.postMessage``: about one message per second per channel with a short burst
  (a token bucket), plus a workspace-wide cap per minute.

A refused call gets HTTP 429, ``Retry-After: <whole seconds>`` (the exact wait until a slot
frees, rounded up, at least 1) and ``{"ok": false, "error": "ratelimited"}``, and does not
take effect. Calls that are let through count even if the method then fails, as in Slack.
``time_scale`` shrinks every window so tests finish fast: ``time_scale=1/60`` makes a
"minute" last one second.
"""

from __future__ import annotations

import math
import time
from collections import Counter, deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace

__all__ = ["TIER_2", "TIER_3", "TIER_4", "METHOD_TIERS", "RateLimiter", "SlackLimits"]

TIER_2, TIER_3, TIER_4 = 20, 50, 100  # calls per minute
METHOD_TIERS: dict[str, int] = {
    "chat.update": TIER_3,
    "chat.delete": TIER_3,
    "chat.postEphemeral": TIER_4,
    "views.open": TIER_4,
    "views.update": TIER_4,
    "views.push": TIER_4,
    "views.publish": TIER_4,
    "conversations.open": TIER_3,
    "conversations.history": TIER_3,
    "usergroups.users.list": TIER_2,
    "users.info": TIER_4,
    "users.lookupByEmail": TIER_3,
}
POST_MESSAGE = "chat.postMessage"


@dataclass(frozen=True)
class SlackLimits:
    """The limits to enforce; every number is per (scaled) minute or second.

    Args:
        per_minute: Calls per minute by method; methods not listed are not limited.
        post_message_per_second: chat.postMessage rate per channel.
        post_message_burst: chat.postMessage calls a quiet channel accepts at once.
        post_message_per_minute: chat.postMessage cap across the workspace.
        time_scale: Multiplies every window (0.5 halves a minute to 30 s).
    """

    per_minute: Mapping[str, int] = field(default_factory=lambda: dict(METHOD_TIERS))
    post_message_per_second: float = 1.0
    post_message_burst: int = 3
    post_message_per_minute: int = 300
    time_scale: float = 1.0

    @property
    def window(self) -> float:
        """The length of a "minute" in real seconds."""
        return 60.0 * self.time_scale

    def with_method(self, method: str, per_minute: int) -> SlackLimits:
        """A copy with ``method`` limited to ``per_minute`` calls."""
        return replace(self, per_minute={**self.per_minute, method: per_minute})


@dataclass
class _Bucket:
    tokens: float
    at: float


class RateLimiter:
    """Decides whether a call may proceed; keeps what it let through and what it refused."""

    def __init__(self, limits: SlackLimits, clock: Callable[[], float] = time.monotonic) -> None:
        self.limits = limits
        self.clock = clock
        self.refused: Counter[str] = Counter()  # 429s sent, by method
        self._windows: dict[str, deque[float]] = {}
        self._buckets: dict[str, _Bucket] = {}

    def admit(self, method: str, channel: str | None = None) -> int | None:
        """Count the call and return None, or return the ``Retry-After`` seconds for a 429."""
        now = self.clock()
        waits = []
        window_key = method if method in self.limits.per_minute else None
        cap = self.limits.per_minute.get(method)
        if method == POST_MESSAGE:
            window_key, cap = POST_MESSAGE, self.limits.post_message_per_minute
            if channel:
                waits.append(self._bucket_wait(channel, now))
        if window_key is not None and cap is not None:
            waits.append(self._window_wait(window_key, cap, now))
        wait = max(waits, default=0.0)
        if wait > 0:
            self.refused[method] += 1
            return max(1, math.ceil(wait))
        # Every limit has room: only now take the slots, so a refused call costs nothing.
        if window_key is not None:
            self._windows[window_key].append(now)
        if method == POST_MESSAGE and channel:
            self._buckets[channel].tokens -= 1
        return None

    def _window_wait(self, key: str, cap: int, now: float) -> float:
        calls = self._windows.setdefault(key, deque())
        while calls and calls[0] <= now - self.limits.window:
            calls.popleft()
        if len(calls) < cap:
            return 0.0
        # The slot frees when the call `cap` places back leaves the window.
        return calls[len(calls) - cap] + self.limits.window - now

    def _bucket_wait(self, channel: str, now: float) -> float:
        burst = self.limits.post_message_burst
        rate = self.limits.post_message_per_second / self.limits.time_scale
        bucket = self._buckets.setdefault(channel, _Bucket(tokens=float(burst), at=now))
        bucket.tokens = min(float(burst), bucket.tokens + (now - bucket.at) * rate)
        bucket.at = now
        return 0.0 if bucket.tokens >= 1 else (1 - bucket.tokens) / rate
