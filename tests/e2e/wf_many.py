"""The workflow of the many-instances test, loadable with ``SIGNOFF_WORKFLOWS=tests.e2e.wf_many``.

``relay``: ``prepare`` -> ``approve`` (asks in Slack; the answer becomes the step's output)
-> ``act``. Every step appends ``<step> <phase> <run_id> <pid>`` lines (phases ``enter`` and
``done``) to the file named by ``SIGNOFF_TEST_STEP_LOG``, so the test can count how often
each step of each run ran, and in which process, across processes that share the file.
"""

from __future__ import annotations

import asyncio
import os

from pydantic import BaseModel, Field

from engine import OnExpiry, StepContext, Workflow, step

STEP_LOG_ENV = "SIGNOFF_TEST_STEP_LOG"
ACT_SECONDS = 0.2
"""How long ``act`` works: long enough that a kill often lands inside it."""


class Job(BaseModel):
    """A job to approve; ``expires``/``reminders`` (seconds) for requests nobody answers."""

    n: int
    expires: float | None = None
    reminders: list[float] = []


class Plan(BaseModel):
    """What the approver sees."""

    n: int = Field(title="Job")
    summary: str


class Decision(BaseModel):
    """Approve or reject."""

    approved: bool
    comment: str | None = Field(default=None, max_length=200)


class Outcome(BaseModel):
    """The run's output."""

    n: int
    approved: bool
    comment: str | None


def log_step(step_name: str, phase: str, run_id: str) -> None:
    """Append one line to the step log (one ``write`` on an O_APPEND file: never torn)."""
    path = os.environ.get(STEP_LOG_ENV)
    if not path:
        return
    line = f"{step_name} {phase} {run_id} {os.getpid()}\n".encode()
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, line)
    finally:
        os.close(fd)


@step(title="Prepare")
async def prepare(job: Job, ctx: StepContext) -> Plan:  # type: ignore[type-arg]
    """Plan the job."""
    log_step("prepare", "enter", ctx.run_id)
    await asyncio.sleep(0.02)
    log_step("prepare", "done", ctx.run_id)
    return Plan(n=job.n, summary=f"Run job {job.n}")


@step(title="Approve job", resume_to="output")
async def approve(plan: Plan, ctx: StepContext[Plan, Decision]) -> Decision:
    """Ask anyone in the default channel; unanswered expiring requests are rejected."""
    log_step("approve", "enter", ctx.run_id)
    job = Job.model_validate(ctx.workflow_input)
    return await ctx.suspend(
        plan,
        expires=job.expires,
        on_expiry=OnExpiry.resume_with(Decision(approved=False, comment="expired"))
        if job.expires
        else None,
        reminders=job.reminders,
    )


@step(title="Act")
async def act(decision: Decision, ctx: StepContext) -> Outcome:  # type: ignore[type-arg]
    """Do the approved work (a short sleep), once per run unless a crash cuts it off."""
    log_step("act", "enter", ctx.run_id)
    await asyncio.sleep(ACT_SECONDS)
    plan = Plan.model_validate(ctx.output_of("prepare"))
    log_step("act", "done", ctx.run_id)
    return Outcome(n=plan.n, approved=decision.approved, comment=decision.comment)


relay = (
    Workflow("relay", version=1, input=Job, output=Outcome).then(prepare).then(approve).then(act)
)

WORKFLOWS = [relay]
