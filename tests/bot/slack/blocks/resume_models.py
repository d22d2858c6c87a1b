"""Resume models shared by the render and parse specifications."""

from __future__ import annotations

import datetime as dt
import enum
from decimal import Decimal
from typing import Annotated, Literal

from pydantic import BaseModel, Field, HttpUrl, model_validator

from bot.slack.blocks.fields import SlackChannel, SlackUser

Region = Literal[
    "us-east-1", "us-west-2", "eu-west-1", "eu-central-1", "ap-south-1", "ap-northeast-1",
    "sa-east-1", "ca-central-1",
]  # fmt: skip


class Severity(enum.StrEnum):
    """Three levels, so a choice shows as buttons."""

    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"


class Approval(BaseModel):
    """The plain approval: a decision and an optional comment."""

    approved: bool
    comment: str | None = Field(default=None, max_length=500)


class ApprovalWithReason(BaseModel):
    """An approval that needs a reason, so clicking opens a modal."""

    approved: bool
    reason: str = Field(min_length=3, max_length=100, description="Shown in the audit log")

    @model_validator(mode="after")
    def _no_reason_to_reject_lightly(self) -> ApprovalWithReason:
        if not self.approved and self.reason.strip().lower() == "because":
            raise ValueError("Give a real reason to reject")
        return self


class Triage(BaseModel):
    """A single choice among three: one button each."""

    severity: Severity


class PickRegion(BaseModel):
    """A single choice among eight: a select menu."""

    region: Region
    note: str = ""


class Acknowledge(BaseModel):
    """Nothing to supply: one click acknowledges."""


class Everything(BaseModel):
    """One field of every kind the modal supports."""

    reason: str = Field(max_length=100, title="Why?", description="One line")
    notes: str = Field(default="", max_length=2000)
    summary: str | None = Field(default=None, json_schema_extra={"multiline": True})
    replicas: int = Field(default=3, ge=1, le=10)
    ratio: float = Field(default=0.5, gt=0, lt=1)
    amount: Decimal = Field(decimal_places=2)
    notify: bool = True
    confirm: bool
    environment: Literal["staging", "production", "dr"] = "staging"
    region: Region
    tags: list[Severity] = []
    regions: list[Region] = Field(default_factory=list, max_length=3)
    start: dt.date
    at: dt.datetime
    window: dt.time = dt.time(9, 30)
    runbook: HttpUrl | None = None
    owner: Annotated[str, SlackUser()]
    reviewers: list[Annotated[str, SlackUser()]] = []
    announce_in: Annotated[str, SlackChannel()] | None = None
    also_in: Annotated[list[str], SlackChannel()] = []
    nickname: str | None


ALL_MODELS: list[type[BaseModel]] = [
    Approval,
    ApprovalWithReason,
    Triage,
    PickRegion,
    Acknowledge,
    Everything,
]
