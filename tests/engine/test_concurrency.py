"""Concurrent resumes: exactly one wins, whatever the number of callers or processes.

Resolving an interrupt is one compare-and-set in the store; the winner drives the run,
so the step after the decision runs once. The losers get ``AlreadyResolved`` saying who
decided.
"""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

from pydantic import BaseModel

from engine import (
    AlreadyResolved,
    EventType,
    InterruptStatus,
    ResumeOutcome,
    RunStatus,
    StepContext,
    Workflow,
    step,
)
from tests.e2e import worker_proc
from tests.e2e.workers import Workers
from tests.engine.conftest import EngineFactory
from tests.engine.fixtures_runtime import (
    PROBE,
    Probe,
    finished,
    history,
    parked,
)
from tests.support.polling import eventually


class Change(BaseModel):
    """Workflow input."""

    name: str


class Approval(BaseModel):
    """An approve/reject answer."""

    approved: bool


class Decided(BaseModel):
    """What the approval step passes on."""

    name: str
    approved: bool
    by: str | None


@step
async def approve(c: Change, ctx: StepContext[Change, Approval]) -> Decided:
    """Wait for one decision."""
    answer = await ctx.suspend(c)
    by = ctx.resolution.resolved_by if ctx.resolution else None
    return Decided(name=c.name, approved=answer.approved, by=by)


@step
async def apply(d: Decided) -> Decided:
    """The side effect that must happen once."""
    PROBE.hit("apply", d.by)
    return d


approving = Workflow("approving", input=Change, output=Decided).then(approve).then(apply)
ASK = "0:approve#0"


async def _race(engines: list[Any], run_id: str, callers: int) -> list[object]:
    """``callers`` concurrent resumes spread over ``engines``; even callers reject."""
    return await asyncio.gather(
        *(
            engines[i % len(engines)].resume(
                run_id, ASK, {"approved": i % 2 == 1}, actor=f"user{i}"
            )
            for i in range(callers)
        ),
        return_exceptions=True,
    )


async def _check_single_winner(
    engine: Any, run_id: str, results: list[object], probe: Probe
) -> None:
    wins = [r for r in results if isinstance(r, ResumeOutcome)]
    losses = [r for r in results if isinstance(r, AlreadyResolved)]
    assert (len(wins), len(losses)) == (1, len(results) - 1), results
    run = await finished(engine, run_id)
    assert run.status is RunStatus.COMPLETED
    interrupt = await engine.get_interrupt(run_id, ASK)
    winner = interrupt.resolved_by
    assert winner is not None
    assert {loss.resolved_by for loss in losses} == {winner}
    approved = int(winner.removeprefix("user")) % 2 == 1
    expected = InterruptStatus.APPROVED if approved else InterruptStatus.REJECTED
    assert wins[0].status is interrupt.status is expected
    assert [r.actor for r in interrupt.responses] == [winner]
    assert run.output == {"name": "c", "approved": approved, "by": winner}
    assert probe.seen["apply"] == [winner]
    assert len(await history(engine, run_id, EventType.RESPONSE_RECORDED)) == 1
    assert len(await history(engine, run_id, EventType.RESOLVED)) == 1


async def test_fifty_concurrent_resumes_resolve_the_interrupt_once(
    engine_factory: EngineFactory, probe: Probe
) -> None:
    engine = await engine_factory(approving)
    run_id = await engine.start(approving, {"name": "c"})
    await parked(engine, run_id)

    results = await _race([engine], run_id, 50)

    await _check_single_winner(engine, run_id, results, probe)


async def test_fifty_concurrent_resumes_through_three_engines_resolve_once(
    engine_factory: EngineFactory, probe: Probe
) -> None:
    engines = [await engine_factory(approving) for _ in range(3)]
    run_id = await engines[0].start(approving, {"name": "c"})
    await parked(engines[0], run_id)

    results = await _race(engines, run_id, 50)

    await _check_single_winner(engines[0], run_id, results, probe)
    await asyncio.sleep(0.2)  # no other engine picks the run up later
    assert probe.calls["apply"] == 1


# --- a resume while the run is still being driven ------------------------------------------


class Answer(BaseModel):
    """A free-form answer."""

    text: str


@step
async def ask(c: Change, ctx: StepContext[Change, Answer]) -> str:
    """One parallel branch: waits for a person."""
    answer = await ctx.suspend(c)
    PROBE.hit("ask", answer.text)
    return answer.text


@step
async def slow(c: Change) -> str:
    """The other branch: still running when the answer arrives."""
    await PROBE.wait("slow")
    return "slow done"


class Both(BaseModel):
    """The parallel node's output."""

    ask: str
    slow: str


@step
async def join(b: Both) -> str:
    """Runs once both branches finished."""
    PROBE.hit("join")
    return f"{b.ask}+{b.slow}"


overlapping = Workflow("overlapping", input=Change, output=str).parallel(ask, slow).then(join)


async def test_an_answer_that_arrives_while_the_run_is_executing_is_not_lost(
    engine_factory: EngineFactory, probe: Probe
) -> None:
    engine = await engine_factory(overlapping)
    run_id = await engine.start(overlapping, {"name": "c"})

    async def asked() -> bool:
        return bool(await engine.list_interrupts(run_id=run_id))

    await eventually(asked)
    (interrupt,) = await engine.list_interrupts(run_id=run_id)
    assert (await engine.get_run(run_id)).run.status is RunStatus.RUNNING  # slow still runs
    outcome = await engine.resume(run_id, interrupt.id, {"text": "yes"}, actor="alice")
    assert outcome.resolved
    probe.gate("slow").set()

    run = await finished(engine, run_id)

    assert run.status is RunStatus.COMPLETED
    assert run.output == "yes+slow done"
    assert probe.seen["ask"] == ["yes"]
    assert probe.calls["join"] == 1


# --- two processes ---------------------------------------------------------------------------


async def test_two_processes_racing_to_resume_the_same_interrupts_resolve_each_once(
    engine_factory: EngineFactory, workers: Workers, db_path: str
) -> None:
    workers.db = db_path  # the backend under test: a SQLite file or a PostgreSQL URL
    setup = await engine_factory(*worker_proc.WORKFLOWS)
    job = worker_proc.Job(dir=str(workers.work))
    run_ids = [await setup.start("crash", job) for _ in range(20)]
    for run_id in run_ids:
        await parked(setup, run_id)
    await setup.close()
    targets = workers.work / "targets.json"
    targets.write_text(json.dumps([[run_id, worker_proc.ASK] for run_id in run_ids]))
    go = workers.work / "go"
    racers = [
        await workers.spawn(
            "--race", str(targets), "--go", str(go), "--actor", actor, "--until-done"
        )
        for actor in ("p1", "p2")
    ]
    await workers.until(lambda: all((workers.work / f"ready-{a}").exists() for a in ("p1", "p2")))

    # Written whole, then renamed: a racer polling for the file never reads it half-written.
    staged = workers.work / "go.tmp"
    staged.write_text(str(time.time() + 0.3))  # both start resuming at this instant
    staged.rename(go)
    for racer in racers:
        await workers.finish(racer)

    outcomes: dict[tuple[str, str], list[str]] = {}
    for actor in ("p1", "p2"):
        for run_id, interrupt_id, outcome in json.loads(
            (workers.work / f"outcomes-{actor}.json").read_text()
        ):
            outcomes.setdefault((run_id, interrupt_id), []).append(f"{actor}:{outcome}")
    assert len(outcomes) == 20
    runs = await workers.runs()
    counts = workers.tally()
    for (run_id, _), results in outcomes.items():
        (winner,) = [r.split(":")[0] for r in results if r.endswith(":won")]
        assert len(results) == 2
        detail = runs[run_id]
        assert detail.run.status is RunStatus.COMPLETED
        (interrupt,) = detail.interrupts
        assert interrupt.resolved_by == winner
        assert [r.actor for r in interrupt.responses] == [winner]
        assert detail.run.output["trail"] == ["prepare", f"approve:True:{winner}:{winner}", "act"]
        assert counts["act", "enter", run_id] == counts["act", "done", run_id] == 1
        assert counts["approve", "done", run_id] == 1
