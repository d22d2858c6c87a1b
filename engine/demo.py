"""``signoff-demo``: a deploy approval run end to end on a SQLite file.

It starts a run, which suspends for an approval; prints what the approver is shown;
answers it (as the command line's actor); and prints the run's output and history.
Run it twice: the second time it reuses the same database file and you can see the
first run is still there, durably recorded.
"""

from __future__ import annotations

import argparse
import asyncio
import json
from typing import Literal

from pydantic import BaseModel, Field

from engine import Engine, OnExpiry, StepContext, Workflow, open_store, step


class DeployRequest(BaseModel):
    """What a deploy needs."""

    service: str
    version: str
    environment: Literal["staging", "production"] = "staging"


class DeployPlan(BaseModel):
    """What will happen, shown to the approver."""

    service: str
    version: str
    environment: str
    changes: int


class Approval(BaseModel):
    """What the approver answers."""

    approved: bool
    comment: str = Field(default="", max_length=500)


class DeployResult(BaseModel):
    """The run's output."""

    service: str
    version: str
    deployed: bool
    approved_by: str | None
    comment: str


@step
async def plan(req: DeployRequest) -> DeployPlan:
    """Work out the change set (a stand-in for a real diff)."""
    return DeployPlan(**req.model_dump(), changes=len(req.version) * 3)


@step(title="Approve deploy")
async def approve(p: DeployPlan, ctx: StepContext[DeployPlan, Approval]) -> DeployResult:
    """Wait for a person; deploy only if approved."""
    answer = await ctx.suspend(
        p,
        responders=["alice", "bob"],
        expires=3600,
        on_expiry=OnExpiry.resume_with(Approval(approved=False, comment="expired")),
    )
    by = ctx.resolution.resolved_by if ctx.resolution else None
    return DeployResult(
        service=p.service,
        version=p.version,
        deployed=answer.approved,
        approved_by=by,
        comment=answer.comment,
    )


deploy = (
    Workflow("deploy", version=1, input=DeployRequest, output=DeployResult).then(plan).then(approve)
)


async def run_demo(db: str, actor: str, approve_it: bool) -> None:
    """Start, suspend, resume and finish one deploy run; print each stage."""
    async with Engine(open_store(db), workflows=[deploy]) as engine:
        run_id = await engine.start(
            "deploy", {"service": "billing", "version": "2.4.1"}, requester="carol"
        )
        run = await engine.wait(run_id, timeout=30)
        print(f"run {run_id} is {run.status.value}")
        (pending,) = await engine.list_interrupts(run_id=run_id)
        print(f"waiting on {pending.id!r}: {json.dumps(pending.payload)}")
        print(f"  may answer: {', '.join(pending.responders)}")
        outcome = await engine.resume(
            run_id, pending.id, {"approved": approve_it, "comment": "ship it"}, actor=actor
        )
        print(f"{actor} answered: interrupt is {outcome.status.value}")
        run = await engine.wait(run_id, timeout=30)
        print(f"run {run_id} is {run.status.value}: {json.dumps(run.output)}")
        detail = await engine.get_run(run_id)
        print("history: " + " -> ".join(e.type.value for e in detail.events))
        total = await engine.list_runs(limit=1000)
        print(f"{len(total)} run(s) recorded in {db}")


def main() -> None:
    """Entry point of the ``signoff-demo`` console script."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--db", default="signoff-demo.db", help="SQLite file (created if missing)")
    parser.add_argument("--as", dest="actor", default="alice", help="who approves")
    parser.add_argument("--reject", action="store_true", help="reject instead of approving")
    args = parser.parse_args()
    asyncio.run(run_demo(args.db, args.actor, not args.reject))


if __name__ == "__main__":
    main()
