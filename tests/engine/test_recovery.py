"""Recovery inside one process: shutdown mid-step, restarts, and lapsed leases.

A run continues from its last committed step: completed steps are read back, never run
again; the step that was executing runs again (at least once), with the same
idempotency key. Killed processes are covered by tests/e2e/test_crash_recovery.py.
"""

from __future__ import annotations

import asyncio
import os
import socket
import time

import pytest
from pydantic import BaseModel

from engine import EventType, RunStatus, StepContext, StepStatus, Workflow, step
from engine.recovery import host_identity
from engine.store.base import WorkerRow
from tests.engine.conftest import EngineFactory
from tests.engine.fixtures_runtime import (
    PROBE,
    Probe,
    finished,
    history,
    parked,
    stored_run,
)
from tests.support.polling import eventually


class Parcel(BaseModel):
    """Passed from step to step; ``trail`` says which steps ran."""

    name: str
    trail: list[str] = []


class Shown(BaseModel):
    """What the approver sees."""

    name: str


class Ok(BaseModel):
    """The approver's answer."""

    ok: bool


@step
async def pack(p: Parcel) -> Parcel:
    """A step that completes before the interruption."""
    PROBE.hit("pack")
    return p.model_copy(update={"trail": [*p.trail, "pack"]})


@step
async def ship(p: Parcel, ctx: StepContext) -> Parcel:
    """Held at its gate on its first execution (where the interruption happens)."""
    PROBE.hit("ship", ctx.idempotency_key)
    if PROBE.calls["ship"] == 1:
        await PROBE.wait("ship")
    return p.model_copy(update={"trail": [*p.trail, f"ship#{PROBE.calls['ship']}"]})


@step
async def confirm(p: Parcel, ctx: StepContext[Shown, Ok]) -> Parcel:
    """Waits for a person."""
    PROBE.hit("confirm")
    answer = await ctx.suspend(Shown(name=p.name))
    return p.model_copy(update={"trail": [*p.trail, f"confirm:{answer.ok}"]})


@step
async def deliver(p: Parcel) -> Parcel:
    """The last step."""
    PROBE.hit("deliver")
    return p.model_copy(update={"trail": [*p.trail, "deliver"]})


shipping = Workflow("shipping", input=Parcel, output=Parcel).then(pack).then(ship).then(deliver)
confirming = (
    Workflow("confirming", input=Parcel, output=Parcel).then(pack).then(confirm).then(deliver)
)

LONG_LEASE = 60.0  # recovery must not wait for a lease to lapse


async def test_a_run_cut_off_by_close_continues_at_once_from_its_last_committed_step(
    engine_factory: EngineFactory, db_path: str, probe: Probe
) -> None:
    first = await engine_factory(shipping, lease=LONG_LEASE)
    run_id = await first.start(shipping, {"name": "p1"})
    await eventually(lambda: probe.calls["ship"] == 1)
    await first.close(grace=0.1)  # ship is still held: it is cancelled
    assert (await stored_run(db_path, run_id)).run.status is RunStatus.RUNNING

    probe.gate("ship").set()
    reopened = time.monotonic()
    second = await engine_factory(shipping, lease=LONG_LEASE)
    run = await finished(second, run_id, timeout=5)

    assert time.monotonic() - reopened < 5
    assert run.status is RunStatus.COMPLETED
    assert run.output == {"name": "p1", "trail": ["pack", "ship#2", "deliver"]}
    assert (probe.calls["pack"], probe.calls["ship"], probe.calls["deliver"]) == (1, 2, 1)
    first_key, second_key = probe.seen["ship"]
    assert first_key == second_key == f"{run_id}:1:ship"
    completed = await history(second, run_id, EventType.STEP_COMPLETED)
    assert [e.data["step"] for e in completed] == ["pack", "ship", "deliver"]


async def test_a_suspended_run_stays_resumable_across_a_restart(
    engine_factory: EngineFactory, probe: Probe
) -> None:
    first = await engine_factory(confirming, lease=LONG_LEASE)
    run_id = await first.start(confirming, {"name": "p2"})
    await parked(first, run_id)
    await first.close()

    second = await engine_factory(confirming, lease=LONG_LEASE)
    await asyncio.sleep(0.2)  # recovery passes leave a parked run alone
    assert (await second.get_run(run_id)).run.status is RunStatus.SUSPENDED
    (ask,) = await second.list_interrupts(run_id=run_id)
    await second.resume(run_id, ask.id, {"ok": True}, actor="alice")
    run = await finished(second, run_id)

    assert run.status is RunStatus.COMPLETED
    assert run.output == {"name": "p2", "trail": ["pack", "confirm:True", "deliver"]}
    assert (probe.calls["pack"], probe.calls["confirm"], probe.calls["deliver"]) == (1, 2, 1)


async def test_a_run_whose_lease_lapsed_is_taken_over_and_the_old_driver_is_fenced(
    engine_factory: EngineFactory, probe: Probe, monkeypatch: pytest.MonkeyPatch
) -> None:
    stuck = await engine_factory(shipping, lease=0.4)
    run_id = await stuck.start(shipping, {"name": "p3"})
    await eventually(lambda: probe.calls["ship"] == 1)

    async def no_heartbeat() -> None:  # the worker hangs: its lease is no longer renewed
        return None

    monkeypatch.setattr(stuck.recovery, "recover_once", no_heartbeat)
    rescuer = await engine_factory(shipping, lease=0.4)
    run = await finished(rescuer, run_id, timeout=5)
    assert run.output == {"name": "p3", "trail": ["pack", "ship#2", "deliver"]}
    events_after_takeover = await rescuer.events(run_id)

    probe.gate("ship").set()  # the stuck driver wakes up and tries to commit ship#1
    await stuck.close()  # waits for that driver to give up

    detail = await rescuer.get_run(run_id)
    assert detail.run.output == run.output
    ship_record = next(s for s in detail.steps if s.name == "ship")
    assert ship_record.status is StepStatus.COMPLETED
    assert ship_record.output["trail"] == ["pack", "ship#2"]
    assert detail.events == events_after_takeover
    assert probe.calls["deliver"] == 1


@pytest.mark.skipif(not os.path.exists("/proc/self/ns/pid"), reason="Linux pid namespaces")
async def test_only_workers_in_this_pid_namespace_are_judged_by_their_pid(
    engine_factory: EngineFactory,
) -> None:
    # A container sharing this host's name (host networking) has pids of its own: a pid
    # missing here says nothing about a worker there, whose lease must lapse instead.
    engine = await engine_factory(lease=30.0, poll_interval=60.0)  # no background pass
    now = time.time()
    gone = 2**22 + 1  # above Linux's largest pid_max: no such process here
    here, elsewhere = host_identity(), socket.gethostname()
    assert here != elsewhere  # the identity adds the boot id and the pid namespace
    await engine.store.heartbeat(WorkerRow("same-name", elsewhere, gone, now), now + 30)
    await engine.store.heartbeat(WorkerRow("same-place", here, gone, now), now + 30)

    await engine.recovery.recover_once()

    assert engine.recovery.dead == ["same-place"]
