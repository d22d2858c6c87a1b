"""What a running step may do besides waiting: report intermediate output
(``ctx.emit``) and control the foreach item it runs in (``ctx.skip_item``,
``ctx.break_loop``). ``StepContext`` inherits these."""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from typing import Any, Literal, NoReturn

from pydantic import BaseModel

LoopAction = Literal["skip", "break"]
_IN_ITEM = re.compile(r"\[\d+\]/")  # a foreach item in a step path (engine.paths)


class LoopSignal(BaseException):
    """Raised by ``ctx.skip_item``/``ctx.break_loop``; a BaseException, like the suspend
    signal, so a step's ``except Exception`` cannot swallow it."""

    def __init__(self, action: LoopAction) -> None:
        super().__init__(action)
        self.action: LoopAction = action


class StepControls:
    """Emit and loop control, part of ``StepContext``."""

    step: str
    path: str
    _emitter: Callable[[Any, str | None], Awaitable[None]] | None

    async def emit(self, value: BaseModel | str) -> None:
        """Report intermediate output of this running step (progress, partial results).

        Recorded in the run's history (an ``emitted`` entry: ``step``, ``path``,
        ``attempt``, ``seq``, ``model`` and ``value``) and delivered to outbox
        subscribers (topic ``step.emitted``, same data), committed now, while the step
        goes on running: when this returns, the entry is durable and observers can see
        it. Each call is a commit, so emit milestones, not every loop iteration.

        At least once: an attempt that is retried, or run again after a crash, emits
        again (with its own ``attempt``).

        Args:
            value: a pydantic model instance (recorded as its JSON, with ``model`` its
                class name) or a text (``model`` None).

        Raises:
            TypeError: anything else.
        """
        data: Any
        model: str | None
        if isinstance(value, BaseModel):
            data, model = value.model_dump(mode="json"), type(value).__name__
        elif isinstance(value, str):
            data, model = value, None
        else:
            raise TypeError(
                f"step {self.step!r}: ctx.emit takes a pydantic model or a str, "
                f"not {type(value).__name__}"
            )
        if self._emitter is None:
            raise RuntimeError(f"step {self.step!r}: ctx.emit works only while the step runs")
        await self._emitter(data, model)

    def skip_item(self) -> NoReturn:
        """Skip this foreach item (``continue``): the step ends now, recorded as
        ``skipped``, and the item has no place in the loop's output. Only inside a
        foreach item (the innermost one is meant).

        Raises:
            RuntimeError: the step is not part of a foreach item.
        """
        raise LoopSignal(self._in_loop("skip_item"))

    def break_loop(self) -> NoReturn:
        """End the innermost foreach here (``break``): this item and every later one
        are dropped from its output (later items running are cancelled); earlier items
        finish. The step ends now, recorded as ``skipped``.

        Raises:
            RuntimeError: the step is not part of a foreach item.
        """
        raise LoopSignal(self._in_loop("break_loop"))

    def _in_loop(self, call: str) -> LoopAction:
        if not _IN_ITEM.search(self.path):
            raise RuntimeError(f"step {self.step!r}: ctx.{call}() works only inside a foreach item")
        return "skip" if call == "skip_item" else "break"
