"""The request API's wire models, shared by the server (OpenAPI, validation) and the client.

Only pydantic and the standard library are imported here, so the client stays light.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any, Literal
from urllib.parse import urlsplit

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, field_validator, model_validator

__all__ = [
    "MAX_EXPIRY_SECONDS",
    "MAX_WAIT",
    "ApprovalPreset",
    "CallbackState",
    "CancelRequestBody",
    "CreateRequest",
    "EscalationStep",
    "ExpiryPolicy",
    "QuorumProgress",
    "Receipt",
    "RequestList",
    "RequestStatus",
    "RequestView",
    "RequestsQuery",
    "Vote",
    "WaitQuery",
]

MAX_WAIT = 60.0  # seconds a GET ?wait= may hold the connection
MAX_EXPIRY_SECONDS = 366 * 86400

Scalar = str | int | float | bool | None


class RequestStatus(StrEnum):
    """Where a request is. Everything but ``pending`` is final."""

    PENDING = "pending"
    APPROVED = "approved"  # the answer's ``approved`` is true (and the quorum is met)
    REJECTED = "rejected"  # someone answered ``approved: false``
    ANSWERED = "answered"  # a form without an ``approved`` field was filled in
    EXPIRED = "expired"  # nobody decided in time (``answer`` holds a default, if one was set)
    CANCELLED = "cancelled"
    FAILED = "failed"  # the request could not be asked (should not happen; see the history)

    @property
    def final(self) -> bool:
        """True for every status but pending."""
        return self is not RequestStatus.PENDING


class ApprovalPreset(BaseModel):
    """Approve / Reject buttons, with an optional (or required, or no) comment."""

    model_config = ConfigDict(extra="forbid")

    preset: Literal["approval"] = "approval"
    comment: Literal["none", "optional", "required", "required_on_reject"] = Field(
        default="optional",
        description=(
            "optional: a comment may be given (API); required: a modal asks for one on "
            "both buttons; required_on_reject: Approve answers at once, Reject opens a "
            "modal asking for the reason"
        ),
    )


class ExpiryPolicy(BaseModel):
    """What an expired request means: a default answer, a rejection, or a failure."""

    model_config = ConfigDict(extra="forbid")

    action: Literal["default", "reject", "fail"]
    answer: dict[str, Any] | None = Field(
        default=None, description="with action=default: the answer used (fits the response)"
    )

    @model_validator(mode="after")
    def _answer_with_default(self) -> ExpiryPolicy:
        if (self.action == "default") != (self.answer is not None):
            raise ValueError("answer is required with action=default, and only then")
        return self


class EscalationStep(BaseModel):
    """One step of a request's escalation ladder: after ``after`` seconds, more people may
    answer (``add_responders``) and/or the request is announced in ``channel``."""

    model_config = ConfigDict(extra="forbid")

    after: float = Field(gt=0, le=MAX_EXPIRY_SECONDS, description="seconds after asking")
    add_responders: list[str] = Field(
        default_factory=list, max_length=50, description="Slack user ids and groups to add"
    )
    channel: str | None = Field(
        default=None, max_length=64, description="a Slack channel to announce it in"
    )

    @model_validator(mode="after")
    def _does_something(self) -> EscalationStep:
        if not self.add_responders and not self.channel:
            raise ValueError("an escalation needs add_responders or channel (or both)")
        return self


class CreateRequest(BaseModel):
    """``POST /api/requests``: ask people something."""

    model_config = ConfigDict(extra="forbid")

    title: str = Field(min_length=1, max_length=150, description="headline of the request")
    text: str = Field(default="", max_length=3000, description="markdown above the fields")
    fields: dict[str, Scalar | list[Scalar]] = Field(
        default_factory=dict, description="what the approver is shown: simple values"
    )
    requester: str | None = Field(
        default=None, max_length=64, description="Slack user id of the person asking"
    )
    channel: str | None = Field(default=None, max_length=64, description="Slack channel id")
    responders: list[str] = Field(
        default_factory=list,
        max_length=50,
        description="Slack user ids and groups (group:S...); empty: anyone who can see it",
    )
    quorum: int = Field(default=1, ge=1, le=50, description="distinct approvals needed")
    allow_requester: bool = False
    expires_in: float | None = Field(
        default=None, gt=0, le=MAX_EXPIRY_SECONDS, description="seconds until it expires"
    )
    expires_at: AwareDatetime | None = None
    on_expiry: ExpiryPolicy | Literal["reject", "fail"] | None = None
    reminders: list[float] = Field(
        default_factory=list, max_length=10, description="seconds after asking to remind"
    )
    escalate: list[EscalationStep] = Field(
        default_factory=list,
        max_length=10,
        description="reminders, then these escalations, then expiry (see docs/requests.md)",
    )
    response: ApprovalPreset | dict[str, Any] = Field(
        default_factory=ApprovalPreset,
        description="the approval preset, or a JSON Schema object (see docs/requests.md)",
    )
    callback_url: str | None = Field(default=None, max_length=2000)

    @field_validator("fields")
    @classmethod
    def _few_fields(cls, value: dict[str, Any]) -> dict[str, Any]:
        if len(value) > 50:
            raise ValueError("at most 50 fields")
        if any(not key or len(key) > 100 for key in value):
            raise ValueError("field names must be 1 to 100 characters")
        return value

    @field_validator("reminders")
    @classmethod
    def _positive(cls, value: list[float]) -> list[float]:
        if any(r <= 0 or r > MAX_EXPIRY_SECONDS for r in value):
            raise ValueError("reminders are seconds after asking, > 0")
        return value

    @field_validator("callback_url")
    @classmethod
    def _http_url(cls, value: str | None) -> str | None:
        if value is None:
            return None
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError("must be an http(s) URL with a host")
        return value

    @model_validator(mode="after")
    def _expiry(self) -> CreateRequest:
        if self.expires_in is not None and self.expires_at is not None:
            raise ValueError("give expires_in or expires_at, not both")
        if self.on_expiry is not None and self.expires_in is None and self.expires_at is None:
            raise ValueError("on_expiry needs expires_in or expires_at")
        return self


class Vote(BaseModel):
    """One person's response."""

    actor: str
    approved: bool | None = None
    answer: dict[str, Any] | None = None
    at: datetime


class QuorumProgress(BaseModel):
    """How far a request needing several approvals got."""

    needed: int
    approvals: int
    voters: list[Vote]


class CallbackState(BaseModel):
    """Delivery of the decision to ``callback_url``."""

    url: str
    state: Literal["pending", "delivered", "retrying"] = "pending"
    attempts: int = 0
    last_error: str | None = None
    delivered_at: datetime | None = None


class Receipt(BaseModel):
    """A signed record binding what was shown to the answer, who gave it and when.

    ``payload`` is canonical JSON; ``signature`` is ``v1,<base64 HMAC-SHA256>`` of it with
    the callback secret (None when the server has no secret configured).
    """

    payload: str
    signature: str | None = None


class RequestView(BaseModel):
    """A request as the API returns it."""

    id: str
    status: RequestStatus
    title: str
    text: str = ""
    fields: dict[str, Any] = Field(default_factory=dict)
    requester: str | None = None
    client: str | None = Field(default=None, description="name of the API token that asked")
    responders: list[str] = Field(default_factory=list)
    channel: str | None = None
    response_schema: dict[str, Any] = Field(default_factory=dict)
    digest: str = ""
    created_at: datetime
    expires_at: datetime | None = None
    expiry_action: str | None = Field(
        default=None, description="on_expiry's action: default, reject or fail (None: none set)"
    )
    expired: bool = Field(
        default=False,
        description="it expired (status expired); answer then holds the default, if any",
    )
    answer: dict[str, Any] | None = None
    decided_by: str | None = None
    decided_at: datetime | None = None
    quorum: QuorumProgress
    receipt: Receipt | None = None
    callback: CallbackState | None = None
    links: dict[str, str] = Field(default_factory=dict)


class RequestList(BaseModel):
    """A page of matching requests, newest first.

    ``next_cursor`` (pass it back as ``cursor``) continues after the last request of this
    page, reading only what it returns; ``next_offset`` counts matching requests (pass it
    back as ``offset``). Both are null on the last page.
    """

    requests: list[RequestView]
    limit: int
    offset: int = 0
    next_offset: int | None = None
    next_cursor: str | None = None


class RequestsQuery(BaseModel):
    """Filters of ``GET /api/requests`` (all optional, combined with AND)."""

    model_config = ConfigDict(extra="forbid")

    status: RequestStatus | None = None
    requester: str | None = Field(default=None, max_length=64, description="Slack user id")
    client: str | None = Field(default=None, max_length=64, description="API token name")
    created_after: AwareDatetime | None = Field(
        default=None, description="created at or after this time"
    )
    created_before: AwareDatetime | None = Field(
        default=None, description="created before this time"
    )
    limit: int = Field(default=50, ge=1, le=200)
    offset: int = Field(default=0, ge=0, le=1_000_000, description="matching requests to skip")
    cursor: str | None = Field(
        default=None, max_length=200, description="next_cursor of the previous page"
    )


class WaitQuery(BaseModel):
    """``GET /api/requests/{id}?wait=SECONDS``: hold until decided (at most 60 s)."""

    model_config = ConfigDict(extra="forbid")

    wait: float = Field(default=0, ge=0, le=MAX_WAIT)


class CancelRequestBody(BaseModel):
    """``POST /api/requests/{id}/cancel``."""

    model_config = ConfigDict(extra="forbid")

    reason: str = Field(default="", max_length=500)
