"""Suspending for a person and resuming exactly once with validated, attributed data."""

import asyncio
from collections import Counter
from datetime import UTC, datetime
from typing import Any

import pytest
from pydantic import BaseModel

from engine import (
    AlreadyResolved,
    Engine,
    EventType,
    Interrupt,
    InterruptKind,
    InterruptNotFound,
    InterruptStatus,
    NotAuthorized,
    ResumeValidationError,
    RunNotFound,
    RunStatus,
    StepContext,
    Workflow,
    WrongInterruptKind,
    step,
)
from tests.engine.conftest import EngineFactory
from tests.engine.wf_common import Approval, Done, Note, Req, Shown, pending, settle
from tests.support.polling import eventually


class Line(BaseModel):
    sku: str
    qty: int


class Order(BaseModel):
    lines: list[Line]
    note: str = ""


class Paid(BaseModel):
    amount: int
    currency: str


class ShownElsewhere(BaseModel):
    question: str
    extra: int = 0


def approval_wf(calls: Counter[str], **suspend: Any) -> Workflow:
    """``Req -> ask(approval) -> Done``; ``suspend`` goes to ctx.suspend."""

    @step
    async def ask(r: Req, ctx: StepContext[Shown, Approval]) -> Done:
        calls["ask"] += 1
        answer = await ctx.suspend(Shown(question=f"ok {r.name}?"), **suspend)
        assert ctx.resolution is not None
        return Done(name=r.name, approved=answer.approved, by=ctx.resolution.resolved_by)

    return Workflow("approve", input=Req, output=Done).then(ask)


async def started(engine: Engine, requester: str | None = None) -> tuple[str, Interrupt]:
    run_id = await engine.start("approve", {"name": "x"}, requester=requester)
    run = await settle(engine, run_id)
    assert run.status is RunStatus.SUSPENDED
    (interrupt,) = await pending(engine, run_id)
    return run_id, interrupt


async def test_the_suspend_payload_is_validated_and_stored(engine_factory: EngineFactory) -> None:
    @step
    async def ask(r: Req, ctx: StepContext[Shown, Approval]) -> Done:
        await ctx.suspend(ShownElsewhere(question=r.name, extra=3))  # type: ignore[arg-type]
        return Done(name=r.name)

    engine = await engine_factory(Workflow("w", input=Req, output=Done).then(ask))
    run = await settle(engine, await engine.start("w", {"name": "q"}))
    (interrupt,) = await pending(engine, run.id)
    assert interrupt.payload == {"question": "q"}  # as the suspend model shows it
    assert interrupt.kind is InterruptKind.INPUT
    assert interrupt.step == "ask"
    assert interrupt.title == "Ask"


async def test_a_payload_that_does_not_fit_the_suspend_model_fails_the_step(
    engine_factory: EngineFactory,
) -> None:
    @step
    async def ask(r: Req, ctx: StepContext[Shown, Approval]) -> Done:
        await ctx.suspend({"question": ["not", "a", "string"]})  # type: ignore[arg-type]
        return Done(name=r.name)

    engine = await engine_factory(Workflow("w", input=Req, output=Done).then(ask))
    run = await settle(engine, await engine.start("w", {"name": "q"}))
    assert run.status is RunStatus.FAILED
    assert run.error is not None
    assert "question" in run.error.message
    assert await engine.list_interrupts(status=None) == []


async def test_resume_data_is_validated_with_a_message_per_field(
    engine_factory: EngineFactory,
) -> None:
    @step
    async def ask(r: Req, ctx: StepContext[Shown, Order]) -> Done:
        order = await ctx.suspend(Shown(question="what?"))
        return Done(name=str(order.lines[0].qty))

    engine = await engine_factory(Workflow("w", input=Req, output=Done).then(ask))
    run = await settle(engine, await engine.start("w", {"name": "q"}))
    (interrupt,) = await pending(engine, run.id)
    before = await engine.get_run(run.id)

    bad = {"lines": [{"sku": "a", "qty": 1}, {"sku": "b", "qty": "many"}], "note": 5}
    with pytest.raises(ResumeValidationError) as info:
        await engine.resume(run.id, interrupt.id, bad, actor="ann")
    assert set(info.value.errors) == {"lines.1.qty", "note"}
    assert "integer" in info.value.errors["lines.1.qty"]
    assert "lines.1.qty" in str(info.value)

    with pytest.raises(ResumeValidationError) as info:
        await engine.resume(run.id, interrupt.id, {}, actor="ann")
    assert info.value.errors == {"lines": "Field required"}

    after = await engine.get_run(run.id)
    assert after.events == before.events
    assert after.run.status is RunStatus.SUSPENDED
    (still,) = after.pending
    assert still.responses == [] and still.resolved_by is None


async def test_a_valid_answer_records_actor_data_and_time(engine_factory: EngineFactory) -> None:
    engine = await engine_factory(approval_wf(Counter()))
    run_id, interrupt = await started(engine)
    t0 = datetime.now(UTC)
    outcome = await engine.resume(
        run_id, interrupt.id, Approval(approved=True, comment="fine"), actor="ann"
    )
    t1 = datetime.now(UTC)
    assert outcome.status is InterruptStatus.APPROVED
    assert outcome.resolved
    assert (outcome.approvals, outcome.needed) == (1, 1)

    run = await settle(engine, run_id)
    assert run.output == {"name": "x", "approved": True, "by": "ann"}
    detail = await engine.get_run(run_id)
    (done,) = detail.interrupts
    assert done.status is InterruptStatus.APPROVED
    assert done.resolved_by == "ann"
    assert done.resolved_at is not None and t0 <= done.resolved_at <= t1
    assert done.data == {"approved": True, "comment": "fine"}
    (response,) = done.responses
    assert (response.actor, response.approved) == ("ann", True)
    assert response.data == {"approved": True, "comment": "fine"}
    assert t0 <= response.at <= t1

    recorded = [e for e in detail.events if e.type is EventType.RESPONSE_RECORDED]
    resolved = [e for e in detail.events if e.type is EventType.RESOLVED]
    assert [e.data["actor"] for e in recorded] == ["ann"]
    assert [(e.data["by"], e.data["status"]) for e in resolved] == [("ann", "approved")]
    assert recorded[0].id < resolved[0].id


async def test_an_answer_without_an_approved_field_resolves_as_resolved(
    engine_factory: EngineFactory,
) -> None:
    @step
    async def ask(r: Req, ctx: StepContext[Shown, Note]) -> Done:
        note = await ctx.suspend(Shown(question="note?"))
        return Done(name=note.text)

    engine = await engine_factory(Workflow("w", input=Req, output=Done).then(ask))
    run = await settle(engine, await engine.start("w", {"name": "q"}))
    (interrupt,) = await pending(engine, run.id)
    outcome = await engine.resume(run.id, interrupt.id, {"text": "hello"}, actor="ann")
    assert outcome.status is InterruptStatus.RESOLVED
    assert (await settle(engine, run.id)).output["name"] == "hello"


async def test_resume_to_step_re_runs_the_step_and_suspend_returns_the_answer(
    engine_factory: EngineFactory,
) -> None:
    seen: list[Any] = []

    @step
    async def ask(r: Req, ctx: StepContext[Shown, Approval]) -> Done:
        seen.append(("before", ctx.resolution))
        answer = await ctx.suspend(Shown(question="?"))
        seen.append(("after", answer, ctx.resolution.resolved_by if ctx.resolution else None))
        return Done(name=r.name, approved=answer.approved)

    engine = await engine_factory(Workflow("w", input=Req, output=Done).then(ask))
    run = await settle(engine, await engine.start("w", {"name": "q"}))
    (interrupt,) = await pending(engine, run.id)
    assert seen == [("before", None)]
    await engine.resume(run.id, interrupt.id, {"approved": False, "comment": "no"}, actor="bo")
    run = await settle(engine, run.id)
    assert run.output == {"name": "q", "approved": False, "by": None}
    # Since issue 10 a re-run knows at entry that it resumes (ctx.is_resume, ctx.resolution).
    (_, at_entry), after = seen[1:]
    assert at_entry is not None and at_entry.resolved_by == "bo"
    assert after == ("after", Approval(approved=False, comment="no"), "bo")


async def test_resume_to_output_makes_the_answer_the_output_without_re_running(
    engine_factory: EngineFactory,
) -> None:
    calls: Counter[str] = Counter()

    @step(resume_to="output")
    async def ask(r: Req, ctx: StepContext[Shown, Approval]) -> Approval:
        calls["ask"] += 1
        return await ctx.suspend(Shown(question="?"))

    @step
    async def use(a: Approval) -> Done:
        return Done(name=a.comment, approved=a.approved)

    engine = await engine_factory(Workflow("w", input=Req, output=Done).then(ask).then(use))
    run = await settle(engine, await engine.start("w", {"name": "q"}))
    (interrupt,) = await pending(engine, run.id)
    await engine.resume(run.id, interrupt.id, {"approved": True, "comment": "yes"}, actor="ann")
    run = await settle(engine, run.id)
    assert run.output == {"name": "yes", "approved": True, "by": None}
    assert calls["ask"] == 1
    steps = {s.name: s for s in (await engine.get_run(run.id)).steps}
    assert steps["ask"].output == {"approved": True, "comment": "yes"}


async def test_a_caller_chosen_interrupt_id_is_used(engine_factory: EngineFactory) -> None:
    engine = await engine_factory(approval_wf(Counter(), interrupt_id="deploy-42"))
    run_id, interrupt = await started(engine)
    assert interrupt.id == "deploy-42"
    await engine.resume(run_id, "deploy-42", {"approved": True}, actor="ann")
    assert (await settle(engine, run_id)).status is RunStatus.COMPLETED


async def test_default_interrupt_ids_are_unique_per_suspend_call(
    engine_factory: EngineFactory,
) -> None:
    @step
    async def twice(r: Req, ctx: StepContext[Shown, Note]) -> Done:
        a = await ctx.suspend(Shown(question="first?"))
        b = await ctx.suspend(Shown(question="second?"))
        return Done(name=f"{a.text}/{b.text}")

    engine = await engine_factory(Workflow("w", input=Req, output=Done).then(twice))
    run = await settle(engine, await engine.start("w", {"name": "q"}))
    (first,) = await pending(engine, run.id)
    assert first.payload == {"question": "first?"}
    await engine.resume(run.id, first.id, {"text": "one"}, actor="a")
    await settle(engine, run.id)
    (second,) = await pending(engine, run.id)
    assert second.id != first.id
    assert second.payload == {"question": "second?"}
    await engine.resume(run.id, second.id, {"text": "two"}, actor="b")
    assert (await settle(engine, run.id)).output["name"] == "one/two"


async def test_an_interrupt_id_used_by_another_step_fails_the_step(
    engine_factory: EngineFactory,
) -> None:
    @step
    async def first(r: Req, ctx: StepContext[Shown, Note]) -> Req:
        await ctx.suspend(Shown(question="1"), interrupt_id="same")
        return r

    @step
    async def second(r: Req, ctx: StepContext[Shown, Note]) -> Done:
        await ctx.suspend(Shown(question="2"), interrupt_id="same")
        return Done(name=r.name)

    engine = await engine_factory(Workflow("w", input=Req, output=Done).then(first).then(second))
    run = await settle(engine, await engine.start("w", {"name": "q"}))
    await engine.resume(run.id, "same", {"text": "a"}, actor="ann")
    run = await settle(engine, run.id)
    assert run.status is RunStatus.FAILED
    assert run.error is not None
    assert "interrupt id 'same' is already used by step 'first'" in run.error.message
    failed = [s for s in (await engine.get_run(run.id)).steps if s.name == "second"]
    assert failed[0].error is not None


async def test_one_interrupt_id_in_two_parallel_branches_fails_the_run(
    engine_factory: EngineFactory,
) -> None:
    def asks(name: str) -> Any:
        async def body(r: Req, ctx: StepContext[Shown, Note]) -> Done:
            await ctx.suspend(Shown(question=name), interrupt_id="same")
            return Done(name=name)

        return step(name=name)(body)

    wf = Workflow("w", input=Req, output=Any).parallel(asks("a"), asks("b"))
    engine = await engine_factory(wf)
    run = await settle(engine, await engine.start("w", {"name": "q"}))
    assert run.status is RunStatus.FAILED
    assert run.error is not None
    assert "interrupt id 'same' is already used by step" in run.error.message
    assert await engine.list_interrupts() == []  # nobody is asked a question that can't be answered


async def test_one_caller_chosen_id_in_a_foreach_body_fails_the_run(
    engine_factory: EngineFactory,
) -> None:
    @step
    async def review(r: Req, ctx: StepContext[Shown, Note]) -> Done:
        await ctx.suspend(Shown(question=r.name), interrupt_id="review")
        return Done(name=r.name)

    wf = Workflow("w", input=list[Req], output=list[Done]).foreach(review, concurrency=2)
    engine = await engine_factory(wf)
    run = await settle(engine, await engine.start("w", [{"name": "a"}, {"name": "b"}]))
    assert run.status is RunStatus.FAILED
    assert run.error is not None and "include the item in ids used in loops" in run.error.message


async def test_resume_of_an_unknown_run_raises_run_not_found(engine: Engine) -> None:
    with pytest.raises(RunNotFound) as info:
        await engine.resume("nope", "x", {}, actor="ann")
    assert info.value.run_id == "nope"


async def test_resume_of_an_unknown_interrupt_raises_interrupt_not_found(
    engine_factory: EngineFactory,
) -> None:
    engine = await engine_factory(approval_wf(Counter()))
    run_id, _ = await started(engine)
    with pytest.raises(InterruptNotFound) as info:
        await engine.resume(run_id, "nope", {"approved": True}, actor="ann")
    assert (info.value.run_id, info.value.interrupt_id) == (run_id, "nope")


async def test_resume_after_it_was_resolved_says_by_whom_and_when(
    engine_factory: EngineFactory,
) -> None:
    engine = await engine_factory(approval_wf(Counter()))
    run_id, interrupt = await started(engine)
    await engine.resume(run_id, interrupt.id, {"approved": True}, actor="ann")
    await settle(engine, run_id)
    resolved = await engine.get_interrupt(run_id, interrupt.id)
    with pytest.raises(AlreadyResolved) as info:
        await engine.resume(run_id, interrupt.id, {"approved": False}, actor="bo")
    err = info.value
    assert (err.status, err.resolved_by) == ("approved", "ann")
    assert err.resolved_at == resolved.resolved_at is not None
    assert "already approved by ann at" in str(err)


async def test_only_listed_responders_may_answer(engine_factory: EngineFactory) -> None:
    engine = await engine_factory(approval_wf(Counter(), responders=["ann", "bo"]))
    run_id, interrupt = await started(engine)
    assert interrupt.responders == ["ann", "bo"]
    with pytest.raises(NotAuthorized) as info:
        await engine.resume(run_id, interrupt.id, {"approved": True}, actor="eve")
    assert info.value.actor == "eve"
    assert "only ann, bo may respond" in str(info.value)
    assert (await engine.get_interrupt(run_id, interrupt.id)).status is InterruptStatus.PENDING
    await engine.resume(run_id, interrupt.id, {"approved": True}, actor="bo")
    assert (await settle(engine, run_id)).output["by"] == "bo"


async def test_the_requester_may_not_approve_their_own_request(
    engine_factory: EngineFactory,
) -> None:
    engine = await engine_factory(approval_wf(Counter()))
    run_id, interrupt = await started(engine, requester="carol")
    assert interrupt.requester == "carol"
    with pytest.raises(NotAuthorized, match="the requester may not respond to their own request"):
        await engine.resume(run_id, interrupt.id, {"approved": True}, actor="carol")
    await engine.resume(run_id, interrupt.id, {"approved": True}, actor="dan")
    assert (await settle(engine, run_id)).output["by"] == "dan"


async def test_the_requester_may_answer_when_allowed(engine_factory: EngineFactory) -> None:
    engine = await engine_factory(approval_wf(Counter(), allow_requester=True))
    run_id, interrupt = await started(engine, requester="carol")
    await engine.resume(run_id, interrupt.id, {"approved": True}, actor="carol")
    assert (await settle(engine, run_id)).output["by"] == "carol"


async def test_an_authorizer_decides_for_group_names(engine_factory: EngineFactory) -> None:
    groups = {"@release-managers": {"rita", "ravi"}}
    asked: list[tuple[str, str]] = []

    async def authorizer(interrupt: Interrupt, actor: str) -> bool:
        asked.append((interrupt.id, actor))
        return any(actor in groups.get(r, set()) for r in interrupt.responders)

    wf = approval_wf(Counter(), responders=["ann", "@release-managers"])
    engine = await engine_factory(wf, authorizer=authorizer)
    run_id, interrupt = await started(engine)
    with pytest.raises(NotAuthorized):
        await engine.resume(run_id, interrupt.id, {"approved": True}, actor="eve")
    await engine.resume(run_id, interrupt.id, {"approved": True}, actor="ravi")
    assert asked == [(interrupt.id, "eve"), (interrupt.id, "ravi")]
    assert (await settle(engine, run_id)).output["by"] == "ravi"


async def test_an_authorizer_is_not_asked_about_listed_actors(
    engine_factory: EngineFactory,
) -> None:
    async def authorizer(interrupt: Interrupt, actor: str) -> bool:
        raise AssertionError("not needed for a listed actor")

    engine = await engine_factory(approval_wf(Counter(), responders=["ann"]), authorizer=authorizer)
    run_id, interrupt = await started(engine)
    await engine.resume(run_id, interrupt.id, {"approved": True}, actor="ann")
    assert (await settle(engine, run_id)).status is RunStatus.COMPLETED


def event_wf() -> Workflow:
    @step(events={"payment": Paid})
    async def wait_paid(r: Req, ctx: StepContext) -> Done:  # type: ignore[type-arg]
        paid = await ctx.wait_for_event("payment", Paid)
        by = ctx.resolution.resolved_by if ctx.resolution else None
        return Done(name=f"{paid.amount} {paid.currency}", by=by)

    return Workflow("pay", input=Req, output=Done).then(wait_paid)


async def test_send_event_delivers_validated_data_to_the_waiting_step(
    engine_factory: EngineFactory,
) -> None:
    engine = await engine_factory(event_wf())
    run = await settle(engine, await engine.start("pay", {"name": "q"}))
    (interrupt,) = await pending(engine, run.id)
    assert (interrupt.id, interrupt.kind, interrupt.event) == (
        "payment",
        InterruptKind.EVENT,
        "payment",
    )
    with pytest.raises(ResumeValidationError) as info:
        await engine.send_event(run.id, "payment", {"amount": "lots"})
    assert set(info.value.errors) == {"amount", "currency"}
    assert (await engine.get_interrupt(run.id, "payment")).status is InterruptStatus.PENDING

    outcome = await engine.send_event(
        run.id, "payment", {"amount": 5, "currency": "EUR"}, actor="billing"
    )
    assert outcome.status is InterruptStatus.RESOLVED
    run = await settle(engine, run.id)
    assert run.output == {"name": "5 EUR", "approved": False, "by": "billing"}


async def test_resume_on_an_event_interrupt_is_the_wrong_kind(
    engine_factory: EngineFactory,
) -> None:
    engine = await engine_factory(event_wf())
    run = await settle(engine, await engine.start("pay", {"name": "q"}))
    with pytest.raises(WrongInterruptKind, match="use send_event"):
        await engine.resume(run.id, "payment", {"amount": 1, "currency": "EUR"}, actor="ann")


async def test_send_event_on_an_input_interrupt_is_the_wrong_kind(
    engine_factory: EngineFactory,
) -> None:
    engine = await engine_factory(approval_wf(Counter(), interrupt_id="form"))
    run_id, _ = await started(engine)
    with pytest.raises(WrongInterruptKind, match="use resume"):
        await engine.send_event(run_id, "form", {"approved": True})


async def test_waiting_for_an_undeclared_event_fails_the_step(
    engine_factory: EngineFactory,
) -> None:
    @step
    async def wait_paid(r: Req, ctx: StepContext) -> Done:  # type: ignore[type-arg]
        await ctx.wait_for_event("payment", Paid)
        return Done(name="x")

    engine = await engine_factory(Workflow("w", input=Req, output=Done).then(wait_paid))
    run = await settle(engine, await engine.start("w", {"name": "q"}))
    assert run.status is RunStatus.FAILED
    assert run.error is not None and "does not declare it" in run.error.message


async def test_suspend_without_models_fails_the_step_with_a_hint(
    engine_factory: EngineFactory,
) -> None:
    @step
    async def ask(r: Req, ctx: StepContext) -> Done:  # type: ignore[type-arg]
        await ctx.suspend(Shown(question="?"))
        return Done(name="x")

    engine = await engine_factory(Workflow("w", input=Req, output=Done).then(ask))
    run = await settle(engine, await engine.start("w", {"name": "q"}))
    assert run.status is RunStatus.FAILED
    assert run.error is not None and "declares no suspend/resume models" in run.error.message


async def test_the_idempotency_key_is_stable_across_the_re_run(
    engine_factory: EngineFactory,
) -> None:
    keys: list[str] = []

    @step
    async def ask(r: Req, ctx: StepContext[Shown, Note]) -> Done:
        keys.append(ctx.idempotency_key)
        await ctx.suspend(Shown(question="?"))
        return Done(name=r.name)

    engine = await engine_factory(Workflow("w", input=Req, output=Done).then(ask))
    run_id = await engine.start("w", {"name": "q"})
    (interrupt,) = await pending(engine, (await settle(engine, run_id)).id)
    await engine.resume(run_id, interrupt.id, {"text": "t"}, actor="a")
    await settle(engine, run_id)
    assert keys == [f"{run_id}:0:ask", f"{run_id}:0:ask"]


class Gate:
    """A gate for ``Engine.yield_to``: counts how often it is asked, opens when told."""

    def __init__(self) -> None:
        self.opened = asyncio.Event()
        self.asked = 0

    async def __call__(self) -> None:
        """Wait until opened."""
        self.asked += 1
        await self.opened.wait()


async def test_an_answered_run_goes_on_only_once_the_gate_it_yields_to_opens(
    engine_factory: EngineFactory,
) -> None:
    """``Engine.yield_to``: the answer is committed at once, the run's next steps wait."""
    calls: Counter[str] = Counter()
    engine = await engine_factory(approval_wf(calls))
    run = await settle(engine, await engine.start("approve", {"name": "gate"}))
    (interrupt,) = await pending(engine, run.id)
    gate = Gate()

    engine.yield_to(gate)
    outcome = await engine.resume(run.id, interrupt.id, {"approved": True}, actor="alice")
    assert outcome.status is InterruptStatus.APPROVED  # committed before the gate opens
    await eventually(lambda: gate.asked == 1, what="the driver to ask the gate")
    still = await engine.find_run(run.id)
    assert still is not None and still.status is RunStatus.RUNNING
    gate.opened.set()
    done = await settle(engine, run.id)
    assert done.status is RunStatus.COMPLETED and calls["ask"] == 2
    engine.yield_to(None)


async def test_runs_answered_while_the_gate_is_shut_wait_for_it_together(
    engine_factory: EngineFactory,
) -> None:
    """A burst of answers asks the gate once, and every answered run goes on once it opens."""
    calls: Counter[str] = Counter()
    engine = await engine_factory(approval_wf(calls))
    runs = [await started(engine) for _ in range(5)]
    gate = Gate()

    engine.yield_to(gate)
    for run_id, interrupt in runs:
        await engine.resume(run_id, interrupt.id, {"approved": True}, actor="alice")
    await eventually(lambda: gate.asked == 1, what="the gate to be asked")
    for run_id, _ in runs:
        held = await engine.find_run(run_id)
        assert held is not None and held.status is RunStatus.RUNNING
    gate.opened.set()
    for run_id, _ in runs:
        assert (await settle(engine, run_id)).status is RunStatus.COMPLETED
    assert gate.asked == 1 and calls["ask"] == 10
    engine.yield_to(None)


async def test_runs_still_waiting_for_the_gate_at_shutdown_are_handed_over(
    engine_factory: EngineFactory,
) -> None:
    calls: Counter[str] = Counter()
    first = await engine_factory(approval_wf(calls), worker_id="w1")
    run_id, interrupt = await started(first)
    never = asyncio.Event()
    first.yield_to(never.wait)
    await first.resume(run_id, interrupt.id, {"approved": True}, actor="alice")

    await first.close(grace=0.2)

    # Abandoned with its lease run out: another worker resumes it at once.
    second = await engine_factory(approval_wf(calls), worker_id="w2")
    done = await settle(second, run_id)
    assert done.status is RunStatus.COMPLETED and done.output is not None
    assert done.output["approved"] is True
