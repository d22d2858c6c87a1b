"""Issue 10, item 4: foreach like Coze Loop and Batch (break/continue, collect, slots, batches)."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import BaseModel

from engine import (
    DefinitionError,
    EventType,
    ItemResult,
    RunStatus,
    StepContext,
    StepStatus,
    Workflow,
    step,
)
from tests.engine.conftest import EngineFactory
from tests.engine.fixtures_runtime import PROBE, Probe, finished, history, parked
from tests.engine.wf_common import Approval, Done, Req, Shown


class Num(BaseModel):
    """A loop item."""

    n: int


@step
async def judge(x: Num, ctx: StepContext) -> int:  # type: ignore[type-arg]
    """Skips 2, stops the loop at 4, multiplies the rest by ten."""
    PROBE.hit("judge", x.n)
    if x.n == 2:
        ctx.skip_item()
    if x.n == 4:
        try:
            ctx.break_loop()
        except Exception:  # a signal, not an error: user code cannot swallow it
            raise AssertionError("break_loop was caught as an Exception") from None
    return x.n * 10


@step(resume_to="output")
async def confirm(xs: list[int], ctx: StepContext[Shown, Approval]) -> Approval:
    """Asks whether the loop's output is fine."""
    return await ctx.suspend(Shown(question=repr(xs)))


judged = Workflow("judged", input=list[Num], output=Approval).foreach(judge).then(confirm)


async def test_an_item_can_skip_itself_or_end_the_loop_and_a_resume_replays_it(
    engine_factory: EngineFactory, probe: Probe
) -> None:
    engine = await engine_factory(judged)
    run_id = await engine.start(judged, [{"n": n} for n in range(1, 7)])
    await parked(engine, run_id)
    (asked,) = await engine.list_interrupts(run_id=run_id)
    assert asked.payload == {"question": "[10, 30]"}  # 2 skipped, 4 ended the loop
    assert probe.seen["judge"] == [1, 2, 3, 4]  # 5 and 6 never start
    skips = await history(engine, run_id, EventType.STEP_SKIPPED)
    assert [(e.data["path"], e.data["action"]) for e in skips] == [
        ("0:foreach0[1]/judge", "skip"),
        ("0:foreach0[3]/judge", "break"),
    ]
    ran = sorted(probe.seen["judge"])

    await engine.resume(run_id, asked.id, {"approved": True}, actor="bo")
    run = await finished(engine, run_id)

    assert run.status is RunStatus.COMPLETED
    assert sorted(probe.seen["judge"]) == ran  # replayed from the records, not run again
    detail = await engine.get_run(run_id)
    assert [s.status for s in detail.steps if s.path.endswith("]/judge")].count(
        StepStatus.SKIPPED
    ) == 2


@step
async def loop_control_outside_a_loop(r: Req, ctx: StepContext) -> Done:  # type: ignore[type-arg]
    """Calls ctx.skip_item() where there is no loop."""
    ctx.skip_item()


async def test_loop_control_outside_a_foreach_fails_the_step_saying_so(
    engine_factory: EngineFactory,
) -> None:
    wf = Workflow("nl", input=Req, output=Done).then(loop_control_outside_a_loop)
    engine = await engine_factory(wf)
    run = await finished(engine, await engine.start(wf, {"name": "x"}))
    assert run.status is RunStatus.FAILED and run.error is not None
    assert "ctx.skip_item() works only inside a foreach item" in run.error.message


@step
async def fragile(x: Num) -> Done:
    """Fails on odd numbers."""
    PROBE.hit("fragile", x.n)
    if x.n % 2:
        raise ValueError(f"odd: {x.n}")
    return Done(name=str(x.n))


@step
async def tally(results: list[ItemResult[Done]]) -> str:
    """Typed per-item results: outputs and errors."""
    return ",".join(r.output.name if r.ok and r.output else f"!{r.index}" for r in results)


async def test_collect_keeps_going_after_a_failure_and_gives_typed_per_item_results(
    engine_factory: EngineFactory, probe: Probe
) -> None:
    wf = (
        Workflow("c", input=list[Num], output=str)
        .foreach(fragile, concurrency=2, on_item_error="collect")
        .then(tally)
    )
    engine = await engine_factory(wf)
    run = await finished(engine, await engine.start(wf, [{"n": n} for n in (2, 3, 4, 5)]))
    assert (run.status, run.output) == (RunStatus.COMPLETED, "2,!1,4,!3")
    assert sorted(probe.seen["fragile"]) == [2, 3, 4, 5]
    detail = await engine.get_run(run.id)
    failed = [s for s in detail.steps if s.status is StepStatus.FAILED]
    assert [s.error.message for s in failed if s.error] == ["odd: 3", "odd: 5"]


async def test_collect_output_is_a_list_of_item_results(engine_factory: EngineFactory) -> None:
    wf = Workflow("c2", input=list[Num], output=list[ItemResult[Done]]).foreach(
        fragile, on_item_error="collect"
    )
    engine = await engine_factory(wf)
    run = await finished(engine, await engine.start(wf, [{"n": 1}, {"n": 2}]))
    assert run.output[0]["index"] == 0 and run.output[0]["output"] is None
    assert run.output[0]["error"]["type"] == "ValueError"
    assert run.output[1] == {
        "index": 1,
        "output": {"name": "2", "approved": False, "by": None},
        "error": None,
    }


async def test_by_default_the_first_failure_stops_the_loop(engine_factory: EngineFactory) -> None:
    wf = Workflow("s", input=list[Num], output=list[Done]).foreach(fragile)
    engine = await engine_factory(wf)
    run = await finished(engine, await engine.start(wf, [{"n": 2}, {"n": 3}, {"n": 4}]))
    assert run.status is RunStatus.FAILED and run.error is not None
    assert run.error.message == "odd: 3"


@step
async def sign_off(x: Num, ctx: StepContext[Shown, Approval]) -> Done:
    """One approval per item."""
    answer = await ctx.suspend(Shown(question=f"item {x.n}?"))
    return Done(name=str(x.n), approved=answer.approved)


async def test_concurrency_one_asks_one_item_at_a_time_in_order(
    engine_factory: EngineFactory,
) -> None:
    wf = Workflow("seq", input=list[Num], output=list[Done]).foreach(sign_off, concurrency=1)
    engine = await engine_factory(wf)
    run_id = await engine.start(wf, [{"n": n} for n in (1, 2, 3)])
    answered: list[Any] = []
    for n in (1, 2, 3):
        await parked(engine, run_id)
        pending = await engine.list_interrupts(run_id=run_id)
        assert [i.payload["question"] for i in pending] == [f"item {n}?"]  # one at a time
        if answered:  # created only after the previous one was answered
            assert pending[0].created_at >= answered[-1]
        outcome = await engine.resume(run_id, pending[0].id, {"approved": True}, actor="bo")
        assert outcome.resolved
        answered.append((await engine.get_interrupt(run_id, pending[0].id)).resolved_at)
    run = await finished(engine, run_id)
    assert [d["name"] for d in run.output] == ["1", "2", "3"]


@step
async def total(xs: list[int]) -> int:
    """Sums one batch."""
    PROBE.hit("total", xs)
    return sum(xs)


async def test_batch_size_hands_the_body_lists_of_items(
    engine_factory: EngineFactory, probe: Probe
) -> None:
    wf = Workflow("b", input=list[int], output=list[int]).foreach(total, batch_size=2)
    engine = await engine_factory(wf)
    run = await finished(engine, await engine.start(wf, [1, 2, 3, 4, 5]))
    assert (run.status, run.output) == (RunStatus.COMPLETED, [3, 7, 5])
    assert probe.seen["total"] == [[1, 2], [3, 4], [5]]


async def test_a_batch_body_must_accept_a_list_of_the_item_type(engine: Any) -> None:
    @step
    async def one(x: int) -> int:
        return x

    with pytest.raises(DefinitionError, match="does not fit the input of step 'one'"):
        engine.register(
            Workflow("bb", input=list[int], output=list[int]).foreach(one, batch_size=3)
        )
    with pytest.raises(DefinitionError, match="batch_size must be >= 1"):
        engine.register(Workflow("b0", input=list[int], output=Any).foreach(total, batch_size=0))
    with pytest.raises(DefinitionError, match="on_item_error"):
        engine.register(
            Workflow("oe", input=list[int], output=Any).foreach(total, on_item_error="skip")  # type: ignore[arg-type]
        )
