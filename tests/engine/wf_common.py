"""Models and helpers shared by the engine behaviour tests."""

from __future__ import annotations

from pydantic import BaseModel, Field

from engine import Engine, Interrupt, Run


class Req(BaseModel):
    """A workflow input."""

    name: str
    amount: int = 0


class Shown(BaseModel):
    """What a person is shown."""

    question: str


class Approval(BaseModel):
    """An approve/reject answer."""

    approved: bool
    comment: str = Field(default="", max_length=20)


class Note(BaseModel):
    """A free-form answer (no ``approved`` field)."""

    text: str
    priority: int = 1


class Done(BaseModel):
    """A workflow output."""

    name: str
    approved: bool = False
    by: str | None = None


async def settle(engine: Engine, run_id: str) -> Run:
    """Wait until the run is parked or finished."""
    return await engine.wait(run_id, timeout=10)


async def pending(engine: Engine, run_id: str) -> list[Interrupt]:
    """The run's pending interrupts, oldest first."""
    return await engine.list_interrupts(run_id=run_id)
