"""Request and response models of the REST API and webhooks; the OpenAPI document is built
from these (``bot.web.openapi``), so they are the single description of the wire format."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from engine import (
    ErrorInfo,
    EscalationRecord,
    Event,
    ExpiryAction,
    InterruptKind,
    InterruptStatus,
    Response,
    RunStatus,
    StepRecord,
)

__all__ = [
    "CancelRequest",
    "ErrorBody",
    "EventAccepted",
    "EventList",
    "EventsQuery",
    "Health",
    "InterruptList",
    "InterruptView",
    "InterruptsQuery",
    "RunCreated",
    "RunDetailView",
    "RunLinks",
    "RunList",
    "RunView",
    "RunsQuery",
    "ResumeRequest",
    "ResumeResult",
    "StartRunRequest",
    "WorkflowList",
    "WorkflowStepView",
    "WorkflowView",
]

_REQUEST = ConfigDict(extra="forbid")


# -- requests -------------------------------------------------------------------------


class StartRunRequest(BaseModel):
    """Start a run of ``workflow`` with ``input`` (validated against its input model)."""

    model_config = _REQUEST

    workflow: str = Field(min_length=1, max_length=255)
    input: Any = Field(default=None, description="The workflow's input (see its input_schema)")
    requester: str | None = Field(
        default=None, max_length=255, description="Who asked; may not answer their own request"
    )


class ResumeRequest(BaseModel):
    """Answer an interrupt as ``actor``; ``data`` is validated against its resume model."""

    model_config = _REQUEST

    data: Any = Field(default=None, description="The answer (see the interrupt's resume_schema)")
    actor: str = Field(min_length=1, max_length=255, description="Who answers, e.g. a Slack id")


class CancelRequest(BaseModel):
    """Cancel a run; its pending interrupts are resolved as cancelled."""

    model_config = _REQUEST

    reason: str = Field(default="", max_length=1000)
    actor: str | None = Field(default=None, max_length=255)


class RunsQuery(BaseModel):
    """Filters and paging of ``GET /api/runs`` (newest first)."""

    status: RunStatus | None = None
    workflow: str | None = Field(default=None, max_length=255)
    limit: int = Field(default=50, ge=1, le=500)
    offset: int = Field(default=0, ge=0, le=1_000_000_000)


class InterruptsQuery(BaseModel):
    """Filters of ``GET /api/interrupts`` (pending ones, oldest first)."""

    workflow: str | None = Field(default=None, max_length=255)
    run_id: str | None = Field(default=None, max_length=255)
    label: str | None = Field(
        default=None, max_length=255, description="Only interrupts with this label"
    )
    actor: str | None = Field(
        default=None, max_length=255, description="Only interrupts this actor may answer"
    )
    limit: int = Field(default=100, ge=1, le=500)


class EventsQuery(BaseModel):
    """Which history entries to return: those with ids above ``after``."""

    after: int = Field(default=0, ge=0, le=2**62)  # bot.web.sse.MAX_EVENT_ID


# -- responses ------------------------------------------------------------------------


class ErrorBody(BaseModel):
    """Every error response: a stable code, a message, and details where they help."""

    error: str = Field(description="Stable code, e.g. invalid_input, already_resolved")
    message: str
    errors: dict[str, str] | None = Field(
        default=None, description="Per-field messages, keyed by field path"
    )
    status: str | None = None
    resolved_by: str | None = None
    resolved_at: datetime | None = None
    run_id: str | None = None


class RunLinks(BaseModel):
    """Where to look at a run."""

    run: str
    events: str
    stream: str


class RunCreated(BaseModel):
    """A started (or, with an idempotency key, found) run."""

    run_id: str
    status: RunStatus
    links: RunLinks


class RunView(BaseModel):
    """A run without its history."""

    id: str
    workflow: str
    version: str
    status: RunStatus
    input: Any = None
    output: Any = None
    error: ErrorInfo | None = None
    requester: str | None = None
    created_at: datetime
    updated_at: datetime


class RunList(BaseModel):
    """A page of runs; ``next_offset`` is null on the last page."""

    runs: list[RunView]
    limit: int
    offset: int
    next_offset: int | None = None


class InterruptView(BaseModel):
    """A point where a run waits, with the JSON schema an answer must fit."""

    run_id: str
    id: str
    workflow: str
    step: str
    title: str | None = None
    label: str | None = Field(default=None, description="The caller's own kind of request")
    kind: InterruptKind
    status: InterruptStatus
    payload: Any = None
    event: str | None = None
    responders: list[str] = Field(default_factory=list)
    quorum: int = 1
    approvals: int = 0
    allow_requester: bool = False
    requester: str | None = None
    expires_at: datetime | None = None
    on_expiry: ExpiryAction | None = None
    created_at: datetime
    resolved_at: datetime | None = None
    resolved_by: str | None = None
    data: Any = None
    responses: list[Response] = Field(default_factory=list)
    escalations: list[EscalationRecord] = Field(
        default_factory=list, description="The declared escalation ladder and what fired"
    )
    resume_schema: dict[str, Any] | None = Field(
        default=None, description="JSON schema of the answer (pending interrupts only)"
    )
    resume_url: str | None = Field(
        default=None, description="Where to POST the answer (input interrupts only)"
    )


class InterruptList(BaseModel):
    """Pending interrupts."""

    interrupts: list[InterruptView]


class RunDetailView(RunView):
    """A run with its steps, interrupts (pending ones first) and whole history."""

    steps: list[StepRecord]
    pending: list[InterruptView]
    interrupts: list[InterruptView]
    events: list[Event]
    links: RunLinks


class EventList(BaseModel):
    """History entries of a run, oldest first."""

    events: list[Event]


class ResumeResult(BaseModel):
    """What an answer did: ``resolved`` is false while a quorum is still open."""

    run_id: str
    interrupt_id: str
    status: InterruptStatus
    resolved: bool
    approvals: int
    needed: int


class EventAccepted(BaseModel):
    """An event delivered to a waiting run."""

    run_id: str
    event: str
    status: InterruptStatus


class WorkflowStepView(BaseModel):
    """A step of a workflow and, if it waits for people or events, their schemas."""

    name: str
    title: str
    suspend_schema: dict[str, Any] | None = None
    resume_schema: dict[str, Any] | None = None
    events: dict[str, dict[str, Any]] = Field(default_factory=dict)


class WorkflowView(BaseModel):
    """A registered workflow version and its schemas."""

    name: str
    version: str
    title: str | None = None
    input_schema: dict[str, Any]
    output_schema: dict[str, Any]
    steps: list[WorkflowStepView]


class WorkflowList(BaseModel):
    """Every registered workflow version."""

    workflows: list[WorkflowView]


class Health(BaseModel):
    """The service's health."""

    status: Literal["ok", "unavailable"]
    database: str
    worker: str = Field(description="This process's engine worker id")
    slack: bool = Field(description="Whether Slack is configured (else API and webhooks only)")
