"""Expense approval: the manager alone up to a threshold, the manager then finance above it.

A rejection at either level ends the run as ``rejected`` (``ctx.bail``); nothing is paid.
The manager is named in the input (a Slack user id); finance is a user group.
"""

from __future__ import annotations

import os
from datetime import timedelta
from decimal import Decimal
from typing import Literal

from pydantic import BaseModel, Field

from engine import OnExpiry, StepContext, Workflow, step

FINANCE_GROUP = os.environ.get("EXPENSE_FINANCE_GROUP", "group:S0FINANCE")
FINANCE_THRESHOLD = Decimal("1000")  # above this, finance approves too


class Expense(BaseModel):
    """A claim to reimburse."""

    employee: str = Field(min_length=1, description="Slack id of who spent the money")
    manager: str = Field(min_length=1, description="Slack id of the employee's manager")
    amount: Decimal = Field(gt=0, max_digits=10, decimal_places=2)
    currency: Literal["EUR", "USD", "GBP"] = "EUR"
    description: str = Field(min_length=3, max_length=500)


class Review(BaseModel):
    """An approver's answer."""

    approved: bool
    comment: str = Field(default="", max_length=500)


class ApprovedExpense(BaseModel):
    """An expense with the approvals it has so far."""

    employee: str
    manager: str
    amount: Decimal
    currency: str
    description: str
    approved_by: list[str]


class Reimbursement(BaseModel):
    """The run's output."""

    employee: str
    amount: Decimal
    currency: str
    approved_by: list[str]
    reference: str


def _by(ctx: StepContext[ApprovedExpense, Review] | StepContext[Expense, Review]) -> str:
    return (ctx.resolution.resolved_by if ctx.resolution else None) or "expiry"


@step(title="Manager approval")
async def manager_approval(e: Expense, ctx: StepContext[Expense, Review]) -> ApprovedExpense:
    """The employee's manager approves or rejects."""
    answer = await ctx.suspend(
        e,
        responders=[e.manager],
        expires=timedelta(days=3),
        on_expiry=OnExpiry.bail("the manager did not answer within 3 days"),
        reminders=[timedelta(days=1)],
    )
    if not answer.approved:
        ctx.bail(f"rejected by manager {_by(ctx)}: {answer.comment}".rstrip(": "))
    return ApprovedExpense(**e.model_dump(), approved_by=[_by(ctx)])


@step(title="Finance approval")
async def finance_approval(
    e: ApprovedExpense, ctx: StepContext[ApprovedExpense, Review]
) -> ApprovedExpense:
    """Finance approves large expenses after the manager did."""
    answer = await ctx.suspend(
        e,
        responders=[FINANCE_GROUP],
        expires=timedelta(days=5),
        on_expiry=OnExpiry.bail("finance did not answer within 5 days"),
    )
    if not answer.approved:
        ctx.bail(f"rejected by finance ({_by(ctx)}): {answer.comment}".rstrip(": "))
    return e.model_copy(update={"approved_by": [*e.approved_by, _by(ctx)]})


@step
async def reimburse(e: ApprovedExpense, ctx: StepContext) -> Reimbursement:
    """Stand-in for the payment call (idempotent on ``ctx.idempotency_key``)."""
    return Reimbursement(
        employee=e.employee,
        amount=e.amount,
        currency=e.currency,
        approved_by=e.approved_by,
        reference=f"pay-{ctx.idempotency_key}",
    )


# Above the threshold: a sub-workflow, so its two steps have their own namespace.
manager_then_finance = (
    Workflow("expense_manager_then_finance", input=Expense, output=ApprovedExpense)
    .then(manager_approval)
    .then(finance_approval)
)


def needs_finance(e: Expense) -> bool:
    """True when the amount needs finance's approval as well."""
    return e.amount > FINANCE_THRESHOLD


expense_approval = (
    Workflow(
        "expense_approval",
        version=1,
        input=Expense,
        output=Reimbursement,
        title="Expense approval",
    )
    .branch((needs_finance, manager_then_finance), otherwise=manager_approval, name="route")
    .then(reimburse)
)

# Only the top-level workflow is startable; the sub-workflow is part of it.
WORKFLOWS = [expense_approval]
