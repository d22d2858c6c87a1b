"""Workflows the Slack tests drive, loadable with ``SIGNOFF_WORKFLOWS=tests.e2e.wf_approvals``.

``change`` takes its approval policy from its input (approvers, quorum, channel, expiry,
reminders...), so one workflow covers most scenarios. The others each exercise one kind of
request: a modal form, a choice, a long payload and a wide payload.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field, create_model

from engine import OnExpiry, StepContext, Workflow, step

# -- change: an approval whose policy comes from the input ----------------------------------


class ChangeRequest(BaseModel):
    """A change to approve, and how to ask for it."""

    service: str
    version: str = "1.0.0"
    approvers: list[str] = []
    quorum: int = 1
    allow_requester: bool = False
    channel: str | None = None
    expires: float | None = None
    reminders: list[float] = []
    fail_after: bool = False


class ChangePlan(BaseModel):
    """What the approver sees."""

    service: str = Field(title="Service")
    version: str = Field(title="Version")
    summary: str


class Approval(BaseModel):
    """Approve or reject, with an optional comment."""

    approved: bool
    comment: str | None = Field(default=None, max_length=200)


class ChangeResult(BaseModel):
    """The run's output."""

    service: str
    version: str
    approved_by: str | None
    comment: str | None


@step(title="Approve change")
async def approve_change(
    req: ChangeRequest, ctx: StepContext[ChangePlan, Approval]
) -> ChangeResult:
    """Ask for approval as the input says; stop the run if rejected."""
    answer = await ctx.suspend(
        ChangePlan(service=req.service, version=req.version, summary=f"Deploy {req.service}"),
        responders=req.approvers,
        quorum=req.quorum,
        allow_requester=req.allow_requester,
        channel=req.channel,
        expires=req.expires,
        on_expiry=OnExpiry.bail("nobody answered in time") if req.expires else None,
        reminders=req.reminders,
    )
    by = ctx.resolution.resolved_by if ctx.resolution else None
    if not answer.approved:
        ctx.bail(f"rejected by {by}")
    if req.fail_after:
        raise RuntimeError("deploy target unreachable")
    return ChangeResult(
        service=req.service, version=req.version, approved_by=by, comment=answer.comment
    )


change = Workflow("change", version=1, input=ChangeRequest, output=ChangeResult).then(
    approve_change
)

# -- refund: an approval that needs a form, so the buttons open a modal ---------------------


class RefundRequest(BaseModel):
    """A refund to approve."""

    customer: str
    amount: int


class RefundDecision(BaseModel):
    """Approve or reject with a reason and a ticket number (required: opens a modal)."""

    approved: bool
    reason: str = Field(min_length=5, max_length=200)
    ticket: int = Field(ge=1)


class RefundResult(BaseModel):
    """The run's output."""

    customer: str
    approved: bool
    reason: str
    ticket: int


@step(title="Approve refund")
async def approve_refund(
    req: RefundRequest, ctx: StepContext[RefundRequest, RefundDecision]
) -> RefundResult:
    """Ask for a reasoned decision."""
    d = await ctx.suspend(req, channel="C0APPROVALS")
    return RefundResult(
        customer=req.customer, approved=d.approved, reason=d.reason, ticket=d.ticket
    )


refund = Workflow("refund", input=RefundRequest, output=RefundResult).then(approve_refund)

# -- triage: a single choice, one button per option -----------------------------------------


class Incident(BaseModel):
    """An incident to triage."""

    title: str


class Triage(BaseModel):
    """Pick a severity."""

    severity: Literal["low", "medium", "high"]


@step(title="Triage incident", resume_to="output")
async def triage_incident(inc: Incident, ctx: StepContext[Incident, Triage]) -> Triage:
    """The chosen severity is the run's output."""
    return await ctx.suspend(inc, channel="C0APPROVALS")


triage = Workflow("triage", input=Incident, output=Triage).then(triage_incident)


class RegionChoice(BaseModel):
    """Eight options: too many for buttons, so a select menu."""

    region: Literal[
        "us-east-1", "us-west-2", "eu-west-1", "eu-central-1", "ap-south-1",
        "ap-northeast-1", "sa-east-1", "ca-central-1",
    ]  # fmt: skip


@step(title="Pick failover region", resume_to="output")
async def pick_region(inc: Incident, ctx: StepContext[Incident, RegionChoice]) -> RegionChoice:
    """The chosen region is the run's output."""
    return await ctx.suspend(inc, channel="C0APPROVALS")


regions = Workflow("regions", input=Incident, output=RegionChoice).then(pick_region)

# -- big payloads ----------------------------------------------------------------------------


class LongText(BaseModel):
    """A payload with one very long value."""

    body: str


@step(title="Review text")
async def review_text(doc: LongText, ctx: StepContext[LongText, Approval]) -> bool:
    """Approve a long document."""
    return (await ctx.suspend(doc, channel="C0APPROVALS")).approved


long_text = Workflow("long_text", input=LongText, output=bool).then(review_text)

WIDE_FIELDS = 40
Wide: type[BaseModel] = create_model(  # type: ignore[call-overload]
    "Wide", **{f"field_{n:02d}": (str, ...) for n in range(WIDE_FIELDS)}
)


@step(title="Review wide", suspend=Wide, resume=Approval)
async def review_wide(data: dict[str, Any], ctx: StepContext) -> bool:  # type: ignore[type-arg]
    """Approve a payload with many fields."""
    answer = await ctx.suspend(data, channel="C0APPROVALS")
    return bool(answer.approved)


wide = Workflow("wide", input=dict[str, Any], output=bool).then(review_wide)

WORKFLOWS = [change, refund, triage, regions, long_text, wide]
