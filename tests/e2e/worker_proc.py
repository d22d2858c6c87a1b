"""A Signoff worker process for the crash and race tests.

Run as ``python -m tests.e2e.worker_proc --db FILE --dir DIR [actions]``. It opens an
Engine on the file (which recovers what dead workers left), optionally starts runs,
answers pending approvals and waits until every run finished; otherwise it serves until
it is killed.

Steps record each execution in ``DIR/steps.log`` as ``<step> <enter|done> <run> <pid>``
lines, so tests can count executions across processes. A step named in the job's
``block`` list stops at ``<step> blocked`` until the file ``DIR/open-<step>`` exists:
that is where a test kills the process. Outbox deliveries go to ``DIR/outbox.log``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import time
from pathlib import Path

from pydantic import BaseModel

from engine import (
    AlreadyResolved,
    Engine,
    InterruptKind,
    OutboxMessage,
    ResumeRejected,
    StepContext,
    Workflow,
    open_store,
    step,
)


class Job(BaseModel):
    """Passed from step to step: where to log, where to stop, what happened so far."""

    dir: str
    block: list[str] = []
    pause: float = 0.0
    trail: list[str] = []


class Answer(BaseModel):
    """An approver's answer."""

    approved: bool
    note: str = ""


def append(path: Path, line: str) -> None:
    """Append one line with a single write, so lines from several processes never mix."""
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, (line + "\n").encode())
    finally:
        os.close(fd)


def note(job: Job, name: str, phase: str, run_id: str) -> None:
    """Record a step execution phase."""
    append(Path(job.dir, "steps.log"), f"{name} {phase} {run_id} {os.getpid()}")


async def checkpoint(job: Job, name: str, run_id: str) -> None:
    """Hold the step here while it is blocked and its gate file does not exist."""
    if name not in job.block:
        return
    gate = Path(job.dir, f"open-{name}")
    if not gate.exists():
        note(job, name, "blocked", run_id)
    while not gate.exists():
        await asyncio.sleep(0.01)


def done(job: Job, name: str, ctx: StepContext, mark: str) -> Job:
    """Record the step's completion and extend the trail."""
    note(job, name, "done", ctx.run_id)
    return job.model_copy(update={"trail": [*job.trail, mark]})


@step
async def prepare(job: Job, ctx: StepContext) -> Job:
    """A plain step."""
    note(job, "prepare", "enter", ctx.run_id)
    await checkpoint(job, "prepare", ctx.run_id)
    await asyncio.sleep(job.pause * random.uniform(0.2, 2))  # runs drift apart
    return done(job, "prepare", ctx, "prepare")


@step
async def approve(job: Job, ctx: StepContext[Job, Answer]) -> Job:
    """Waits for an approval; the checkpoint is after the answer arrived."""
    note(job, "approve", "enter", ctx.run_id)
    answer = await ctx.suspend(job, title="Approve job")
    await checkpoint(job, "approve", ctx.run_id)
    by = ctx.resolution.resolved_by if ctx.resolution else None
    return done(job, "approve", ctx, f"approve:{answer.approved}:{answer.note}:{by}")


@step
async def act(job: Job, ctx: StepContext) -> Job:
    """The side effect that must happen once per run."""
    note(job, "act", "enter", ctx.run_id)
    await checkpoint(job, "act", ctx.run_id)
    await asyncio.sleep(job.pause * random.uniform(0.2, 2))  # runs drift apart
    return done(job, "act", ctx, "act")


@step
async def wrapup(job: Job, ctx: StepContext) -> Job:
    """A last plain step."""
    note(job, "wrapup", "enter", ctx.run_id)
    await asyncio.sleep(job.pause * random.uniform(0.2, 2))  # runs drift apart
    return done(job, "wrapup", ctx, "wrapup")


crash = Workflow("crash", input=Job, output=Job).then(prepare).then(approve).then(act)
burst = Workflow("burst", input=Job, output=Job).then(prepare).then(act).then(wrapup)
WORKFLOWS = [crash, burst]
ASK = "1:approve#0"  # the approval's interrupt id in a crash run


async def start_runs(engine: Engine, spec: str, job: Job, log: Path) -> None:
    """Start ``COUNT`` runs of ``WORKFLOW`` (``spec`` is ``WORKFLOW:COUNT``) concurrently."""
    name, count = spec.split(":")

    async def one() -> None:
        run_id = await engine.start(name, job)
        append(log, run_id)  # written only once the start is committed

    await asyncio.gather(*(one() for _ in range(int(count))))


async def answer_all(engine: Engine, actor: str, note_text: str) -> None:
    """Approve every pending approval (losing a race to another worker is fine)."""
    for interrupt in await engine.list_interrupts(limit=1000):
        if interrupt.kind is not InterruptKind.INPUT:
            continue
        try:
            await engine.resume(
                interrupt.run_id,
                interrupt.id,
                {"approved": True, "note": note_text},
                actor=actor,
            )
        except ResumeRejected:
            pass


async def race(engine: Engine, targets: Path, go: Path, work: Path, actor: str) -> None:
    """Resume every listed interrupt, one after the other, from the moment in ``go``.

    Both racers start at the same wall-clock instant and go through the same list, so
    they contend for each interrupt. The outcome of each attempt is written to
    ``outcomes-<actor>.json``.
    """
    pairs = json.loads(targets.read_text())
    append(work / f"ready-{actor}", "ready")
    while not go.exists():
        await asyncio.sleep(0.005)
    await asyncio.sleep(max(0.0, float(go.read_text()) - time.time()))
    outcomes = []
    for run_id, interrupt_id in pairs:
        try:
            await engine.resume(
                run_id, interrupt_id, {"approved": True, "note": actor}, actor=actor
            )
            outcomes.append((run_id, interrupt_id, "won"))
        except AlreadyResolved:
            outcomes.append((run_id, interrupt_id, "lost"))
    (work / f"outcomes-{actor}.json").write_text(json.dumps(outcomes))


async def all_finished(engine: Engine) -> bool:
    """True when every run in the database reached a final status."""
    runs = await engine.list_runs(limit=10_000)
    return all(r.status.terminal for r in runs)


async def main(args: argparse.Namespace) -> None:
    """Run the worker."""
    work = Path(args.dir)
    engine = Engine(open_store(args.db), workflows=WORKFLOWS, lease=args.lease, poll_interval=0.05)

    async def record(message: OutboxMessage) -> None:
        append(work / "outbox.log", f"{message.topic} {message.run_id} {os.getpid()}")

    engine.subscribe(record, name="recorder")
    async with engine:
        append(work / "workers.log", f"{os.getpid()} {engine.worker_id}")
        if args.start:
            job = Job(dir=str(work), block=args.block, pause=args.pause)
            await start_runs(engine, args.start, job, work / "started.log")
        if args.race:
            await race(engine, Path(args.race), Path(args.go), work, args.actor)
        while True:
            if args.approve:
                await answer_all(engine, args.actor, args.note)
            if args.until_done and await all_finished(engine):
                break
            await asyncio.sleep(0.05)
        # Let the outbox catch up so tests can check deliveries.
        for _ in range(100):
            if await engine.store.outbox_backlog() == 0:
                break
            await asyncio.sleep(0.05)


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    """Command-line options."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    p.add_argument("--db", required=True)
    p.add_argument("--dir", required=True)
    p.add_argument("--lease", type=float, default=30.0)
    p.add_argument("--start", help="WORKFLOW:COUNT runs to start")
    p.add_argument("--block", default=[], type=lambda s: s.split(","), help="steps to hold")
    p.add_argument("--pause", type=float, default=0.0, help="mean seconds a plain step takes")
    p.add_argument("--approve", action="store_true", help="keep approving pending approvals")
    p.add_argument("--actor", default="worker")
    p.add_argument("--note", default="")
    p.add_argument("--race", help="JSON file of [run_id, interrupt_id] pairs to resume")
    p.add_argument("--go", help="file whose creation starts the race")
    p.add_argument("--until-done", action="store_true", help="exit once every run finished")
    return p.parse_args(argv)


if __name__ == "__main__":
    asyncio.run(main(parse()))
