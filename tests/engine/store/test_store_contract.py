"""The store contract: what every backend must do, run against SQLite and PostgreSQL.

The tests talk to the store directly (no engine), through the ``Store`` protocol only.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from engine import (
    AlreadyResolved,
    InterruptKind,
    InterruptNotFound,
    InterruptStatus,
    RunNotActive,
    RunNotFound,
    RunStatus,
    open_store,
)
from engine.context import InterruptSpec
from engine.models import Interrupt, Run
from engine.quorum import answer, expiry
from engine.store.base import (
    EventWrite,
    FinishWrite,
    LostOwnership,
    NewRun,
    OutboxResult,
    OutboxWrite,
    Resolution,
    StepWrite,
    Store,
    WorkerRow,
)

T0 = 1_700_000_000.0
LEASE = T0 + 100


@pytest.fixture
async def store(store_url: str) -> AsyncIterator[Store]:
    """An opened store on a fresh database of the backend under test."""
    s = open_store(store_url)
    await s.open()
    try:
        yield s
    finally:
        await s.close()


def new_run(
    run_id: str,
    *,
    owner: str = "w1",
    key: str | None = None,
    now: float = T0,
    workflow: str = "wf",
    lease_until: float = LEASE,
) -> NewRun:
    """A run to create directly in the store."""
    return NewRun(
        id=run_id,
        workflow=workflow,
        version="1",
        input_json='{"n": 1}',
        requester="alice",
        idempotency_key=key,
        owner=owner,
        lease_until=lease_until,
        now=now,
        events=[EventWrite("started", {"workflow": workflow})],
        outbox=[],
    )


def suspended_step(
    *specs: InterruptSpec, path: str = "0", now: float = T0, outbox: bool = True
) -> StepWrite:
    """A suspended step result declaring ``specs``."""
    return StepWrite(
        path=path,
        name=f"step{path}",
        status="suspended",
        output_json=None,
        error_json=None,
        attempts=1,
        started_at=now,
        finished_at=now,
        interrupts=list(specs),
        events=[EventWrite("suspended", {"interrupts": [s.id for s in specs]})],
        outbox=[OutboxWrite("interrupt.created", s.id, {"id": s.id}) for s in specs]
        if outbox
        else [],
    )


def done_step(path: str, output: str = '{"ok": true}', now: float = T0) -> StepWrite:
    """A completed step result."""
    return StepWrite(path, f"step{path}", "completed", output, None, 1, now, now + 1)


def ask(
    iid: str = "i1",
    *,
    quorum: int = 1,
    expires_at: float | None = None,
    reminders: tuple[float, ...] = (),
) -> InterruptSpec:
    """An input interrupt."""
    return InterruptSpec(
        id=iid,
        kind=InterruptKind.INPUT,
        payload={"q": iid},
        responders=["bob", "carol"],
        quorum=quorum,
        expires_at=expires_at,
        reminders=list(reminders),
        title=f"title {iid}",
        meta={"m": 1},
    )


def approve(actor: str) -> Callable[[Interrupt, Run], Resolution]:
    """The engine's own decide callback for an approving answer."""
    return answer(actor, {"approved": True}, approval=True)


def leftovers(run: Run, pending: list[Interrupt]) -> tuple[list[EventWrite], list[OutboxWrite]]:
    """History and outbox entries for interrupts cancelled with their run."""
    ids = [i.id for i in pending]
    return (
        [EventWrite("resolved", {"cancelled": ids, "run_status": run.status.value})],
        [OutboxWrite("interrupt.resolved", i, {"status": "cancelled"}) for i in ids],
    )


async def parked(store: Store, run_id: str = "r1", *specs: InterruptSpec) -> None:
    """Create a run that suspended on ``specs`` (default: one interrupt ``i1``) and park it."""
    await store.create_run(new_run(run_id))
    await store.commit_steps(run_id, "w1", [suspended_step(*(specs or (ask(),)))], T0)
    assert await store.release_run(run_id, "w1", 0, T0)


async def resolve(store: Store, decide: Any, *, run_id: str = "r1", iid: str = "i1") -> Any:
    """Resolve as worker w2."""
    return await store.resolve(run_id, iid, decide, claim_owner="w2", lease_until=LEASE, now=T0 + 5)


# -- runs ------------------------------------------------------------------------------
async def test_create_run_and_read_it_back(store: Store) -> None:
    assert await store.create_run(new_run("r1")) == ("r1", True)

    run = await store.get_run("r1")
    assert run is not None
    assert (run.id, run.workflow, run.version, run.status) == ("r1", "wf", "1", RunStatus.RUNNING)
    assert run.input == {"n": 1}
    assert run.requester == "alice"
    assert run.created_at.timestamp() == T0
    state = await store.load_state("r1")
    assert state is not None
    assert (state.wake_seq, state.steps, state.interrupts) == (0, {}, {})
    assert [e.type for e in await store.list_events("r1", after_id=0, limit=10)] == ["started"]
    assert await store.get_run("nope") is None
    assert await store.load_state("nope") is None


async def test_an_idempotency_key_returns_the_first_run(store: Store) -> None:
    assert await store.create_run(new_run("r1", key="k")) == ("r1", True)
    assert await store.create_run(new_run("r2", key="k")) == ("r1", False)
    assert await store.create_run(new_run("r3")) == ("r3", True)
    assert await store.create_run(new_run("r4")) == ("r4", True)  # no key: never deduplicated

    assert await store.get_run("r2") is None
    assert await store.count_runs() == {"running": 3}
    assert len(await store.list_events("r1", after_id=0, limit=10)) == 1


async def test_concurrent_starts_with_one_key_create_one_run(store: Store) -> None:
    results = await asyncio.gather(
        *(store.create_run(new_run(f"r{n}", key="same")) for n in range(10))
    )
    winners = [run_id for run_id, created in results if created]
    assert len(winners) == 1
    assert {run_id for run_id, _ in results} == set(winners)
    assert await store.count_runs() == {"running": 1}


async def test_commit_steps_writes_steps_interrupts_timers_events_and_outbox(
    store: Store,
) -> None:
    await store.create_run(new_run("r1"))
    spec = ask("i1", expires_at=T0 + 60, reminders=(T0 + 20, T0 + 40))
    await store.commit_steps("r1", "w1", [done_step("0"), suspended_step(spec, path="1")], T0)

    state = await store.load_state("r1")
    assert state is not None
    assert set(state.steps) == {"0", "1"}
    assert state.steps["0"].status.value == "completed"
    assert state.step_outputs == {"0": '{"ok": true}', "1": None}
    i = state.interrupts["i1"]
    assert (i.status, i.kind, i.path, i.step) == (
        InterruptStatus.PENDING,
        InterruptKind.INPUT,
        "1",
        "step1",
    )
    assert (i.payload, i.responders, i.title, i.meta) == (
        {"q": "i1"},
        ["bob", "carol"],
        "title i1",
        {"m": 1},
    )
    assert i.expires_at is not None and i.expires_at.timestamp() == T0 + 60
    assert [r.timestamp() for r in i.reminders] == [T0 + 20, T0 + 40]
    assert (i.workflow, i.version, i.requester, i.refs) == ("wf", "1", "alice", {})
    assert await store.next_timer_at() == T0 + 20
    assert await store.outbox_backlog() == 1
    types = [e.type for e in await store.list_events("r1", after_id=0, limit=10)]
    assert types == ["started", "suspended"]


async def test_a_rewritten_step_replaces_the_old_record(store: Store) -> None:
    await store.create_run(new_run("r1"))
    await store.commit_steps("r1", "w1", [done_step("0", '{"v": 1}')], T0)
    await store.commit_steps("r1", "w1", [done_step("0", '{"v": 2}')], T0 + 1)

    state = await store.load_state("r1")
    assert state is not None and state.step_outputs == {"0": '{"v": 2}'}


async def test_only_the_owner_may_commit(store: Store) -> None:
    await store.create_run(new_run("r1"))

    with pytest.raises(LostOwnership):
        await store.commit_steps("r1", "w2", [done_step("0")], T0)
    with pytest.raises(LostOwnership):
        await store.commit_steps("nope", "w1", [done_step("0")], T0)
    state = await store.load_state("r1")
    assert state is not None and state.steps == {}


async def test_release_parks_the_run(store: Store) -> None:
    await parked(store)

    run = await store.get_run("r1")
    assert run is not None and run.status is RunStatus.SUSPENDED
    assert await store.claim_runs("w9", T0 + 1e6, T0 + 2e6, [], 10) == []


async def test_release_after_a_resolution_returns_false_to_drive_again(store: Store) -> None:
    await store.create_run(new_run("r1"))
    await store.commit_steps("r1", "w1", [suspended_step(ask())], T0)
    # Someone answers while w1 is still driving: the run is not parked, so no take-over.
    result = await resolve(store, approve("bob"))
    assert result.claimed is None and result.interrupt.status is InterruptStatus.APPROVED

    assert await store.release_run("r1", "w1", 0, T0) is False
    state = await store.load_state("r1")
    assert state is not None
    assert state.run.status is RunStatus.RUNNING and state.wake_seq == 1
    assert await store.release_run("r1", "w1", 1, T0) is True


async def test_release_with_steps_records_them_and_parks_in_one_write(store: Store) -> None:
    await store.create_run(new_run("r1"))
    assert await store.release_run(
        "r1", "w1", 0, T0, [done_step("0"), suspended_step(ask(), path="1")]
    )

    state = await store.load_state("r1")
    assert state is not None and state.run.status is RunStatus.SUSPENDED
    assert {p: r.status.value for p, r in state.steps.items()} == {
        "0": "completed",
        "1": "suspended",
    }
    assert state.interrupts["i1"].status is InterruptStatus.PENDING
    assert [m.topic for m, _ in await store.claim_outbox("w1", T0 + 1, T0 + 60, [], 10)] == [
        "interrupt.created"
    ]
    assert (await resolve(store, approve("bob"))).claimed is not None  # parked: taken over


async def test_release_with_steps_after_a_resolution_records_them_but_does_not_park(
    store: Store,
) -> None:
    await store.create_run(new_run("r1"))
    await store.commit_steps("r1", "w1", [suspended_step(ask())], T0)
    await resolve(store, approve("bob"))

    assert await store.release_run("r1", "w1", 0, T0, [done_step("1")]) is False
    state = await store.load_state("r1")
    assert state is not None and state.run.status is RunStatus.RUNNING
    assert state.steps["1"].status.value == "completed"
    # Fenced like commit_steps: a worker that lost the run writes nothing.
    with pytest.raises(LostOwnership):
        await store.release_run("r1", "w2", 1, T0, [done_step("2")])
    state = await store.load_state("r1")
    assert state is not None and "2" not in state.steps


async def test_a_driver_whose_run_was_taken_over_is_fenced(store: Store) -> None:
    await store.create_run(new_run("r1", lease_until=T0 + 10))
    # w1's lease ran out: w2 takes the run over.
    assert await store.claim_runs("w2", T0 + 11, T0 + 50, [], 10) == ["r1"]

    with pytest.raises(LostOwnership):
        await store.commit_steps("r1", "w1", [done_step("0")], T0 + 12)
    with pytest.raises(LostOwnership):
        await store.release_run("r1", "w1", 0, T0 + 12)
    fin = FinishWrite(RunStatus.COMPLETED, "1", None, T0 + 12, [], [])
    with pytest.raises(LostOwnership):
        await store.finish_run("r1", "w1", fin)
    await store.abandon_run("r1", "w1", T0)  # not w1's any more: no effect

    await store.commit_steps("r1", "w2", [done_step("0")], T0 + 12)
    await store.finish_run("r1", "w2", fin)
    run = await store.get_run("r1")
    assert run is not None and (run.status, run.output) == (RunStatus.COMPLETED, 1)


async def test_an_abandoned_run_is_claimed_again_from_its_retry_time(store: Store) -> None:
    await store.create_run(new_run("r1"))
    await store.abandon_run("r1", "w1", T0 + 30)

    assert await store.claim_runs("w2", T0 + 29, T0 + 100, [], 10) == []
    assert await store.claim_runs("w2", T0 + 31, T0 + 100, [], 10) == ["r1"]
    await store.commit_steps("r1", "w2", [done_step("0")], T0 + 31)


async def test_finish_records_the_result_and_cancels_leftovers(store: Store) -> None:
    await store.create_run(new_run("r1"))
    await store.commit_steps("r1", "w1", [suspended_step(ask("i1", expires_at=T0 + 9))], T0)
    fin = FinishWrite(
        status=RunStatus.FAILED,
        output_json=None,
        error_json='{"type": "Boom", "message": "bad", "traceback": ""}',
        now=T0 + 3,
        events=[EventWrite("failed", {})],
        outbox=[OutboxWrite("run.finished", None, {"status": "failed"})],
        steps=[done_step("9")],
    )
    await store.finish_run("r1", "w1", fin, leftovers)

    detail = await store.get_detail("r1")
    assert detail is not None
    assert detail.run.status is RunStatus.FAILED
    assert detail.run.error is not None and detail.run.error.type == "Boom"
    assert [s.path for s in detail.steps] == ["0", "9"]
    (i,) = detail.interrupts
    assert (i.status, i.resolved_by) == (InterruptStatus.CANCELLED, "system")
    assert i.resolved_at is not None and i.resolved_at.timestamp() == T0 + 3
    assert [e.type for e in detail.events] == ["started", "suspended", "failed", "resolved"]
    assert detail.events[-1].data == {"cancelled": ["i1"], "run_status": "failed"}
    assert await store.next_timer_at() is None
    assert await store.outbox_backlog() == 3  # created, run.finished, cancelled

    with pytest.raises(LostOwnership):  # finished: nobody owns it any more
        await store.commit_steps("r1", "w1", [done_step("1")], T0 + 4)


async def test_cancel_run(store: Store) -> None:
    await parked(store, "r1", ask("i1", reminders=(T0 + 5,)), ask("i2"))
    with pytest.raises(RunNotFound):
        await store.cancel_run("nope", T0, [], [])

    run = await store.cancel_run(
        "r1", T0 + 1, [EventWrite("cancelled", {"by": "bob"})], [], leftovers
    )

    assert run.status is RunStatus.CANCELLED
    detail = await store.get_detail("r1")
    assert detail is not None and detail.run.status is RunStatus.CANCELLED
    assert {i.id: i.status for i in detail.interrupts} == {
        "i1": InterruptStatus.CANCELLED,
        "i2": InterruptStatus.CANCELLED,
    }
    assert [e.type for e in detail.events][-2:] == ["cancelled", "resolved"]
    assert await store.next_timer_at() is None
    with pytest.raises(RunNotActive):
        await store.cancel_run("r1", T0 + 2, [], [])
    with pytest.raises(AlreadyResolved):
        await resolve(store, approve("bob"))


async def test_cancelling_a_running_run_fences_its_driver(store: Store) -> None:
    await store.create_run(new_run("r1"))
    await store.cancel_run("r1", T0 + 1, [], [])

    with pytest.raises(LostOwnership):
        await store.commit_steps("r1", "w1", [done_step("0")], T0 + 2)
    with pytest.raises(LostOwnership):
        await store.release_run("r1", "w1", 0, T0 + 2)


# -- resolve ---------------------------------------------------------------------------
async def test_resolve_takes_over_a_parked_run(store: Store) -> None:
    await parked(store, "r1", ask("i1", expires_at=T0 + 60))

    result = await resolve(store, approve("bob"))

    assert result.interrupt.status is InterruptStatus.APPROVED
    assert result.interrupt.resolved_by == "bob"
    assert [r.actor for r in result.interrupt.responses] == ["bob"]
    assert result.claimed is not None
    assert result.claimed.run.status is RunStatus.RUNNING
    assert result.claimed.wake_seq == 1
    assert result.claimed.interrupts["i1"].status is InterruptStatus.APPROVED
    assert result.claimed.interrupts["i1"].data == {"approved": True}
    assert await store.next_timer_at() is None  # the expiry went with the answer
    # w2 drives it now; w1 is fenced.
    await store.commit_steps("r1", "w2", [done_step("1")], T0 + 6)
    with pytest.raises(LostOwnership):
        await store.commit_steps("r1", "w1", [done_step("2")], T0 + 6)


async def test_a_resolution_stamped_at_its_decision_records_that_time(store: Store) -> None:
    await parked(store, "r1")

    def stamped(interrupt: Interrupt, run: Run) -> Resolution:
        res = approve("bob")(interrupt, run)
        res.at = T0 + 7  # taken inside the transaction, after the call's now (T0 + 5)
        return res

    result = await resolve(store, stamped)

    for found in (result.interrupt, await store.get_interrupt("r1", "i1")):
        assert found is not None and found.resolved_at is not None
        assert found.resolved_at.timestamp() == T0 + 7
        assert [r.at.timestamp() for r in found.responses] == [T0 + 7]
    resolved = [e for e in await store.list_events("r1", after_id=0, limit=50)][-1]
    assert resolved.at.timestamp() == T0 + 7


async def test_resolve_reports_missing_runs_and_interrupts(store: Store) -> None:
    await parked(store)

    with pytest.raises(RunNotFound):
        await resolve(store, approve("bob"), run_id="nope")
    with pytest.raises(InterruptNotFound):
        await resolve(store, approve("bob"), iid="nope")


async def test_a_quorum_vote_is_recorded_without_resolving(store: Store) -> None:
    await parked(store, "r1", ask("i1", quorum=2))

    first = await resolve(store, approve("bob"))
    assert first.interrupt.status is InterruptStatus.PENDING and first.claimed is None
    assert first.interrupt.approvals == 1
    second = await resolve(store, approve("carol"))
    assert second.interrupt.status is InterruptStatus.APPROVED and second.claimed is not None

    stored = await store.get_interrupt("r1", "i1")
    assert stored is not None
    assert [(r.actor, r.approved, r.data) for r in stored.responses] == [
        ("bob", True, {"approved": True}),
        ("carol", True, {"approved": True}),
    ]


async def test_what_decide_raises_aborts_everything(store: Store) -> None:
    await parked(store)
    before = await store.list_events("r1", after_id=0, limit=100)

    def refuse(interrupt: Interrupt, run: Run) -> Resolution:
        assert interrupt.status is InterruptStatus.PENDING
        assert run.status is RunStatus.SUSPENDED
        raise ValueError("no")

    with pytest.raises(ValueError, match="no"):
        await resolve(store, refuse)
    assert await store.list_events("r1", after_id=0, limit=100) == before
    interrupt = await store.get_interrupt("r1", "i1")
    assert interrupt is not None and interrupt.status is InterruptStatus.PENDING


@pytest.mark.parametrize("quorum", [1, 3])
async def test_twenty_concurrent_resolves_have_exactly_the_needed_winners(
    store: Store, quorum: int
) -> None:
    await parked(store, "r1", ask("i1", quorum=quorum))

    results = await asyncio.gather(
        *(resolve(store, approve(f"actor{n}")) for n in range(20)), return_exceptions=True
    )

    resolved = [
        r
        for r in results
        if not isinstance(r, BaseException) and r.interrupt.status is InterruptStatus.APPROVED
    ]
    votes = [r for r in results if not isinstance(r, BaseException)]
    refused = [r for r in results if isinstance(r, BaseException)]
    assert len(resolved) == 1 and len(votes) == quorum
    assert all(isinstance(r, AlreadyResolved) for r in refused), refused
    assert sum(1 for r in votes if r.claimed is not None) == 1
    stored = await store.get_interrupt("r1", "i1")
    assert stored is not None and len(stored.responses) == quorum
    state = await store.load_state("r1")
    assert state is not None and state.wake_seq == 1


# -- workers and recovery --------------------------------------------------------------
async def test_heartbeat_lists_workers_and_extends_leases(store: Store) -> None:
    await store.create_run(new_run("r1", lease_until=T0 + 10))
    await store.create_run(new_run("r2", owner="w2", lease_until=T0 + 10))

    workers = await store.heartbeat(WorkerRow("w1", "h", 11, T0), T0 + 50)
    workers = await store.heartbeat(WorkerRow("w2", "h", 22, T0 + 1), T0 + 10)
    workers = await store.heartbeat(WorkerRow("w1", "h", 11, T0 + 2), T0 + 50)

    assert sorted((w.id, w.pid, w.heartbeat_at) for w in workers) == [
        ("w1", 11, T0 + 2),
        ("w2", 22, T0 + 1),
    ]
    # r1's lease was extended to T0+50; r2's ran out at T0+10.
    assert await store.claim_runs("w3", T0 + 20, T0 + 60, [], 10) == ["r2"]


async def test_claim_runs_takes_runs_of_dead_workers_and_respects_the_limit(
    store: Store,
) -> None:
    for n in range(5):
        await store.create_run(new_run(f"d{n}", owner="dead"))
    await store.create_run(new_run("live", owner="alive"))
    await parked(store, "parked")

    first = await store.claim_runs("w9", T0, LEASE, ["dead"], 3)
    rest = await store.claim_runs("w9", T0, LEASE, ["dead"], 10)

    assert len(first) == 3 and len(rest) == 2
    assert sorted(first + rest) == [f"d{n}" for n in range(5)]
    assert await store.claim_runs("w9", T0, LEASE, ["dead"], 10) == []


async def test_concurrent_claimers_never_share_a_run(store: Store) -> None:
    for n in range(30):
        await store.create_run(new_run(f"r{n:02}", lease_until=T0))

    claims = await asyncio.gather(
        *(store.claim_runs(f"w{k}", T0 + 1, LEASE, [], 7) for k in range(6))
    )

    claimed = [run_id for claim in claims for run_id in claim]
    assert len(claimed) == len(set(claimed)) == 30


async def test_remove_workers_releases_their_claims(store: Store) -> None:
    await parked(store, "r1", ask("i1", reminders=(T0,)))
    await store.heartbeat(WorkerRow("gone", "h", 1, T0), LEASE)
    assert len(await store.claim_timers("gone", T0, T0 + 1000, [], 10)) == 1
    assert len(await store.claim_outbox("gone", T0, T0 + 1000, [], 10)) == 1
    assert await store.claim_timers("w2", T0 + 1, T0 + 1000, [], 10) == []

    await store.remove_workers(["gone"])

    assert [w.id for w in await store.heartbeat(WorkerRow("w2", "h", 2, T0), LEASE)] == ["w2"]
    assert len(await store.claim_timers("w2", T0 + 1, T0 + 1000, [], 10)) == 1
    assert len(await store.claim_outbox("w2", T0 + 1, T0 + 1000, [], 10)) == 1


# -- timers ----------------------------------------------------------------------------
async def test_timers_are_claimed_when_due_earliest_first(store: Store) -> None:
    await parked(store, "r1", ask("i1", expires_at=T0 + 30, reminders=(T0 + 10, T0 + 20)))

    assert await store.next_timer_at() == T0 + 10
    assert await store.claim_timers("w1", T0 + 5, T0 + 100, [], 10) == []
    due = await store.claim_timers("w1", T0 + 30, T0 + 100, [], 10)
    assert [(t.run_id, t.interrupt_id, t.kind, t.due_at) for t in due] == [
        ("r1", "i1", "reminder", T0 + 10),
        ("r1", "i1", "reminder", T0 + 20),
        ("r1", "i1", "expiry", T0 + 30),
    ]
    # Claimed: nobody else gets them until the claim lapses or w1 is dead.
    assert await store.claim_timers("w2", T0 + 31, T0 + 200, [], 10) == []
    assert len(await store.claim_timers("w2", T0 + 31, T0 + 200, ["w1"], 10)) == 3
    assert len(await store.claim_timers("w3", T0 + 201, T0 + 300, [], 1)) == 1


async def test_fire_reminder_records_it_only_while_the_interrupt_waits(store: Store) -> None:
    await parked(store, "r1", ask("i1", reminders=(T0 + 1, T0 + 2)))
    first, second = await store.claim_timers("w1", T0 + 2, T0 + 100, [], 10)
    remind = [EventWrite("reminded", {"n": 1})], [OutboxWrite("interrupt.reminder", "i1", {})]

    await store.fire_reminder(first, *remind, T0 + 2)
    await resolve(store, approve("bob"))  # deletes the interrupt's timers
    await store.fire_reminder(second, *remind, T0 + 3)

    types = [e.type for e in await store.list_events("r1", after_id=0, limit=100)]
    assert types.count("reminded") == 1
    assert await store.next_timer_at() is None


async def test_a_reminder_fired_by_two_claimers_is_recorded_once(store: Store) -> None:
    # w1's claim lapses while it is slow (or it is wrongly declared dead) and w2 claims
    # the same timer: both fire it, one reminder is recorded.
    await parked(store, "r1", ask("i1", reminders=(T0 + 1,)))
    (slow,) = await store.claim_timers("w1", T0 + 2, T0 + 3, [], 10)
    (late,) = await store.claim_timers("w2", T0 + 4, T0 + 100, [], 10)
    assert slow.id == late.id
    remind = [EventWrite("reminded", {"n": 1})], [OutboxWrite("interrupt.reminder", "i1", {})]

    await asyncio.gather(
        store.fire_reminder(slow, *remind, T0 + 4), store.fire_reminder(late, *remind, T0 + 4)
    )

    types = [e.type for e in await store.list_events("r1", after_id=0, limit=100)]
    assert types.count("reminded") == 1
    claimed = await store.claim_outbox("w3", T0 + 5, T0 + 100, [], 100)
    assert [m.topic for m, _ in claimed].count("interrupt.reminder") == 1


async def test_a_snooze_timer_names_its_actor_and_is_recorded_once(store: Store) -> None:
    await parked(store, "r1", ask("i1", expires_at=T0 + 50))

    assert await store.add_timer("r1", "i1", "snooze", T0 + 10, "bob")
    assert not await store.add_timer("r1", "nope", "snooze", T0 + 10, "bob")
    (slow,) = await store.claim_timers("w1", T0 + 11, T0 + 12, [], 10)
    (late,) = await store.claim_timers("w2", T0 + 13, T0 + 100, [], 10)
    assert (late.kind, late.actor, late.due_at) == ("snooze", "bob", T0 + 10)
    fired = [EventWrite("snoozed", {"actor": "bob"})], [OutboxWrite("interrupt.snoozed", "i1", {})]
    await asyncio.gather(
        store.fire_reminder(slow, *fired, T0 + 13), store.fire_reminder(late, *fired, T0 + 13)
    )

    types = [e.type for e in await store.list_events("r1", after_id=0, limit=100)]
    assert types.count("snoozed") == 1
    assert await store.next_timer_at() == T0 + 50  # the expiry is untouched
    await resolve(store, approve("bob"))
    assert not await store.add_timer("r1", "i1", "snooze", T0 + 60, "bob")


async def test_delete_timer_and_an_expiry_resolution(store: Store) -> None:
    await parked(store, "r1", ask("i1", expires_at=T0 + 5), ask("i2", expires_at=T0 + 6))
    t1, t2 = await store.claim_timers("w1", T0 + 10, T0 + 100, [], 10)

    await store.delete_timer(t1.id)
    assert await store.next_timer_at() == T0 + 6
    result = await resolve(store, expiry(), iid="i2")
    assert result.interrupt.status is InterruptStatus.EXPIRED
    assert await store.next_timer_at() is None


# -- outbox ----------------------------------------------------------------------------
async def add_messages(store: Store, run_id: str, *topics: str) -> None:
    """Append outbox messages to a run through a step commit."""
    step = done_step(f"p{topics[0]}")
    step.outbox = [OutboxWrite(t, None, {"t": t}) for t in topics]
    await store.commit_steps(run_id, "w1", [step], T0)


async def test_an_entry_and_a_message_sharing_their_data_each_store_it(store: Store) -> None:
    # The engine hands the store one dict for an event and the message announcing it
    # (encoded once); the other entries keep their own data, in their order.
    await store.create_run(new_run("a"))
    shared = {"interrupt_id": "i1", "status": "resolved", "data": {"ok": True}}
    step = done_step("p1")
    step.events = [EventWrite("resolved", shared), EventWrite("emitted", {"n": 1})]
    step.outbox = [OutboxWrite("own", None, {"n": 2}), OutboxWrite("shared", "i1", shared)]
    await store.commit_steps("a", "w1", [step], T0)

    detail = await store.get_detail("a")
    assert detail is not None
    assert [(e.type, e.data) for e in detail.events][-2:] == [
        ("resolved", shared),
        ("emitted", {"n": 1}),
    ]
    claimed = await store.claim_outbox("w1", T0, T0 + 100, [], 10)
    assert [(m.topic, m.data) for m, _ in claimed] == [("own", {"n": 2}), ("shared", shared)]


async def test_outbox_claims_in_order_and_a_runs_later_message_waits(store: Store) -> None:
    await store.create_run(new_run("a"))
    await store.create_run(new_run("b"))
    await add_messages(store, "a", "a1", "a2")
    await add_messages(store, "b", "b1")

    first = await store.claim_outbox("w1", T0, T0 + 100, [], 1)
    assert [m.topic for m, _ in first] == ["a1"]
    assert first[0][0].attempt == 1 and first[0][1] == []
    # a2 waits behind a1 (claimed by w1); b1 is free.
    second = await store.claim_outbox("w2", T0, T0 + 100, [], 10)
    assert [m.topic for m, _ in second] == ["b1"]

    # a1 fails for one handler: it is retried later, and a2 still waits.
    await store.settle_outbox(
        [OutboxResult(first[0][0].id, ["h1"], error="boom", next_at=T0 + 50)], T0 + 1
    )
    assert await store.claim_outbox("w2", T0 + 2, T0 + 100, [], 10) == []
    again = await store.claim_outbox("w2", T0 + 51, T0 + 200, [], 10)
    assert [(m.topic, m.attempt, done) for m, done in again] == [
        ("a1", 2, ["h1"]),
        ("a2", 1, []),
    ]
    a1, a2 = (m.id for m, _ in again)
    # a1 delivered; a2 not attempted this round (reclaimable from next_at).
    await store.settle_outbox(
        [OutboxResult(a1, ["h1", "h2"]), OutboxResult(a2, [], next_at=T0 + 60)], T0 + 52
    )
    assert await store.outbox_backlog() == 2  # a2, b1
    assert await store.claim_outbox("w3", T0 + 55, T0 + 300, [], 10) == []
    assert [m.topic for m, _ in await store.claim_outbox("w3", T0 + 61, T0 + 300, [], 10)] == ["a2"]


async def test_outbox_claims_of_a_dead_worker_are_taken_over(store: Store) -> None:
    await store.create_run(new_run("a"))
    await add_messages(store, "a", "a1", "a2")
    assert len(await store.claim_outbox("dead", T0, T0 + 100, [], 10)) == 2

    assert await store.claim_outbox("w2", T0 + 1, T0 + 100, [], 10) == []
    taken = await store.claim_outbox("w2", T0 + 1, T0 + 100, ["dead"], 10)
    assert [m.topic for m, _ in taken] == ["a1", "a2"]
    await store.settle_outbox([OutboxResult(m.id, ["h"]) for m, _ in taken], T0 + 2)
    assert await store.outbox_backlog() == 0


async def test_concurrent_outbox_claimers_keep_each_runs_order(store: Store) -> None:
    for r in range(6):
        await store.create_run(new_run(f"r{r}"))
        await add_messages(store, f"r{r}", *(f"r{r}-{n}" for n in range(5)))
    delivered: list[str] = []

    async def worker(name: str) -> None:
        now = T0
        while await store.outbox_backlog():
            now += 1
            batch = await store.claim_outbox(name, now, now + 1000, [], 4)
            delivered.extend(m.topic for m, _ in batch)
            await asyncio.sleep(0)
            await store.settle_outbox([OutboxResult(m.id, ["h"]) for m, _ in batch], now)

    await asyncio.gather(*(worker(f"w{k}") for k in range(4)))

    assert len(delivered) == len(set(delivered)) == 30
    for r in range(6):
        mine = [t for t in delivered if t.startswith(f"r{r}-")]
        assert mine == [f"r{r}-{n}" for n in range(5)]


# -- refs and queries ------------------------------------------------------------------
async def test_set_ref_updates_one_key(store: Store) -> None:
    await parked(store)

    await store.set_ref("r1", "i1", "slack", {"channel": "C1", "ts": "1.2"})
    await store.set_ref("r1", "i1", "mail.id", 7)
    await store.set_ref("r1", "i1", "slack", {"channel": "C1", "ts": "3.4"})

    interrupt = await store.get_interrupt("r1", "i1")
    assert interrupt is not None
    assert interrupt.refs == {"slack": {"channel": "C1", "ts": "3.4"}, "mail.id": 7}
    with pytest.raises(InterruptNotFound):
        await store.set_ref("r1", "nope", "k", 1)


async def test_concurrent_set_refs_of_different_keys_all_stick(store: Store) -> None:
    await parked(store)

    await asyncio.gather(*(store.set_ref("r1", "i1", f"k{n}", n) for n in range(20)))

    interrupt = await store.get_interrupt("r1", "i1")
    assert interrupt is not None and interrupt.refs == {f"k{n}": n for n in range(20)}


async def test_get_detail_has_steps_with_outputs_interrupts_and_history(store: Store) -> None:
    await store.create_run(new_run("r1"))
    await store.commit_steps("r1", "w1", [done_step("0", '{"a": [1, 2]}', now=T0)], T0)
    await store.commit_steps("r1", "w1", [suspended_step(ask(), path="1", now=T0 + 1)], T0)
    assert await store.get_detail("nope") is None

    detail = await store.get_detail("r1")

    assert detail is not None
    assert [(s.path, s.output) for s in detail.steps] == [("0", {"a": [1, 2]}), ("1", None)]
    assert [i.id for i in detail.interrupts] == ["i1"]
    assert [e.type for e in detail.events] == ["started", "suspended"]
    assert [e.id for e in detail.events] == sorted(e.id for e in detail.events)


async def test_list_runs_filters_and_pages_newest_first(store: Store) -> None:
    for n in range(5):
        await store.create_run(new_run(f"a{n}", now=T0 + n, workflow="alpha"))
    await store.create_run(new_run("b0", now=T0 + 10, workflow="beta"))
    await store.cancel_run("a1", T0 + 20, [], [])

    def ids(runs: list[Run]) -> list[str]:
        return [r.id for r in runs]

    assert ids(await store.list_runs(status=None, workflow=None, limit=3, offset=0)) == [
        "b0",
        "a4",
        "a3",
    ]
    assert ids(await store.list_runs(status=None, workflow=None, limit=3, offset=3)) == [
        "a2",
        "a1",
        "a0",
    ]
    assert ids(await store.list_runs(status=None, workflow="alpha", limit=2, offset=1)) == [
        "a3",
        "a2",
    ]
    assert ids(await store.list_runs(status="cancelled", workflow=None, limit=9, offset=0)) == [
        "a1"
    ]
    assert ids(await store.list_runs(status="running", workflow="beta", limit=9, offset=0)) == [
        "b0"
    ]
    assert await store.count_runs() == {"running": 5, "cancelled": 1}


async def test_pending_interrupts_are_counted_per_workflow_and_kind(store: Store) -> None:
    event = InterruptSpec(id="e1", kind=InterruptKind.EVENT, event="deployed")
    await parked(store, "r1", ask("i1"), ask("i2"), event)
    await store.create_run(new_run("r2", workflow="deploy"))
    await store.commit_steps("r2", "w1", [suspended_step(ask("i1"))], T0)
    await store.create_run(new_run("r3", workflow="idle"))  # a run with no interrupt

    assert await store.count_pending_interrupts() == {
        "wf": {"input": 2, "event": 1},
        "deploy": {"input": 1},
    }
    await resolve(store, approve("bob"), iid="i1")
    await resolve(store, approve("bob"), run_id="r2", iid="i1")

    assert await store.count_pending_interrupts() == {"wf": {"input": 1, "event": 1}}


async def test_list_runs_filters_by_requester_and_creation_time(store: Store) -> None:
    for n in range(6):
        made = new_run(f"r{n}", now=T0 + n)
        made.requester = "carol" if n % 2 else "dave"
        await store.create_run(made)

    async def ids(**kwargs: Any) -> list[str]:
        found = await store.list_runs(status=None, workflow=None, limit=-1, offset=0, **kwargs)
        return [r.id for r in found]

    assert await ids(requester="carol") == ["r5", "r3", "r1"]
    assert await ids(created_after=T0 + 2) == ["r5", "r4", "r3", "r2"]
    assert await ids(created_before=T0 + 2) == ["r1", "r0"]
    assert await ids(requester="dave", created_after=T0 + 1, created_before=T0 + 5) == [
        "r4",
        "r2",
    ]


async def test_list_runs_keyset_pages_match_offset_pages_even_with_equal_times(
    store: Store,
) -> None:
    # Times with more precision than a datetime keeps, and three runs created at once.
    times = [T0 + 0.1234567, T0 + 1.7654321, T0 + 1.7654321, T0 + 1.7654321, T0 + 3.3333333]
    for n, at in enumerate(times):
        await store.create_run(new_run(f"k{n}", now=at))
    everything = await store.list_runs(status=None, workflow=None, limit=-1, offset=0)

    pages: list[list[str]] = []
    cursor: tuple[float, str] | None = None
    while True:
        page = await store.list_runs(status=None, workflow=None, limit=2, offset=0, before=cursor)
        if not page:
            break
        pages.append([r.id for r in page])
        # The cursor is what a client has: the run's datetime, rounded to microseconds.
        cursor = (page[-1].created_at.timestamp(), page[-1].id)

    assert [r.id for r in everything] == ["k4", "k1", "k2", "k3", "k0"]
    assert pages == [["k4", "k1"], ["k2", "k3"], ["k0"]]
    only_default = await store.list_runs(
        status="running", workflow="wf", limit=9, offset=0, requester="alice", before=cursor
    )
    assert only_default == []


async def test_list_interrupts_filters_oldest_first(store: Store) -> None:
    await parked(store, "r1", ask("x1"), ask("x2"))
    await store.create_run(new_run("r2", workflow="other"))
    await store.commit_steps("r2", "w1", [suspended_step(ask("y1"), now=T0)], T0 + 1)
    await resolve(store, approve("bob"), iid="x2")

    def ids(found: list[Interrupt]) -> list[tuple[str, str]]:
        return [(i.run_id, i.id) for i in found]

    everything = await store.list_interrupts(status=None, workflow=None, run_id=None, limit=-1)
    assert ids(everything) == [("r1", "x1"), ("r1", "x2"), ("r2", "y1")]
    pending = await store.list_interrupts(status="pending", workflow=None, run_id=None, limit=10)
    assert ids(pending) == [("r1", "x1"), ("r2", "y1")]
    assert ids(
        await store.list_interrupts(status=None, workflow="other", run_id=None, limit=10)
    ) == [("r2", "y1")]
    assert ids(await store.list_interrupts(status=None, workflow=None, run_id="r1", limit=1)) == [
        ("r1", "x1")
    ]
    approved = await store.list_interrupts(status="approved", workflow=None, run_id=None, limit=10)
    assert [(i.id, [r.actor for r in i.responses]) for i in approved] == [("x2", ["bob"])]


async def test_list_events_after_an_id(store: Store) -> None:
    await store.create_run(new_run("r1"))
    await store.create_run(new_run("r2"))
    step = done_step("0")
    step.events = [EventWrite("step_completed", {"n": n}) for n in range(5)]
    await store.commit_steps("r1", "w1", [step], T0)

    every = await store.list_events("r1", after_id=0, limit=100)
    assert [e.type for e in every] == ["started"] + ["step_completed"] * 5
    assert all(e.run_id == "r1" for e in every)
    later = await store.list_events("r1", after_id=every[2].id, limit=2)
    assert [e.data for e in later] == [{"n": 2}, {"n": 3}]
    assert await store.list_events("r1", after_id=every[-1].id, limit=10) == []
    assert every[1].at.timestamp() == T0


async def test_latest_event_ids_gives_each_known_runs_newest_entry(store: Store) -> None:
    """One read tells which of many followed runs have new entries (the SSE streams)."""
    for run_id in ("r1", "r2", "r3"):
        await store.create_run(new_run(run_id))
    step = done_step("0")
    step.events = [EventWrite("step_completed", {"n": n}) for n in range(3)]
    await store.commit_steps("r2", "w1", [step], T0)
    newest = {
        run_id: (await store.list_events(run_id, after_id=0, limit=100))[-1].id
        for run_id in ("r1", "r2", "r3")
    }

    assert await store.latest_event_ids(["r1", "r2", "r3", "nope"]) == newest
    assert await store.latest_event_ids(["r2"]) == {"r2": newest["r2"]}
    assert await store.latest_event_ids([]) == {}
    assert newest["r2"] > newest["r3"] > newest["r1"]  # r2's entries came after r3 started


async def test_list_interrupts_filters_by_label_and_pages_with_offset(store: Store) -> None:
    """Issue 10: ``label`` (a column since schema 2) and ``offset`` for paging."""
    refund = [ask(f"r{n}") for n in range(3)]
    for spec in refund:
        spec.label = "refund"
    other = ask("o1")
    await parked(store, "r1", *refund, other)

    def page(**kw: Any) -> Any:
        return store.list_interrupts(status="pending", workflow=None, run_id=None, **kw)

    assert [i.id for i in await page(limit=-1, label="refund")] == ["r0", "r1", "r2"]
    assert {i.label for i in await page(limit=-1, label="refund")} == {"refund"}
    assert [i.id for i in await page(limit=2, label="refund", offset=1)] == ["r1", "r2"]
    assert [i.id for i in await page(limit=-1)] == ["o1", "r0", "r1", "r2"]  # same time: by id
    assert [i.id for i in await page(limit=2, offset=1)] == ["r0", "r1"]
    assert (await page(limit=-1, label="nothing")) == []


async def test_cancel_run_records_the_actor_on_the_cancelled_interrupts(store: Store) -> None:
    """Issue 10: ``cancel_run(by=actor)`` is what ``resolved_by`` says."""
    await parked(store, "r1", ask("i1"))
    await store.cancel_run("r1", T0 + 1, [], [], leftovers, by="U0OPS")
    found = await store.get_interrupt("r1", "i1")
    assert found is not None
    assert (found.status, found.resolved_by) == (InterruptStatus.CANCELLED, "U0OPS")


async def test_an_escalation_fired_by_two_claimers_is_applied_once(store: Store) -> None:
    from engine import escalation, quorum

    spec = ask("i1")
    spec.escalations = escalation.plan(T0, None, [escalation.Escalation(1, ["dan"], "C0")])
    await parked(store, "r1", spec)
    (slow,) = await store.claim_timers("w1", T0 + 2, T0 + 3, [], 10)
    (late,) = await store.claim_timers("w2", T0 + 4, T0 + 100, [], 10)
    assert slow.id == late.id and slow.kind == "escalation:0"

    fired = await asyncio.gather(
        store.fire_escalation(slow, quorum.escalation(0, T0 + 4), T0 + 4),
        store.fire_escalation(late, quorum.escalation(0, T0 + 4), T0 + 4),
    )

    assert sorted(fired) == [False, True]
    interrupt = await store.get_interrupt("r1", "i1")
    assert interrupt is not None and interrupt.responders == ["bob", "carol", "dan"]
    assert interrupt.escalations[0].added == ["dan"]
    types = [e.type for e in await store.list_events("r1", after_id=0, limit=100)]
    assert types.count("escalated") == 1
    claimed = await store.claim_outbox("w3", T0 + 5, T0 + 100, [], 100)
    assert [m.topic for m, _ in claimed].count("interrupt.escalated") == 1


async def test_an_escalation_of_a_decided_interrupt_changes_nothing(store: Store) -> None:
    from engine import escalation, quorum

    spec = ask("i1")
    spec.escalations = escalation.plan(T0, None, [escalation.Escalation(1, ["dan"])])
    await parked(store, "r1", spec)
    (timer,) = await store.claim_timers("w1", T0 + 2, T0 + 100, [], 10)
    await resolve(store, approve("bob"))

    assert not await store.fire_escalation(timer, quorum.escalation(0, T0 + 6), T0 + 6)
    interrupt = await store.get_interrupt("r1", "i1")
    assert interrupt is not None and interrupt.responders == ["bob", "carol"]


# -- the responder index (who may answer what) ----------------------------------------------


def open_ask(iid: str, *, responders: list[str], allow_requester: bool = False) -> InterruptSpec:
    """An input interrupt with the given responders."""
    spec = ask(iid)
    spec.responders = responders
    spec.allow_requester = allow_requester
    return spec


async def test_answerable_reads_the_responder_index(store: Store) -> None:
    await store.create_run(new_run("r1"))
    specs = [
        open_ask("bob-only", responders=["bob"]),
        open_ask("group", responders=["group:S1", "carol"]),
        open_ask("anyone", responders=[]),
        open_ask("carol-only", responders=["carol"]),
        open_ask("alice-allowed", responders=["alice"], allow_requester=True),
        open_ask("alice-own", responders=["alice"]),
    ]
    await store.commit_steps("r1", "w1", [suspended_step(*specs)], T0)

    bob, bob_total = await store.list_answerable(
        responders=["bob", "group:S1", "*"], actor="bob", limit=10
    )
    first, total = await store.list_answerable(
        responders=["bob", "group:S1", "*"], actor="bob", limit=1, newest=True
    )
    alice, _ = await store.list_answerable(responders=["alice", "*"], actor="alice", limit=10)

    assert sorted(i.id for i in bob) == ["anyone", "bob-only", "group"] and bob_total == 3
    assert len(first) == 1 and total == 3
    assert all(i.responders is not None for i in bob)
    # the requester's own request only where it allows them
    assert sorted(i.id for i in alice) == ["alice-allowed"]
    assert sorted(await store.pending_responders()) == ["alice", "bob", "carol", "group:S1"]


async def test_answerable_pages_merge_a_persons_their_groups_and_anyones_requests(
    store: Store,
) -> None:
    """A page cut from the person's, their group's and everyone's open requests together,
    in creation order either way, an interrupt naming several of them once."""
    await store.create_run(new_run("r1"))  # requested by alice
    named = [
        ("a", ["bob"]),
        ("b", ["group:S1"]),
        ("c", []),
        ("d", ["bob", "group:S1"]),
        ("e", ["carol"]),
        ("f", []),
        ("g", ["bob"]),
    ]
    for n, (iid, who) in enumerate(named):  # created one second apart, in this order
        step = suspended_step(open_ask(iid, responders=who), path=str(n), now=T0 + n)
        await store.commit_steps("r1", "w1", [step], T0 + n)
    mine = ["bob", "group:S1", "*"]

    oldest, total = await store.list_answerable(responders=mine, actor="bob", limit=3)
    newest, _ = await store.list_answerable(responders=mine, actor="bob", limit=3, newest=True)
    every, _ = await store.list_answerable(responders=mine, actor="bob", limit=-1)

    assert [i.id for i in oldest] == ["a", "b", "c"]
    assert [i.id for i in newest] == ["g", "f", "d"]
    assert [i.id for i in every] == ["a", "b", "c", "d", "f", "g"]
    assert total == 6
    uncounted = await store.list_answerable(responders=mine, actor="bob", limit=3, counted=False)
    assert ([i.id for i in uncounted[0]], uncounted[1]) == (["a", "b", "c"], -1)


async def test_a_resolved_interrupt_leaves_the_answerable_list_for_recently_decided(
    store: Store,
) -> None:
    await parked(
        store, "r1", open_ask("i1", responders=["bob"]), open_ask("i2", responders=["bob"])
    )

    await resolve(store, approve("bob"), iid="i1")
    waiting, total = await store.list_answerable(responders=["bob"], actor="bob", limit=10)
    decided = await store.list_decided(responders=["bob"], limit=10)

    assert [i.id for i in waiting] == ["i2"] and total == 1
    assert [(i.id, i.resolved_by) for i in decided] == [("i1", "bob")]
    assert "bob" in await store.pending_responders()


async def test_recently_decided_lists_each_interrupt_once_newest_first_across_responders(
    store: Store,
) -> None:
    """Bob's decided list merges what named him, his group and anyone: an interrupt
    naming several of them once, most recently decided first, then cut to the limit."""
    specs = [
        open_ask("both", responders=["bob", "group:S1"]),
        open_ask("anyone", responders=[]),
        open_ask("carols", responders=["carol"]),
        open_ask("bobs", responders=["bob"]),
        open_ask("groups", responders=["group:S1"]),
    ]
    await parked(store, "r1", *specs)
    order = ["groups", "both", "carols", "anyone", "bobs"]  # decided in this order
    for n, iid in enumerate(order):
        await store.resolve(
            "r1", iid, approve("dan"), claim_owner="w2", lease_until=LEASE, now=T0 + 10 + n
        )
    mine = ["bob", "group:S1", "*"]

    every = await store.list_decided(responders=mine, limit=10)
    newest_two = await store.list_decided(responders=mine, limit=2)
    events = await store.list_decided(responders=mine, kind="event", limit=10)

    assert [i.id for i in every] == ["bobs", "anyone", "both", "groups"]
    assert [i.id for i in newest_two] == ["bobs", "anyone"]
    assert events == []


async def test_cancelling_a_run_empties_its_answerable_list(store: Store) -> None:
    await parked(store, "r1", open_ask("i1", responders=["bob"]))

    await store.cancel_run("r1", T0 + 1, [], [], leftovers, by="alice")

    assert await store.list_answerable(responders=["bob"], actor="bob", limit=10) == ([], 0)
    assert [i.id for i in await store.list_decided(responders=["bob"], limit=10)] == ["i1"]


async def test_index_responders_replaces_an_interrupts_responders(store: Store) -> None:
    await parked(store, "r1", open_ask("i1", responders=["bob"]))

    await reindex(store, "r1", "i1", ["bob", "dave"])
    dave, _ = await store.list_answerable(responders=["dave"], actor="dave", limit=10)
    await reindex(store, "r1", "i1", [])
    anyone, _ = await store.list_answerable(responders=["erin", "*"], actor="erin", limit=10)

    assert [i.id for i in dave] == ["i1"]
    assert [i.id for i in anyone] == ["i1"]


async def reindex(store: Store, run_id: str, iid: str, responders: list[str]) -> None:
    """Call the backend's ``index_responders`` in one of its transactions (escalation's use)."""
    from engine.store.postgres import responders as pg_responders
    from engine.store.postgres.store import PostgresStore
    from engine.store.sqlite import responders as sqlite_responders
    from engine.store.sqlite.store import SQLiteStore

    if isinstance(store, SQLiteStore):
        await store._write(
            lambda conn: sqlite_responders.index_responders(conn, run_id, iid, responders)
        )
    else:
        assert isinstance(store, PostgresStore)
        await store._tx(lambda conn: pg_responders.index_responders(conn, run_id, iid, responders))


async def test_preferences_are_stored_per_actor_and_key(store: Store) -> None:
    assert await store.get_preference("bob", "digest") is None

    await store.set_preference("bob", "digest", '"on"', T0)
    await store.set_preference("bob", "digest", '"off"', T0 + 1)
    await store.set_preference("carol", "digest", '"on"', T0)

    assert await store.get_preference("bob", "digest") == '"off"'
    assert await store.get_preference("carol", "digest") == '"on"'
    await store.set_preference("bob", "digest", None, T0 + 2)
    assert await store.get_preference("bob", "digest") is None
