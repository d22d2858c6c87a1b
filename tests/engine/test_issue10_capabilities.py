"""Issue 10, new capabilities: sleep until a time, labels, resume context, typed bail."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from pydantic import BaseModel

from engine import EventType, RunStatus, StepContext, Workflow, step
from tests.engine.conftest import EngineFactory
from tests.engine.fixtures_runtime import finished, history, parked
from tests.engine.wf_common import Approval, Done, Req, Shown


class Until(BaseModel):
    """When to wake up (an ISO datetime, naive or aware)."""

    at: str


@step
async def sleep_until(u: Until, ctx: StepContext) -> str:  # type: ignore[type-arg]
    """Sleeps until ``u.at``."""
    await ctx.sleep(datetime.fromisoformat(u.at))
    return "woke"


async def test_sleep_until_an_aware_datetime(engine_factory: EngineFactory) -> None:
    """Capability 7: ``ctx.sleep(datetime)`` (a TypeError before)."""
    engine = await engine_factory(Workflow("s", input=Until, output=str).then(sleep_until))
    at = (datetime.now().astimezone() + timedelta(seconds=0.3)).isoformat()
    run_id = await engine.start("s", {"at": at})
    await parked(engine, run_id)
    (timer,) = await engine.list_interrupts(run_id=run_id)
    assert timer.expires_at == datetime.fromisoformat(at)
    run = await finished(engine, run_id)
    assert (run.status, run.output) == (RunStatus.COMPLETED, "woke")


async def test_sleep_until_a_naive_datetime_fails_with_a_clear_error(
    engine_factory: EngineFactory,
) -> None:
    """Capability 7: a naive datetime is refused, saying what to do."""
    engine = await engine_factory(Workflow("s", input=Until, output=str).then(sleep_until))
    run = await finished(engine, await engine.start("s", {"at": "2030-01-01T09:00:00"}))
    assert run.status is RunStatus.FAILED and run.error is not None
    assert run.error.type == "ValueError"
    assert "needs a timezone-aware datetime" in run.error.message


@step
async def labelled(r: Req, ctx: StepContext[Shown, Approval]) -> Done:
    """Asks with a label chosen by the input."""
    answer = await ctx.suspend(Shown(question=r.name), label=r.name.split("-")[0])
    return Done(name=r.name, approved=answer.approved)


async def test_an_interrupt_label_is_stored_and_filterable(engine_factory: EngineFactory) -> None:
    """Capability 9: ``suspend(label=...)``, ``Interrupt.label``, ``list_interrupts(label=)``."""
    engine = await engine_factory(Workflow("w", input=Req, output=Done).then(labelled))
    ids = [await engine.start("w", {"name": n}) for n in ("refund-1", "access-1", "refund-2")]
    for run_id in ids:
        await parked(engine, run_id)
    refunds = await engine.list_interrupts(label="refund")
    assert [i.run_id for i in refunds] == [ids[0], ids[2]]
    assert {i.label for i in refunds} == {"refund"}
    assert {i.kind.value for i in refunds} == {"input"}  # the engine's own kind is apart
    assert [i.run_id for i in await engine.list_interrupts(label="access")] == [ids[1]]
    (created,) = await history(engine, ids[1], EventType.SUSPENDED)
    assert created.data["label"] == "access"


async def test_a_resumed_step_knows_it_resumes_and_reads_the_answer_at_entry(
    engine_factory: EngineFactory,
) -> None:
    """Capability 1: ``ctx.is_resume`` / ``ctx.resume_value`` / ``ctx.resolution`` at entry."""
    seen: list[Any] = []

    @step
    async def ask(r: Req, ctx: StepContext[Shown, Approval]) -> Done:
        seen.append((ctx.is_resume, ctx.resume_value))
        if ctx.is_resume and ctx.resume_value is not None and not ctx.resume_value.approved:
            return Done(name="rejected early")
        answer = await ctx.suspend(Shown(question="?"))
        return Done(name=r.name, approved=answer.approved)

    engine = await engine_factory(Workflow("w", input=Req, output=Done).then(ask))
    run_id = await engine.start("w", {"name": "q"})
    await parked(engine, run_id)
    (interrupt,) = await engine.list_interrupts(run_id=run_id)
    await engine.resume(run_id, interrupt.id, {"approved": False, "comment": "no"}, actor="bo")
    run = await finished(engine, run_id)
    assert run.output == {"name": "rejected early", "approved": False, "by": None}
    assert seen == [(False, None), (True, Approval(approved=False, comment="no"))]


class Refusal(BaseModel):
    """A typed bail result."""

    code: str
    limit: int


@step(bail=Refusal)
async def over_limit(r: Req, ctx: StepContext) -> Done:  # type: ignore[type-arg]
    """Bails with a typed result."""
    ctx.bail("over the limit", result={"code": "LIMIT", "limit": 100})


async def test_bail_records_a_validated_typed_result_as_the_run_output(
    engine_factory: EngineFactory,
) -> None:
    """Capability 6: ``ctx.bail(reason, result=...)`` with ``@step(bail=Model)``."""
    engine = await engine_factory(Workflow("w", input=Req, output=Done).then(over_limit))
    run_id = await engine.start("w", {"name": "b", "amount": 500})
    run = await finished(engine, run_id)
    assert run.status is RunStatus.REJECTED
    assert run.output == {"code": "LIMIT", "limit": 100}
    assert run.error is not None and run.error.message == "over the limit"
    (bailed,) = await history(engine, run_id, EventType.BAILED)
    assert bailed.data["result"] == {"code": "LIMIT", "limit": 100}
