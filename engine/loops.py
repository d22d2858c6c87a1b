"""Loop control from inside a foreach item: ``ctx.skip_item()`` and ``ctx.break_loop()``.

A step that calls one of them ends at once and is recorded as ``skipped`` (with which
of the two in its output), so a resumed run replays the decision without running the
step again; the innermost enclosing foreach then drops the item (skip), or the item
and every later one (break).
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Any

from engine.controls import LoopAction
from engine.models import EventType, StepStatus
from engine.store.base import EventWrite, StepWrite


class LoopStop(Exception):
    """An item of the innermost foreach asked to be skipped or to end the loop."""

    def __init__(self, action: LoopAction, path: str) -> None:
        super().__init__(f"{action} at {path}")
        self.action: LoopAction = action
        self.path = path


async def record(
    commit: Callable[[StepWrite], Awaitable[None]],
    name: str,
    path: str,
    times: tuple[float, float],
    attempts: int,
    action: LoopAction,
    notes: list[EventWrite],
) -> LoopStop:
    """Commit the step as ``skipped`` (and why); return the signal for its foreach."""
    data = {"step": name, "path": path, "action": action}
    await commit(
        StepWrite(
            path,
            name,
            StepStatus.SKIPPED,
            json.dumps(action),
            None,
            attempts,
            times[0],
            times[1],
            events=[*notes, EventWrite(EventType.STEP_SKIPPED, data)],
        )
    )
    return LoopStop(action, path)


def replayed(raw: str | None, path: str) -> LoopStop:
    """The recorded decision of a skipped step, to replay it."""
    action: Any = json.loads(raw or '"skip"')
    return LoopStop("break" if action == "break" else "skip", path)
