"""Waiting for a request: the long poll answers at the decision, before the run goes on,
and what it reads then is what the request reads for good."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr

from bot.client.models import CreateRequest, RequestStatus
from bot.requests.service import RequestService
from bot.requests.workflow import INTERRUPT_ID, request_workflow
from engine import Engine, RunStatus, open_store

SECRET = SecretStr("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")


async def test_a_decided_request_reads_the_same_before_and_after_its_run_finishes(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    service = RequestService(engine, callback_secret=SECRET)
    created = await service.create(CreateRequest(title="Deploy billing 2.4.1"), client="ci")
    await engine.wait(created.id, timeout=10)  # asked: parked on its interrupt
    # Hold the run where the decision leaves it: resolved, not driven on yet.
    held: list[tuple[str, Any]] = []
    spawn = engine.driver.spawn
    monkeypatch.setattr(engine.driver, "spawn", lambda run_id, state: held.append((run_id, state)))
    waiter = asyncio.create_task(service.wait(created.id, 20))
    await asyncio.sleep(0.05)
    assert not waiter.done()

    await engine.resume(created.id, INTERRUPT_ID, {"approved": True}, actor="U0ALICE")
    decided = await asyncio.wait_for(waiter, 10)  # woken at the commit, not by a poll

    run = await engine.find_run(created.id)
    assert run is not None and run.status is RunStatus.RUNNING  # not driven on yet
    assert decided.status is RequestStatus.APPROVED
    assert decided.answer == {"approved": True, "comment": None}
    assert decided.decided_by == "U0ALICE" and decided.decided_at is not None
    assert [v.actor for v in decided.quorum.voters] == ["U0ALICE"]
    assert decided.receipt is not None and decided.receipt.signature
    assert await service.get(created.id) == decided

    monkeypatch.setattr(engine.driver, "spawn", spawn)
    for run_id, state in held:
        spawn(run_id, state)
    finished = await engine.wait(created.id, until=[RunStatus.COMPLETED], timeout=10)
    assert finished.status is RunStatus.COMPLETED
    assert await service.get(created.id) == decided  # status, answer, who, when, receipt


async def test_a_long_poll_ends_when_the_server_closes_and_when_its_time_is_up(
    engine: Engine,
) -> None:
    service = RequestService(engine)
    created = await service.create(CreateRequest(title="Rotate the keys"), client="ci")
    await engine.wait(created.id, timeout=10)
    closing = asyncio.Event()
    waiter = asyncio.create_task(service.wait(created.id, 60, closing=closing))
    await asyncio.sleep(0.05)
    assert not waiter.done()

    closing.set()
    view = await asyncio.wait_for(waiter, 10)
    assert view.status is RequestStatus.PENDING

    view = await asyncio.wait_for(service.wait(created.id, 0.1), 10)
    assert view.status is RequestStatus.PENDING
    assert engine._decision_waiters == {}  # every wait unregistered itself


async def test_a_decision_made_by_another_instance_ends_the_long_poll(tmp_path: Path) -> None:
    db = str(tmp_path / "shared.db")
    here = Engine(open_store(db), workflows=[request_workflow], poll_interval=0.05, tune_gc=False)
    there = Engine(open_store(db), workflows=[request_workflow], poll_interval=0.05, tune_gc=False)
    await here.start_background()
    await there.start_background()
    try:
        service = RequestService(here, callback_secret=SECRET)
        created = await service.create(CreateRequest(title="Restart billing"), client="ci")
        await here.wait(created.id, timeout=10)
        waiter = asyncio.create_task(service.wait(created.id, 20))
        await asyncio.sleep(0.2)  # a few polls: still pending
        assert not waiter.done()

        await there.resume(created.id, INTERRUPT_ID, {"approved": False}, actor="U0BOB")

        view = await asyncio.wait_for(waiter, 10)  # seen by polling the shared file
        assert view.status is RequestStatus.REJECTED and view.decided_by == "U0BOB"
        assert view.receipt is not None
    finally:
        await there.close(grace=1.0)
        await here.close(grace=1.0)
