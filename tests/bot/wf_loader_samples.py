"""Workflows for the loader tests: one Slack can ask, one it cannot (a nested model)."""

from __future__ import annotations

from pydantic import BaseModel

from engine import StepContext, Workflow, step


class Shown(BaseModel):
    """What is shown."""

    text: str


class Simple(BaseModel):
    """An answer Slack can ask for."""

    approved: bool


class Address(BaseModel):
    """A nested model: no Slack input can ask for it."""

    street: str


class Nested(BaseModel):
    """An answer Slack cannot ask for."""

    address: Address


@step
async def ask_simple(s: Shown, ctx: StepContext[Shown, Simple]) -> bool:
    """Ask something simple."""
    return (await ctx.suspend(s)).approved


@step
async def ask_nested(s: Shown, ctx: StepContext[Shown, Nested]) -> str:
    """Ask for an address."""
    return (await ctx.suspend(s)).address.street


simple = Workflow("simple", input=Shown, output=bool).then(ask_simple)
nested = Workflow("nested", input=Shown, output=str).then(ask_nested)
