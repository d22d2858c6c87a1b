"""What code inside a step can use: ``StepContext`` (suspend, events, sleep, bail)."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Generic, NoReturn, TypeVar, cast

from pydantic import BaseModel, TypeAdapter, ValidationError
from typing_extensions import TypeVar as DefaultTypeVar

# InterruptExpired lived here before joining the SignoffError tree: re-exported so that
# `from engine.context import InterruptExpired` keeps working.
from engine import escalation
from engine.controls import LoopAction as LoopAction
from engine.controls import LoopSignal as LoopSignal
from engine.controls import StepControls
from engine.errors import DefinitionError
from engine.errors import InterruptExpired as InterruptExpired
from engine.escalation import Escalation
from engine.json_schema import model_from_json_schema
from engine.models import ExpiryAction, Interrupt, InterruptKind, InterruptStatus

S = DefaultTypeVar("S", default=None)
R = DefaultTypeVar("R", default=None)
E = TypeVar("E", bound=BaseModel)


@dataclass(frozen=True)
class OnExpiry:
    """What happens when an interrupt expires. Build with the class methods."""

    action: ExpiryAction
    value: Any = None
    reason: str = "expired"

    @classmethod
    def resume_with(cls, value: Any) -> OnExpiry:
        """Continue as if this (typed, validated) value had been given."""
        return cls(ExpiryAction.RESUME, value)

    @classmethod
    def fail(cls) -> OnExpiry:
        """Fail the step with ``InterruptExpired``."""
        return cls(ExpiryAction.FAIL)

    @classmethod
    def bail(cls, reason: str = "expired") -> OnExpiry:
        """End the run as ``rejected`` with this reason."""
        return cls(ExpiryAction.BAIL, reason=reason)


@dataclass
class InterruptSpec:
    """A new interrupt as a step declared it (written to the store by the runner)."""

    id: str
    kind: InterruptKind
    payload: Any = None
    event: str | None = None
    responders: list[str] = field(default_factory=list)
    quorum: int = 1
    allow_requester: bool = False
    expires_at: float | None = None
    on_expiry: ExpiryAction | None = None
    expiry_value: Any = None
    expiry_reason: str = "expired"
    reminders: list[float] = field(default_factory=list)
    escalations: list[dict[str, Any]] = field(default_factory=list)  # escalation.plan
    channel: str | None = None
    title: str | None = None
    meta: dict[str, Any] = field(default_factory=dict)
    label: str | None = None
    resume_schema: dict[str, Any] | None = None  # this interrupt's own resume model


class SuspendSignal(BaseException):
    """Raised inside a step to park it. A BaseException so `except Exception` can't eat it.

    ``waiting_for`` names the ``ResumeTo.event`` the step waits for (no interrupt of its own).
    """

    def __init__(self, spec: InterruptSpec | None, waiting_for: str | None = None) -> None:
        super().__init__(spec.id if spec else "pending")
        self.spec = spec
        self.waiting_for = waiting_for


class BailSignal(BaseException):
    """Raised by ``ctx.bail``: end the run as ``rejected``. Not an error."""

    def __init__(self, reason: str, result: Any = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.result = result  # JSON-ready, validated against the step's bail model


def _deadline(now: float, expires: timedelta | datetime | float | None) -> float | None:
    if expires is None:
        return None
    if isinstance(expires, datetime):
        if expires.tzinfo is None:
            raise ValueError("expires= needs a timezone-aware datetime")
        return expires.timestamp()
    if isinstance(expires, timedelta):
        return now + expires.total_seconds()
    return now + float(expires)


def _dump(value: Any) -> Any:
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json")
    return TypeAdapter(Any).dump_python(value, mode="json")


class StepContext(StepControls, Generic[S, R]):
    """Passed to a step that declares a second parameter.

    ``StepContext[Shown, Answer]`` also declares the step's suspend and resume models.
    Identity: ``run_id``, ``step``, ``path``, ``attempt`` and ``idempotency_key`` (stable
    across retries and re-runs of this step: pass it to external systems).
    """

    def __init__(
        self,
        *,
        run_id: str,
        workflow: str,
        step: str,
        path: str,
        attempt: int,
        requester: str | None,
        workflow_input: Any,
        interrupts: Mapping[str, Interrupt],
        suspend_model: type[BaseModel] | None,
        resume_model: type[BaseModel] | None,
        output_of: Callable[[str], Any],
        now: Callable[[], float],
        events: Mapping[str, type[BaseModel]] | None = None,
        quorum: int = 1,
        resuming: Interrupt | None = None,
        bail_model: type[BaseModel] | None = None,
        resume_events: frozenset[str] = frozenset(),
    ) -> None:
        self.run_id = run_id
        self.workflow = workflow
        self.step = step
        self.path = path
        self.attempt = attempt
        self.requester = requester
        self.workflow_input = workflow_input
        self.resolution: Interrupt | None = resuming
        """The interrupt this step was resumed from (who answered, when, how), or None.

        Set at step entry when the step runs again after an answer (``is_resume``), and
        by every ``suspend``/``wait_for_event``/``sleep`` call that returns."""
        self._quorum = quorum
        self._bail_model = bail_model
        self._interrupts = interrupts
        self._suspend_model = suspend_model
        self._resume_model = resume_model
        self._output_of = output_of
        self._now = now
        self._calls = 0
        self._events = events or {}
        self._resume_events = resume_events  # names some step's ResumeTo.event delivers
        self._emitter = None  # set by the engine for the attempt being run (ctx.emit)

    @property
    def is_resume(self) -> bool:
        """True when this execution re-runs the step after its interrupt was resolved.

        With ``resume_to="step"`` the step runs again from its start once answered; use
        this (and ``resume_value``) to act on the answer before calling ``suspend`` again.
        """
        return self.resolution is not None

    @property
    def resume_value(self) -> R | None:
        """The answer the step is resumed with (an instance of the resume model), or None.

        None on a first run, and when the interrupt expired without a typed default.
        The next ``ctx.suspend`` call with the same interrupt id returns the same value.
        """
        found = self.resolution
        if found is None or found.data is None:
            return None
        if found.kind is InterruptKind.INPUT and self._resume_model is not None:
            return cast(R, self._resume_model.model_validate(found.data))
        return cast(R, found.data)

    @property
    def idempotency_key(self) -> str:
        """A key unique to this step of this run, the same on every retry and re-run."""
        return f"{self.run_id}:{self.path}"

    def output_of(self, step: Any) -> Any:
        """The recorded output of an earlier step of this run (a StepDef or its name)."""
        return self._output_of(step if isinstance(step, str) else step.name)

    def _next_id(self, interrupt_id: str | None) -> str:
        n = self._calls
        self._calls += 1
        return interrupt_id or f"{self.path}#{n}"

    def _existing(self, iid: str) -> Interrupt | None:
        found = self._interrupts.get(iid)
        if found is not None and found.path != self.path:
            raise ValueError(
                f"interrupt id {iid!r} is already used by step {found.step!r} of this run; "
                "interrupt ids must be unique per run (include the item in ids used in loops)"
            )
        return found

    def _settle(self, found: Interrupt) -> Any:
        """Turn a resolved interrupt into the value its wait call returns."""
        if found.status is InterruptStatus.PENDING:
            raise SuspendSignal(None)
        self.resolution = found
        if found.status is InterruptStatus.EXPIRED and found.on_expiry is not ExpiryAction.RESUME:
            if found.on_expiry is ExpiryAction.BAIL:
                raise BailSignal(str(found.meta.get("_expiry_reason", "expired")))
            raise InterruptExpired(self.run_id, found.id)
        if found.status is InterruptStatus.CANCELLED:
            raise SuspendSignal(None)  # the run is being cancelled; park and let cancel win
        return found.data

    async def suspend(
        self,
        payload: S,
        *,
        interrupt_id: str | None = None,
        responders: Sequence[str] = (),
        quorum: int | None = None,
        allow_requester: bool = False,
        expires: timedelta | datetime | float | None = None,
        on_expiry: OnExpiry | None = None,
        reminders: Sequence[timedelta | float] = (),
        escalate: Sequence[Escalation] = (),
        channel: str | None = None,
        title: str | None = None,
        meta: Mapping[str, Any] | None = None,
        label: str | None = None,
        resume_schema: Mapping[str, Any] | None = None,
    ) -> R:
        """Wait for a person; return their validated answer (an instance of the resume model).

        The first time, this parks the step (nothing stays in memory) and the run waits.
        When the interrupt is resolved, the step runs again and this call returns the
        answer; ``ctx.resolution`` then says who answered, when, or that it expired.

        Args:
            payload: what the person is shown (validated against the suspend model).
            interrupt_id: your own id, unique in the run (default: derived from the step).
            responders: actor ids and group names allowed to answer (empty: anyone);
                adapters such as the Slack bot interpret group names.
            quorum: distinct approvals needed (the resume model needs a bool ``approved``;
                default: the step's ``@step(quorum=...)``, else 1).
            allow_requester: let the run's requester answer their own request.
            expires: a duration or an aware deadline after which ``on_expiry`` applies.
            on_expiry: ``OnExpiry.resume_with(value)``, ``.fail()`` or ``.bail(reason)``.
            reminders: durations after suspending at which a reminder is sent.
            escalate: an escalation ladder: ``[Escalation(after=..., add_responders=[...],
                channel=...), ...]``, applied in order of ``after`` while nobody has
                answered (steps due at or after ``expires`` are dropped); see
                ``engine.Escalation``.
            channel: where adapters should ask (e.g. a Slack channel id).
            title: a title for the request (default: the step's title).
            meta: extra data for adapters.
            label: your own kind of request (e.g. ``"refund"``, ``"access"``), stored on
                the interrupt (``Interrupt.label``) and filterable with
                ``Engine.list_interrupts(label=...)``; distinct from the engine's kinds.

            resume_schema: the resume model of this interrupt alone, as JSON Schema in the
                subset of ``engine.json_schema`` (UnsupportedSchema otherwise); answers are
                validated against it instead of the step's resume model, and it is what
                this call returns an instance of.

        Raises:
            DefinitionError: a quorum above 1 on a resume model without a bool
                ``approved`` field (nothing is written; the step fails, no retry).
        """
        quorum = self._quorum if quorum is None else quorum
        check_quorum(
            f"step {self.step!r}",
            quorum,
            model_from_json_schema(resume_schema)
            if resume_schema is not None
            else self._resume_model,
        )
        iid = self._next_id(interrupt_id)
        found = self._existing(iid)
        if found is not None:
            data = self._settle(found)
            model = self._resume_model
            if found.resume_schema is not None:
                model = model_from_json_schema(found.resume_schema)
            return cast(R, model.model_validate(data) if model is not None else data)
        if self._suspend_model is None or self._resume_model is None:
            raise TypeError(
                f"step {self.step!r} calls ctx.suspend but declares no suspend/resume models: "
                "annotate ctx as StepContext[Shown, Answer] or use @step(suspend=..., resume=...)"
            )
        shown = self._suspend_model.model_validate(
            payload.model_dump() if isinstance(payload, BaseModel) else payload
        )
        answer_model = self._resume_model
        if resume_schema is not None:
            answer_model = model_from_json_schema(resume_schema)
        now = self._now()
        spec = InterruptSpec(
            id=iid,
            kind=InterruptKind.INPUT,
            payload=shown.model_dump(mode="json"),
            responders=list(responders),
            quorum=quorum,
            allow_requester=allow_requester,
            channel=channel,
            title=title,
            meta=dict(meta or {}),
            label=label,
            resume_schema=dict(resume_schema) if resume_schema is not None else None,
        )
        self._expiry(spec, now, expires, on_expiry, answer_model)
        spec.reminders = sorted(
            now + (r.total_seconds() if isinstance(r, timedelta) else float(r)) for r in reminders
        )
        spec.escalations = escalation.plan(now, spec.expires_at, escalate)
        raise SuspendSignal(spec)

    def _expiry(
        self,
        spec: InterruptSpec,
        now: float,
        expires: timedelta | datetime | float | None,
        on_expiry: OnExpiry | None,
        model: Any,
    ) -> None:
        spec.expires_at = _deadline(now, expires)
        if spec.expires_at is None:
            if on_expiry is not None:
                raise ValueError("on_expiry= needs expires=")
            return
        rule = on_expiry or OnExpiry.fail()
        spec.on_expiry = rule.action
        spec.expiry_reason = rule.reason
        spec.meta["_expiry_reason"] = rule.reason
        if rule.action is ExpiryAction.RESUME:
            try:
                spec.expiry_value = _dump(TypeAdapter(model).validate_python(_dump(rule.value)))
            except ValidationError as exc:
                raise TypeError(f"OnExpiry.resume_with value does not fit: {exc}") from exc

    async def wait_for_event(
        self,
        name: str,
        model: type[E],
        *,
        expires: timedelta | datetime | float | None = None,
        on_expiry: OnExpiry | None = None,
    ) -> E:
        """Wait until ``engine.send_event(run_id, name, data)`` delivers data for ``model``.

        The interrupt id is the event name, so it must be unique within the run. The step
        must declare the event: ``@step(events={"name": Model})``.

        When a step of the workflow declares ``resume_to=ResumeTo.event(name)``, the
        event is that step's answer: this waits for it (no event interrupt of its own)
        and returns it, validated against ``model``; if it was answered already, at once.
        """
        if self._events.get(name) is not model:
            raise TypeError(
                f"step {self.step!r} waits for event {name!r} but does not declare it: "
                f"use @step(events={{{name!r}: {model.__name__}}})"
            )
        self._calls += 1
        if name in self._resume_events:  # an answer delivered as this event
            source = answer_for_event(self._interrupts, name)
            if source is None or source.status is InterruptStatus.PENDING:
                raise SuspendSignal(None, waiting_for=name)
            return model.model_validate(self._settle(source))
        found = self._existing(name)
        if found is not None:
            return model.model_validate(self._settle(found))
        spec = InterruptSpec(id=name, kind=InterruptKind.EVENT, event=name)
        self._expiry(spec, self._now(), expires, on_expiry, model)
        raise SuspendSignal(spec)

    async def sleep(
        self, duration: timedelta | datetime | float, *, interrupt_id: str | None = None
    ) -> None:
        """Sleep durably: the timer is stored, survives restarts, and fires once.

        Args:
            duration: how long (a timedelta or seconds), or until when (a
                timezone-aware datetime; a deadline in the past fires at once).
            interrupt_id: your own id, unique in the run (default: derived from the step).

        Raises:
            ValueError: a naive datetime (without tzinfo): say which timezone it is in.
        """
        if isinstance(duration, datetime) and duration.tzinfo is None:
            raise ValueError(
                f"step {self.step!r}: ctx.sleep({duration.isoformat()}) needs a "
                "timezone-aware datetime, e.g. datetime(..., tzinfo=UTC)"
            )
        iid = self._next_id(interrupt_id)
        found = self._existing(iid)
        if found is not None:
            self._settle(found)
            return
        due = _deadline(self._now(), duration)
        assert due is not None
        raise SuspendSignal(InterruptSpec(id=iid, kind=InterruptKind.SLEEP, expires_at=due))

    def bail(self, reason: str, *, result: Any = None) -> NoReturn:
        """End the run now as ``rejected`` (not failed); later steps do not run.

        Args:
            reason: why, for people (``Run.error.message`` of the rejected run).
            result: a typed result for programs, validated against the step's
                ``@step(bail=Model)`` (or any pydantic model instance when none is
                declared); recorded as the rejected run's ``Run.output`` and in the
                ``bailed`` history entry.

        Raises:
            pydantic.ValidationError: ``result`` does not fit the declared bail model.
            TypeError: a result that is not a model, with no bail model declared.
        """
        data = None
        if result is not None:
            if self._bail_model is not None:
                data = self._bail_model.model_validate(_dump(result)).model_dump(mode="json")
            elif isinstance(result, BaseModel):
                data = result.model_dump(mode="json")
            else:
                raise TypeError(
                    f"step {self.step!r}: ctx.bail(result=...) needs a pydantic model, or "
                    "declare the result's model with @step(bail=Model)"
                )
        raise BailSignal(reason, data)

    @staticmethod
    def utcnow() -> datetime:
        """The current time, timezone-aware (UTC)."""
        return datetime.now(UTC)


RESUME_EVENT = "_resume_event"
"""Meta key naming the event an interrupt's answer is delivered as (``ResumeTo.event``)."""


def answer_for_event(interrupts: Mapping[str, Interrupt], name: str) -> Interrupt | None:
    """The request whose answer is delivered as event ``name`` (the first one asked)."""
    found = [i for i in interrupts.values() if i.meta.get(RESUME_EVENT) == name]
    return min(found, key=lambda i: (i.created_at, i.id)) if found else None


def is_approval(model: type[BaseModel] | None) -> bool:
    """True if ``model`` has a bool ``approved`` field (what a quorum counts)."""
    f = model.model_fields.get("approved") if model is not None else None
    return f is not None and f.annotation is bool


def check_quorum(where: str, quorum: int, resume_model: type[BaseModel] | None) -> None:
    """Raise DefinitionError unless ``quorum`` can be counted on ``resume_model``."""
    if quorum < 1:
        raise DefinitionError(where, f"quorum must be >= 1, got {quorum}")
    if quorum > 1 and not is_approval(resume_model):
        name = resume_model.__name__ if resume_model is not None else "no resume model"
        raise DefinitionError(
            where,
            f"quorum={quorum} counts approvals: it needs a resume model with a bool "
            f"`approved` field ({name} has none); use quorum=1 or add `approved: bool`",
        )
