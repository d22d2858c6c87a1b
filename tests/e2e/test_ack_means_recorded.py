"""An acknowledged click is a recorded answer, whatever happens to the process after the 200.

Slack never resends an interaction it got a 200 for. So the service is SIGKILLed the moment
the click's response has been read, and a new process started on the same database: the
answer must be there, and the run must complete from it.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
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


def service_for(fake: FakeSlack, tmp_path: Path) -> dict[str, str]:
    """The service's environment: the fake's users, a database file under ``tmp_path``."""
    for user in USERS:
        fake.add_user(user)
    return service_env(
        api_url=fake.api_url, token=fake.token, secret=SECRET,
        db=tmp_path / "signoff.db", SIGNOFF_DEFAULT_CHANNEL=CHANNEL,
    )  # fmt: skip


async def post_requests(
    fake: FakeSlack, client: Client, service: ServiceProcess, count: int
) -> list[StoredMessage]:
    """Start ``count`` runs by webhook; their request messages once all are posted."""
    for n in range(count):
        status = await client.webhook(service.url, "change", {"service": f"s{n}"}, f"k{n}")
        assert status == 202, service.output()
    messages: list[StoredMessage] = await eventually(
        lambda: len(requests_in(fake)) == count and requests_in(fake),
        timeout=30, what="the request posts",
    )  # fmt: skip
    return messages


Answers = dict[str, tuple[RunStatus, InterruptStatus, list[str]]]
"""By run id: the run's status, its one interrupt's status, who answered it."""

CARRIED_ON = (RunStatus.COMPLETED, InterruptStatus.APPROVED, ["U0ALICE"])
"""A run whose click was recorded once and which went on to its end."""


def settled(count: int, *statuses: RunStatus) -> Callable[[Answers], bool]:
    """Whether ``count`` runs are stored, each in one of ``statuses``."""

    def check(answers: Answers) -> bool:
        return len(answers) == count and all(a[0] in statuses for a in answers.values())

    return check


async def answers_once(tmp_path: Path, done: Callable[[Answers], bool]) -> Answers:
    """What the database under ``tmp_path`` holds once ``done`` says so."""
    store = open_store(f"sqlite:///{tmp_path / 'signoff.db'}")
    await store.open()
    try:

        async def read() -> Answers | None:
            found: Answers = {}
            for run in await store.list_runs(status=None, workflow=None, limit=100, offset=0):
                detail = await store.get_detail(run.id)
                assert detail is not None
                (interrupt,) = detail.interrupts
                actors = [r.actor for r in interrupt.responses]
                found[run.id] = (run.status, interrupt.status, actors)
            return found if done(found) else None

        answers: Answers = await eventually(read, timeout=30, what="the runs to settle")
        return answers
    finally:
        await store.close()


async def test_a_click_acknowledged_just_before_a_kill_is_recorded_and_carried_on(
    fake_slack: FakeSlack, client: Client, tmp_path: Path
) -> None:
    env = service_for(fake_slack, tmp_path)
    service = await ServiceProcess.start(env)
    try:
        messages = await post_requests(fake_slack, client, service, CLICKS)

        for message in messages:  # each click acked, then the process killed at once
            status = await client.click(service.url, message.to_api(), CHANNEL, "U0ALICE")
            await service.kill()
            assert status == 200
            service = await ServiceProcess.start(env)

        answers = await answers_once(tmp_path, settled(CLICKS, RunStatus.COMPLETED))
        assert all(answer == CARRIED_ON for answer in answers.values()), answers
    finally:
        await service.kill()


async def test_a_burst_of_clicks_killed_midway_keeps_every_acknowledged_answer_once(
    fake_slack: FakeSlack, client: Client, tmp_path: Path
) -> None:
    env = service_for(fake_slack, tmp_path)
    service = await ServiceProcess.start(env)
    try:
        messages = await post_requests(fake_slack, client, service, BURST)
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
        # The rest may have been refused, or answered before the kill and read after it.
        assert len(acked) >= BURST // 3, acked
        service = await ServiceProcess.start(env)

        answers = await answers_once(
            tmp_path, settled(BURST, RunStatus.COMPLETED, RunStatus.SUSPENDED)
        )
        recorded = {run_id for run_id, a in answers.items() if a[1] is not InterruptStatus.PENDING}
        for run_id, answer in answers.items():
            if run_id in recorded:  # recorded once, and carried on
                assert answer == CARRIED_ON
            else:  # its click never committed
                assert answer == (RunStatus.SUSPENDED, InterruptStatus.PENDING, [])
        # Every acknowledged click is a recorded answer (more may have committed without
        # their 200 being read).
        assert set(acked) <= recorded
    finally:
        await service.kill()
