"""Starting runs and reading them back: list_runs, get_run, list_interrupts, events."""

import time
import uuid
from collections.abc import Callable

import pytest
from pydantic import BaseModel

from engine import (
    Engine,
    EventType,
    IdempotencyKeyReused,
    Interrupt,
    InterruptKind,
    InterruptNotFound,
    InterruptStatus,
    InvalidInput,
    OutboxMessage,
    RunNotFound,
    RunStatus,
    StepContext,
    StepStatus,
    Workflow,
    WorkflowNotRegistered,
    open_store,
    step,
)
from tests.engine.conftest import EngineFactory
from tests.engine.wf_common import Approval, Done, Req, Shown, pending, settle
from tests.support.polling import eventually


@step
async def quick(r: Req) -> Done:
    return Done(name=r.name)


@step
async def prepare(r: Req) -> Req:
    return Req(name=r.name.upper(), amount=r.amount * 2)


@step
async def ask(r: Req, ctx: StepContext[Shown, Approval]) -> Done:
    responders = ["ann", "@ops"] if r.amount > 100 else []
    answer = await ctx.suspend(Shown(question=r.name), responders=responders)
    return Done(name=r.name, approved=answer.approved)


def workflows() -> list[Workflow]:
    return [
        Workflow("quick", input=Req, output=Done).then(quick),
        Workflow("ask", input=Req, output=Done).then(prepare).then(ask),
    ]


async def test_start_validates_the_input_and_creates_nothing_when_bad(
    engine_factory: EngineFactory,
) -> None:
    engine = await engine_factory(*workflows())
    with pytest.raises(InvalidInput) as info:
        await engine.start("quick", {"amount": "many"})
    assert info.value.workflow == "quick"
    assert set(info.value.errors) == {"name", "amount"}
    assert "invalid input for workflow 'quick'" in str(info.value)
    assert await engine.list_runs() == []


async def test_start_of_an_unknown_workflow_raises(engine: Engine) -> None:
    with pytest.raises(WorkflowNotRegistered, match="'nope' is not registered"):
        await engine.start("nope", {})


async def test_start_with_a_used_idempotency_key_and_the_same_input_returns_the_same_run(
    engine_factory: EngineFactory,
) -> None:
    engine = await engine_factory(*workflows())
    first = await engine.start("quick", {"name": "a"}, idempotency_key="k1")
    again = await engine.start("quick", {"name": "a", "amount": 0}, idempotency_key="k1")
    assert again == first
    await settle(engine, first)
    (run,) = await engine.list_runs()
    assert run.input == {"name": "a", "amount": 0}


async def test_start_run_returns_the_run_as_find_run_reads_it_and_whether_it_is_new(
    engine_factory: EngineFactory,
) -> None:
    engine = await engine_factory(*workflows())
    run, created = await engine.start_run("ask", {"name": "a"}, idempotency_key="k1")
    stored = await engine.find_run(run.id)
    assert created and stored is not None
    assert run.model_dump() == stored.model_dump() or (
        stored.status is not RunStatus.RUNNING  # its step may have run meanwhile
        and run.model_dump(exclude={"status", "updated_at"})
        == stored.model_dump(exclude={"status", "updated_at"})
    )
    assert run.status is RunStatus.RUNNING and run.input == {"name": "a", "amount": 0}
    await settle(engine, run.id)

    again, created_again = await engine.start_run("ask", {"name": "a"}, idempotency_key="k1")
    assert not created_again
    assert again == await engine.find_run(run.id)  # the stored run, as it is now
    assert again.status is RunStatus.SUSPENDED


async def test_run_ids_are_uuid7_in_the_order_runs_were_started(
    engine_factory: EngineFactory,
) -> None:
    # Time-ordered ids keep each new run's rows at the end of the indexes keyed by run id.
    engine = await engine_factory(*workflows())
    before_ms = int(time.time() * 1000)
    ids = [await engine.start("quick", {"name": str(i)}) for i in range(50)]
    after_ms = int(time.time() * 1000)
    parsed = [uuid.UUID(hex=run_id) for run_id in ids]
    assert [p.hex for p in parsed] == ids  # 32 lowercase hex digits, as before
    assert {p.version for p in parsed} == {7} and {p.variant for p in parsed} == {uuid.RFC_4122}
    assert ids == sorted(ids) and len(set(ids)) == 50
    assert before_ms <= int(ids[0][:12], 16) <= int(ids[-1][:12], 16) <= after_ms
    for run_id in ids:
        await settle(engine, run_id)


async def test_an_idempotency_key_reused_for_other_input_or_workflow_is_refused(
    engine_factory: EngineFactory,
) -> None:
    engine = await engine_factory(*workflows())
    first = await engine.start("quick", {"name": "a"}, idempotency_key="k1")
    with pytest.raises(IdempotencyKeyReused) as info:
        await engine.start("quick", {"name": "other"}, idempotency_key="k1")
    assert (info.value.key, info.value.run_id) == ("k1", first)
    assert "already started run" in str(info.value)
    with pytest.raises(IdempotencyKeyReused):
        await engine.start("ask", {"name": "a"}, idempotency_key="k1")
    assert [r.id for r in await engine.list_runs()] == [first]


async def test_find_run_counts_and_ping_answer_without_loading_details(
    engine_factory: EngineFactory,
) -> None:
    engine = await engine_factory(*workflows())
    assert await engine.find_run("nope") is None
    run_id = await engine.start("ask", {"name": "x"})
    await settle(engine, run_id)
    found = await engine.find_run(run_id)
    assert found is not None and found.status is RunStatus.SUSPENDED
    assert (await engine.count_runs()).get("suspended") == 1
    assert await engine.outbox_backlog() >= 0
    await engine.ping()


async def test_list_runs_filters_by_status_and_workflow_newest_first(
    engine_factory: EngineFactory,
) -> None:
    engine = await engine_factory(*workflows())
    ids = []
    for name, wf in [("a", "quick"), ("b", "ask"), ("c", "quick"), ("d", "ask"), ("e", "quick")]:
        ids.append(await engine.start(wf, {"name": name}))
        await settle(engine, ids[-1])
    a, b, c, d, e = ids

    assert [r.id for r in await engine.list_runs()] == [e, d, c, b, a]
    assert [r.id for r in await engine.list_runs(workflow="quick")] == [e, c, a]
    assert [r.id for r in await engine.list_runs(status=RunStatus.SUSPENDED)] == [d, b]
    assert [r.id for r in await engine.list_runs(status="completed", workflow="ask")] == []
    assert [r.id for r in await engine.list_runs(limit=2)] == [e, d]
    assert [r.id for r in await engine.list_runs(limit=2, offset=2)] == [c, b]
    assert [r.id for r in await engine.list_runs(workflow="quick", limit=1, offset=1)] == [c]
    assert await engine.list_runs(offset=5) == []


async def test_list_runs_by_requester_time_window_and_keyset_cursor(
    engine_factory: EngineFactory,
) -> None:
    engine = await engine_factory(*workflows())
    ids = []
    for name, who in [("a", "U0CAROL"), ("b", "U0DAVE"), ("c", "U0CAROL"), ("d", "U0CAROL")]:
        ids.append(await engine.start("quick", {"name": name}, requester=who))
        await settle(engine, ids[-1])
    a, b, c, d = ids
    runs = {r.id: r for r in await engine.list_runs()}

    assert [r.id for r in await engine.list_runs(requester="U0CAROL")] == [d, c, a]
    first = await engine.list_runs(requester="U0CAROL", limit=2)
    cursor = (first[-1].created_at, first[-1].id)
    assert [r.id for r in await engine.list_runs(requester="U0CAROL", before=cursor)] == [a]
    window = await engine.list_runs(
        created_after=runs[b].created_at, created_before=runs[d].created_at
    )
    assert [r.id for r in window] == [c, b]


async def test_get_run_has_steps_with_outputs_pending_interrupts_and_ordered_history(
    engine_factory: EngineFactory,
) -> None:
    engine = await engine_factory(*workflows())
    run_id = await engine.start("ask", {"name": "x", "amount": 3}, requester="carol")
    await settle(engine, run_id)
    detail = await engine.get_run(run_id)
    assert detail.run.status is RunStatus.SUSPENDED
    assert detail.run.requester == "carol"
    assert detail.run.input == {"name": "x", "amount": 3}
    assert [(s.name, s.status, s.output) for s in detail.steps] == [
        ("prepare", StepStatus.COMPLETED, {"name": "X", "amount": 6}),
        ("ask", StepStatus.SUSPENDED, {"waiting_on": "1:ask#0"}),
    ]
    (waiting,) = detail.pending
    assert (waiting.id, waiting.payload) == ("1:ask#0", {"question": "X"})
    assert [e.type for e in detail.events] == [
        EventType.STARTED,
        EventType.STEP_STARTED,
        EventType.STEP_COMPLETED,
        EventType.STEP_STARTED,
        EventType.SUSPENDED,
    ]
    assert detail.events[0].data == {"workflow": "ask", "version": "1", "requester": "carol"}

    await engine.resume(run_id, waiting.id, {"approved": True}, actor="ann")
    await settle(engine, run_id)
    detail = await engine.get_run(run_id)
    assert detail.run.status is RunStatus.COMPLETED
    assert detail.run.output == {"name": "X", "approved": True, "by": None}
    assert detail.pending == []
    assert [e.type for e in detail.events][5:] == [
        EventType.RESPONSE_RECORDED,
        EventType.RESOLVED,
        EventType.STEP_STARTED,
        EventType.STEP_COMPLETED,
        EventType.COMPLETED,
    ]
    ids = [e.id for e in detail.events]
    assert ids == sorted(ids) and len(set(ids)) == len(ids)
    assert [e.at for e in detail.events] == sorted(e.at for e in detail.events)
    assert [s.status for s in detail.steps] == [StepStatus.COMPLETED, StepStatus.COMPLETED]

    later = await engine.events(run_id, after_id=ids[4])
    assert [e.id for e in later] == ids[5:]
    assert [e.id for e in await engine.events(run_id, limit=2)] == ids[:2]


async def test_get_run_of_an_unknown_run_raises(engine: Engine) -> None:
    with pytest.raises(RunNotFound):
        await engine.get_run("nope")
    with pytest.raises(RunNotFound):
        await engine.get_interrupt("nope", "x")


async def test_get_interrupt_of_an_unknown_id_raises(engine_factory: EngineFactory) -> None:
    engine = await engine_factory(*workflows())
    run_id = await engine.start("ask", {"name": "x"})
    await settle(engine, run_id)
    with pytest.raises(InterruptNotFound):
        await engine.get_interrupt(run_id, "nope")


async def test_list_interrupts_filters_by_workflow_and_status(
    engine_factory: EngineFactory,
) -> None:
    other = Workflow("ask2", input=Req, output=Done).then(ask)
    engine = await engine_factory(*workflows(), other)
    first = await engine.start("ask", {"name": "a"})
    await settle(engine, first)
    second = await engine.start("ask2", {"name": "b"})
    await settle(engine, second)
    assert [i.run_id for i in await engine.list_interrupts()] == [first, second]
    assert [i.run_id for i in await engine.list_interrupts(workflow="ask2")] == [second]
    assert [i.run_id for i in await engine.list_interrupts(limit=1)] == [first]

    (done,) = await pending(engine, first)
    await engine.resume(first, done.id, {"approved": False}, actor="x")
    await settle(engine, first)
    assert [i.run_id for i in await engine.list_interrupts()] == [second]
    rejected = await engine.list_interrupts(status=InterruptStatus.REJECTED)
    assert [(i.run_id, i.resolved_by) for i in rejected] == [(first, "x")]
    assert len(await engine.list_interrupts(status=None)) == 2


class Paid(BaseModel):
    amount: int


@step(events={"paid": Paid})
async def wait_paid(r: Req, ctx: StepContext) -> Done:  # type: ignore[type-arg]
    await ctx.wait_for_event("paid", Paid)
    return Done(name=r.name)


async def test_list_interrupts_filters_by_kind_in_the_database_oldest_first(
    engine_factory: EngineFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    paying = Workflow("pay", input=Req, output=Done).then(wait_paid)
    engine = await engine_factory(*workflows(), paying)
    asks, payments = [], []
    for n in range(3):
        for name, made in (("ask", asks), ("pay", payments)):
            run_id = await engine.start(name, {"name": f"{name} {n}"})
            await settle(engine, run_id)
            made.append(run_id)
    asked: list[dict[str, object]] = []
    store_list = engine.store.list_interrupts

    async def recorded(**kwargs: object) -> list[Interrupt]:
        asked.append(kwargs)
        return await store_list(**kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(engine.store, "list_interrupts", recorded)

    inputs = await engine.list_interrupts(kind="input")
    events = await engine.list_interrupts(kind=InterruptKind.EVENT, limit=2)

    assert [i.run_id for i in inputs] == asks
    assert [i.run_id for i in events] == payments[:2]
    # The store is asked for that kind and that many, not for everything to filter here.
    assert [(a["kind"], a["limit"]) for a in asked] == [("input", 100), ("event", 2)]


async def test_pending_interrupts_are_counted_per_workflow_and_kind_in_the_database(
    engine_factory: EngineFactory,
) -> None:
    other = Workflow("ask2", input=Req, output=Done).then(ask)
    engine = await engine_factory(*workflows(), other)
    runs = [await engine.start("ask", {"name": f"a{n}"}) for n in range(3)]
    runs.append(await engine.start("ask2", {"name": "b"}))
    runs.append(await engine.start("quick", {"name": "c"}))  # finishes without asking
    for run_id in runs:
        await settle(engine, run_id)
    assert await engine.count_pending_interrupts() == {"ask": {"input": 3}, "ask2": {"input": 1}}

    (answered,) = await pending(engine, runs[0])
    await engine.resume(runs[0], answered.id, {"approved": True}, actor="x")
    await engine.cancel(runs[3], reason="not needed", actor="x")
    await settle(engine, runs[0])

    assert await engine.count_pending_interrupts() == {"ask": {"input": 2}}


async def test_list_interrupts_for_an_actor_shows_only_what_they_may_answer(
    engine_factory: EngineFactory,
) -> None:
    engine = await engine_factory(*workflows())
    open_to_all = await engine.start("ask", {"name": "open"}, requester="carol")
    await settle(engine, open_to_all)
    restricted = await engine.start("ask", {"name": "big", "amount": 500}, requester="dan")
    await settle(engine, restricted)

    def runs(found: list) -> list[str]:  # type: ignore[type-arg]
        return [i.run_id for i in found]

    assert runs(await engine.list_interrupts(actor="ann")) == [open_to_all, restricted]
    assert runs(await engine.list_interrupts(actor="eve")) == [open_to_all]
    assert runs(await engine.list_interrupts(actor="eve", groups=["@ops"])) == [
        open_to_all,
        restricted,
    ]
    # The requester does not see their own request.
    assert runs(await engine.list_interrupts(actor="carol")) == []
    assert runs(await engine.list_interrupts(actor="dan", groups=["@ops"])) == [open_to_all]
    assert runs(await engine.list_interrupts(actor="ann", limit=1)) == [open_to_all]
    assert runs(await engine.list_interrupts(actor="ann", workflow="quick")) == []


class GroupDirectory:
    """An authorizer that knows group membership, so listings read the responder index."""

    def __init__(self, members: dict[str, set[str]]) -> None:
        self.members = members
        self.asked: list[list[str]] = []

    async def __call__(self, interrupt: Interrupt, actor: str) -> bool:
        return any(actor in self.members.get(r, set()) for r in interrupt.responders)

    async def groups_of(self, actor: str, responders: list[str]) -> list[str]:
        self.asked.append(sorted(responders))
        return [r for r in responders if actor in self.members.get(r, set())]


async def test_listings_for_an_actor_use_the_authorizers_groups_and_count(
    engine_factory: EngineFactory,
) -> None:
    directory = GroupDirectory({"@ops": {"eve"}})
    engine = await engine_factory(*workflows(), authorizer=directory)
    open_to_all = await engine.start("ask", {"name": "open"}, requester="carol")
    await settle(engine, open_to_all)
    restricted = await engine.start("ask", {"name": "big", "amount": 500}, requester="dan")
    await settle(engine, restricted)

    eve = await engine.list_interrupts(actor="eve", kind="input")
    assert [i.run_id for i in eve] == [open_to_all, restricted]
    assert await engine.count_interrupts(actor="eve") == 2
    assert await engine.count_interrupts(actor="frank") == 1
    assert await engine.count_interrupts(actor="dan") == 1  # not their own
    assert await engine.groups_of("eve") == ["@ops"]
    assert directory.asked[-1] == ["@ops", "ann"]

    (waiting,) = await engine.list_interrupts(run_id=restricted)
    await engine.resume(restricted, waiting.id, {"approved": True}, actor="eve")
    assert [i.run_id for i in await engine.list_interrupts(actor="eve")] == [open_to_all]
    decided = await engine.list_decided(actor="ann")
    assert [(i.run_id, i.resolved_by) for i in decided] == [(restricted, "eve")]


async def test_a_read_only_engine_queries_and_cancels_but_never_takes_runs_over(
    engine_factory: EngineFactory, db_path: str
) -> None:
    worker = await engine_factory(*workflows())
    run_id = await worker.start("ask", {"name": "x"})
    await settle(worker, run_id)
    reader = Engine(open_store(db_path), workflows=workflows())
    await reader.open_readonly()
    try:
        assert (await reader.get_run(run_id)).run.status is RunStatus.SUSPENDED
        assert len(await reader.list_interrupts(run_id=run_id)) == 1
        cancelled = await reader.cancel(run_id, reason="not needed", actor="ops")
        assert cancelled.status is RunStatus.CANCELLED
        assert reader._loops == [] and reader.driver.tasks == {}
    finally:
        await reader.close()
    assert (await worker.get_run(run_id)).run.status is RunStatus.CANCELLED


async def test_an_undelivered_request_is_recorded_in_history_and_announced(
    engine_factory: EngineFactory, collect: Callable[..., list[OutboxMessage]]
) -> None:
    engine = await engine_factory(*workflows())
    got = collect(engine, topics=["interrupt.undelivered"])
    run_id = await engine.start("ask", {"name": "x"})
    await settle(engine, run_id)
    (waiting,) = await engine.list_interrupts(run_id=run_id)
    await engine.report_undelivered(run_id, waiting.id, target="C0GONE", reason="channel_not_found")
    detail = await engine.get_run(run_id)
    assert detail.events[-1].type is EventType.UNDELIVERED
    assert detail.events[-1].data == {
        "interrupt_id": waiting.id,
        "target": "C0GONE",
        "reason": "channel_not_found",
    }
    assert detail.run.status is RunStatus.SUSPENDED  # still answerable
    await eventually(lambda: len(got) == 1)
    assert (got[0].topic, got[0].interrupt_id, got[0].data["reason"]) == (
        "interrupt.undelivered",
        waiting.id,
        "channel_not_found",
    )
    with pytest.raises(RunNotFound):
        await engine.report_undelivered("nope", "x", target=None, reason="no_destination")


async def test_preferences_round_trip_as_json(engine_factory: EngineFactory) -> None:
    engine = await engine_factory(*workflows())

    assert await engine.get_preference("U1", "digest", "auto") == "auto"
    await engine.set_preference("U1", "digest", {"mode": "on", "hour": 9})
    assert await engine.get_preference("U1", "digest") == {"mode": "on", "hour": 9}
    await engine.set_preference("U1", "digest", None)
    assert await engine.get_preference("U1", "digest") is None
