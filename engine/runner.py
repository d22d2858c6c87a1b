"""The Engine, the client-facing API: start, resume, send events to, cancel and query runs.

The work behind it lives beside it: ``driver`` drives the runs this worker owns,
``recovery`` heartbeats and takes over runs of dead workers, ``access`` decides who may
respond, ``timers`` and ``outbox`` run the other background loops.

Concurrency model. A run is driven by at most one worker at a time: the worker that
owns it (``runs.owner``) under a lease it renews by heartbeat. Every write a driver
makes is fenced on that ownership, so a worker that lost a run (cancelled, or taken
over after its lease ran out) can never write to it again. Resolving an interrupt is
one atomic compare-and-set in the store; the caller that resolves it also takes over
driving the run if the run is parked. If the run is being driven elsewhere, the
resolution bumps ``wake_seq`` and the driver, whose parking write is conditional on
``wake_seq``, sees it and drives again. Exactly one resume wins, whatever the number
of callers or processes.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import socket
import time
import uuid
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel, ValidationError

from engine import access, escalation, gc_tuning, quorum
from engine.access import Authorizer
from engine.definition import StepDef, Workflow
from engine.driver import Driver, cancelled_leftovers
from engine.errors import (
    AlreadyResolved,
    IdempotencyKeyReused,
    InterruptNotFound,
    InvalidInput,
    ResumeValidationError,
    RunNotFound,
    WorkflowNotRegistered,
    WrongInterruptKind,
    field_errors,
)
from engine.execution import Services, dump_json
from engine.json_schema import model_from_json_schema
from engine.models import (
    SETTLED,
    Event,
    EventType,
    Interrupt,
    InterruptKind,
    InterruptStatus,
    OutboxMessage,
    ResumeOutcome,
    Run,
    RunDetail,
    RunStatus,
)
from engine.outbox import Dispatcher, Handler, Subscription
from engine.recovery import Recovery
from engine.registry import Registry, find_step
from engine.store.base import (
    Decide,
    EventWrite,
    NewRun,
    OutboxWrite,
    Resolution,
    RunState,
    Store,
    TimerRow,
)
from engine.store.rows import CURSOR_SLACK
from engine.timers import TimerLoop


class Engine:
    """Runs registered workflows durably on a store.

    Use as an async context manager (or ``await engine.start_background()`` /
    ``await engine.close()``): on entry it recovers runs left by dead workers,
    fires overdue timers and starts delivering the outbox.

    Args:
        store: an unopened or opened store (``open_store(url)``); opened on entry.
        workflows: workflows to register.
        worker_id: this process's identity (default: random).
        lease: seconds a worker's ownership of a run lasts without a heartbeat.
        poll_interval: how often to look for work written by other processes.
        authorizer: decides responders that are not listed verbatim (groups).
        tune_gc: when the worker starts (``start_background``), raise the garbage
            collector's first threshold for the whole process (``engine.gc_tuning``:
            full collections over every run in flight cost a quarter of the CPU at a
            few thousand concurrent runs); False leaves the collector as it is.
    """

    def __init__(
        self,
        store: Store,
        *,
        workflows: Iterable[Workflow] = (),
        worker_id: str | None = None,
        lease: float = 15.0,
        poll_interval: float = 1.0,
        authorizer: Authorizer | None = None,
        clock: Callable[[], float] = time.time,
        tune_gc: bool = True,
    ) -> None:
        self.store = store
        self.tune_gc = tune_gc
        self.worker_id = worker_id or f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self.lease = lease
        self.poll_interval = poll_interval
        self.authorizer = authorizer
        self.clock = clock
        self.registry = Registry()
        for wf in workflows:
            self.registry.register(wf)
        self._waiters: dict[str, list[asyncio.Event]] = {}
        # Waiters for an interrupt's resolution (wait_interrupt), by run id: woken by every
        # resolution committed here and by every change of the run's status.
        self._decision_waiters: dict[str, list[asyncio.Event]] = {}
        self._loops: list[asyncio.Task[None]] = []
        self._opened = False
        self._store_open = False
        services = Services(
            store, self.worker_id, clock, self._on_commit, lambda: self.timers.kick()
        )
        self.driver = Driver(services, self.registry, lease=lease, notify=self._notify)
        self.recovery = Recovery(
            store,
            self.worker_id,
            clock,
            lease=lease,
            poll_interval=poll_interval,
            spawn=self.driver.spawn,
        )
        self.dispatcher = Dispatcher(
            store, self.worker_id, clock, lambda: self.recovery.dead, poll_interval=poll_interval
        )
        self.timers = TimerLoop(
            store,
            self.worker_id,
            clock,
            lambda: self.recovery.dead,
            self._fire_timer,
            poll_interval=poll_interval,
        )

    # -- lifecycle ----------------------------------------------------------------------
    def register(self, *workflows: Workflow) -> None:
        """Register workflows (checked now: DefinitionError on any problem)."""
        for wf in workflows:
            self.registry.register(wf)

    def subscribe(
        self, handler: Handler, *, topics: Iterable[str] | None = None, name: str | None = None
    ) -> None:
        """Deliver outbox messages to ``handler`` after they commit (at least once).

        Topics: ``interrupt.created``, ``interrupt.response`` (a quorum vote that did not
        decide yet), ``interrupt.resolved`` (approved/rejected/resolved/expired/cancelled),
        ``interrupt.reminder``, ``interrupt.escalated`` (a step of an escalation ladder
        fired: ``added_responders``, ``responders``, ``channel``), ``step.emitted``
        (``ctx.emit``), ``interrupt.snoozed`` (a person's ``snooze`` ran out),
        ``interrupt.undelivered``, ``run.finished``. ``name`` must be stable across restarts:
        it records which handlers already got a message.
        """
        sub_name = name or str(getattr(handler, "__qualname__", None) or repr(handler))
        if any(s.name == sub_name for s in self.dispatcher.subscriptions):
            raise ValueError(f"a subscription named {sub_name!r} exists already")
        self.dispatcher.subscriptions.append(
            Subscription(sub_name, handler, frozenset(topics) if topics is not None else None)
        )

    async def __aenter__(self) -> Engine:
        await self.start_background()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def open_readonly(self) -> None:
        """Open the store for queries and cancel only, as a client: no recovery, timers,
        outbox delivery or heartbeats, so looking at runs never takes them over.

        ``close()`` closes it. ``start_background()`` afterwards turns it into a worker.
        """
        if self._store_open:
            return
        await self.store.open()
        self._store_open = True

    async def start_background(self) -> None:
        """Open the store, recover orphaned runs, start timers, outbox and heartbeats."""
        if self._opened:
            return
        await self.open_readonly()
        self._opened = True
        if self.tune_gc:
            gc_tuning.tune_gc()
        await self.recovery.recover_once()
        loop = asyncio.get_running_loop()
        self._loops = [
            loop.create_task(self.recovery.run(), name="signoff-heartbeat"),
            loop.create_task(self.timers.run(), name="signoff-timers"),
            loop.create_task(self.dispatcher.run(), name="signoff-outbox"),
        ]

    async def close(self, *, grace: float = 5.0) -> None:
        """Stop background work; let running steps finish for ``grace`` seconds.

        Runs still executing after that are left to recovery, which resumes them from
        their last committed step (here on restart, or in another process).
        """
        if not self._opened:
            if self._store_open:
                self._store_open = False
                await self.store.close()
            return
        for task in self._loops:
            task.cancel()
        for task in self._loops:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._loops = []
        await self.driver.stop(grace)
        with contextlib.suppress(Exception):
            await self.store.remove_workers([self.worker_id])
        await self.store.close()
        self._opened = False
        self._store_open = False

    # -- starting and driving runs ------------------------------------------------------
    async def start(
        self,
        workflow: str | Workflow,
        input: Any,
        *,
        version: str | int | None = None,
        requester: str | None = None,
        idempotency_key: str | None = None,
    ) -> str:
        """Start a run; return its id once the start is committed.

        The input is validated against the workflow's input model first
        (``InvalidInput`` with per-field messages; nothing is created). With an
        ``idempotency_key`` already used for the same workflow and input, the existing
        run's id is returned; used for another workflow or input, ``IdempotencyKeyReused``
        is raised (nothing is created).
        """
        run, _ = await self.start_run(
            workflow, input, version=version, requester=requester, idempotency_key=idempotency_key
        )
        return run.id

    async def start_run(
        self,
        workflow: str | Workflow,
        input: Any,
        *,
        version: str | int | None = None,
        requester: str | None = None,
        idempotency_key: str | None = None,
    ) -> tuple[Run, bool]:
        """Like ``start``, but return the run as committed and whether this call created
        it: ``(run, True)`` for a new run (as ``find_run`` would read it right after the
        commit, before its first step ran), ``(run, False)`` for an idempotent replay (the
        stored run, as it is now). Saves a read for callers that show the run at once.
        """
        name = workflow.name if isinstance(workflow, Workflow) else workflow
        if isinstance(workflow, Workflow) and version is None:
            version = workflow.version
        wf = self.registry.get(name, None if version is None else str(version))
        try:
            value = wf.input_adapter.validate_python(
                input.model_dump() if isinstance(input, BaseModel) else input
            )
        except ValidationError as exc:
            raise InvalidInput(wf.name, field_errors(exc)) from None
        now = self.clock()
        run_id = uuid.uuid4().hex
        input_json = dump_json(value, wf.input)
        new = NewRun(
            id=run_id,
            workflow=wf.name,
            version=wf.version,  # type: ignore[arg-type]
            input_json=input_json,
            requester=requester,
            idempotency_key=idempotency_key,
            owner=self.worker_id,
            lease_until=now + self.lease,
            now=now,
            events=[
                EventWrite(
                    EventType.STARTED,
                    {"workflow": wf.name, "version": wf.version, "requester": requester},
                )
            ],
            outbox=[],
        )
        created_id, created = await self.store.create_run(new)
        if not created:  # only an idempotency key finds an existing run
            existing = await self.store.get_run(created_id)
            if (
                existing is None
                or existing.workflow != wf.name
                or existing.input != json.loads(input_json)
            ):
                raise IdempotencyKeyReused(idempotency_key or "", created_id)
            return existing, False
        at = datetime.fromtimestamp(now, UTC)
        run = Run.model_construct(
            id=run_id,
            workflow=wf.name,
            version=str(wf.version),
            status=RunStatus.RUNNING,
            input=value,
            output=None,
            error=None,
            requester=requester,
            created_at=at,
            updated_at=at,
        )
        # The driver's copy carries the validated input; the caller's, the stored JSON.
        started = run.model_copy(update={"input": json.loads(input_json)})
        state = RunState(run=run, wake_seq=0, steps={}, step_outputs={}, interrupts={})
        self.driver.spawn(run_id, state)
        return started, True

    def _on_commit(self) -> None:
        # Only new timers need the timer loop to look again (it polls anyway); waking it
        # on every commit would add a claim query to every resume.
        self.dispatcher.kick()

    def _notify(self, run_id: str) -> None:
        for ev in self._waiters.get(run_id, ()):
            ev.set()
        self._notify_decided(run_id)

    def _notify_decided(self, run_id: str) -> None:
        for ev in self._decision_waiters.get(run_id, ()):
            ev.set()

    # -- resuming -----------------------------------------------------------------------
    def resume_model(self, interrupt: Interrupt) -> type[BaseModel]:
        """The resume model an interrupt's answer is validated against (version-pinned).

        An interrupt suspended with ``resume_schema=`` has its own model, built from that
        JSON Schema (cached by the schema's hash); otherwise it is the step's.
        """
        if interrupt.resume_schema is not None:
            return model_from_json_schema(interrupt.resume_schema)
        wf = self.registry.get(interrupt.workflow, interrupt.version)
        model = find_step(wf, interrupt.path).resume_model
        if model is None:  # pragma: no cover - suspend() requires one
            raise WorkflowNotRegistered(interrupt.workflow, interrupt.version)
        return model

    def step_of(self, interrupt: Interrupt) -> StepDef[Any, Any]:
        """The step definition that created an interrupt."""
        return find_step(self.registry.get(interrupt.workflow, interrupt.version), interrupt.path)

    async def _pending_interrupt(self, run_id: str, interrupt_id: str) -> Interrupt:
        interrupt = await self.store.get_interrupt(run_id, interrupt_id)
        if interrupt is None:
            if await self.store.get_run(run_id) is None:
                raise RunNotFound(run_id)
            raise InterruptNotFound(run_id, interrupt_id)
        if interrupt.status is not InterruptStatus.PENDING:
            raise AlreadyResolved(
                run_id,
                interrupt_id,
                interrupt.status.value,
                interrupt.resolved_by,
                interrupt.resolved_at,
            )
        # Pinned version must be registered before anything is written.
        self.registry.get(interrupt.workflow, interrupt.version)
        return interrupt

    async def check_authorized(self, interrupt: Interrupt, actor: str) -> None:
        """Raise NotAuthorized unless ``actor`` may respond to ``interrupt``."""
        await access.check_authorized(self.authorizer, interrupt, actor)

    def validate_answer(self, interrupt: Interrupt, data: Any) -> BaseModel:
        """Validate ``data`` against the interrupt's resume model (ResumeValidationError)."""
        model = self.resume_model(interrupt)
        try:
            if isinstance(data, BaseModel):
                data = data.model_dump()
            return model.model_validate(data)
        except ValidationError as exc:
            raise ResumeValidationError(interrupt.run_id, interrupt.id, field_errors(exc)) from None

    async def resume(
        self, run_id: str, interrupt_id: str, data: Any, *, actor: str
    ) -> ResumeOutcome:
        """Answer an interrupt as ``actor``; the run continues (in the background).

        Raises (and changes nothing): RunNotFound, InterruptNotFound, AlreadyResolved,
        WorkflowNotRegistered, ResumeValidationError (``.errors`` per field),
        NotAuthorized, DuplicateResponse, WrongInterruptKind.
        """
        if isinstance(data, BaseModel):
            data = data.model_dump()
        # Every check runs inside the store's transaction, on the interrupt as it is at
        # that moment, so a resume costs one round trip. Only an authorizer hook (I/O, e.g.
        # a Slack user-group lookup) is asked outside it, and then the checks run again.
        hook_allowed = False
        while True:
            decide = self._answer_decider(actor, data, hook_allowed)
            try:
                return await self._resolve(run_id, interrupt_id, decide)
            except access.AskAuthorizer as ask:
                if hook_allowed:  # pragma: no cover - the hook's yes is final
                    raise RuntimeError("authorizer asked twice") from None
                await access.ask_authorizer(self.authorizer, ask.interrupt, actor)
                hook_allowed = True

    def _answer_decider(self, actor: str, data: Any, hook_allowed: bool) -> Decide:
        def decide(interrupt: Interrupt, run: Run) -> Resolution:
            quorum.ensure_pending(interrupt)
            if interrupt.kind is not InterruptKind.INPUT:
                is_event = interrupt.kind is InterruptKind.EVENT
                hint = "use send_event()" if is_event else "it fires itself"
                raise WrongInterruptKind(run.id, interrupt.id, interrupt.kind.value, hint)
            # The pinned version must be registered before anything is written.
            self.registry.get(interrupt.workflow, interrupt.version)
            # Who may answer is checked first: someone who may not answer learns nothing
            # about the form from its validation errors.
            access.authorize_known(interrupt, actor, self.authorizer, hook_allowed=hook_allowed)
            answer = self.validate_answer(interrupt, data)
            approval = "approved" in type(answer).model_fields
            answered = quorum.answer(actor, answer.model_dump(mode="json"), approval=approval)
            return answered(interrupt, run)

        return decide

    async def send_event(
        self, run_id: str, name: str, data: Any, *, actor: str | None = None
    ) -> ResumeOutcome:
        """Deliver the named event a run waits for (``ctx.wait_for_event``)."""
        interrupt = await self._pending_interrupt(run_id, name)
        if interrupt.kind is not InterruptKind.EVENT:
            raise WrongInterruptKind(run_id, name, interrupt.kind.value, "use resume()")
        step = self.step_of(interrupt)
        model = step.events.get(name)
        if model is None:  # pragma: no cover - wait_for_event requires the declaration
            raise WrongInterruptKind(run_id, name, "event", "the step declares no such event")
        try:
            value = model.model_validate(data.model_dump() if isinstance(data, BaseModel) else data)
        except ValidationError as exc:
            raise ResumeValidationError(run_id, name, field_errors(exc)) from None
        return await self._resolve(run_id, name, quorum.event(actor, value.model_dump(mode="json")))

    async def _resolve(self, run_id: str, interrupt_id: str, decide: Decide) -> ResumeOutcome:
        now = self.clock()

        def stamped(interrupt: Interrupt, run: Run) -> Resolution:
            # Stamped under the write lock: resolved_at and the responses' times are when
            # the decision took effect, in commit order, not when the call was queued (a
            # busy group commit puts tens of milliseconds between the two).
            res = decide(interrupt, run)
            res.at = self.clock()
            return res

        result = await self.store.resolve(
            run_id,
            interrupt_id,
            stamped,
            claim_owner=self.worker_id,
            lease_until=now + self.lease,
            now=now,
        )
        self._on_commit()
        # Wake the waiters of this run's interrupts before the run is driven on: a vote
        # that decided nothing wakes them too, and they wait again.
        self._notify_decided(run_id)
        if result.claimed is not None:
            self.driver.spawn(run_id, result.claimed)
        i = result.interrupt
        return ResumeOutcome(
            run_id=run_id,
            interrupt_id=interrupt_id,
            status=i.status,
            approvals=i.approvals,
            needed=i.quorum,
        )

    async def _fire_timer(self, timer: TimerRow) -> None:
        rung = escalation.step_index(timer.kind)
        if rung is not None:
            now = self.clock()
            if await self.store.fire_escalation(timer, quorum.escalation(rung, now), now):
                self._on_commit()
            return
        if timer.kind == "snooze":
            # Recorded once (only the claimer that deletes the timer records it), and only
            # while the request waits; the request's own timers are never touched.
            info = {
                "interrupt_id": timer.interrupt_id,
                "actor": timer.actor,
                "due_at": timer.due_at,
            }
            await self.store.fire_reminder(
                timer,
                [EventWrite(EventType.SNOOZED, info)],
                [OutboxWrite("interrupt.snoozed", timer.interrupt_id, info)],
                self.clock(),
            )
            self._on_commit()
            return
        if timer.kind == "reminder":
            info = {"interrupt_id": timer.interrupt_id, "due_at": timer.due_at}
            await self.store.fire_reminder(
                timer,
                [EventWrite(EventType.REMINDED, info)],
                [OutboxWrite("interrupt.reminder", timer.interrupt_id, info)],
                self.clock(),
            )
            self._on_commit()
            return
        try:
            await self._resolve(timer.run_id, timer.interrupt_id, quorum.expiry())
        except (AlreadyResolved, InterruptNotFound, RunNotFound):
            await self.store.delete_timer(timer.id)

    # -- cancelling ---------------------------------------------------------------------
    async def cancel(self, run_id: str, *, reason: str = "", actor: str | None = None) -> Run:
        """Cancel a run; its pending interrupts are resolved as cancelled.

        ``actor`` is recorded everywhere the cancel shows: the ``cancelled`` history entry,
        each interrupt's ``resolved_by`` and ``resolved`` entry, and the outbox messages
        (``'system'`` in the interrupts when no actor is given).

        Raises RunNotFound, or RunNotActive if it already finished.
        """
        info = {"status": RunStatus.CANCELLED.value, "reason": reason, "by": actor}
        run = await self.store.cancel_run(
            run_id,
            self.clock(),
            [EventWrite(EventType.CANCELLED, info)],
            [OutboxWrite("run.finished", None, info)],
            lambda run, pending: cancelled_leftovers(run, pending, actor),
            by=actor,
        )
        self.driver.cancel(run_id)
        self._on_commit()
        self._notify(run_id)
        return run

    # -- retrying a failed run ----------------------------------------------------------
    async def retry(self, run_id: str, *, actor: str) -> Run:
        """Run a failed run again from the step that failed, as ``actor`` asked.

        In one transaction the run goes back to ``running``, owned by this engine, its
        failed step records are deleted (those steps run again with fresh attempts; the
        completed steps are kept and not run again) and a ``retried`` history entry
        records ``actor`` and the error it had. This engine then drives it.

        Raises RunNotFound, or RunNotRetryable (``.reason``) unless the run failed, or
        when requests of the run were cancelled as it failed.
        """
        found = await self.store.get_run(run_id)
        if found is None:
            raise RunNotFound(run_id)
        error = found.error.model_dump(exclude={"traceback"}) if found.error else None
        now = self.clock()
        state = await self.store.retry_run(
            run_id,
            owner=self.worker_id,
            lease_until=now + self.lease,
            now=now,
            events=[EventWrite(EventType.RETRIED, {"by": actor, "error": error})],
        )
        self.driver.spawn(run_id, state)
        self._notify(run_id)
        return state.run

    # -- queries ------------------------------------------------------------------------
    async def wait(
        self,
        run_id: str,
        *,
        until: Iterable[RunStatus] = SETTLED,
        timeout: float | None = None,
    ) -> Run:
        """Wait until the run reaches one of ``until`` (default: parked or finished).

        Raises RunNotFound, or TimeoutError after ``timeout`` seconds.
        """
        wanted = frozenset(until)
        ev = asyncio.Event()
        self._waiters.setdefault(run_id, []).append(ev)
        deadline = None if timeout is None else time.monotonic() + timeout
        try:
            while True:
                ev.clear()
                run = await self.store.get_run(run_id)
                if run is None:
                    raise RunNotFound(run_id)
                if run.status in wanted and run_id not in self.driver.tasks:
                    return run
                if run.status in wanted and run.status.terminal:
                    return run
                wait = self.poll_interval
                if deadline is not None:
                    wait = min(wait, deadline - time.monotonic())
                    if wait <= 0:
                        raise TimeoutError(f"run {run_id} is still {run.status.value}")
                with contextlib.suppress(TimeoutError):  # not wait_for: it can eat a cancel
                    async with asyncio.timeout(wait):
                        await ev.wait()
        finally:
            waiters = self._waiters.get(run_id, [])
            waiters.remove(ev)
            if not waiters:
                self._waiters.pop(run_id, None)

    async def wait_interrupt(
        self, run_id: str, interrupt_id: str, *, timeout: float | None = None
    ) -> Interrupt:
        """Wait until the interrupt is decided; return it (its status is no longer pending).

        Decided means answered, approved or rejected (quorum reached), expired or
        cancelled: this returns once that resolution is committed, without waiting for the
        run to go on past it. A resolution committed by this engine wakes the waiter at
        once; one committed by another process on the same database is seen within
        ``poll_interval``. An interrupt the run has not opened yet is waited for too.

        Raises:
            RunNotFound: there is no such run.
            InterruptNotFound: the run ended without opening this interrupt.
            TimeoutError: it is still pending after ``timeout`` seconds.
        """
        ev = asyncio.Event()
        self._decision_waiters.setdefault(run_id, []).append(ev)
        deadline = None if timeout is None else time.monotonic() + timeout
        try:
            while True:
                ev.clear()
                found = await self.store.get_interrupt(run_id, interrupt_id)
                if found is not None and found.status is not InterruptStatus.PENDING:
                    return found
                if found is None:
                    run = await self.store.get_run(run_id)
                    if run is None:
                        raise RunNotFound(run_id)
                    if run.status.terminal:
                        # Opened and decided between the two reads, or never opened.
                        found = await self.store.get_interrupt(run_id, interrupt_id)
                        if found is None:
                            raise InterruptNotFound(run_id, interrupt_id)
                        if found.status is not InterruptStatus.PENDING:
                            return found
                wait = self.poll_interval
                if deadline is not None:
                    wait = min(wait, deadline - time.monotonic())
                    if wait <= 0:
                        raise TimeoutError(f"interrupt {interrupt_id} of run {run_id} is pending")
                with contextlib.suppress(TimeoutError):  # not wait_for: it can eat a cancel
                    async with asyncio.timeout(wait):
                        await ev.wait()
        finally:
            waiters = self._decision_waiters.get(run_id, [])
            waiters.remove(ev)
            if not waiters:
                self._decision_waiters.pop(run_id, None)

    async def find_run(self, run_id: str) -> Run | None:
        """The run with this id (without steps or history), or None if there is none."""
        return await self.store.get_run(run_id)

    async def count_runs(self) -> dict[str, int]:
        """How many runs there are in each status (for metrics)."""
        return await self.store.count_runs()

    async def count_runs_by_workflow(self) -> dict[str, dict[str, int]]:
        """How many runs each workflow has in each status: ``{workflow: {status: n}}``.

        One aggregate over the ``runs_by_workflow`` index (exact, not capped); statuses
        without runs are left out.
        """
        return await self.store.count_runs_by_workflow()

    async def outbox_backlog(self) -> int:
        """How many notifications are waiting to be delivered (for metrics)."""
        return await self.store.outbox_backlog()

    async def ping(self) -> None:
        """Touch the database with a cheap query; raises if it does not answer."""
        # A primary-key lookup of an id that never exists: touches the database and the
        # schema without reading any data.
        await self.store.get_run("healthz")

    async def get_run(self, run_id: str) -> RunDetail:
        """A run with its steps, interrupts and history (RunNotFound)."""
        detail = await self.store.get_detail(run_id)
        if detail is None:
            raise RunNotFound(run_id)
        return detail

    async def list_runs(
        self,
        *,
        status: RunStatus | str | None = None,
        workflow: str | None = None,
        limit: int = 100,
        offset: int = 0,
        requester: str | None = None,
        created_after: datetime | None = None,
        created_before: datetime | None = None,
        before: tuple[datetime, str] | None = None,
    ) -> list[Run]:
        """Runs, newest first (``created_at`` descending, then ``id``).

        Args:
            status, workflow, requester: keep only runs with these values.
            created_after: keep runs created at or after this time.
            created_before: keep runs created before this time.
            before: a keyset cursor, ``(run.created_at, run.id)`` of the last run of the
                previous page: the next page starts after it. Unlike ``offset`` it reads
                only the rows it returns (indexed), however deep the page.
            limit, offset: page size and rows skipped (prefer ``before`` for deep pages).
        """
        extra: dict[str, Any] = {}
        if requester:
            extra["requester"] = requester
        # A datetime is the stored Unix seconds rounded to the microsecond: shift the bounds
        # by half of one so a run's own created_at is inside "after" and outside "before".
        if created_after is not None:
            extra["created_after"] = created_after.timestamp() - CURSOR_SLACK
        if created_before is not None:
            extra["created_before"] = created_before.timestamp() - CURSOR_SLACK
        if before is not None:
            extra["before"] = (before[0].timestamp(), before[1])
        return await self.store.list_runs(
            status=str(status) if status else None,
            workflow=workflow,
            limit=limit,
            offset=offset,
            **extra,
        )

    async def list_interrupts(
        self,
        *,
        status: InterruptStatus | str | None = InterruptStatus.PENDING,
        workflow: str | None = None,
        run_id: str | None = None,
        actor: str | None = None,
        groups: Iterable[str] | None = None,
        label: str | None = None,
        limit: int = 100,
        kind: InterruptKind | str | None = None,
    ) -> list[Interrupt]:
        """Interrupts (default: pending), oldest first, at most ``limit`` (-1: all).

        ``workflow``, ``run_id``, ``label`` (``ctx.suspend(label=...)``) and ``kind``
        filter in the database. With ``actor``, only those the actor may answer now (what
        a Slack Home tab or a web inbox shows): open to anyone, or listing the actor or one
        of ``groups`` among the responders, and not the actor's own request unless allowed.
        Without ``groups`` (None), the ``Authorizer``'s ``groups_of`` is asked which groups
        the actor is in (``Engine.groups_of``); pass them when you have them already.

        Cost: without ``actor``, one query. With ``actor`` (pending interrupts, no
        ``workflow``/``run_id``/``label`` filter, and an authorizer that has
        ``groups_of`` or none at all), one query of the responder index: it reads the
        rows of the actor and their groups only, however many interrupts wait for others.
        Otherwise interrupts are read in pages (of ``max(limit, 100)``) and the authorizer
        is asked once per distinct responder list.
        """
        kind_value = str(kind) if kind else None
        base: dict[str, Any] = {
            "status": str(status) if status else None,
            "workflow": workflow,
            "run_id": run_id,
            "label": label,
        }
        if actor is None:
            found = await self.store.list_interrupts(**base, limit=-1 if kind_value else limit)
            if kind_value:
                found = [i for i in found if i.kind.value == kind_value]
                found = found if limit < 0 else found[:limit]
            return found
        indexed = base["status"] == InterruptStatus.PENDING.value and not (
            workflow or run_id or label
        )
        if indexed and self._groups_known():
            page, _ = await self.store.list_answerable(
                responders=await self._responders_of(actor, groups),
                actor=actor,
                kind=kind_value,
                limit=limit,
            )
            return page
        allowed = {actor, *(groups or ())}
        asked: dict[tuple[str, ...], bool] = {}
        mine: list[Interrupt] = []
        page_size = max(limit, 100)
        offset = 0
        while limit < 0 or len(mine) < limit:
            found = await self.store.list_interrupts(**base, limit=page_size, offset=offset)
            offset += len(found)
            for i in found:
                if kind_value and i.kind.value != kind_value:
                    continue
                if await self._may_answer(i, actor, allowed, asked):
                    mine.append(i)
            if len(found) < page_size:
                break
        return mine if limit < 0 else mine[:limit]

    async def count_interrupts(
        self,
        *,
        actor: str,
        groups: Iterable[str] | None = None,
        kind: InterruptKind | str | None = None,
    ) -> int:
        """How many pending interrupts ``actor`` may answer now (see ``list_interrupts``),
        counted on the responder index: for "and N more" under a capped list."""
        if not self._groups_known():
            return len(await self.list_interrupts(actor=actor, groups=groups, kind=kind, limit=-1))
        _, total = await self.store.list_answerable(
            responders=await self._responders_of(actor, groups),
            actor=actor,
            kind=str(kind) if kind else None,
            limit=0,
        )
        return total

    async def list_decided(
        self,
        *,
        actor: str,
        groups: Iterable[str] | None = None,
        kind: InterruptKind | str | None = None,
        limit: int = 10,
    ) -> list[Interrupt]:
        """Interrupts that ``actor`` (or one of ``groups``, or anyone) could answer and that
        are decided now, most recently decided first (the responder index; indexed)."""
        return await self.store.list_decided(
            responders=await self._responders_of(actor, groups),
            kind=str(kind) if kind else None,
            limit=limit,
        )

    async def groups_of(self, actor: str) -> list[str]:
        """The responder entries naming groups ``actor`` is in, as the authorizer knows them.

        Asks the authorizer's optional ``groups_of(actor, responders)`` method (see
        ``Authorizer``) about the responders of pending interrupts; [] without one.
        """
        hook = getattr(self.authorizer, "groups_of", None)
        if hook is None:
            return []
        candidates = [r for r in await self.store.pending_responders() if r != actor]
        if not candidates:
            return []
        return [str(g) for g in await hook(actor, candidates)]

    def _groups_known(self) -> bool:
        """Whether the index alone can answer "what may this actor answer": no authorizer,
        or one that can list an actor's groups."""
        return self.authorizer is None or hasattr(self.authorizer, "groups_of")

    async def _responders_of(self, actor: str, groups: Iterable[str] | None) -> list[str]:
        known = list(groups) if groups is not None else await self.groups_of(actor)
        return list(dict.fromkeys([actor, *known, "*"]))

    async def _may_answer(
        self, i: Interrupt, actor: str, allowed: set[str], asked: dict[tuple[str, ...], bool]
    ) -> bool:
        if i.requester == actor and not i.allow_requester:
            return False
        if not i.responders or allowed & set(i.responders):
            return True
        if self.authorizer is None:
            return False
        key = tuple(i.responders)
        if key not in asked:
            asked[key] = bool(await self.authorizer(i, actor))
        return asked[key]

    async def get_interrupt(self, run_id: str, interrupt_id: str) -> Interrupt:
        """One interrupt with its responses (RunNotFound / InterruptNotFound)."""
        found = await self.store.get_interrupt(run_id, interrupt_id)
        if found is None:
            if await self.store.get_run(run_id) is None:
                raise RunNotFound(run_id)
            raise InterruptNotFound(run_id, interrupt_id)
        return found

    async def events(self, run_id: str, *, after_id: int = 0, limit: int = 1000) -> list[Event]:
        """A run's history entries after ``after_id``."""
        return await self.store.list_events(run_id, after_id=after_id, limit=limit)

    async def set_interrupt_ref(self, run_id: str, interrupt_id: str, key: str, value: Any) -> None:
        """Store an adapter's reference on an interrupt (e.g. Slack channel + ts)."""
        await self.store.set_ref(run_id, interrupt_id, key, value)

    async def get_preference(self, actor: str, key: str, default: Any = None) -> Any:
        """A per-person preference an adapter stored (``set_preference``), or ``default``."""
        found = await self.store.get_preference(actor, key)
        return default if found is None else json.loads(found)

    async def set_preference(self, actor: str, key: str, value: Any) -> None:
        """Store a per-person preference (any JSON value; None deletes it), e.g. the Slack
        bot's ``digest``. Durable and shared by every process on the store."""
        encoded = None if value is None else json.dumps(value)
        await self.store.set_preference(actor, key, encoded, self.clock())

    async def snooze(
        self, run_id: str, interrupt_id: str, actor: str, until: datetime | float
    ) -> None:
        """Remind ``actor`` of a pending request at ``until``, once, durably.

        Stores a timer of kind ``snooze`` naming the actor. When it fires (after restarts
        too, on whichever worker claims it) and the request still waits, a ``snoozed``
        history entry and an ``interrupt.snoozed`` outbox message ``{interrupt_id, actor,
        due_at}`` are recorded, once. The request's expiry, reminders and escalation are
        not changed. Who may snooze is the adapter's call (the Slack bot lets those who may
        answer).

        Raises:
            RunNotFound, InterruptNotFound: no such run or interrupt.
            AlreadyResolved: the request does not wait any more.
        """
        due = until.timestamp() if isinstance(until, datetime) else float(until)
        interrupt = await self.get_interrupt(run_id, interrupt_id)
        quorum.ensure_pending(interrupt)
        if not await self.store.add_timer(run_id, interrupt_id, "snooze", due, actor):
            quorum.ensure_pending(await self.get_interrupt(run_id, interrupt_id))
        self.timers.kick()

    async def report_undelivered(
        self, run_id: str, interrupt_id: str, *, target: str | None, reason: str
    ) -> None:
        """Record that an adapter could not show a request to anyone at ``target``.

        Appends an ``undelivered`` entry to the run's history (so the API and any console
        show it) and an ``interrupt.undelivered`` outbox message (so subscribers can tell
        the requester and the admins, at least once), in one transaction. The request
        itself stays pending: it can still be answered through the API, or it expires.

        Raises:
            RunNotFound: there is no such run.
        """
        info = {"interrupt_id": interrupt_id, "target": target, "reason": reason}
        await self.store.append_events(
            run_id,
            [EventWrite(EventType.UNDELIVERED, info)],
            [OutboxWrite("interrupt.undelivered", interrupt_id, info)],
            self.clock(),
        )
        self._on_commit()


__all__ = ["SETTLED", "Authorizer", "Engine", "OutboxMessage"]
