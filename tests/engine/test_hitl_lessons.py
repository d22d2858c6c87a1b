"""Regression suite for the bug classes peers' users hit (docs: hitl-lessons.md, §"pain points").

One test per bug class that applies to the engine; Slack UX classes are the bot's.
"""

import asyncio
from collections import Counter
from typing import Any

import pytest
from pydantic import BaseModel

from engine import (
    AlreadyResolved,
    DuplicateResponse,
    EventType,
    InterruptStatus,
    NotAuthorized,
    OnExpiry,
    ResumeOutcome,
    ResumeValidationError,
    RunStatus,
    StepContext,
    StepStatus,
    Workflow,
    step,
)
from tests.engine.conftest import EngineFactory
from tests.engine.wf_common import Approval, Done, Note, Req, Shown, pending, settle


class Named(BaseModel):
    name: str


class Pair(BaseModel):
    legal: Done
    notes: Done


class Budget(BaseModel):
    limit: int


def approve_then_ship(calls: Counter[str], **suspend: Any) -> Workflow:
    """``first -> ask -> ship``, each counting its executions in ``calls``."""

    @step
    async def first(r: Req) -> Req:
        calls["first"] += 1
        return r

    @step
    async def ask(r: Req, ctx: StepContext[Shown, Approval]) -> Done:
        calls["ask"] += 1
        answer = await ctx.suspend(Shown(question=f"ship {r.name}?"), **suspend)
        by = ctx.resolution.resolved_by if ctx.resolution else None
        return Done(name=r.name, approved=answer.approved, by=by)

    @step
    async def ship(d: Done) -> Done:
        calls["ship"] += 1
        return d

    return Workflow("ship", input=Req, output=Done).then(first).then(ask).then(ship)


async def started(engine: Any, requester: str | None = None) -> tuple[str, str]:
    run_id = await engine.start("ship", {"name": "x"}, requester=requester)
    assert (await settle(engine, run_id)).status is RunStatus.SUSPENDED
    (interrupt,) = await pending(engine, run_id)
    return run_id, interrupt.id


async def test_double_resume_runs_side_effects_once(engine_factory: EngineFactory) -> None:
    calls: Counter[str] = Counter()
    engine = await engine_factory(approve_then_ship(calls))
    run_id, iid = await started(engine)

    results = await asyncio.gather(
        *(engine.resume(run_id, iid, {"approved": True}, actor=f"u{k % 40}") for k in range(50)),
        return_exceptions=True,
    )
    wins = [r for r in results if isinstance(r, ResumeOutcome)]
    losses = [r for r in results if not isinstance(r, ResumeOutcome)]
    assert len(wins) == 1
    assert all(isinstance(r, AlreadyResolved | DuplicateResponse) for r in losses), losses
    run = await settle(engine, run_id)
    assert run.status is RunStatus.COMPLETED
    assert calls == {"first": 1, "ask": 2, "ship": 1}

    interrupt = await engine.get_interrupt(run_id, iid)
    assert len(interrupt.responses) == 1
    assert run.output["by"] == interrupt.resolved_by == interrupt.responses[0].actor
    events = (await engine.get_run(run_id)).events
    assert sum(e.type is EventType.RESOLVED for e in events) == 1
    assert sum(e.type is EventType.COMPLETED for e in events) == 1


async def test_double_resume_from_two_workers_runs_side_effects_once(
    engine_factory: EngineFactory,
) -> None:
    calls: Counter[str] = Counter()
    one = await engine_factory(approve_then_ship(calls), worker_id="one")
    two = await engine_factory(approve_then_ship(calls), worker_id="two")
    run_id, iid = await started(one)

    results = await asyncio.gather(
        *(
            (one if k % 2 else two).resume(run_id, iid, {"approved": True}, actor=f"u{k}")
            for k in range(20)
        ),
        return_exceptions=True,
    )
    assert sum(isinstance(r, ResumeOutcome) for r in results) == 1
    assert all(isinstance(r, ResumeOutcome | AlreadyResolved) for r in results), results
    for engine in (one, two):
        await engine.wait(run_id, until={RunStatus.COMPLETED}, timeout=10)
    assert calls == {"first": 1, "ask": 2, "ship": 1}


async def test_parallel_suspends_are_not_resolved_together(engine_factory: EngineFactory) -> None:
    calls: Counter[str] = Counter()

    @step
    async def legal(n: Named, ctx: StepContext[Shown, Approval]) -> Done:
        calls["legal"] += 1
        answer = await ctx.suspend(Shown(question="legal?"))
        return Done(name="legal", approved=answer.approved)

    @step
    async def notes(n: Named, ctx: StepContext[Shown, Note]) -> Done:
        calls["notes"] += 1
        note = await ctx.suspend(Shown(question="notes?"))
        return Done(name=note.text)

    @step
    async def after(p: Pair) -> Pair:
        calls["after"] += 1
        return p

    wf = Workflow("par", input=Named, output=Pair).parallel(legal, notes).then(after)
    engine = await engine_factory(wf)
    run_id = await engine.start("par", {"name": "x"})
    await settle(engine, run_id)
    asks = {i.step: i for i in await pending(engine, run_id)}
    assert set(asks) == {"legal", "notes"}

    await engine.resume(run_id, asks["legal"].id, {"approved": True}, actor="ann")
    assert (await settle(engine, run_id)).status is RunStatus.SUSPENDED
    assert [i.id for i in await pending(engine, run_id)] == [asks["notes"].id]
    steps = {s.name: s.status for s in (await engine.get_run(run_id)).steps}
    assert steps == {"legal": StepStatus.COMPLETED, "notes": StepStatus.SUSPENDED}
    assert calls == {"legal": 2, "notes": 1}

    await engine.resume(run_id, asks["notes"].id, {"text": "n1"}, actor="bo")
    run = await settle(engine, run_id)
    assert run.status is RunStatus.COMPLETED
    assert run.output["legal"]["approved"] is True and run.output["notes"]["name"] == "n1"
    # The completed branch neither reverted to suspended nor ran again; nothing re-fired.
    assert calls == {"legal": 2, "notes": 2, "after": 1}
    statuses = {i.step: i.status for i in (await engine.get_run(run_id)).interrupts}
    assert statuses == {"legal": InterruptStatus.APPROVED, "notes": InterruptStatus.RESOLVED}


async def test_resume_data_goes_to_the_step_that_asked(engine_factory: EngineFactory) -> None:
    got: dict[str, Any] = {}

    @step
    async def legal(n: Named, ctx: StepContext[Shown, Approval]) -> Done:
        got["legal"] = answer = await ctx.suspend(Shown(question="legal?"))
        return Done(name="legal", approved=answer.approved)

    @step
    async def notes(n: Named, ctx: StepContext[Shown, Note]) -> Done:
        got["notes"] = note = await ctx.suspend(Shown(question="notes?"))
        return Done(name=note.text)

    engine = await engine_factory(Workflow("par", input=Named, output=Pair).parallel(legal, notes))
    run_id = await engine.start("par", {"name": "x"})
    await settle(engine, run_id)
    asks = {i.step: i for i in await pending(engine, run_id)}

    # Data meant for `notes` sent to `legal`'s interrupt is checked against legal's model.
    with pytest.raises(ResumeValidationError) as info:
        await engine.resume(run_id, asks["legal"].id, {"text": "hi"}, actor="ann")
    assert "approved" in info.value.errors
    await engine.resume(run_id, asks["notes"].id, {"text": "for notes"}, actor="bo")
    await settle(engine, run_id)
    assert set(got) == {"notes"}
    await engine.resume(run_id, asks["legal"].id, {"approved": False}, actor="ann")
    await settle(engine, run_id)
    assert got == {"legal": Approval(approved=False), "notes": Note(text="for notes")}


async def test_resume_is_validated_against_the_stored_interrupt_not_stale_input(
    engine_factory: EngineFactory,
) -> None:
    @step
    async def set_budget(r: Req, ctx: StepContext[Shown, Budget]) -> Req:
        budget = await ctx.suspend(Shown(question="budget?"))
        return Req(name=r.name, amount=budget.limit)

    @step
    async def confirm(r: Req, ctx: StepContext[Shown, Approval]) -> Done:
        answer = await ctx.suspend(Shown(question=f"spend {r.amount}?"))
        return Done(name=str(r.amount), approved=answer.approved)

    v1 = Workflow("spend", version=1, input=Req, output=Done).then(set_budget).then(confirm)
    engine = await engine_factory(v1)
    run_id = await engine.start("spend", {"name": "x"})
    await settle(engine, run_id)
    (first,) = await pending(engine, run_id)
    await engine.resume(run_id, first.id, {"limit": 70}, actor="ann")
    await settle(engine, run_id)
    (second,) = await pending(engine, run_id)
    assert second.payload == {"question": "spend 70?"}  # what the person saw is stored

    # A new version changes the step's answer model; the pending v1 interrupt keeps its own.
    @step(name="confirm")
    async def confirm_v2(r: Req, ctx: StepContext[Shown, Note]) -> Done:
        note = await ctx.suspend(Shown(question="?"))
        return Done(name=note.text)

    engine.register(
        Workflow("spend", version=2, input=Req, output=Done).then(set_budget).then(confirm_v2)
    )
    with pytest.raises(ResumeValidationError) as info:
        await engine.resume(run_id, second.id, {"limit": 5}, actor="ann")  # the previous answer
    assert set(info.value.errors) == {"approved"}
    with pytest.raises(ResumeValidationError):
        await engine.resume(run_id, second.id, {"text": "v2 shape"}, actor="ann")
    await engine.resume(run_id, second.id, {"approved": True}, actor="ann")
    run = await settle(engine, run_id)
    assert (run.version, run.output) == ("1", {"name": "70", "approved": True, "by": None})


async def test_resume_does_not_restart_from_the_first_step(engine_factory: EngineFactory) -> None:
    calls: Counter[str] = Counter()
    engine = await engine_factory(approve_then_ship(calls))
    run_id, iid = await started(engine)
    await engine.close()

    # A fresh engine (a restarted process) resumes where the run stopped.
    engine = await engine_factory(approve_then_ship(calls))
    await engine.resume(run_id, iid, {"approved": True}, actor="ann")
    run = await settle(engine, run_id)
    assert run.status is RunStatus.COMPLETED
    assert calls == {"first": 1, "ask": 2, "ship": 1}
    started_steps = [
        e.data["step"]
        for e in (await engine.get_run(run_id)).events
        if e.type is EventType.STEP_STARTED
    ]
    assert started_steps == ["first", "ask", "ask", "ship"]


async def test_suspend_inside_foreach_loop_each_iteration_own_interrupt(
    engine_factory: EngineFactory,
) -> None:
    calls: Counter[str] = Counter()

    @step
    async def review(n: Named, ctx: StepContext[Shown, Note]) -> Done:
        calls[n.name] += 1
        note = await ctx.suspend(Shown(question=n.name))
        return Done(name=f"{n.name}:{note.text}")

    wf = Workflow("loop", input=list[Named], output=list[Done]).foreach(review, concurrency=3)
    engine = await engine_factory(wf)
    run_id = await engine.start("loop", [{"name": n} for n in ("a", "b", "c")])
    await settle(engine, run_id)
    asks = {i.payload["question"]: i.id for i in await pending(engine, run_id)}
    assert len(set(asks.values())) == 3

    await engine.resume(run_id, asks["b"], {"text": "only b"}, actor="x")
    await settle(engine, run_id)
    assert sorted(i.payload["question"] for i in await pending(engine, run_id)) == ["a", "c"]
    await engine.resume(run_id, asks["a"], {"text": "1"}, actor="x")
    await engine.resume(run_id, asks["c"], {"text": "3"}, actor="x")
    run = await settle(engine, run_id)
    assert [d["name"] for d in run.output] == ["a:1", "b:only b", "c:3"]
    assert calls == {"a": 2, "b": 2, "c": 2}


async def test_suspend_inside_subworkflow_surfaces_at_top_level(
    engine_factory: EngineFactory,
) -> None:
    calls: Counter[str] = Counter()

    @step
    async def prepare(n: Named) -> Named:
        calls["prepare"] += 1
        return n

    @step
    async def sign(n: Named, ctx: StepContext[Shown, Approval]) -> Done:
        calls["sign"] += 1
        answer = await ctx.suspend(Shown(question=n.name))
        return Done(name=n.name, approved=answer.approved)

    @step
    async def notify(d: Done) -> Done:
        calls["notify"] += 1
        return d

    child = Workflow("child", input=Named, output=Done).then(prepare).then(sign)
    parent = Workflow("parent", input=Named, output=Done).then(child).then(notify)
    engine = await engine_factory(child, parent)
    run_id = await engine.start("parent", {"name": "x"})
    await settle(engine, run_id)
    (interrupt,) = await engine.list_interrupts()  # one suspend shows up once
    assert interrupt.run_id == run_id and interrupt.step == "sign"
    await engine.resume(run_id, interrupt.id, {"approved": True}, actor="ann")
    run = await settle(engine, run_id)
    assert run.output == {"name": "x", "approved": True, "by": None}
    assert calls == {"prepare": 1, "sign": 2, "notify": 1}


async def test_timeout_is_distinguishable_from_answer(engine_factory: EngineFactory) -> None:
    seen: list[Any] = []

    @step
    async def ask(r: Req, ctx: StepContext[Shown, Approval]) -> Done:
        answer = await ctx.suspend(
            Shown(question="?"),
            expires=0.2,
            on_expiry=OnExpiry.resume_with(Approval(approved=False, comment="timed out")),
        )
        assert ctx.resolution is not None
        seen.append((ctx.resolution.status, ctx.resolution.resolved_by, answer))
        return Done(name=answer.comment, approved=answer.approved, by=ctx.resolution.resolved_by)

    engine = await engine_factory(Workflow("t", input=Req, output=Done).then(ask))
    run_id = await engine.start("t", {"name": "x"})
    run = await engine.wait(run_id, until={RunStatus.COMPLETED, RunStatus.FAILED}, timeout=10)
    assert run.status is RunStatus.COMPLETED
    assert run.output == {"name": "timed out", "approved": False, "by": None}
    assert seen == [(InterruptStatus.EXPIRED, None, Approval(approved=False, comment="timed out"))]

    detail = await engine.get_run(run_id)
    (interrupt,) = detail.interrupts
    assert interrupt.status is InterruptStatus.EXPIRED
    assert interrupt.resolved_by is None and interrupt.responses == []
    types = [e.type for e in detail.events]
    assert EventType.EXPIRED in types and EventType.RESPONSE_RECORDED not in types
    (expired,) = [e.data for e in detail.events if e.type is EventType.EXPIRED]
    assert expired["action"] == "resume"
    with pytest.raises(AlreadyResolved) as info:
        await engine.resume(run_id, interrupt.id, {"approved": True}, actor="late")
    assert (info.value.status, info.value.resolved_by) == ("expired", None)


async def test_who_approved_is_recorded(engine_factory: EngineFactory) -> None:
    calls: Counter[str] = Counter()
    engine = await engine_factory(approve_then_ship(calls, quorum=2, responders=["ann", "bo"]))
    run_id, iid = await started(engine, requester="carol")
    await engine.resume(run_id, iid, {"approved": True, "comment": "lgtm"}, actor="ann")
    await engine.resume(run_id, iid, {"approved": True}, actor="bo")
    run = await settle(engine, run_id)
    assert run.output["by"] == "bo"

    interrupt = await engine.get_interrupt(run_id, iid)
    assert interrupt.resolved_by == "bo" and interrupt.resolved_at is not None
    assert [(r.actor, r.approved, r.data["comment"]) for r in interrupt.responses] == [
        ("ann", True, "lgtm"),
        ("bo", True, ""),
    ]
    assert interrupt.requester == "carol" and interrupt.responders == ["ann", "bo"]
    events = (await engine.get_run(run_id)).events
    assert [e.data["actor"] for e in events if e.type is EventType.RESPONSE_RECORDED] == [
        "ann",
        "bo",
    ]


async def test_requester_cannot_approve_their_own_request(engine_factory: EngineFactory) -> None:
    engine = await engine_factory(approve_then_ship(Counter()))
    run_id, iid = await started(engine, requester="carol")
    with pytest.raises(NotAuthorized):
        await engine.resume(run_id, iid, {"approved": True}, actor="carol")
    assert (await engine.get_interrupt(run_id, iid)).responses == []


async def test_quorum_needs_distinct_approvers(engine_factory: EngineFactory) -> None:
    calls: Counter[str] = Counter()
    engine = await engine_factory(approve_then_ship(calls, quorum=2))
    run_id, iid = await started(engine)
    await engine.resume(run_id, iid, {"approved": True}, actor="ann")
    with pytest.raises(DuplicateResponse):
        await engine.resume(run_id, iid, {"approved": True}, actor="ann")
    assert (await settle(engine, run_id)).status is RunStatus.SUSPENDED
    assert calls["ship"] == 0


async def test_bad_resume_data_does_not_kill_the_run(engine_factory: EngineFactory) -> None:
    calls: Counter[str] = Counter()
    engine = await engine_factory(approve_then_ship(calls))
    run_id, iid = await started(engine)
    for bad in ({}, {"approved": "perhaps"}, {"approved": True, "comment": "x" * 50}, None):
        with pytest.raises(ResumeValidationError):
            await engine.resume(run_id, iid, bad, actor="ann")
    assert (await settle(engine, run_id)).status is RunStatus.SUSPENDED
    assert (await engine.get_interrupt(run_id, iid)).status is InterruptStatus.PENDING
    assert calls == {"first": 1, "ask": 1}

    await engine.resume(run_id, iid, {"approved": True}, actor="ann")
    run = await settle(engine, run_id)
    assert run.status is RunStatus.COMPLETED
    assert calls == {"first": 1, "ask": 2, "ship": 1}


async def test_a_repeated_start_with_the_same_key_creates_one_run(
    engine_factory: EngineFactory,
) -> None:
    calls: Counter[str] = Counter()
    engine = await engine_factory(approve_then_ship(calls))
    ids = await asyncio.gather(
        *(engine.start("ship", {"name": "x"}, idempotency_key="hook-1") for _ in range(10))
    )
    assert len(set(ids)) == 1
    await settle(engine, ids[0])
    assert len(await engine.list_runs()) == 1
    assert calls["first"] == 1


async def test_an_answer_while_another_branch_still_runs_is_not_lost(
    engine_factory: EngineFactory,
) -> None:
    release = asyncio.Event()
    calls: Counter[str] = Counter()

    @step
    async def slow(n: Named) -> Done:
        calls["slow"] += 1
        await release.wait()
        return Done(name="slow")

    @step
    async def quick(n: Named, ctx: StepContext[Shown, Note]) -> Done:
        calls["quick"] += 1
        note = await ctx.suspend(Shown(question="?"))
        return Done(name=note.text)

    wf = Workflow("par", input=Named, output=Any).parallel(slow, quick)
    engine = await engine_factory(wf)
    run_id = await engine.start("par", {"name": "x"})
    for _ in range(200):
        if await pending(engine, run_id):
            break
        await asyncio.sleep(0.01)
    (interrupt,) = await pending(engine, run_id)
    assert (await engine.get_run(run_id)).run.status is RunStatus.RUNNING
    await engine.resume(run_id, interrupt.id, {"text": "early"}, actor="ann")
    release.set()
    run = await engine.wait(run_id, until={RunStatus.COMPLETED, RunStatus.FAILED}, timeout=10)
    assert run.status is RunStatus.COMPLETED
    assert run.output == {
        "slow": {"name": "slow", "approved": False, "by": None},
        "quick": {"name": "early", "approved": False, "by": None},
    }
    assert calls == {"slow": 1, "quick": 2}


async def test_parallel_answers_arriving_together_are_both_used(
    engine_factory: EngineFactory,
) -> None:
    calls: Counter[str] = Counter()

    def asking(name: str) -> Any:
        async def body(n: Named, ctx: StepContext[Shown, Note]) -> Done:
            calls[name] += 1
            note = await ctx.suspend(Shown(question=name))
            return Done(name=note.text)

        return step(name=name)(body)

    @step
    async def after(x: Any) -> Any:
        calls["after"] += 1
        return x.model_dump()

    wf = Workflow("par", input=Named, output=Any).parallel(*map(asking, "abcd")).then(after)
    engine = await engine_factory(wf)
    run_id = await engine.start("par", {"name": "x"})
    await settle(engine, run_id)
    asks = await pending(engine, run_id)
    assert len(asks) == 4
    await asyncio.gather(
        *(engine.resume(run_id, i.id, {"text": i.step * 2}, actor=i.step) for i in asks)
    )
    run = await engine.wait(run_id, until={RunStatus.COMPLETED, RunStatus.FAILED}, timeout=10)
    assert run.status is RunStatus.COMPLETED
    assert {k: v["name"] for k, v in run.output.items()} == {
        "a": "aa",
        "b": "bb",
        "c": "cc",
        "d": "dd",
    }
    assert calls == {"a": 2, "b": 2, "c": 2, "d": 2, "after": 1}
