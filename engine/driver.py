"""The run driver: one task per run this worker owns, driving it until it parks or ends.

A driver reads the run's recorded state, walks the workflow graph with an
``Execution`` and commits what happened. When the run parks, the parking write is
conditional on the run's ``wake_seq``: if an interrupt was resolved while the run was
being driven, the write does not happen and the driver reads the run again and goes
on, so an answer is never lost between "the step suspended" and "the run is parked".
Every write is fenced on ownership; a driver that lost its run (cancelled, or taken
over after its lease ran out) stops at its next write (``LostOwnership``).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from pydantic import ValidationError

from engine.definition import Workflow
from engine.errors import WorkflowNotRegistered
from engine.execution import Bailed, Execution, Failed, Parked, Services, dump_json
from engine.models import ErrorInfo, EventType, Interrupt, Run, RunStatus
from engine.registry import Registry
from engine.store.base import EventWrite, FinishWrite, LostOwnership, OutboxWrite, RunState
from engine.store.rows import loads

log = logging.getLogger("signoff.engine")


class Driver:
    """Spawns and tracks the tasks driving this worker's runs.

    Args:
        services: what an execution needs (store, owner, clock, commit hooks).
        registry: the engine's workflows; a run is driven by its pinned version.
        lease: seconds an abandoned run waits before recovery retries it.
        notify: called with a run id whenever the run may have changed status.
    """

    def __init__(
        self,
        services: Services,
        registry: Registry,
        *,
        lease: float,
        notify: Callable[[str], None],
    ) -> None:
        self.services = services
        self.store = services.store
        self.worker_id = services.owner
        self.clock = services.clock
        self.registry = registry
        self.lease = lease
        self.notify = notify
        self.tasks: dict[str, asyncio.Task[None]] = {}
        """The runs being driven right now, by id; a task removes itself when it ends."""
        self.waiting: dict[str, RunState | None] = {}
        """Runs spawned while the gate was shut, to be driven once it opens."""
        self.gate: Callable[[], Awaitable[None]] | None = None
        """Awaited before runs are driven (``Engine.yield_to``)."""
        self._opener: asyncio.Task[None] | None = None

    def driving(self, run_id: str) -> bool:
        """Whether ``run_id`` is driven here (or waits for the gate to be)."""
        return run_id in self.tasks or run_id in self.waiting

    def spawn(self, run_id: str, state: RunState | None) -> None:
        """Drive ``run_id`` in the background, unless it is driven here already.

        ``state`` is the run as just committed or claimed (saves a read); None reads it.
        With a gate, the run waits for it with every run spawned meanwhile: one task
        waits for all of them. A burst of answers spawns a drive per answer while its
        acks are still going out, and a waiting task per drive cost 4% more CPU per click
        (docs/perf-history.md, "Ninth pass").
        """
        if self.driving(run_id):
            return
        if self.gate is None:
            self._start(run_id, state)
            return
        self.waiting[run_id] = state
        if self._opener is None or self._opener.done():
            self._opener = asyncio.get_running_loop().create_task(self._open(self.gate))

    def _start(self, run_id: str, state: RunState | None) -> None:
        self.tasks[run_id] = asyncio.get_running_loop().create_task(self._drive(run_id, state))

    async def _open(self, gate: Callable[[], Awaitable[None]]) -> None:
        """Wait for the gate, then drive every run that waited for it."""
        while self.waiting:
            try:
                await gate()
            except Exception:  # a broken gate must not strand the runs behind it
                log.exception("the drive gate failed; driving the waiting runs now")
            waiting, self.waiting = self.waiting, {}
            for run_id, state in waiting.items():
                self._start(run_id, state)

    def cancel(self, run_id: str) -> None:
        """Stop driving ``run_id`` (it was cancelled: its writes would be refused anyway)."""
        if run_id in self.waiting:
            del self.waiting[run_id]
            self.notify(run_id)
            return
        task = self.tasks.get(run_id)
        if task is not None:
            task.cancel()

    async def stop(self, grace: float) -> None:
        """Let running drives finish for ``grace`` seconds, then cancel and hand them over.

        Runs cut off are abandoned with a lease that has already run out, so recovery
        (here on restart, or in another process) resumes them at once from their last
        committed step.
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + grace
        opener = self._opener
        if opener is not None and not opener.done():  # runs waiting for the gate go too
            await asyncio.wait([opener], timeout=grace)
            opener.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await opener
        # Runs never started are handed over like those cut off.
        cut_off: list[str] = list(self.waiting)
        self.waiting.clear()
        pending = list(self.tasks.values())
        # Cancelled drives remove themselves from `tasks`, so remember which runs to hand over.
        if pending:
            _, still = await asyncio.wait(pending, timeout=max(0.0, deadline - loop.time()))
            cut_off += [run_id for run_id, task in self.tasks.items() if task in still]
            for task in still:
                task.cancel()
            for task in still:
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
        for run_id in cut_off:
            with contextlib.suppress(Exception):
                await self.store.abandon_run(run_id, self.worker_id, self.clock())

    async def _drive(self, run_id: str, state: RunState | None) -> None:
        try:
            while True:
                if state is None:
                    state = await self.store.load_state(run_id)
                if state is None or state.run.status is not RunStatus.RUNNING:
                    return
                try:
                    wf = self.registry.get(state.run.workflow, state.run.version)
                except WorkflowNotRegistered as exc:
                    log.error("cannot drive run %s: %s", run_id, exc)
                    await self.store.abandon_run(run_id, self.worker_id, self.clock() + self.lease)
                    return
                if await self._drive_once(wf, state):
                    return
                state = None  # something was resolved while we drove: read and go again
        except LostOwnership:
            return
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("driving run %s failed unexpectedly; recovery will retry it", run_id)
            with contextlib.suppress(Exception):
                await self.store.abandon_run(run_id, self.worker_id, self.clock() + self.lease)
        finally:
            self.tasks.pop(run_id, None)
            self.notify(run_id)

    async def _drive_once(self, wf: Workflow, state: RunState) -> bool:
        """Drive until the run parks or ends; False if it must be driven again."""
        run_id = state.run.id
        execution = Execution(self.services, wf, state)
        parked = False
        try:
            output = await execution.run_workflow()
        except Parked:
            # Parked below, outside the handler: awaiting the write in here would keep
            # the exception, its traceback and every frame it passed through alive (and
            # in the garbage collector's way) until the write is done.
            parked = True
        except Bailed as b:
            # A typed bail result (ctx.bail(reason, result=...)) is the rejected run's output.
            await self._finish(
                execution,
                RunStatus.REJECTED,
                None if b.result is None else json.dumps(b.result),
                ErrorInfo(type="Rejected", message=b.reason),
            )
        except Failed as f:
            await self._finish(execution, RunStatus.FAILED, None, f.error)
        except ValidationError as exc:  # data between nodes did not fit at run time
            await self._finish(
                execution,
                RunStatus.FAILED,
                None,
                ErrorInfo(type="ValidationError", message=str(exc)),
            )
        else:
            await self._finish(execution, RunStatus.COMPLETED, dump_json(output, wf.output), None)
        if parked:
            released = await execution.park()
            self.notify(run_id)
            return released
        return True

    async def _finish(
        self,
        execution: Execution,
        status: RunStatus,
        output_json: str | None,
        error: ErrorInfo | None,
    ) -> None:
        run_id = execution.run.id
        event_type = {
            RunStatus.COMPLETED: EventType.COMPLETED,
            RunStatus.FAILED: EventType.FAILED,
            RunStatus.REJECTED: EventType.BAILED,
        }[status]
        info: dict[str, Any] = {"status": status.value}
        if error is not None:
            info["error"] = {"type": error.type, "message": error.message}
        if output_json is not None:
            info["output"] = loads(output_json)
        events = [EventWrite(event_type, info)] if status is not RunStatus.REJECTED else []
        fin = FinishWrite(
            status=status,
            output_json=output_json,
            error_json=error.model_dump_json() if error else None,
            now=self.clock(),
            events=events,
            outbox=[OutboxWrite("run.finished", None, info)],
            steps=execution.unflushed,
        )
        execution.unflushed = []
        await self.store.finish_run(run_id, self.worker_id, fin, cancelled_leftovers)
        self.services.on_commit()


def cancelled_leftovers(
    run: Run, pending: list[Interrupt], by: str | None = None
) -> tuple[list[EventWrite], list[OutboxWrite]]:
    """History and notifications for interrupts cancelled because their run ended.

    ``by`` is who cancelled (``engine.cancel(actor=...)``); ``'system'`` when nobody
    did, as the store records in ``Interrupt.resolved_by``: one truth in all three."""
    events, outbox = [], []
    for i in pending:
        info = {"interrupt_id": i.id, "status": "cancelled", "by": by or "system", "data": None}
        events.append(EventWrite(EventType.RESOLVED, info))
        outbox.append(OutboxWrite("interrupt.resolved", i.id, info))
    return events, outbox
