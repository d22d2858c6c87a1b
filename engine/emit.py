"""Intermediate output of a running step (``ctx.emit``), committed while the step runs.

An emit is one fenced write through the driver's own commit path (``commit_steps``,
conditional on the run's owner), so a worker that lost the run cannot emit into it.
It carries the step's ``running`` record (the same row the attempt's start writes,
and the ``step_started`` entry if that was not committed yet, so the history keeps its
order), an ``emitted`` history entry and a ``step.emitted`` outbox message. On SQLite
concurrent emits share group commits; each ``await ctx.emit(...)`` returns once its
entry is durable.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from engine.models import EventType
from engine.store.base import EventWrite, OutboxWrite, StepWrite

if TYPE_CHECKING:
    from engine.stepping import _Start

TOPIC = "step.emitted"
"""The outbox topic of an emit."""


class Emitter:
    """Records one attempt's emits (``StepContext.emit`` calls it)."""

    def __init__(
        self,
        commit: Callable[[StepWrite], Awaitable[None]],
        start: _Start,
        clock: Callable[[], float],
    ) -> None:
        self.commit = commit
        self.start = start
        self.clock = clock
        self.count = 0

    async def __call__(self, value: Any, model: str | None) -> None:
        """Commit one emitted value (JSON-ready) of type ``model`` (None: text)."""
        start = self.start
        begin = start.write
        events: list[EventWrite] = []
        if not start.committed:
            start.committed = True  # the start goes first, in this very write
            events.extend(begin.events)
        elif start.pending is not None:
            await start.pending  # the start's own commit is in flight: keep the order
        self.count += 1
        info = {
            "step": begin.name,
            "path": begin.path,
            "attempt": begin.attempts,
            "seq": self.count,
            "model": model,
            "value": value,
        }
        events.append(EventWrite(EventType.EMITTED, info, at=self.clock()))
        await self.commit(
            dataclasses.replace(begin, events=events, outbox=[OutboxWrite(TOPIC, None, info)])
        )
