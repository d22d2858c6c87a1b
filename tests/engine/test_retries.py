"""Step retries, timeouts and how failures are recorded; the idempotency key."""

from __future__ import annotations

import asyncio
import time

import pytest
from pydantic import BaseModel

from engine import (
    DefinitionError,
    EventType,
    Retry,
    RunStatus,
    StepContext,
    StepStatus,
    Workflow,
    step,
)
from tests.engine.conftest import EngineFactory
from tests.engine.fixtures_runtime import (
    PROBE,
    Collect,
    Probe,
    finished,
    history,
    parked,
)
from tests.support.polling import eventually


class Job(BaseModel):
    """Input: how many times the flaky step fails before it works."""

    failures: int = 0
    sleep: float = 0.0


class PaymentDeclined(Exception):
    """A business error raised by a step."""


@step(retries=Retry(attempts=4, backoff=0.05, on=(ConnectionError,)))
async def flaky(job: Job, ctx: StepContext) -> int:
    """Fails with ConnectionError ``job.failures`` times, then returns its attempt."""
    PROBE.hit("flaky", (ctx.attempt, time.monotonic(), ctx.idempotency_key))
    if ctx.attempt <= job.failures:
        raise ConnectionError(f"network down (attempt {ctx.attempt})")
    return ctx.attempt


@step(retries=Retry(attempts=5, backoff=0.05, on=(ConnectionError,)))
async def picky(job: Job) -> int:
    """Fails with an exception its retry policy does not list."""
    PROBE.hit("picky")
    raise ValueError("bad amount: -3")


@step
async def charge(job: Job) -> int:
    """Fails with a business error (no retries configured)."""
    PROBE.hit("charge")
    _decline(job)
    return 0


def _decline(job: Job) -> None:
    raise PaymentDeclined(f"card declined for {job.failures} EUR")


@step(timeout=0.1, retries=Retry(attempts=2, backoff=0.01, on=(TimeoutError,)))
async def slow(job: Job, ctx: StepContext) -> int:
    """Sleeps ``job.sleep`` on its first attempt only; each attempt may take 0.1 s."""
    PROBE.hit("slow", ctx.attempt)
    if ctx.attempt == 1:
        await asyncio.sleep(job.sleep)
    return ctx.attempt


@step(timeout=0.1)
async def stuck(job: Job) -> int:
    """Never finishes within its timeout."""
    PROBE.hit("stuck")
    await asyncio.sleep(job.sleep)
    return 0


class Shown(BaseModel):
    """What the approver sees."""

    note: str


class Answer(BaseModel):
    """What the approver answers."""

    ok: bool


@step(retries=Retry(attempts=2, backoff=0.01, on=(ConnectionError,)))
async def keyed(job: Job, ctx: StepContext[Shown, Answer]) -> str:
    """Records its idempotency key on every attempt and every re-run after a resume."""
    PROBE.hit("keyed", ctx.idempotency_key)
    if ctx.attempt == 1:
        raise ConnectionError("first try fails")
    await ctx.suspend(Shown(note="confirm"))
    return ctx.idempotency_key


retrying = Workflow("retrying", input=Job, output=int).then(flaky)
not_listed = Workflow("not_listed", input=Job, output=int).then(picky)
declining = Workflow("declining", input=Job, output=int).then(charge)
timing_out = Workflow("timing_out", input=Job, output=int).then(slow)
hanging = Workflow("hanging", input=Job, output=int).then(stuck)
keys = Workflow("keys", input=Job, output=str).then(keyed)


async def test_listed_exceptions_are_retried_with_exponential_backoff(
    engine_factory: EngineFactory, probe: Probe
) -> None:
    engine = await engine_factory(retrying)
    run_id = await engine.start(retrying, {"failures": 3})

    run = await finished(engine, run_id)

    assert run.status is RunStatus.COMPLETED
    assert run.output == 4
    attempts = [attempt for attempt, _, _ in probe.seen["flaky"]]
    assert attempts == [1, 2, 3, 4]
    at = [t for _, t, _ in probe.seen["flaky"]]
    gaps = [b - a for a, b in zip(at, at[1:], strict=False)]
    for gap, delay in zip(gaps, [0.05, 0.1, 0.2], strict=True):
        assert gap >= delay * 0.9
    retrying_events = await history(engine, run_id, EventType.STEP_RETRYING)
    assert [(e.data["attempt"], e.data["delay"]) for e in retrying_events] == [
        (1, 0.05),
        (2, 0.1),
        (3, 0.2),
    ]
    assert retrying_events[0].data["error"] == "ConnectionError: network down (attempt 1)"
    (record,) = (await engine.get_run(run_id)).steps
    assert (record.status, record.attempts, record.output) == (StepStatus.COMPLETED, 4, 4)


async def test_retries_exhausted_fail_the_run_with_the_last_error(
    engine_factory: EngineFactory, probe: Probe
) -> None:
    engine = await engine_factory(retrying)
    run_id = await engine.start(retrying, {"failures": 10})

    run = await finished(engine, run_id)

    assert run.status is RunStatus.FAILED
    assert probe.calls["flaky"] == 4
    assert run.error is not None
    assert (run.error.type, run.error.message) == ("ConnectionError", "network down (attempt 4)")
    (record,) = (await engine.get_run(run_id)).steps
    assert (record.status, record.attempts) == (StepStatus.FAILED, 4)
    assert len(await history(engine, run_id, EventType.STEP_RETRYING)) == 3


async def test_exceptions_not_listed_fail_at_once(
    engine_factory: EngineFactory, probe: Probe
) -> None:
    engine = await engine_factory(not_listed)
    run_id = await engine.start(not_listed, {})

    run = await finished(engine, run_id)

    assert run.status is RunStatus.FAILED
    assert probe.calls["picky"] == 1
    assert run.error is not None and run.error.type == "ValueError"
    assert await history(engine, run_id, EventType.STEP_RETRYING) == []
    (record,) = (await engine.get_run(run_id)).steps
    assert record.attempts == 1


async def test_a_failure_is_recorded_with_type_message_and_traceback(
    engine_factory: EngineFactory, collect: Collect
) -> None:
    engine = await engine_factory(declining)
    finished_messages = collect(engine, topics=["run.finished"])
    run_id = await engine.start(declining, {"failures": 42})

    run = await finished(engine, run_id)

    assert run.status is RunStatus.FAILED
    assert run.error is not None
    assert run.error.type == "PaymentDeclined"
    assert run.error.message == "card declined for 42 EUR"
    assert "Traceback (most recent call last)" in run.error.traceback
    assert "in _decline" in run.error.traceback
    assert "PaymentDeclined: card declined for 42 EUR" in run.error.traceback
    (record,) = (await engine.get_run(run_id)).steps
    assert record.status is StepStatus.FAILED
    assert record.error == run.error
    (step_failed,) = await history(engine, run_id, EventType.STEP_FAILED)
    assert step_failed.data["error"]["type"] == "PaymentDeclined"
    (failed,) = await history(engine, run_id, EventType.FAILED)
    assert failed.data["error"] == {
        "type": "PaymentDeclined",
        "message": "card declined for 42 EUR",
    }

    async def delivered() -> bool:
        return bool(finished_messages)

    await eventually(delivered)
    (message,) = finished_messages
    assert message.data["status"] == "failed"
    assert message.data["error"]["type"] == "PaymentDeclined"


async def test_a_step_over_its_timeout_fails_with_timeout_error(
    engine_factory: EngineFactory, probe: Probe
) -> None:
    engine = await engine_factory(hanging)
    started = time.monotonic()
    run_id = await engine.start(hanging, {"sleep": 30})

    run = await finished(engine, run_id)

    assert time.monotonic() - started < 5
    assert run.status is RunStatus.FAILED
    # Since issue 10: a typed StepTimedOut naming the step, the limit and the attempt.
    assert run.error is not None and run.error.type == "StepTimedOut"
    assert "step 'stuck' timed out after 0.1s on attempt 1" in run.error.message
    assert probe.calls["stuck"] == 1


async def test_the_timeout_applies_to_each_attempt(
    engine_factory: EngineFactory, probe: Probe
) -> None:
    engine = await engine_factory(timing_out)
    run_id = await engine.start(timing_out, {"sleep": 30})

    run = await finished(engine, run_id)

    assert run.status is RunStatus.COMPLETED
    assert run.output == 2
    assert probe.seen["slow"] == [1, 2]
    (retry,) = await history(engine, run_id, EventType.STEP_RETRYING)
    assert retry.data["error"].startswith("StepTimedOut")


async def test_idempotency_key_is_stable_across_retries_and_re_runs(
    engine_factory: EngineFactory, probe: Probe
) -> None:
    engine = await engine_factory(keys)
    first = await engine.start(keys, {})
    second = await engine.start(keys, {})
    for run_id in (first, second):
        await parked(engine, run_id)
        (ask,) = await engine.list_interrupts(run_id=run_id)
        await engine.resume(run_id, ask.id, {"ok": True}, actor="alice")
        assert (await finished(engine, run_id)).status is RunStatus.COMPLETED

    seen = probe.seen["keyed"]
    # per run: attempt 1 fails, attempt 2 suspends; after the answer the step runs
    # again from attempt 1: it fails, and attempt 2 returns the answer
    assert len(seen) == 8
    by_run = {run_id: [k for k in seen if k.startswith(run_id)] for run_id in (first, second)}
    for run_id, run_keys in by_run.items():
        assert len(run_keys) == 4
        assert len(set(run_keys)) == 1
        assert (await engine.get_run(run_id)).run.output == run_keys[0]
    assert by_run[first][0] != by_run[second][0]


def test_a_retry_policy_without_attempts_is_refused_at_definition() -> None:
    with pytest.raises(DefinitionError, match="retries must be >= 0"):

        @step(retries=Retry(attempts=0))
        async def never(job: Job) -> int:
            return 0
