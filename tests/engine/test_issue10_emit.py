"""Issue 10, item 5: intermediate output of a running step (``ctx.emit``, ``step.emitted``)."""

from __future__ import annotations

from pydantic import BaseModel

from engine import EventType, RunStatus, StepContext, Workflow, step
from tests.engine.conftest import EngineFactory
from tests.engine.fixtures_runtime import PROBE, Collect, Probe, finished, history
from tests.engine.wf_common import Req
from tests.support.polling import eventually


class Progress(BaseModel):
    """Intermediate output."""

    done: int
    of: int


@step
async def long_job(r: Req, ctx: StepContext) -> str:  # type: ignore[type-arg]
    """Reports progress, then waits for the test to let it finish."""
    PROBE.hit("long_job", ctx.attempt)
    await ctx.emit(Progress(done=1, of=3))
    await PROBE.wait("finish")
    await ctx.emit("almost there")
    return "done"


job = Workflow("job", input=Req, output=str).then(long_job)


async def test_an_emit_is_committed_and_delivered_while_the_step_still_runs(
    engine_factory: EngineFactory, collect: Collect, probe: Probe
) -> None:
    engine = await engine_factory(job)
    emitted = collect(engine, topics=["step.emitted"])
    run_id = await engine.start(job, {"name": "j"})

    (first,) = await eventually(lambda: history(engine, run_id, EventType.EMITTED))
    await eventually(lambda: emitted, what="step.emitted delivered")

    assert (await engine.find_run(run_id)).status is RunStatus.RUNNING  # type: ignore[union-attr]
    assert first.data == {
        "step": "long_job",
        "path": "0:long_job",
        "attempt": 1,
        "seq": 1,
        "model": "Progress",
        "value": {"done": 1, "of": 3},
    }
    assert emitted[0].topic == "step.emitted" and emitted[0].data == first.data
    probe.gate("finish").set()
    run = await finished(engine, run_id)
    assert (run.status, run.output) == (RunStatus.COMPLETED, "done")
    types = [e.type for e in await history(engine, run_id)]
    assert types == [
        EventType.STARTED,
        EventType.STEP_STARTED,
        EventType.EMITTED,
        EventType.EMITTED,
        EventType.STEP_COMPLETED,
        EventType.COMPLETED,
    ]
    second = (await history(engine, run_id, EventType.EMITTED))[1]
    assert (second.data["model"], second.data["value"], second.data["seq"]) == (
        None,
        "almost there",
        2,
    )


async def test_an_emit_is_recorded_again_when_the_step_runs_again_after_a_crash(
    engine_factory: EngineFactory, probe: Probe
) -> None:
    first = await engine_factory(job)
    run_id = await first.start(job, {"name": "j"})
    await eventually(lambda: history(first, run_id, EventType.EMITTED))
    await first.close(grace=0.05)  # cut off mid-step, as a crash would

    probe.gate("finish").set()
    second = await engine_factory(job)
    run = await finished(second, run_id)

    assert run.status is RunStatus.COMPLETED
    emits = await history(second, run_id, EventType.EMITTED)
    assert [(e.data["attempt"], e.data["value"]) for e in emits] == [
        (1, {"done": 1, "of": 3}),
        (2, {"done": 1, "of": 3}),
        (2, "almost there"),
    ]
    assert probe.seen["long_job"] == [1, 2]


@step
async def emits_junk(r: Req, ctx: StepContext) -> str:  # type: ignore[type-arg]
    """Emits something that is neither a model nor a text."""
    await ctx.emit(42)  # type: ignore[arg-type]
    return "never"


async def test_an_emit_of_neither_a_model_nor_a_text_fails_the_step(
    engine_factory: EngineFactory,
) -> None:
    engine = await engine_factory(Workflow("junk", input=Req, output=str).then(emits_junk))
    run = await finished(engine, await engine.start("junk", {"name": "j"}))
    assert run.status is RunStatus.FAILED and run.error is not None
    assert run.error.type == "TypeError" and "takes a pydantic model or a str" in run.error.message
