"""Public records the engine returns: runs, steps, interrupts, responses, events."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any, Generic, TypeVar

from pydantic import BaseModel, ConfigDict, Field

__all__ = [
    "SETTLED",
    "ErrorInfo",
    "EscalationRecord",
    "Event",
    "EventType",
    "ExpiryAction",
    "Interrupt",
    "InterruptKind",
    "InterruptStatus",
    "ItemResult",
    "OutboxMessage",
    "Response",
    "ResumeOutcome",
    "Run",
    "RunDetail",
    "RunStatus",
    "StepRecord",
    "StepStatus",
]


class RunStatus(StrEnum):
    """Where a run is. ``completed``, ``failed``, ``rejected`` and ``cancelled`` are final."""

    RUNNING = "running"
    SUSPENDED = "suspended"
    COMPLETED = "completed"
    FAILED = "failed"
    REJECTED = "rejected"  # a step called ctx.bail(): ended on purpose, not an error
    CANCELLED = "cancelled"

    @property
    def terminal(self) -> bool:
        """True for the statuses a run never leaves."""
        return self not in (RunStatus.RUNNING, RunStatus.SUSPENDED)

    @property
    def settled(self) -> bool:
        """True unless the run is being driven: parked (suspended) or finished.

        What ``Engine.wait`` waits for by default.
        """
        return self is not RunStatus.RUNNING


SETTLED = frozenset(s for s in RunStatus if s.settled)
"""The settled statuses (``RunStatus.settled``): ``Engine.wait``'s default ``until``."""


class StepStatus(StrEnum):
    """The recorded state of one step execution."""

    RUNNING = "running"  # an attempt started (``attempts`` says which) and has not ended
    COMPLETED = "completed"
    FAILED = "failed"
    SUSPENDED = "suspended"
    BAILED = "bailed"
    SKIPPED = "skipped"  # ctx.skip_item() / ctx.break_loop() in a foreach item


class InterruptKind(StrEnum):
    """What an interrupt waits for."""

    INPUT = "input"  # a person's answer, validated against the resume model
    EVENT = "event"  # a named event sent by another system (engine.send_event)
    SLEEP = "sleep"  # a durable timer (ctx.sleep)


class InterruptStatus(StrEnum):
    """Where an interrupt is; everything but ``pending`` is final.

    ``approved``/``rejected`` are used when the resume model has a bool ``approved``
    field; other answers (and events, and finished sleeps) are ``resolved``.
    ``expired`` means nobody answered in time: never confused with an answer.
    """

    PENDING = "pending"
    APPROVED = "approved"
    REJECTED = "rejected"
    RESOLVED = "resolved"
    EXPIRED = "expired"
    CANCELLED = "cancelled"


class ExpiryAction(StrEnum):
    """What happens when an interrupt expires."""

    RESUME = "resume"  # continue with a typed default value
    FAIL = "fail"  # the step fails (and so the run, unless handled)
    BAIL = "bail"  # the run ends as rejected


class EventType(StrEnum):
    """Types of entries in a run's append-only history."""

    STARTED = "started"
    STEP_STARTED = "step_started"
    STEP_COMPLETED = "step_completed"
    STEP_FAILED = "step_failed"
    STEP_RETRYING = "step_retrying"
    STEP_SKIPPED = "step_skipped"  # ctx.skip_item() / ctx.break_loop(): data["action"]
    SUSPENDED = "suspended"
    RESPONSE_RECORDED = "response_recorded"
    RESOLVED = "resolved"
    EXPIRED = "expired"
    REMINDED = "reminded"
    BAILED = "bailed"
    CANCELLED = "cancelled"
    COMPLETED = "completed"
    FAILED = "failed"
    UNDELIVERED = "undelivered"  # an adapter could not show a request to anyone
    ESCALATED = "escalated"  # a step of an escalation ladder fired (ctx.suspend(escalate=))
    EMITTED = "emitted"  # a running step reported intermediate output (ctx.emit)
    SNOOZED = "snoozed"  # a person's snooze of a request ran out (Engine.snooze)
    RETRIED = "retried"  # a failed run was sent back to running (Engine.retry): data["by"]


class ErrorInfo(BaseModel):
    """A recorded failure: exception type, message and formatted traceback."""

    type: str
    message: str
    traceback: str = ""


T = TypeVar("T")


class ItemResult(BaseModel, Generic[T]):
    """One item's outcome in a ``foreach(..., on_item_error="collect")`` output.

    ``index`` is the item's position in the loop's input (of its batch with
    ``batch_size``); exactly one of ``output`` (what the body returned) and ``error``
    (why it failed) is set.
    """

    index: int
    output: T | None = None
    error: ErrorInfo | None = None

    @property
    def ok(self) -> bool:
        """True if the item completed (``output`` is its result)."""
        return self.error is None


class Run(BaseModel):
    """One execution of a workflow, pinned to the version it started on."""

    model_config = ConfigDict(frozen=True)

    id: str
    workflow: str
    version: str
    status: RunStatus
    input: Any
    output: Any = None
    error: ErrorInfo | None = None
    requester: str | None = None
    created_at: datetime
    updated_at: datetime


class StepRecord(BaseModel):
    """The durable record of a step (keyed by its path in the workflow)."""

    model_config = ConfigDict(frozen=True)

    path: str
    name: str
    status: StepStatus
    output: Any = None
    error: ErrorInfo | None = None
    attempts: int = 1
    started_at: datetime
    finished_at: datetime


class Response(BaseModel):
    """One actor's answer to an interrupt."""

    model_config = ConfigDict(frozen=True)

    actor: str
    data: Any
    approved: bool | None = None
    at: datetime


class EscalationRecord(BaseModel):
    """One declared step of an interrupt's escalation ladder, and whether it fired.

    ``add_responders``/``channel`` are what was declared; ``added`` the responders it
    actually added to ``Interrupt.responders`` when it fired (none on a request open to
    anyone, or for names listed already); ``escalated_at`` is None until it fires.
    """

    model_config = ConfigDict(frozen=True)

    after: float
    due_at: datetime
    add_responders: list[str] = Field(default_factory=list)
    channel: str | None = None
    escalated_at: datetime | None = None
    added: list[str] = Field(default_factory=list)


class Interrupt(BaseModel):
    """A point where a run waits: for a person, an event or a timer."""

    model_config = ConfigDict(frozen=True)

    run_id: str
    id: str
    workflow: str
    version: str
    path: str
    step: str
    kind: InterruptKind
    status: InterruptStatus
    payload: Any = None
    event: str | None = None
    responders: list[str] = Field(default_factory=list)
    quorum: int = 1
    allow_requester: bool = False
    requester: str | None = None
    channel: str | None = None
    title: str | None = None
    meta: dict[str, Any] = Field(default_factory=dict)
    label: str | None = None
    expires_at: datetime | None = None
    on_expiry: ExpiryAction | None = None
    expiry_value: Any = None
    reminders: list[datetime] = Field(default_factory=list)
    escalations: list[EscalationRecord] = Field(default_factory=list)
    created_at: datetime
    resolved_at: datetime | None = None
    resolved_by: str | None = None
    data: Any = None
    responses: list[Response] = Field(default_factory=list)
    refs: dict[str, Any] = Field(default_factory=dict)
    # The resume model of this interrupt alone, as JSON Schema (ctx.suspend(resume_schema=)).
    resume_schema: dict[str, Any] | None = None

    @property
    def approvals(self) -> int:
        """How many distinct actors approved so far."""
        return sum(1 for r in self.responses if r.approved)


class Event(BaseModel):
    """One entry of a run's append-only history."""

    model_config = ConfigDict(frozen=True)

    id: int
    run_id: str
    at: datetime
    type: EventType
    data: dict[str, Any] = Field(default_factory=dict)


class RunDetail(BaseModel):
    """A run with its steps, interrupts and full event history."""

    run: Run
    steps: list[StepRecord]
    interrupts: list[Interrupt]
    events: list[Event]

    @property
    def pending(self) -> list[Interrupt]:
        """The interrupts still waiting."""
        return [i for i in self.interrupts if i.status is InterruptStatus.PENDING]


class OutboxMessage(BaseModel):
    """A notification delivered to subscribers after the state change committed."""

    model_config = ConfigDict(frozen=True)

    id: int
    topic: str
    run_id: str
    interrupt_id: str | None
    data: dict[str, Any]
    created_at: datetime
    attempt: int


class ResumeOutcome(BaseModel):
    """What a successful resume() or send_event() did."""

    model_config = ConfigDict(frozen=True)

    run_id: str
    interrupt_id: str
    status: InterruptStatus
    approvals: int = 0
    needed: int = 1

    @property
    def resolved(self) -> bool:
        """True when this response decided the interrupt (False: quorum still open)."""
        return self.status is not InterruptStatus.PENDING
