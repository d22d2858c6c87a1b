"""Composition: sequences, branches, parallel branches, foreach loops and sub-workflows."""

import asyncio
from collections import Counter
from typing import Any

import pytest
from pydantic import BaseModel

from engine import Engine, RunStatus, StepContext, StepStatus, Workflow, step
from tests.engine.conftest import EngineFactory
from tests.engine.wf_common import Approval, Done, Note, Req, Shown, pending, settle


class Named(BaseModel):
    name: str


class Reviews(BaseModel):
    legal: Done
    finance: Done


ROUTE = {"ask": True}
"""Read by a branch condition; tests flip it to prove a recorded choice is not re-made."""


@step
async def to_named(r: Req) -> Named:
    return Named(name=r.name)


def asking(name: str, calls: Counter[str]) -> Any:
    """A step called ``name`` that asks a person and reports who answered."""

    async def ask(n: Named, ctx: StepContext[Shown, Approval]) -> Done:
        calls[name] += 1
        answer = await ctx.suspend(Shown(question=f"{name}: {n.name}?"))
        by = ctx.resolution.resolved_by if ctx.resolution else None
        return Done(name=n.name, approved=answer.approved, by=by)

    return step(name=name)(ask)


def by_step(found: list[Any], name: str) -> Any:
    (match,) = [i for i in found if i.step == name]
    return match


async def test_a_sequence_feeds_each_output_to_the_next_step(engine_factory: EngineFactory) -> None:
    seen: list[Any] = []

    @step
    async def double(n: Named) -> Named:
        seen.append(n)
        return Named(name=n.name * 2)

    @step
    async def finish(n: Named) -> Done:
        seen.append(n)
        return Done(name=n.name, approved=True)

    wf = Workflow("seq", input=Req, output=Done).then(to_named).then(double).then(finish)
    engine = await engine_factory(wf)
    run = await settle(engine, await engine.start("seq", {"name": "ab"}))
    assert run.status is RunStatus.COMPLETED
    assert run.output == {"name": "abab", "approved": True, "by": None}
    assert seen == [Named(name="ab"), Named(name="abab")]
    detail = await engine.get_run(run.id)
    assert [(s.path, s.output) for s in detail.steps] == [
        ("0:to_named", {"name": "ab"}),
        ("1:double", {"name": "abab"}),
        ("2:finish", {"name": "abab", "approved": True, "by": None}),
    ]


async def test_a_branch_runs_the_first_matching_case(engine_factory: EngineFactory) -> None:
    @step
    async def big(n: Named) -> Done:
        return Done(name="big")

    @step
    async def small(n: Named) -> Done:
        return Done(name="small")

    wf = Workflow("b", input=Req, output=Done).then(to_named)
    wf.branch((lambda n: len(n.name) > 3, big), (lambda n: True, small))
    engine = await engine_factory(wf)
    long_run = await settle(engine, await engine.start("b", {"name": "longer"}))
    short_run = await settle(engine, await engine.start("b", {"name": "ab"}))
    assert long_run.output["name"] == "big"
    assert short_run.output["name"] == "small"
    detail = await engine.get_run(short_run.id)
    assert [s.path for s in detail.steps] == ["0:to_named", "1:branch1", "1:branch1/1:small"]
    assert detail.steps[1].output == 1  # the recorded choice: case 1


async def test_a_branch_with_no_match_runs_otherwise(engine_factory: EngineFactory) -> None:
    @step
    async def never(n: Named) -> Done:
        raise AssertionError("not chosen")

    @step
    async def fallback(n: Named) -> Done:
        return Done(name=f"fallback {n.name}")

    wf = Workflow("b", input=Req, output=Done).then(to_named)
    wf.branch((lambda n: False, never), otherwise=fallback)
    engine = await engine_factory(wf)
    run = await settle(engine, await engine.start("b", {"name": "x"}))
    assert run.status is RunStatus.COMPLETED
    assert run.output["name"] == "fallback x"


async def test_a_branch_with_no_match_and_no_otherwise_passes_the_value_through(
    engine_factory: EngineFactory,
) -> None:
    @step
    async def shout(n: Named) -> Named:
        return Named(name=n.name.upper())

    @step
    async def after(n: Named) -> Named:
        return Named(name=n.name + "!")

    wf = Workflow("b", input=Req, output=Named).then(to_named)
    wf.branch((lambda n: n.name.startswith("s"), shout)).then(after)
    engine = await engine_factory(wf)
    passed = await settle(engine, await engine.start("b", {"name": "quiet"}))
    taken = await settle(engine, await engine.start("b", {"name": "soft"}))
    assert passed.output == {"name": "quiet!"}
    assert taken.output == {"name": "SOFT!"}


async def test_a_resumed_run_never_re_decides_a_branch(engine_factory: EngineFactory) -> None:
    calls: Counter[str] = Counter()
    evaluated: list[bool] = []

    def wants_review(n: Named) -> bool:
        evaluated.append(ROUTE["ask"])
        return ROUTE["ask"]

    @step
    async def auto(n: Named) -> Done:
        calls["auto"] += 1
        return Done(name=n.name, approved=True, by="auto")

    review = asking("review", calls)
    wf = Workflow("b", input=Req, output=Done).then(to_named)
    wf.branch((wants_review, review), otherwise=auto)
    engine = await engine_factory(wf)
    ROUTE["ask"] = True
    try:
        run = await settle(engine, await engine.start("b", {"name": "x"}))
        assert run.status is RunStatus.SUSPENDED
        (interrupt,) = await pending(engine, run.id)
        ROUTE["ask"] = False  # the condition would now choose `auto`
        await engine.resume(run.id, interrupt.id, {"approved": True}, actor="ann")
        run = await settle(engine, run.id)
    finally:
        ROUTE["ask"] = True
    assert run.status is RunStatus.COMPLETED
    assert run.output == {"name": "x", "approved": True, "by": "ann"}
    assert calls == {"review": 2}  # asked, then re-run with the answer; `auto` never ran
    assert evaluated == [True]  # decided once, when the run first got there


async def test_parallel_output_has_one_field_per_branch(engine_factory: EngineFactory) -> None:
    got: list[Any] = []

    @step
    async def left(n: Named) -> Named:
        return Named(name=f"L{n.name}")

    @step
    async def right(n: Named) -> int:
        return len(n.name)

    @step
    async def look(x: Any) -> Any:
        got.append(x)
        return x.model_dump()

    wf = Workflow("p", input=Req, output=Any).then(to_named).parallel(left, right).then(look)
    engine = await engine_factory(wf)
    run = await settle(engine, await engine.start("p", {"name": "abc"}))
    assert run.status is RunStatus.COMPLETED, run.error
    assert run.output == {"left": {"name": "Labc"}, "right": 3}
    assert list(type(got[0]).model_fields) == ["left", "right"]


@pytest.mark.parametrize("order", [("legal", "finance"), ("finance", "legal")])
async def test_parallel_suspends_are_all_pending_and_resumable_in_any_order(
    engine_factory: EngineFactory, order: tuple[str, str]
) -> None:
    calls: Counter[str] = Counter()

    @step
    async def combine(r: Reviews) -> Done:
        calls["combine"] += 1
        both = r.legal.approved and r.finance.approved
        return Done(name=r.legal.name, approved=both, by=f"{r.legal.by}+{r.finance.by}")

    wf = Workflow("p", input=Req, output=Done).then(to_named)
    wf.parallel(asking("legal", calls), asking("finance", calls)).then(combine)
    engine = await engine_factory(wf)
    run = await settle(engine, await engine.start("p", {"name": "deal"}))
    assert run.status is RunStatus.SUSPENDED
    both = await pending(engine, run.id)
    assert sorted(i.step for i in both) == ["finance", "legal"]
    assert len({i.id for i in both}) == 2

    first, second = order
    await engine.resume(run.id, by_step(both, first).id, {"approved": True}, actor=f"{first}-1")
    run = await settle(engine, run.id)
    assert run.status is RunStatus.SUSPENDED
    assert [i.step for i in await pending(engine, run.id)] == [second]
    assert calls["combine"] == 0

    await engine.resume(run.id, by_step(both, second).id, {"approved": True}, actor=f"{second}-1")
    run = await settle(engine, run.id)
    assert run.status is RunStatus.COMPLETED
    assert run.output == {"name": "deal", "approved": True, "by": "legal-1+finance-1"}
    assert calls == {"legal": 2, "finance": 2, "combine": 1}


async def test_foreach_runs_items_at_most_concurrency_at_a_time(
    engine_factory: EngineFactory,
) -> None:
    active = 0
    most = 0

    @step
    async def work(n: Named) -> Named:
        nonlocal active, most
        active += 1
        most = max(most, active)
        await asyncio.sleep(0.03)
        active -= 1
        return Named(name=n.name.upper())

    wf = Workflow("f", input=list[Named], output=list[Named]).foreach(work, concurrency=2)
    engine = await engine_factory(wf)
    items = [{"name": c} for c in "abcdef"]
    run = await settle(engine, await engine.start("f", items))
    assert run.status is RunStatus.COMPLETED
    assert run.output == [{"name": c} for c in "ABCDEF"]  # item order is kept
    assert most == 2


async def test_foreach_with_concurrency_one_runs_items_one_by_one(
    engine_factory: EngineFactory,
) -> None:
    order: list[str] = []

    @step
    async def work(n: Named) -> Named:
        order.append(f"start {n.name}")
        await asyncio.sleep(0.01)
        order.append(f"end {n.name}")
        return n

    wf = Workflow("f", input=list[Named], output=list[Named]).foreach(work)
    engine = await engine_factory(wf)
    run = await settle(engine, await engine.start("f", [{"name": "a"}, {"name": "b"}]))
    assert run.status is RunStatus.COMPLETED
    assert order == ["start a", "end a", "start b", "end b"]


async def test_foreach_items_that_suspend_each_get_their_own_interrupt(
    engine_factory: EngineFactory,
) -> None:
    calls: Counter[str] = Counter()
    wf = Workflow("f", input=list[Named], output=list[Done])
    wf.foreach(asking("review", calls), concurrency=3)  # a waiting item keeps its slot
    engine = await engine_factory(wf)
    run = await settle(engine, await engine.start("f", [{"name": n} for n in ("a", "b", "c")]))
    assert run.status is RunStatus.SUSPENDED
    asks = await pending(engine, run.id)
    assert len({i.id for i in asks}) == 3
    by_item = {i.payload["question"]: i for i in asks}
    assert set(by_item) == {"review: a?", "review: b?", "review: c?"}

    await engine.resume(run.id, by_item["review: b?"].id, {"approved": False}, actor="bo")
    run = await settle(engine, run.id)
    assert run.status is RunStatus.SUSPENDED
    assert len(await pending(engine, run.id)) == 2

    await engine.resume(run.id, by_item["review: c?"].id, {"approved": True}, actor="cy")
    await engine.resume(run.id, by_item["review: a?"].id, {"approved": True}, actor="al")
    run = await settle(engine, run.id)
    assert run.status is RunStatus.COMPLETED
    assert run.output == [
        {"name": "a", "approved": True, "by": "al"},
        {"name": "b", "approved": False, "by": "bo"},
        {"name": "c", "approved": True, "by": "cy"},
    ]


async def test_a_sub_workflow_runs_inside_its_parent(engine_factory: EngineFactory) -> None:
    @step
    async def greet(n: Named) -> Named:
        return Named(name=f"hi {n.name}")

    child = Workflow("child", input=Named, output=Named).then(greet)
    parent = Workflow("parent", input=Req, output=Named).then(to_named).then("child")
    engine = await engine_factory(child, parent)
    run = await settle(engine, await engine.start("parent", {"name": "x"}))
    assert run.output == {"name": "hi x"}
    detail = await engine.get_run(run.id)
    assert [s.path for s in detail.steps] == ["0:to_named", "1:child/0:greet"]
    assert [r.id for r in await engine.list_runs()] == [run.id]  # no separate child run


async def test_a_suspend_in_a_sub_workflow_is_pending_on_the_top_level_run(
    engine_factory: EngineFactory,
) -> None:
    calls: Counter[str] = Counter()

    @step
    async def finalize(d: Done) -> Done:
        calls["finalize"] += 1
        return Done(name=d.name.upper(), approved=d.approved, by=d.by)

    child = Workflow("child", input=Named, output=Done).then(asking("sign", calls))
    parent = Workflow("parent", input=Req, output=Done).then(to_named).then(child).then(finalize)
    engine = await engine_factory(parent)
    run = await settle(engine, await engine.start("parent", {"name": "x"}))
    assert run.status is RunStatus.SUSPENDED
    (interrupt,) = await engine.list_interrupts()
    assert interrupt.run_id == run.id
    assert interrupt.workflow == "parent"
    assert interrupt.path == "1:child/0:sign"
    assert calls["finalize"] == 0

    await engine.resume(run.id, interrupt.id, {"approved": True}, actor="ann")
    run = await settle(engine, run.id)
    assert run.status is RunStatus.COMPLETED
    assert run.output == {"name": "X", "approved": True, "by": "ann"}
    assert calls == {"sign": 2, "finalize": 1}


async def test_a_foreach_over_a_sub_workflow(engine_factory: EngineFactory) -> None:
    calls: Counter[str] = Counter()
    child = Workflow("child", input=Named, output=Done).then(asking("ok", calls))
    wf = Workflow("loop", input=list[Named], output=list[Done]).foreach(child, concurrency=3)
    engine = await engine_factory(wf)
    run = await settle(engine, await engine.start("loop", [{"name": "a"}, {"name": "b"}]))
    asks = await pending(engine, run.id)
    assert sorted(i.path for i in asks) == ["0:foreach0[0]/child/0:ok", "0:foreach0[1]/child/0:ok"]
    for i in asks:
        await engine.resume(run.id, i.id, {"approved": True}, actor="x")
    run = await settle(engine, run.id)
    assert run.status is RunStatus.COMPLETED
    assert [d["name"] for d in run.output] == ["a", "b"]


async def test_steps_record_their_status(engine: Engine) -> None:
    @step
    async def one(r: Req) -> Named:
        return Named(name=r.name)

    engine.register(Workflow("w", input=Req, output=Named).then(one))
    run = await settle(engine, await engine.start("w", {"name": "a"}))
    (rec,) = (await engine.get_run(run.id)).steps
    assert (rec.name, rec.status, rec.attempts) == ("one", StepStatus.COMPLETED, 1)


async def test_nested_composition_resumes_each_item_with_its_own_answer(
    engine_factory: EngineFactory,
) -> None:
    @step(resume_to="output")
    async def pick(r: Req, ctx: StepContext[Shown, Note]) -> Note:
        return await ctx.suspend(Shown(question=r.name))

    child = Workflow("child", input=Req, output=Note).then(pick)
    inner = Workflow("inner", input=list[Req], output=list[Note]).foreach("child", concurrency=2)
    wf = Workflow("outer", input=list[Req], output=Any).branch((lambda xs: len(xs) > 1, inner))
    engine = await engine_factory(child, wf)
    run_id = await engine.start("outer", [{"name": "a"}, {"name": "b"}])
    await settle(engine, run_id)
    asks = await pending(engine, run_id)
    assert [i.path for i in asks] == [
        "0:branch0/0:inner/0:foreach0[0]/child/0:pick",
        "0:branch0/0:inner/0:foreach0[1]/child/0:pick",
    ]
    for i in reversed(asks):
        await engine.resume(run_id, i.id, {"text": i.payload["question"] + "!"}, actor="x")
    run = await settle(engine, run_id)
    assert run.output == [{"text": "a!", "priority": 1}, {"text": "b!", "priority": 1}]


async def test_a_failing_branch_condition_fails_the_run(engine_factory: EngineFactory) -> None:
    def broken(n: Named) -> bool:
        raise KeyError("no such flag")

    @step
    async def never(n: Named) -> Named:
        raise AssertionError("not reached")

    wf = Workflow("b", input=Req, output=Named).then(to_named).branch((broken, never))
    engine = await engine_factory(wf)
    run = await settle(engine, await engine.start("b", {"name": "x"}))
    assert run.status is RunStatus.FAILED
    assert run.error is not None
    assert (run.error.type, run.error.message) == ("KeyError", "'no such flag'")


async def test_a_step_can_read_an_earlier_steps_output(engine_factory: EngineFactory) -> None:
    @step
    async def later(n: Named, ctx: StepContext) -> Done:  # type: ignore[type-arg]
        first = ctx.output_of(to_named)
        return Done(name=f"{first.name}->{n.name}")

    @step
    async def rename(n: Named) -> Named:
        return Named(name="renamed")

    wf = Workflow("w", input=Req, output=Done).then(to_named).then(rename).then(later)
    engine = await engine_factory(wf)
    run = await settle(engine, await engine.start("w", {"name": "orig"}))
    assert run.output is not None, run.error
    assert run.output["name"] == "orig->renamed"
