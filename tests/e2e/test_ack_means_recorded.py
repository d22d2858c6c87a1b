"""An acknowledged click is a recorded answer, whatever happens to the process after the 200.

Slack never resends an interaction it got a 200 for. So the service is SIGKILLed the moment
the click's response has been read, and a new process started on the same database: the
answer must be there, and the run must complete from it.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest

from engine import InterruptStatus, RunStatus, open_store
from tests.fakes.slack_api import FakeSlack, StoredMessage
from tests.support.polling import eventually
from tests.support.service import Client, ServiceProcess, service_env
from tests.support.slack_bot import CHANNEL, SECRET, USERS

CLICKS = 5
BURST = 30  # concurrent clicks: the store resolves them together (sqlite/resolving.py)


@pytest.fixture
async def client() -> AsyncIterator[Client]:
    async with aiohttp.ClientSession() as http:
        yield Client(http, slack_secret=SECRET)


def requests_in(fake: FakeSlack) -> list[StoredMessage]:
    return [m for m in fake.messages(CHANNEL) if m.thread_ts is None]


async def test_a_click_acknowledged_just_before_a_kill_is_recorded_and_carried_on(
    fake_slack: FakeSlack, client: Client, tmp_path: Path
) -> None:
    for user in USERS:
        fake_slack.add_user(user)
    env = service_env(
        api_url=fake_slack.api_url, token=fake_slack.token, secret=SECRET,
        db=tmp_path / "signoff.db", SIGNOFF_DEFAULT_CHANNEL=CHANNEL,
    )  # fmt: skip
    service = await ServiceProcess.start(env)
    try:
        for n in range(CLICKS):
            status = await client.webhook(service.url, "change", {"service": f"s{n}"}, f"k{n}")
            assert status == 202, service.output()
        messages = await eventually(
            lambda: len(requests_in(fake_slack)) == CLICKS and requests_in(fake_slack),
            timeout=15, what="the request posts",
        )  # fmt: skip

        for message in messages:  # each click acked, then the process killed at once
            status = await client.click(service.url, message.to_api(), CHANNEL, "U0ALICE")
            await service.kill()
            assert status == 200
            service = await ServiceProcess.start(env)

        store = open_store(f"sqlite:///{tmp_path / 'signoff.db'}")
        await store.open()
        try:

            async def all_completed() -> bool:
                runs = await store.list_runs(status=None, workflow=None, limit=100, offset=0)
                return len(runs) == CLICKS and all(r.status is RunStatus.COMPLETED for r in runs)

            await eventually(all_completed, timeout=20, what="every run completed")
            for run in await store.list_runs(status=None, workflow=None, limit=100, offset=0):
                detail = await store.get_detail(run.id)
                assert detail is not None
                (interrupt,) = detail.interrupts
                assert interrupt.status is InterruptStatus.APPROVED
                assert [r.actor for r in interrupt.responses] == ["U0ALICE"]
        finally:
            await store.close()
    finally:
        await service.kill()


async def test_a_burst_of_clicks_killed_midway_keeps_every_acknowledged_answer_once(
    fake_slack: FakeSlack, client: Client, tmp_path: Path
) -> None:
    for user in USERS:
        fake_slack.add_user(user)
    env = service_env(
        api_url=fake_slack.api_url, token=fake_slack.token, secret=SECRET,
        db=tmp_path / "signoff.db", SIGNOFF_DEFAULT_CHANNEL=CHANNEL,
    )  # fmt: skip
    service = await ServiceProcess.start(env)
    try:
        for n in range(BURST):
            status = await client.webhook(service.url, "change", {"service": f"s{n}"}, f"k{n}")
            assert status == 202, service.output()
        messages = await eventually(
            lambda: len(requests_in(fake_slack)) == BURST and requests_in(fake_slack),
            timeout=30, what="the request posts",
        )  # fmt: skip
        acked: list[str] = []  # run ids

        async def click(message: StoredMessage) -> None:
            status = await client.click(service.url, message.to_api(), CHANNEL, "U0ALICE")
            if status == 200:
                assert message.metadata is not None
                acked.append(message.metadata["event_payload"]["run_id"])
                if len(acked) == BURST // 3:
                    await service.kill()  # SIGKILL with the rest of the burst in flight

        await asyncio.gather(*(click(m) for m in messages))
        await service.kill()
        assert BURST // 3 <= len(acked) < BURST, acked
        service = await ServiceProcess.start(env)

        store = open_store(f"sqlite:///{tmp_path / 'signoff.db'}")
        await store.open()
        try:

            async def settled() -> bool:
                runs = await store.list_runs(status=None, workflow=None, limit=100, offset=0)
                return all(r.status in (RunStatus.COMPLETED, RunStatus.SUSPENDED) for r in runs)

            await eventually(settled, timeout=30, what="every answered run completed")
            answered = set()
            for run in await store.list_runs(status=None, workflow=None, limit=100, offset=0):
                detail = await store.get_detail(run.id)
                assert detail is not None
                (interrupt,) = detail.interrupts
                if interrupt.status is InterruptStatus.PENDING:  # its click never committed
                    assert interrupt.responses == [] and run.status is RunStatus.SUSPENDED
                    continue
                assert interrupt.status is InterruptStatus.APPROVED
                assert [r.actor for r in interrupt.responses] == ["U0ALICE"]  # once
                assert run.status is RunStatus.COMPLETED
                answered.add(run.id)
            # Every acknowledged click is a recorded answer (more may have committed
            # without their 200 being read).
            assert set(acked) <= answered
        finally:
            await store.close()
    finally:
        await service.kill()
