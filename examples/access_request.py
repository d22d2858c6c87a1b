"""Access request: the security team answers with a form (a Slack modal).

The requester names a system and why; a member of ``SECURITY_GROUP`` opens the form and
chooses: grant or deny (a select), the environments (a multi-select), until when (a date
picker), a justification (text) and a reviewer who double-checks the grant (a Slack user
picker). Granting needs environments and an end date within 90 days; a denial ends the
run as ``rejected``.
"""

from __future__ import annotations

import os
from datetime import UTC, date, datetime, timedelta
from typing import Annotated, Literal

from pydantic import BaseModel, Field, ValidationInfo, field_validator

from bot import SlackUser
from engine import OnExpiry, StepContext, Workflow, step

SECURITY_GROUP = os.environ.get("ACCESS_SECURITY_GROUP", "group:S0SECURITY")
MAX_DAYS = 90

Environment = Literal["development", "staging", "production"]


class AccessRequest(BaseModel):
    """What the requester asks for."""

    system: Literal["github", "aws", "datadog", "pagerduty"]
    reason: str = Field(min_length=10, max_length=1000)


class AccessDecision(BaseModel):
    """The security team's form."""

    decision: Literal["grant", "deny"]
    environments: list[Environment] = Field(default_factory=list)
    until: date | None = Field(default=None, validate_default=True)
    justification: str = Field(min_length=10, max_length=1000)
    reviewer: Annotated[str, SlackUser()]

    @field_validator("environments")
    @classmethod
    def _environments(cls, value: list[str], info: ValidationInfo) -> list[str]:
        if info.data.get("decision") == "grant" and not value:
            raise ValueError("choose at least one environment to grant")
        return value

    @field_validator("until")
    @classmethod
    def _until(cls, value: date | None, info: ValidationInfo) -> date | None:
        if info.data.get("decision") != "grant":
            return value
        today = datetime.now(UTC).date()
        if value is None:
            raise ValueError("a grant needs an end date")
        if not today < value <= today + timedelta(days=MAX_DAYS):
            raise ValueError(f"must be after today and at most {MAX_DAYS} days ahead")
        return value


class AccessGranted(BaseModel):
    """The run's output: what was granted, to whom, until when."""

    system: str
    grantee: str | None
    environments: list[str]
    until: date
    granted_by: str | None
    reviewer: str


@step(title="Review access request")
async def review(
    req: AccessRequest, ctx: StepContext[AccessRequest, AccessDecision]
) -> AccessGranted:
    """Ask security; deny ends the run, grant goes on to provisioning."""
    decision = await ctx.suspend(
        req,
        responders=[SECURITY_GROUP],
        expires=timedelta(days=2),
        on_expiry=OnExpiry.bail("nobody from security answered within 2 days"),
        reminders=[timedelta(hours=4)],
        title=f"Access to {req.system}",
    )
    by = ctx.resolution.resolved_by if ctx.resolution else None
    if decision.decision == "deny":
        ctx.bail(f"denied by {by}: {decision.justification}")
    assert decision.until is not None  # the validator requires it for a grant
    return AccessGranted(
        system=req.system,
        grantee=ctx.requester,
        environments=list(decision.environments),
        until=decision.until,
        granted_by=by,
        reviewer=decision.reviewer,
    )


@step
async def provision(grant: AccessGranted) -> AccessGranted:
    """Stand-in for the call that grants the access (and schedules its removal)."""
    return grant


access_request = (
    Workflow(
        "access_request",
        version=1,
        input=AccessRequest,
        output=AccessGranted,
        title="Access request",
    )
    .then(review)
    .then(provision)
)

WORKFLOWS = [access_request]
