"""Issue 10, defects: each test failed before its fix (see the docstring of each)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from pydantic import BaseModel, Field

from engine import (
    DefinitionError,
    Engine,
    EventType,
    Interrupt,
    InterruptStatus,
    Retry,
    RunStatus,
    StepContext,
    StepStatus,
    Workflow,
    step,
)
from engine import errors as engine_errors
from tests.engine.conftest import EngineFactory
from tests.engine.fixtures_runtime import (
    PROBE,
    Collect,
    Probe,
    finished,
    history,
    parked,
    stored_run,
)
from tests.engine.wf_common import Approval, Done, Note, Req, Shown
from tests.support.polling import eventually


class Named(BaseModel):
    """An intermediate output."""

    name: str


@step
async def named(r: Req) -> Named:
    """Turns the input into a Named."""
    return Named(name=r.name)


async def test_output_of_returns_the_steps_output_model(engine_factory: EngineFactory) -> None:
    """Defect 1: ``ctx.output_of(step)`` returned a raw dict."""
    seen: list[Any] = []

    @step
    async def later(n: Named, ctx: StepContext) -> Done:  # type: ignore[type-arg]
        seen.append(ctx.output_of(named))
        seen.append(ctx.output_of("named"))
        return Done(name=n.name)

    engine = await engine_factory(Workflow("w", input=Req, output=Done).then(named).then(later))
    run = await finished(engine, await engine.start("w", {"name": "a"}))
    assert run.status is RunStatus.COMPLETED
    assert seen == [Named(name="a"), Named(name="a")]
    assert all(isinstance(s, Named) for s in seen)


def test_a_misspelled_resume_to_is_a_definition_error() -> None:
    """Defect 2: ``resume_to="typo"`` was accepted and behaved like "step"."""
    with pytest.raises(DefinitionError, match="resume_to='typo'"):

        @step(resume_to="typo")  # type: ignore[call-overload]
        async def ask(r: Req, ctx: StepContext[Shown, Approval]) -> Done:
            return Done(name=r.name)


class Items(BaseModel):
    """A list of numbers to loop over."""

    values: list[int]


@step
async def spread(i: Items) -> list[int]:
    """The loop's input."""
    return i.values


@step
async def check_item(n: int, ctx: StepContext) -> int:  # type: ignore[type-arg]
    """Fails on 2, bails on 3."""
    PROBE.hit("item", n)
    if n == 2:
        raise RuntimeError("item 2 is broken")
    if n == 3:
        ctx.bail("item 3 says no")
    return n


@pytest.mark.parametrize(("values", "status"), [([1, 2, 4], "failed"), ([1, 3, 4], "rejected")])
async def test_foreach_stops_the_other_items_when_one_fails_or_bails(
    engine_factory: EngineFactory, probe: Probe, values: list[int], status: str
) -> None:
    """Defect 3: foreach kept running other items after one bailed or raised."""
    wf = Workflow("loop", input=Items, output=list[int]).then(spread).foreach(check_item)
    engine = await engine_factory(wf)
    run = await finished(engine, await engine.start("loop", {"values": values}))
    assert run.status.value == status
    assert probe.seen["item"] == values[:2]  # the last item never started


@step
async def ask_note(r: Req, ctx: StepContext[Shown, Approval]) -> Done:
    """Waits for an approval."""
    answer = await ctx.suspend(Shown(question="?"))
    return Done(name=r.name, approved=answer.approved)


async def test_cancel_records_the_same_actor_in_interrupt_history_and_outbox(
    engine_factory: EngineFactory, collect: Collect
) -> None:
    """Defect 4: the interrupt said 'system', the history said None, for a named actor."""
    engine = await engine_factory(Workflow("w", input=Req, output=Done).then(ask_note))
    got = collect(engine, topics=["interrupt.resolved"])
    run_id = await engine.start("w", {"name": "c"})
    await parked(engine, run_id)
    await engine.cancel(run_id, reason="stop", actor="U0OPS")

    (interrupt,) = (await engine.get_run(run_id)).interrupts
    assert (interrupt.status, interrupt.resolved_by) == (InterruptStatus.CANCELLED, "U0OPS")
    (resolved,) = await history(engine, run_id, EventType.RESOLVED)
    assert resolved.data["by"] == "U0OPS"
    await eventually(lambda: len(got) == 1)
    assert got[0].data["by"] == "U0OPS"


@step
async def held(r: Req) -> Done:
    """Held at its gate until the test opens it."""
    PROBE.hit("held")
    await PROBE.wait("held")
    return Done(name=r.name)


async def test_a_step_is_visible_in_history_while_it_runs(
    engine_factory: EngineFactory, probe: Probe
) -> None:
    """Defect 5: ``step_started`` was committed only with the step's result."""
    engine = await engine_factory(Workflow("w", input=Req, output=Done).then(held))
    run_id = await engine.start("w", {"name": "s"})
    await eventually(lambda: probe.calls["held"] == 1)

    async def started() -> bool:
        return bool(await history(engine, run_id, EventType.STEP_STARTED))

    await eventually(started, timeout=2)
    assert not await history(engine, run_id, EventType.STEP_COMPLETED)
    (begin,) = await history(engine, run_id, EventType.STEP_STARTED)
    assert begin.data == {"step": "held", "path": "0:held", "attempt": 1}
    assert (await engine.get_run(run_id)).steps == []  # no result yet
    probe.gate("held").set()
    assert (await finished(engine, run_id)).status is RunStatus.COMPLETED
    assert len(await history(engine, run_id, EventType.STEP_STARTED)) == 1


@step(resume_to="output")
async def answer_is_output(r: Req, ctx: StepContext[Shown, Approval]) -> Approval:
    """The answer becomes the output."""
    return await ctx.suspend(Shown(question="?"))


async def test_resume_to_output_records_one_step_started(engine_factory: EngineFactory) -> None:
    """Defect 6: ``resume_to="output"`` wrote a second ``step_started``."""
    engine = await engine_factory(Workflow("w", input=Req, output=Approval).then(answer_is_output))
    run_id = await engine.start("w", {"name": "o"})
    await parked(engine, run_id)
    (ask,) = await engine.list_interrupts(run_id=run_id)
    await engine.resume(run_id, ask.id, {"approved": True}, actor="ann")
    assert (await finished(engine, run_id)).status is RunStatus.COMPLETED
    assert len(await history(engine, run_id, EventType.STEP_STARTED)) == 1


@step(timeout=0.05)
async def too_slow(r: Req) -> Done:
    """Never finishes in time."""
    await asyncio.sleep(5)
    return Done(name=r.name)


async def test_a_step_timeout_names_the_step_the_limit_and_the_attempt(
    engine_factory: EngineFactory,
) -> None:
    """Defect 7: a timeout was recorded as ``TimeoutError: TimeoutError``."""
    engine = await engine_factory(Workflow("w", input=Req, output=Done).then(too_slow))
    run = await finished(engine, await engine.start("w", {"name": "t"}))
    assert run.status is RunStatus.FAILED and run.error is not None
    assert run.error.type == "StepTimedOut"
    assert "step 'too_slow' timed out after 0.05s on attempt 1" in run.error.message
    assert issubclass(engine_errors.StepTimedOut, TimeoutError)


def test_a_workflow_without_output_outputs_its_last_steps_output() -> None:
    """Defect 8: leaving out ``output=`` failed with "A is not None"."""
    from engine.registry import Registry

    wf = Workflow("w", input=Req).then(named)
    Registry().register(wf)
    assert wf.output is Named


def test_a_workflow_ending_in_branches_of_several_types_needs_output() -> None:
    """Defect 8: when the last node's type is ambiguous, say that ``output=`` is required."""
    from engine.registry import Registry

    @step
    async def other(r: Req) -> Done:
        return Done(name=r.name)

    wf = Workflow("w", input=Req).branch((lambda r: True, named), otherwise=other)
    with pytest.raises(DefinitionError, match="output= is required"):
        Registry().register(wf)


@step
async def open_to_group(r: Req, ctx: StepContext[Shown, Approval]) -> Done:
    """Asks a group (or a named person), labelled by the input."""
    who = "group:FIN" if r.amount else "U0NAMED"
    await ctx.suspend(Shown(question=r.name), responders=[who], label=f"kind{r.amount % 2}")
    return Done(name=r.name)


async def test_list_interrupts_for_an_actor_asks_the_authorizer_once_per_responder_list(
    engine_factory: EngineFactory,
) -> None:
    """Defect 9: ``list_interrupts(actor=...)`` ignored the authorizer."""
    calls: list[tuple[str, ...]] = []

    async def finance(interrupt: Interrupt, actor: str) -> bool:
        calls.append(tuple(interrupt.responders))
        return actor == "U0MEMBER" and "group:FIN" in interrupt.responders

    wf = Workflow("w", input=Req, output=Done).then(open_to_group)
    engine = await engine_factory(wf, authorizer=finance)
    ids = [await engine.start("w", {"name": f"r{n}", "amount": n}) for n in (1, 2, 3, 0)]
    for run_id in ids:
        await parked(engine, run_id)

    mine = await engine.list_interrupts(actor="U0MEMBER")
    assert [i.run_id for i in mine] == ids[:3]
    assert calls == [("group:FIN",), ("U0NAMED",)]  # once per responder list in a call
    assert len(await engine.list_interrupts(actor="U0MEMBER", limit=2)) == 2
    assert [i.run_id for i in await engine.list_interrupts(actor="U0OTHER")] == []
    assert [i.run_id for i in await engine.list_interrupts(actor="U0NAMED")] == [ids[3]]
    odd = await engine.list_interrupts(actor="U0MEMBER", label="kind1")
    assert [i.run_id for i in odd] == [ids[0], ids[2]]
    # groups= still matches verbatim without asking the authorizer
    calls.clear()
    assert len(await engine.list_interrupts(actor="U0X", groups=["group:FIN"])) == 3
    assert calls == [("U0NAMED",)]  # the verbatim group matches needed no question


def test_a_step_quorum_without_an_approved_field_is_refused_at_decoration() -> None:
    """Defect 10: ``quorum=2`` on a model without ``approved: bool`` failed at run time."""
    with pytest.raises(DefinitionError, match="needs a resume model with a bool"):

        @step(quorum=2)
        async def vote(r: Req, ctx: StepContext[Shown, Note]) -> Done:
            return Done(name=r.name)


@step
async def bad_quorum(r: Req, ctx: StepContext[Shown, Note]) -> Done:
    """Passes a quorum its resume model cannot count."""
    await ctx.suspend(Shown(question="?"), quorum=2)
    return Done(name=r.name)


async def test_a_suspend_quorum_without_approved_fails_before_anything_is_written(
    engine_factory: EngineFactory,
) -> None:
    """Defect 10: the run-time check is a DefinitionError naming the step, not a TypeError."""
    engine = await engine_factory(Workflow("w", input=Req, output=Done).then(bad_quorum))
    run_id = await engine.start("w", {"name": "q"})
    run = await finished(engine, run_id)
    assert run.status is RunStatus.FAILED and run.error is not None
    assert run.error.type == "DefinitionError"
    assert run.error.message.startswith("step 'bad_quorum': quorum=2")
    assert (await engine.get_run(run_id)).interrupts == []


class Total(BaseModel):
    """An output with a constraint."""

    total: int = Field(gt=0)


@step
async def constructed(r: Req) -> Total:
    """Builds its output without validation."""
    return Total.model_construct(total=-5)


async def test_an_output_built_with_model_construct_is_validated_when_recorded(
    engine_factory: EngineFactory,
) -> None:
    """Defect 11: a run completed with ``{'total': -5}`` despite ``gt=0``."""
    engine = await engine_factory(Workflow("w", input=Req, output=Total).then(constructed))
    run = await finished(engine, await engine.start("w", {"name": "m"}))
    assert run.status is RunStatus.FAILED and run.error is not None
    assert run.error.type == "StepOutputInvalid"
    assert "total" in run.error.message and run.output is None


@step(retries=Retry(attempts=3, backoff=0.01))
async def flaky(r: Req, ctx: StepContext) -> Done:  # type: ignore[type-arg]
    """Fails its first attempt, hangs in its second, fails any later one."""
    PROBE.hit("flaky", ctx.attempt)
    if ctx.attempt == 2:
        await PROBE.wait("flaky")
    raise RuntimeError(f"attempt {ctx.attempt} failed")


async def test_retry_attempts_continue_from_the_recorded_count_after_a_crash(
    engine_factory: EngineFactory, probe: Probe, db_path: str
) -> None:
    """Defect 12: attempts lived in memory, so a crash restarted them at 1."""
    wf = Workflow("w", input=Req, output=Done).then(flaky)
    first = await engine_factory(wf, lease=60.0)
    run_id = await first.start("w", {"name": "r"})
    await eventually(lambda: probe.seen["flaky"] == [1, 2])
    await first.close(grace=0.1)  # attempt 2 is cut off, like a crash
    begun = [e for e in (await stored_run(db_path, run_id)).events if e.type == "step_started"]
    assert [e.data["attempt"] for e in begun] == [1, 2]

    second: Engine = await engine_factory(wf, lease=60.0)
    run = await finished(second, run_id)
    assert run.status is RunStatus.FAILED
    assert probe.seen["flaky"] == [1, 2, 3]  # 3 attempts in all, across the crash
    (rec,) = (await second.get_run(run_id)).steps
    assert (rec.status, rec.attempts) == (StepStatus.FAILED, 3)
