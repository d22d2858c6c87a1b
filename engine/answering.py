"""Answering interrupts: ``resume``, ``send_event``, and the timers that fire on them.

Resolving an interrupt is one atomic compare-and-set in the store (``Store.resolve``);
the caller that resolves it also takes over driving the run if the run is parked.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ValidationError

from engine import access, escalation, quorum
from engine.core import EngineCore
from engine.definition import StepDef
from engine.errors import (
    AlreadyResolved,
    InterruptNotFound,
    ResumeValidationError,
    RunNotFound,
    WorkflowNotRegistered,
    WrongInterruptKind,
    field_errors,
)
from engine.json_schema import model_from_json_schema
from engine.models import EventType, Interrupt, InterruptKind, ResumeOutcome, Run
from engine.queries import existing_interrupt
from engine.registry import find_step
from engine.store.base import Decide, EventWrite, OutboxWrite, Resolution, TimerRow


class Answering(EngineCore):
    """The ``Engine``'s answers: validate, authorize and resolve interrupts."""

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
        interrupt = await existing_interrupt(self.store, run_id, interrupt_id)
        quorum.ensure_pending(interrupt)
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
