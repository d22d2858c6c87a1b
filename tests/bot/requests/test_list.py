"""Listing requests by status: what waits is found among many decided ones by reading
only the runs that can be waiting, in the order and pages the cursor promises."""

from __future__ import annotations

from typing import Any

import pytest

from bot.client.models import CreateRequest, RequestsQuery, RequestStatus
from bot.requests.service import RequestService
from bot.requests.workflow import INTERRUPT_ID
from engine import Engine, RunStatus


async def test_pending_requests_are_listed_newest_first_across_running_and_parked_runs(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    service = RequestService(engine)
    spawn = engine.driver.spawn
    hold = False

    def maybe_spawn(run_id: str, state: Any) -> None:
        if not hold:
            spawn(run_id, state)

    monkeypatch.setattr(engine.driver, "spawn", maybe_spawn)
    pending: list[str] = []
    # Alternately left running (not asked yet) and parked on its question, more of each
    # than one read fetches (50 runs a status).
    for n in range(110):
        hold = n % 2 == 1
        made = await service.create(CreateRequest(title=f"waits {n}"), client="ci")
        if not hold:
            await engine.wait(made.id, timeout=10)
        pending.append(made.id)
    hold = False
    decided = [
        (await service.create(CreateRequest(title=f"decided {n}"), client="ci")).id
        for n in range(20)
    ]
    for request_id in decided:
        await engine.wait(request_id, timeout=10)
        await engine.resume(request_id, INTERRUPT_ID, {"approved": True}, actor="U0ALICE")
        await engine.wait(request_id, until={RunStatus.COMPLETED}, timeout=10)
    statuses = {(await engine.find_run(i)).status for i in pending}  # type: ignore[union-attr]
    assert statuses == {RunStatus.RUNNING, RunStatus.SUSPENDED}

    read: list[str] = []
    interrupt_of = service._interrupt

    async def counted(run: Any) -> Any:
        read.append(run.id)
        return await interrupt_of(run)

    monkeypatch.setattr(service, "_interrupt", counted)
    listed: list[str] = []
    cursor = None
    while True:
        page = await service.list_page(
            RequestsQuery(status=RequestStatus.PENDING, limit=10, cursor=cursor)
        )
        assert all(r.status is RequestStatus.PENDING for r in page.requests)
        listed += [r.id for r in page.requests]
        if page.next_cursor is None:
            break
        cursor = page.next_cursor

    assert listed == list(reversed(pending))
    assert set(read) <= set(pending)  # no decided request was read to be filtered out


async def test_a_page_filtered_by_client_keeps_the_order_across_running_and_parked_runs(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The parked requests read first are all another client's, so the page goes on past
    them: it must continue with the parked requests not read yet, which are newer than
    every running one, not with the running ones already read."""
    service = RequestService(engine)
    spawn = engine.driver.spawn
    hold = True
    monkeypatch.setattr(engine.driver, "spawn", lambda r, s: None if hold else spawn(r, s))

    async def make(client: str, n: int) -> str:
        made = await service.create(CreateRequest(title=f"{client} {n}"), client=client)
        if not hold:
            await engine.wait(made.id, timeout=10)
        return made.id

    running = [await make("agent", n) for n in range(55)]  # oldest: not asked yet
    hold = False
    parked = [await make("agent", n) for n in range(5)]
    parked += [await make("ci", n) for n in range(50)]  # newest: parked, another client's

    page = await service.list_page(
        RequestsQuery(status=RequestStatus.PENDING, client="agent", limit=10)
    )

    assert [r.id for r in page.requests] == [*reversed(parked[:5]), *reversed(running[-5:])]
