"""Running a foreach node: items in order, ``concurrency`` at a time, with loop control.

A slot is held by an item from its start until it completes, fails or ends its loop
action; an item waiting for a person (parked) keeps its slot, so ``concurrency=1``
asks one item at a time, in order (sequential approvals): the next item starts, and
asks, only after the previous one was answered and completed.

Outcomes: an item that fails or bails stops the loop (items not started never start,
running ones are cancelled; their code ran at least once anyway), unless
``on_item_error="collect"``, where a failure becomes that item's ``ItemResult`` (a
bail still ends the run: it is a decision, not an error). ``ctx.skip_item()`` drops
the item from the output; ``ctx.break_loop()`` drops it and every later item (later
items running are cancelled; requests they already made stay pending until the run
ends, then are cancelled with it). The run parks once every item that counts finished
or parked, if any parked.
"""

from __future__ import annotations

import asyncio
from collections import deque
from typing import TYPE_CHECKING, Any

from engine import paths
from engine.definition import Foreach
from engine.loops import LoopStop
from engine.models import ItemResult
from engine.stepping import Failed, Parked

if TYPE_CHECKING:
    from engine.execution import Execution


def chunks(node: Foreach, value: list[Any]) -> list[Any]:
    """The values handed to the body: the items, or lists of ``batch_size`` of them."""
    size = node.batch_size
    if size is None:
        return list(value)
    return [value[i : i + size] for i in range(0, len(value), size)]


async def run(ex: Execution, node: Foreach, value: list[Any], path: str) -> list[Any]:
    """Run the body for each item (or batch) of ``value``; the outputs in item order."""
    return await _Loop(ex, node, chunks(node, value), path).run()


class _Loop:
    """One pass over a foreach node: the scheduler and what each item came to."""

    def __init__(self, ex: Execution, node: Foreach, items: list[Any], path: str) -> None:
        self.ex = ex
        self.node = node
        self.items = items
        self.path = path
        self.collect = node.on_item_error == "collect"
        self.outputs: dict[int, Any] = {}
        self.skipped: set[int] = set()
        self.parked: dict[int, Parked] = {}
        self.end = len(items)  # a break at item k ends the loop before k
        self.queue = deque(range(len(items)))
        self.running: dict[asyncio.Future[Any], int] = {}

    async def run(self) -> list[Any]:
        try:
            while True:
                self.start_items()
                if not self.running:
                    break
                done, _ = await asyncio.wait(self.running, return_when=asyncio.FIRST_COMPLETED)
                for task in sorted(done, key=lambda t: self.running[t]):
                    k = self.running.pop(task)
                    if not task.cancelled():
                        self.settle(k, task)
        finally:
            for task in self.running:
                task.cancel()
            await asyncio.gather(*self.running, return_exceptions=True)
        return self.result()

    def start_items(self) -> None:
        """Start queued items while slots are free (a parked item holds its slot)."""
        while self.queue and len(self.running) + len(self.parked) < self.node.concurrency:
            k = self.queue.popleft()
            coro = self.ex.node(self.node.body, self.items[k], paths.in_item(self.path, k))
            self.running[asyncio.ensure_future(coro)] = k

    def settle(self, k: int, task: asyncio.Future[Any]) -> None:
        """Record how item ``k`` ended; raise what stops the loop (a failure or a bail)."""
        exc = task.exception()
        if exc is None:
            self.outputs[k] = task.result()
        elif isinstance(exc, Parked):
            self.parked[k] = exc
        elif isinstance(exc, LoopStop) and exc.action == "skip":
            self.skipped.add(k)
        elif isinstance(exc, LoopStop):
            self.end = min(self.end, k)
            self.queue.clear()
            for later, j in self.running.items():
                if j > k:
                    later.cancel()
        elif self.collect and isinstance(exc, Failed):
            self.outputs[k] = ItemResult[Any](index=k, error=exc.error)
        else:
            raise exc  # a failure or a bail: the loop (and the run) stops here

    def result(self) -> list[Any]:
        """The outputs in item order, or Parked if an item that counts waits."""
        waiting = [p for k, p in sorted(self.parked.items()) if k < self.end]
        if waiting:
            raise waiting[0]
        kept = [k for k in range(self.end) if k not in self.skipped]
        if not self.collect:
            return [self.outputs[k] for k in kept]
        return [
            out if isinstance(out, ItemResult) else ItemResult[Any](index=k, output=out)
            for k in kept
            for out in (self.outputs[k],)
        ]
