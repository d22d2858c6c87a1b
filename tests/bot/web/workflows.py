"""Small workflows the service tests (API, webhooks, CLI, serve) run.

Loaded by ``SIGNOFF_WORKFLOWS=tests.bot.web.workflows`` in subprocess tests, so it
must import cleanly on its own. ``SLOW_SECONDS`` is how long the ``slow`` step takes.
"""

from __future__ import annotations

import asyncio
import os

from pydantic import BaseModel, Field

from engine import StepContext, Workflow, step

SLOW_SECONDS = float(os.environ.get("SIGNOFF_TEST_SLOW_SECONDS", "1.0"))


class Order(BaseModel):
    """A workflow input."""

    item: str = Field(min_length=1, max_length=40)
    qty: int = Field(default=1, ge=1, le=100)


class Question(BaseModel):
    """What the approver is shown."""

    question: str


class Decision(BaseModel):
    """An approve/reject answer."""

    approved: bool
    comment: str = Field(default="", max_length=50)


class Payment(BaseModel):
    """An event sent by a payment system."""

    amount: int = Field(ge=0)


class Result(BaseModel):
    """A workflow output."""

    item: str
    approved: bool = False
    by: str | None = None
    paid: int = 0


@step(title="Approve order")
async def approve(order: Order, ctx: StepContext[Question, Decision]) -> Result:
    """Ask alice or bob; the requester may not answer."""
    answer = await ctx.suspend(
        Question(question=f"Order {order.qty} x {order.item}?"), responders=["alice", "bob"]
    )
    by = ctx.resolution.resolved_by if ctx.resolution else None
    return Result(item=order.item, approved=answer.approved, by=by)


@step(events={"payment": Payment})
async def await_payment(order: Order, ctx: StepContext) -> Result:
    """Wait until the payment system reports the payment."""
    paid = await ctx.wait_for_event("payment", Payment)
    return Result(item=order.item, paid=paid.amount)


@step
async def work(order: Order) -> Result:
    """Take ``SLOW_SECONDS``: long enough to be in flight when the server stops."""
    await asyncio.sleep(SLOW_SECONDS)
    return Result(item=order.item, approved=True)


order = Workflow("order", input=Order, output=Result).then(approve)
billing = Workflow("billing", input=Order, output=Result).then(await_payment)
slow = Workflow("slow", input=Order, output=Result).then(work)

WORKFLOWS = [order, billing, slow]
