"""The built-in request workflow: one step that asks, through ``ctx.suspend``, what an API
caller asked, so requests share storage, exactly-once resolution, quorum, expiry,
reminders, Slack rendering and history with every other workflow.

Its input is the normalised request (nothing in it depends on when it was sent, so an
idempotent retry of the same body gives the same input). The answer's model is the
request's own (``resume_schema=``); the step's static resume model only admits it.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, Literal, cast

from pydantic import BaseModel, ConfigDict, Field

from engine import Engine, Escalation, InterruptStatus, OnExpiry, StepContext, Workflow, step

__all__ = [
    "INTERRUPT_ID",
    "REQUEST_WORKFLOW",
    "RequestAnswer",
    "RequestInput",
    "RequestOutcome",
    "RequestShown",
    "ensure_registered",
    "request_workflow",
]

REQUEST_WORKFLOW = "signoff_request"
INTERRUPT_ID = "request"


class RequestInput(BaseModel):
    """A request as stored: what to show, whom to ask, and what answer to accept."""

    title: str
    text: str = ""
    fields: dict[str, Any] = Field(default_factory=dict)
    requester: str | None = None
    channel: str | None = None
    responders: list[str] = Field(default_factory=list)
    quorum: int = 1
    allow_requester: bool = False
    expires_in: float | None = None
    expires_at: float | None = None  # Unix seconds
    expiry_action: Literal["default", "reject", "fail"] | None = None
    expiry_answer: dict[str, Any] | None = None
    reminders: list[float] = Field(default_factory=list)
    # Each: {"after": seconds, "add_responders": [...], "channel": ...}
    escalate: list[dict[str, Any]] = Field(default_factory=list)
    response_schema: dict[str, Any]
    callback_url: str | None = None
    client: str | None = None  # the API token's name
    digest: str = ""


class RequestShown(BaseModel):
    """The fields shown to the approver (any simple values)."""

    model_config = ConfigDict(extra="allow")


class RequestAnswer(BaseModel):
    """The permissive base; each request's answer is validated by its own schema."""

    model_config = ConfigDict(extra="allow")


class RequestOutcome(BaseModel):
    """The run's output: how the request ended."""

    status: str
    answer: dict[str, Any] | None = None
    decided_by: str | None = None
    decided_at: datetime | None = None


_STATUS = {
    InterruptStatus.APPROVED: "approved",
    InterruptStatus.REJECTED: "rejected",
    InterruptStatus.RESOLVED: "answered",
    InterruptStatus.EXPIRED: "expired",
}


def _on_expiry(req: RequestInput) -> OnExpiry | None:
    if req.expiry_action == "default":
        return OnExpiry.resume_with(req.expiry_answer)
    if req.expiry_action == "reject":
        return OnExpiry.bail("expired")
    if req.expiry_action == "fail":
        return OnExpiry.fail()
    return None


@step(title="Request")
async def ask(req: RequestInput, ctx: StepContext[RequestShown, RequestAnswer]) -> RequestOutcome:
    """Ask the responders; return the typed answer and who gave it."""
    expires: float | datetime | None = req.expires_in
    if req.expires_at is not None:
        expires = datetime.fromtimestamp(req.expires_at, UTC)
    answer = await ctx.suspend(
        cast(Any, req.fields),  # validated by RequestShown, which admits any simple values
        interrupt_id=INTERRUPT_ID,
        responders=req.responders,
        quorum=req.quorum,
        allow_requester=req.allow_requester,
        expires=expires,
        on_expiry=_on_expiry(req),
        reminders=req.reminders,
        escalate=[Escalation(**step) for step in req.escalate],
        channel=req.channel,
        title=req.title,
        meta={"description": req.text, "digest": req.digest, "client": req.client},
        resume_schema=req.response_schema,
    )
    decided = ctx.resolution
    status = _STATUS.get(decided.status, "answered") if decided else "answered"
    return RequestOutcome(
        status=status,
        answer=answer.model_dump(mode="json"),
        decided_by=decided.resolved_by if decided else None,
        decided_at=decided.resolved_at if decided else None,
    )


request_workflow = Workflow(
    REQUEST_WORKFLOW, version=1, input=RequestInput, output=RequestOutcome, title="Request"
).then(ask)


def ensure_registered(engine: Engine) -> None:
    """Register the request workflow on ``engine`` unless it already is."""
    try:
        engine.registry.get(REQUEST_WORKFLOW, "1")
    except Exception:
        engine.register(request_workflow)
