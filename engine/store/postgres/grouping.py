"""Batch tasks for group commit: queued work goes out in batches, a few at a time.

Shared by the write batcher (``batching``) and the resolver (``resolving``): at most
``max_inflight`` batches run at once (each holds a pooled connection), and at most one
task waits to start. A batch task takes its work when it first runs (the next loop
iteration), so work queued by tasks woken together joins the same batch.
"""

from __future__ import annotations

import asyncio

__all__ = ["BatchTasks"]


class BatchTasks:
    """Starts batch tasks while work is queued; subclasses queue work and send batches.

    Args:
        max_inflight: most batches in flight at once.
    """

    def __init__(self, *, max_inflight: int = 2) -> None:
        self.max_inflight = max_inflight
        self._inflight = 0
        self._starting = False
        self._tasks: set[asyncio.Task[None]] = set()

    def _queued(self) -> bool:
        """Whether work is waiting for a batch."""
        raise NotImplementedError

    async def _run_batches(self) -> None:
        """Take and send batches while work is queued (calling ``_start`` after taking
        one, so what is left may go out while it is in flight)."""
        raise NotImplementedError

    async def drain(self) -> None:
        """Wait until every queued piece of work has been run."""
        while self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)

    def _start(self) -> None:
        # One task waiting to start is enough: it takes everything queued until it runs.
        if self._queued() and not self._starting and self._inflight < self.max_inflight:
            self._starting = True
            self._inflight += 1
            task = asyncio.get_running_loop().create_task(self._run())
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _run(self) -> None:
        self._starting = False
        try:
            await self._run_batches()
        finally:
            self._inflight -= 1
            self._start()
