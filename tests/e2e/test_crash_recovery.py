"""Crash recovery with real processes: a worker is SIGKILLed, a new one takes over.

Whatever the moment of the kill, no run is lost: suspended runs stay resumable, runs
that were executing continue from their last committed step, completed steps never run
again (the step log counts executions across processes), and every run completes. The
new worker sees that the old one's pid is gone (same host), so it takes over at once
instead of waiting for the old lease (30 s here) to lapse.
"""

from __future__ import annotations

import time

import pytest

from engine import InterruptStatus, RunStatus, StepStatus
from tests.e2e.worker_proc import ASK
from tests.e2e.workers import Workers

QUICK = 15.0  # seconds a recovery may take: well under the lease, so the pid was noticed


async def test_a_worker_killed_inside_a_step_is_recovered_from_the_last_committed_step(
    workers: Workers,
) -> None:
    first = await workers.spawn("--start", "crash:1", "--block", "prepare")
    await workers.until(lambda: workers.count("prepare", "blocked") == 1)
    await workers.kill(first)
    (run_id,) = workers.started()
    killed = (await workers.runs())[run_id]
    assert killed.run.status is RunStatus.RUNNING
    assert killed.steps == []

    workers.open_gate("prepare")
    began = time.monotonic()
    second = await workers.spawn("--approve", "--actor", "bob", "--note", "ok", "--until-done")
    await workers.finish(second)

    assert time.monotonic() - began < QUICK
    run = (await workers.runs())[run_id].run
    assert run.status is RunStatus.COMPLETED
    assert run.output["trail"] == ["prepare", "approve:True:ok:bob", "act"]
    counts = workers.tally()
    assert counts["prepare", "enter", run_id] == 2  # cut off once, then run again
    assert counts["prepare", "done", run_id] == 1
    assert counts["approve", "done", run_id] == 1
    assert counts["act", "enter", run_id] == counts["act", "done", run_id] == 1


async def test_runs_suspended_when_the_worker_died_stay_resumable(workers: Workers) -> None:
    first = await workers.spawn("--start", "crash:3")

    async def all_suspended() -> bool:
        runs = await workers.runs()
        return len(runs) == 3 and all(d.run.status is RunStatus.SUSPENDED for d in runs.values())

    await workers.until(all_suspended)
    await workers.kill(first)
    for detail in (await workers.runs()).values():
        assert [i.status for i in detail.interrupts] == [InterruptStatus.PENDING]

    second = await workers.spawn("--approve", "--actor", "carol", "--until-done")
    await workers.finish(second)

    runs = await workers.runs()
    assert set(runs) == set(workers.started())
    counts = workers.tally()
    for run_id, detail in runs.items():
        assert detail.run.status is RunStatus.COMPLETED
        assert detail.run.output["trail"] == ["prepare", "approve:True::carol", "act"]
        assert counts["prepare", "enter", run_id] == 1  # completed before the kill: not again
        assert counts["approve", "enter", run_id] == 2  # asked, then answered
        assert counts["act", "enter", run_id] == 1
    delivered = {(f[0], f[1]) for f in workers.lines("outbox.log")}
    for run_id in runs:
        assert ("interrupt.created", run_id) in delivered
        assert ("run.finished", run_id) in delivered


@pytest.mark.parametrize("held", ["approve", "act"])
async def test_a_worker_killed_after_an_answer_resolved_keeps_that_answer(
    workers: Workers, held: str
) -> None:
    # held="approve": killed after the answer was committed, before the answered step
    # committed; held="act": killed in the step after it.
    first = await workers.spawn(
        "--start", "crash:1", "--block", held, "--approve", "--actor", "alice", "--note", "first"
    )
    await workers.until(lambda: workers.count(held, "blocked") == 1)
    await workers.kill(first)
    (run_id,) = workers.started()
    killed = (await workers.runs())[run_id]
    assert killed.run.status is RunStatus.RUNNING
    (interrupt,) = killed.interrupts
    assert (interrupt.status, interrupt.resolved_by) == (InterruptStatus.APPROVED, "alice")
    approve_record = next(s for s in killed.steps if s.name == "approve")
    expected = StepStatus.SUSPENDED if held == "approve" else StepStatus.COMPLETED
    assert approve_record.status is expected

    workers.open_gate(held)
    began = time.monotonic()
    # This worker would approve anything still pending: nothing is.
    second = await workers.spawn("--approve", "--actor", "mallory", "--until-done")
    await workers.finish(second)

    assert time.monotonic() - began < QUICK
    detail = (await workers.runs())[run_id]
    assert detail.run.status is RunStatus.COMPLETED
    assert detail.run.output["trail"] == ["prepare", "approve:True:first:alice", "act"]
    (interrupt,) = detail.interrupts
    assert [r.actor for r in interrupt.responses] == ["alice"]
    assert interrupt.id == ASK
    counts = workers.tally()
    assert counts["prepare", "enter", run_id] == 1
    assert counts["approve", "done", run_id] == 1
    assert counts["act", "done", run_id] == 1
    assert counts["approve", "enter", run_id] == (3 if held == "approve" else 2)
    assert counts["act", "enter", run_id] == (2 if held == "act" else 1)


async def test_many_runs_in_flight_all_complete_and_committed_steps_never_rerun(
    workers: Workers,
) -> None:
    first = await workers.spawn("--start", "burst:40", "--pause", "0.02")
    await workers.until(lambda: sum(1 for f in workers.lines() if f[1] == "done") >= 60)
    await workers.kill(first)
    at_kill = workers.tally()
    snapshot = await workers.runs()
    committed = {
        (run_id, s.name)
        for run_id, detail in snapshot.items()
        for s in detail.steps
        if s.status is StepStatus.COMPLETED
    }
    assert len(workers.started()) == len(snapshot) == 40
    assert any(d.run.status is RunStatus.RUNNING for d in snapshot.values())

    began = time.monotonic()
    second = await workers.spawn("--until-done")
    await workers.finish(second)

    assert time.monotonic() - began < QUICK
    runs = await workers.runs()
    counts = workers.tally()
    assert set(runs) == set(workers.started())
    for run_id, detail in runs.items():
        assert detail.run.status is RunStatus.COMPLETED
        assert detail.run.output["trail"] == ["prepare", "act", "wrapup"]
        for name in ("prepare", "act", "wrapup"):
            assert counts[name, "done", run_id] >= 1
            if (run_id, name) in committed:  # done before the kill: never executed again
                assert counts[name, "enter", run_id] == at_kill[name, "enter", run_id] == 1
