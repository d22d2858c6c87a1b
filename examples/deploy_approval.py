"""Deploy approval: Approve/Reject with a comment; production needs 2 of the prod group.

Start it::

    SIGNOFF_WORKFLOWS=examples.deploy_approval signoff start deploy_approval \
        --input '{"service": "billing", "version": "2.4.1", "environment": "production"}' \
        --as U0REQUESTER

* staging: one approval from ``DEPLOY_GROUP``; production: two distinct approvals from
  ``PRODUCTION_GROUP`` (a Slack user group of three, say). One rejection is final.
* The requester may never approve their own deploy (the engine enforces it).
* A reminder goes out after an hour; after a day without a decision the request expires
  and is treated as a rejection (``OnExpiry.resume_with``), so the run ends ``rejected``.
"""

from __future__ import annotations

import os
from datetime import timedelta
from typing import Literal

from pydantic import BaseModel, Field

from engine import OnExpiry, Retry, StepContext, Workflow, step

# Slack user group ids ("group:S…", see bot.slack.authorization); override per installation.
PRODUCTION_GROUP = os.environ.get("DEPLOY_PRODUCTION_GROUP", "group:S0PROD")
DEPLOY_GROUP = os.environ.get("DEPLOY_GROUP", "group:S0DEPLOY")
PRODUCTION_APPROVALS = 2
EXPIRES = timedelta(days=1)
REMIND_AFTER = timedelta(hours=1)


class DeployRequest(BaseModel):
    """What to deploy, where."""

    service: str = Field(min_length=1, max_length=80)
    version: str = Field(min_length=1, max_length=40)
    environment: Literal["staging", "production"] = "staging"
    changelog: str = Field(default="", max_length=2000)


class DeployPlan(BaseModel):
    """What the approvers are shown."""

    service: str
    version: str
    environment: str
    changelog: str
    approvals_needed: int


class Approval(BaseModel):
    """The approvers' answer: Approve or Reject, with an optional comment."""

    approved: bool
    comment: str = Field(default="", max_length=500)


class ApprovedDeploy(BaseModel):
    """A deploy that may go ahead, and who said so."""

    service: str
    version: str
    environment: str
    approved_by: list[str]
    comment: str


class DeployResult(BaseModel):
    """The run's output."""

    service: str
    version: str
    environment: str
    deployed: bool
    approved_by: list[str]
    deployment_id: str


@step
async def plan(req: DeployRequest) -> DeployPlan:
    """Work out what the approvers must agree to."""
    needed = PRODUCTION_APPROVALS if req.environment == "production" else 1
    return DeployPlan(**req.model_dump(), approvals_needed=needed)


@step(title="Approve deploy")
async def approve(p: DeployPlan, ctx: StepContext[DeployPlan, Approval]) -> ApprovedDeploy:
    """Ask the right group; a rejection or an expiry ends the run as rejected."""
    production = p.environment == "production"
    answer = await ctx.suspend(
        p,
        responders=[PRODUCTION_GROUP if production else DEPLOY_GROUP],
        quorum=p.approvals_needed,
        expires=EXPIRES,
        on_expiry=OnExpiry.resume_with(
            Approval(approved=False, comment="expired: nobody decided within a day")
        ),
        reminders=[REMIND_AFTER],
        title=f"Deploy {p.service} {p.version} to {p.environment}",
    )
    resolution = ctx.resolution
    if not answer.approved:
        who = resolution.resolved_by if resolution and resolution.resolved_by else "expiry"
        ctx.bail(f"deploy rejected by {who}: {answer.comment}".rstrip(": "))
    approvers = [r.actor for r in resolution.responses if r.approved] if resolution else []
    return ApprovedDeploy(
        service=p.service,
        version=p.version,
        environment=p.environment,
        approved_by=approvers,
        comment=answer.comment,
    )


@step(retries=Retry(attempts=3, backoff=2.0))
async def release(d: ApprovedDeploy, ctx: StepContext) -> DeployResult:
    """Stand-in for the real deploy; ``ctx.idempotency_key`` makes a retried call safe."""
    return DeployResult(
        service=d.service,
        version=d.version,
        environment=d.environment,
        deployed=True,
        approved_by=d.approved_by,
        deployment_id=f"dep-{ctx.idempotency_key}",
    )


deploy_approval = (
    Workflow(
        "deploy_approval",
        version=1,
        input=DeployRequest,
        output=DeployResult,
        title="Deploy approval",
    )
    .then(plan)
    .then(approve)
    .then(release)
)

WORKFLOWS = [deploy_approval]
