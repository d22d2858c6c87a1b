"""Engine.retry: a failed run runs again from its failed step; count_runs_by_workflow."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

import pytest
from pydantic import BaseModel

from engine import (
    EventType,
    RunNotFound,
    RunNotRetryable,
    RunStatus,
    StepContext,
    StepStatus,
    Workflow,
    open_store,
    step,
)
from tests.engine.conftest import EngineFactory
from tests.engine.wf_common import Approval, Shown


class Count(BaseModel):
    n: int


CALLS: dict[str, int] = {}
BROKEN = {"second": True}


@step
async def first(c: Count) -> Count:
    CALLS["first"] = CALLS.get("first", 0) + 1
    return Count(n=c.n + 1)


@step
async def second(c: Count) -> Count:
    CALLS["second"] = CALLS.get("second", 0) + 1
    if BROKEN["second"]:
        raise RuntimeError("the service is down")
    return Count(n=c.n * 10)


@step
async def third(c: Count) -> Count:
    CALLS["third"] = CALLS.get("third", 0) + 1
    return Count(n=c.n + 3)


@step
async def ask(c: Count, ctx: StepContext[Shown, Approval]) -> Count:
    await ctx.suspend(Shown(question="ok?"))
    return c


chain = Workflow("chain", input=Count, output=Count).then(first).then(second).then(third)
asking = Workflow("asking", input=Count, output=Count).then(ask)


@pytest.fixture(autouse=True)
def _reset() -> None:
    CALLS.clear()
    BROKEN["second"] = True


async def test_a_run_failed_in_step_2_of_3_is_retried_and_completes_without_rerunning_step_1(
    engine_factory: EngineFactory,
) -> None:
    engine = await engine_factory(chain)
    run_id = await engine.start("chain", {"n": 1})
    failed = await engine.wait(run_id, timeout=5)
    assert failed.status is RunStatus.FAILED
    assert CALLS == {"first": 1, "second": 1}

    BROKEN["second"] = False
    again = await engine.retry(run_id, actor="U0ADMIN")
    assert again.status is RunStatus.RUNNING
    done = await engine.wait(run_id, timeout=5)

    assert done.status is RunStatus.COMPLETED
    assert done.output == {"n": 23}  # (1 + 1) * 10 + 3
    assert done.error is None
    assert CALLS == {"first": 1, "second": 2, "third": 1}
    detail = await engine.get_run(run_id)
    by_name = {s.name: s for s in detail.steps}
    assert [s.status for s in detail.steps] == [StepStatus.COMPLETED] * 3
    assert by_name["second"].attempts == 1  # fresh attempts
    types = [e.type for e in detail.events]
    assert types.index(EventType.FAILED) < types.index(EventType.RETRIED)
    assert types[-1] is EventType.COMPLETED
    retried = next(e for e in detail.events if e.type is EventType.RETRIED)
    assert retried.data["by"] == "U0ADMIN"
    assert retried.data["error"]["type"] == "RuntimeError"


async def test_only_a_failed_run_can_be_retried(engine_factory: EngineFactory) -> None:
    engine = await engine_factory(chain, asking)
    BROKEN["second"] = False
    completed = await engine.start("chain", {"n": 1})
    await engine.wait(completed, timeout=5)
    waiting = await engine.start("asking", {"n": 1})
    await engine.wait(waiting, timeout=5)

    with pytest.raises(RunNotRetryable) as info:
        await engine.retry(completed, actor="U0ADMIN")
    assert info.value.status == "completed" and "only a failed run" in str(info.value)
    with pytest.raises(RunNotRetryable) as info:
        await engine.retry(waiting, actor="U0ADMIN")
    assert info.value.status == "suspended"
    await engine.cancel(waiting, actor="U0ADMIN")
    with pytest.raises(RunNotRetryable):
        await engine.retry(waiting, actor="U0ADMIN")
    with pytest.raises(RunNotFound):
        await engine.retry("nope", actor="U0ADMIN")
    assert (await engine.find_run(completed)).status is RunStatus.COMPLETED  # type: ignore[union-attr]


async def test_a_failed_run_retried_twice_concurrently_runs_once(
    engine_factory: EngineFactory,
) -> None:
    engine = await engine_factory(chain)
    run_id = await engine.start("chain", {"n": 1})
    await engine.wait(run_id, timeout=5)
    BROKEN["second"] = False

    results = await asyncio.gather(
        engine.retry(run_id, actor="a"), engine.retry(run_id, actor="b"), return_exceptions=True
    )
    await engine.wait(run_id, until=[RunStatus.COMPLETED], timeout=5)

    assert sum(isinstance(r, RunNotRetryable) for r in results) == 1
    assert CALLS == {"first": 1, "second": 2, "third": 1}


async def test_count_runs_by_workflow_is_exact_per_workflow_and_status(
    engine_factory: EngineFactory,
) -> None:
    engine = await engine_factory(chain, asking)
    ids = [await engine.start("chain", {"n": n}) for n in range(3)]
    waiting = await engine.start("asking", {"n": 1})
    for run_id in [*ids, waiting]:
        await engine.wait(run_id, timeout=5)

    counts = await engine.count_runs_by_workflow()

    assert counts == {"chain": {"failed": 3}, "asking": {"suspended": 1}}


async def test_the_per_workflow_count_is_one_covering_index_scan_on_sqlite(tmp_path: Path) -> None:
    db = str(tmp_path / "plan.db")
    store = open_store(db)
    await store.open()
    await store.close()

    with sqlite3.connect(db) as conn:
        plan = conn.execute(
            "EXPLAIN QUERY PLAN SELECT workflow, status, COUNT(*) FROM runs "
            "GROUP BY workflow, status"
        ).fetchall()

    assert "COVERING INDEX runs_by_workflow_status_newest" in str(plan)
    assert "TEMP B-TREE" not in str(plan)
