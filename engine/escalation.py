"""Escalation, the middle rung of the expiry ladder: reminders, escalations, expiry.

``ctx.suspend(..., escalate=[Escalation(after=timedelta(hours=4), add_responders=[...],
channel="C0ESC")])`` declares, once, what happens when nobody answers for a while:
after each duration the request gains responders and/or is announced in another
channel. Each step is a durable timer (kind ``escalation:<n>``, stored with the
interrupt's other timers), fired once across instances, skipped when the interrupt was
decided meanwhile; steps due at or after the expiry are dropped when the request is
created (the expiry decides first). When one fires, the added responders are stored
on the interrupt at once (``Interrupt.responders``, so authorization and inbox queries
see them), the step is marked in ``Interrupt.escalations``, and an ``escalated``
history entry and an ``interrupt.escalated`` outbox message say what changed.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

TIMER_KIND = "escalation:"
"""Prefix of an escalation timer's kind; the step's index follows (``escalation:0``)."""


@dataclass(frozen=True)
class Escalation:
    """One step of an escalation ladder, declared on ``ctx.suspend(escalate=[...])``.

    Args:
        after: how long after the request was created (a timedelta or seconds).
        add_responders: actor ids or group names who may also answer from then on.
            On a request open to anyone (no responders) nothing changes who may
            answer; the names are still reported, for adapters to mention them.
        channel: another place adapters should announce the request in (e.g. a
            Slack channel id); the request's own ``channel`` does not change.

    Raises:
        ValueError: ``after`` is not positive, or the step neither adds responders nor
            names a channel (it would do nothing).
    """

    after: timedelta | float
    add_responders: Sequence[str] = field(default_factory=tuple)
    channel: str | None = None

    def __post_init__(self) -> None:
        if self.seconds <= 0:
            raise ValueError(f"Escalation(after={self.after!r}): after must be positive")
        if isinstance(self.add_responders, str):
            raise ValueError(
                f"Escalation(add_responders={self.add_responders!r}) takes a list of ids, "
                "not one string"
            )
        if not self.add_responders and not self.channel:
            raise ValueError("an Escalation needs add_responders=[...] or channel=... (or both)")

    @property
    def seconds(self) -> float:
        """``after`` in seconds."""
        a = self.after
        return a.total_seconds() if isinstance(a, timedelta) else float(a)


def plan(
    now: float, expires_at: float | None, ladder: Sequence[Escalation]
) -> list[dict[str, Any]]:
    """The stored form of a ladder: its steps in due order, those due before expiry only."""
    steps = sorted(ladder, key=lambda e: e.seconds)
    return [
        {
            "after": e.seconds,
            "due_at": now + e.seconds,
            "add_responders": list(e.add_responders),
            "channel": e.channel,
            "escalated_at": None,
            "added": [],
        }
        for e in steps
        if expires_at is None or now + e.seconds < expires_at
    ]


def timer_kind(index: int) -> str:
    """The timer kind of step ``index`` of a ladder."""
    return f"{TIMER_KIND}{index}"


def step_index(kind: str) -> int | None:
    """The ladder step a timer kind names, or None for other timers."""
    if not kind.startswith(TIMER_KIND):
        return None
    return int(kind[len(TIMER_KIND) :])
