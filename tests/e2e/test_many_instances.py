"""Three ``signoff serve`` processes on one PostgreSQL database; one is killed with SIGKILL.

300 runs of ``relay`` (tests/e2e/wf_many.py: prepare -> approve in Slack -> act) are
started by signed webhooks spread round-robin over the instances. 270 are approved by
Slack clicks, built from the messages the instances posted to one fake Slack and spread
over the instances; 30 are left to their timers (a reminder, then an expiry). After half
the clicks one instance is killed with SIGKILL, mid-work. Then:

* every run completes, and the database holds exactly the 300 runs started;
* each interrupt was resolved exactly once: one ``response_recorded`` and one
  ``resolved`` event (an expired one: one ``reminded``, ``expired`` and ``resolved``);
* no step ran twice, except one in flight on the killed instance, which ran once more
  on a survivor (at most one step per run the killed instance was driving);
* each request was posted to Slack once, and each thread reply made once, except a
  call the killed instance made but died before recording, which a survivor made again;
* what the killed instance held was taken over within the lease bounds: its runs once
  their lease lapsed, its outbox and timer claims once it was declared dead.

Each instance claims a host name of its own, so takeover goes through leases as between
machines (on one host the engine would notice the dead pid at once).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from bot.slack.notifier import posted_messages
from bot.slack.refs import Ref
from engine import InterruptStatus, RunDetail, RunStatus, Store, open_store
from tests.e2e.held import Takeover
from tests.e2e.instances import Instance, Sender
from tests.e2e.many_checks import (
    history_problems,
    read_step_log,
    slack_problems,
    step_problems,
)
from tests.e2e.wf_many import STEP_LOG_ENV
from tests.fakes.slack_api import Call, FakeSlack, StoredMessage
from tests.pg import PostgresServer
from tests.support.polling import eventually
from tests.support.service import service_env
from tests.support.slack_bot import CHANNEL, SECRET

INSTANCES = 3
VICTIM = 1
CLICKED = 270
EXPIRING = 30
LEASE = 3.0
POLL = 0.2
REMIND_AFTER = 1.0
# Longer than the killed instance holds its outbox claims (CLAIM_TAKEOVER), so a request
# whose interrupt.created it had claimed is still pending, and posted, when released.
EXPIRE_AFTER = 12.0
WEBHOOK_SECRET = "many-instances-webhook-secret"
CLICKERS = [f"U0CLICK{n:02d}" for n in range(20)]
# Runs: the lease lapses <= LEASE after the last heartbeat, a survivor's next pass (every
# LEASE/3 at most) claims them. Claims: the worker is declared dead once its heartbeat is
# 2 * LEASE old, and the pass that sees it releases them. Plus scheduling slack.
RUN_TAKEOVER = LEASE + LEASE / 3 + 2.0
CLAIM_TAKEOVER = 2 * LEASE + LEASE / 3 + 2.0

pytestmark = pytest.mark.timeout(240)


@dataclass
class Cluster:
    """The instances, their database, and the test's view of both."""

    url: str
    instances: list[Instance]
    sender: Sender
    store: Store
    step_log: Path
    _starts: asyncio.Semaphore = field(default_factory=lambda: asyncio.Semaphore(16))
    _clicks: asyncio.Semaphore = field(default_factory=lambda: asyncio.Semaphore(8))

    def live(self) -> list[Instance]:
        """Instances not killed."""
        return [i for i in self.instances if i.alive]

    async def start(self, n: int, data: dict[str, Any]) -> str:
        """Start job ``n`` by webhook, at instance ``n % INSTANCES`` if it is alive."""
        async with self._starts:
            first = n % INSTANCES
            return await self.sender.start_run(self.instances, first, "relay", data, f"job-{n}")

    async def click(self, message: StoredMessage, target: Instance, user: str) -> bool:
        """``user`` clicks Approve on ``message``, delivered to ``target``."""
        async with self._clicks:
            body = self.sender.approve_click(message.to_api(), user, CHANNEL)
            return await self.sender.click(target, body)


@pytest.fixture
async def cluster(
    fake_slack: FakeSlack, postgres_server: PostgresServer, tmp_path: Path
) -> AsyncIterator[Cluster]:
    """Three instances on a fresh PostgreSQL schema, all stopped at the end."""
    url = postgres_server.fresh_url()
    step_log = tmp_path / "steps.log"
    env = service_env(
        api_url=fake_slack.api_url,
        token="",  # each instance gets its own (below)
        secret=SECRET,
        db=url,
        SLACK_BOT_TOKEN=None,
        SIGNOFF_WORKFLOWS="tests.e2e.wf_many",
        SIGNOFF_DEFAULT_CHANNEL=CHANNEL,
        SIGNOFF_WEBHOOK_SECRET=WEBHOOK_SECRET,
        SIGNOFF_API_TOKEN="many-instances-api-token",
        SIGNOFF_POLL_INTERVAL=str(POLL),
        SIGNOFF_LEASE_SECONDS=str(LEASE),
        SIGNOFF_SHUTDOWN_GRACE="2",
        **{STEP_LOG_ENV: str(step_log)},
    )
    # One bot token per instance: the fake records which instance made each call.
    tokens = [f"xoxb-instance-{k}" for k in range(INSTANCES)]
    fake_slack.valid_tokens.update(tokens)
    # Slack takes a while to answer: deliveries hold their outbox claims meanwhile, so
    # the kill finds some held.
    for method in ("chat.postMessage", "chat.update"):
        fake_slack.slow_down(method, 0.03)
    started = await asyncio.gather(
        *(Instance.start(k, env, tokens[k]) for k in range(INSTANCES)), return_exceptions=True
    )
    instances = [i for i in started if isinstance(i, Instance)]
    if len(instances) < INSTANCES:
        await asyncio.gather(*(i.stop() for i in instances))
        raise next(e for e in started if isinstance(e, BaseException))
    store = open_store(url)
    await store.open()
    connector = aiohttp.TCPConnector(limit=64)
    async with aiohttp.ClientSession(connector=connector) as http:
        sender = Sender(http, webhook_secret=WEBHOOK_SECRET, slack_secret=SECRET)
        try:
            yield Cluster(url, instances, sender, store, step_log)
        finally:
            await asyncio.gather(*(i.stop() for i in instances))
            await store.close()


async def test_three_instances_one_killed_every_run_completes_exactly_once(
    cluster: Cluster, fake_slack: FakeSlack
) -> None:
    began = time.monotonic()
    c = cluster
    victim = c.instances[VICTIM]
    clicked_runs = list(await asyncio.gather(*(c.start(n, {"n": n}) for n in range(CLICKED))))
    posted = await _wait_posted(c, fake_slack, set(clicked_runs))
    expiring_runs, takeover, watcher = await _click_and_kill(c, posted, clicked_runs, victim)
    all_runs = clicked_runs + expiring_runs
    await _wait_settled(c, len(all_runs))
    await watcher
    elapsed = time.monotonic() - began

    details = {run_id: await _detail(c.store, run_id) for run_id in all_runs}
    problems = _run_problems(details, set(expiring_runs))
    counts = await c.store.count_runs()
    if counts != {RunStatus.COMPLETED.value: len(all_runs)}:
        problems.append(f"runs by status: {counts} (a retried webhook must not start another)")
    step_issues, reruns = step_problems(
        read_step_log(c.step_log), all_runs, victim.proc.pid, takeover.held.runs
    )
    problems += step_issues
    slack_issues, repeated = _slack_problems(
        c, fake_slack, details, set(expiring_runs), victim.token
    )
    problems += slack_issues
    held = takeover.held
    if not held.runs:
        problems.append("the kill cut off no run: the test did not exercise takeover")
    limits = {"runs": RUN_TAKEOVER, "outbox": CLAIM_TAKEOVER, "timers": CLAIM_TAKEOVER}
    for kind, limit in limits.items():
        took = takeover.seconds.get(kind)
        if took is None or took > limit:
            problems.append(f"{kind} held by the killed instance taken over in {took}s > {limit}s")

    print(
        f"\nmany instances: {len(all_runs)} runs in {elapsed:.1f}s; killed instance held "
        f"{len(held.runs)} runs, {len(held.outbox)} outbox, {len(held.timers)} timers; "
        f"{reruns} steps and {repeated} Slack calls made again after the kill; "
        f"{takeover.clicks_repeated} lost clicks repeated; takeover "
        + ", ".join(f"{k} {v:.2f}s" for k, v in sorted(takeover.seconds.items()))
    )
    if problems:
        logs = "\n".join(f"--- instance {i.index}\n{i.output()}" for i in c.instances)
        pytest.fail("\n".join(problems[:50]) + f"\n{logs}", pytrace=False)


async def _click_and_kill(
    c: Cluster, posted: dict[Ref, StoredMessage], clicked_runs: list[str], victim: Instance
) -> tuple[list[str], Takeover, asyncio.Task[None]]:
    """Click every request, round-robin over the live instances, killing the victim half
    way; start the expiring runs meanwhile. Returns those runs and what the victim held."""
    sent_to: dict[Ref, Instance] = {}
    expiring: list[asyncio.Task[str]] = []
    in_flight: list[asyncio.Task[bool]] = []
    takeover: Takeover | None = None
    watcher: asyncio.Task[None] | None = None
    for k, run_id in enumerate(clicked_runs):
        if k == CLICKED // 2:
            # Kill once the first half is acked: the victim is then driving the runs
            # its clicks resumed (or still resuming them, after the ack).
            await asyncio.gather(*in_flight)
            await victim.kill()
            assert victim.killed_at is not None
            takeover = await Takeover.snapshot(c.url, victim.host, victim.proc.pid)
            watcher = asyncio.create_task(takeover.watch(c.url, victim.killed_at, 30))
        if k % (CLICKED // EXPIRING) == 0:
            n = CLICKED + len(expiring)
            data = {"n": n, "expires": EXPIRE_AFTER, "reminders": [REMIND_AFTER]}
            expiring.append(asyncio.create_task(c.start(n, data)))
        ref = _ref_for(posted, run_id)
        live = c.live()
        sent_to[ref] = target = live[k % len(live)]
        user = CLICKERS[k % len(CLICKERS)]
        in_flight.append(asyncio.create_task(c.click(posted[ref], target, user)))
        await asyncio.sleep(0)  # let the clicks go out while the loop goes on
    await asyncio.gather(*in_flight)
    assert takeover is not None and watcher is not None

    # A click the killed instance acked but never acted on is lost; its message still
    # shows the buttons, so the person clicks again, reaching a survivor this time.
    lost = [ref for ref, target in sent_to.items() if target is victim]
    lost = [ref for ref in lost if await _pending(c.store, ref)]
    takeover.clicks_repeated = len(lost)
    live = c.live()
    await asyncio.gather(
        *(c.click(posted[ref], live[k % len(live)], CLICKERS[0]) for k, ref in enumerate(lost))
    )
    return list(await asyncio.gather(*expiring)), takeover, watcher


async def _pending(store: Store, ref: Ref) -> bool:
    interrupt = await store.get_interrupt(ref.run_id, ref.interrupt_id)
    return interrupt is not None and interrupt.status is InterruptStatus.PENDING


async def _wait_posted(c: Cluster, fake: FakeSlack, runs: set[str]) -> dict[Ref, StoredMessage]:
    """Wait until every run's request is in the channel; the message per interrupt."""

    def found() -> dict[Ref, StoredMessage] | None:
        posted = {}
        for message in fake.messages(CHANNEL):
            if message.thread_ts is None:
                posted[c.sender.ref_of(message.to_api())] = message
        return posted if {ref.run_id for ref in posted} >= runs else None

    result: dict[Ref, StoredMessage] = await eventually(
        found, timeout=90, what="a request message for every run"
    )
    return result


def _ref_for(posted: dict[Ref, StoredMessage], run_id: str) -> Ref:
    (ref,) = {ref for ref in posted if ref.run_id == run_id}
    return ref


async def _wait_settled(c: Cluster, runs: int) -> None:
    """Wait until every run completed and every outbox message was delivered."""

    async def settled() -> bool:
        counts = await c.store.count_runs()
        done = counts.get(RunStatus.COMPLETED.value, 0) >= runs
        return done and await c.store.outbox_backlog() == 0

    await eventually(settled, timeout=60, what="every run completed and announced")


async def _detail(store: Store, run_id: str) -> RunDetail:
    detail = await store.get_detail(run_id)
    assert detail is not None
    return detail


def _run_problems(details: dict[str, RunDetail], expiring: set[str]) -> list[str]:
    """Every run completed with the right output after exactly one resolution."""
    problems = []
    for run_id, detail in details.items():
        expired = run_id in expiring
        run = detail.run
        output = run.output or {}
        if run.status is not RunStatus.COMPLETED or output.get("approved") is expired:
            problems.append(f"{run_id}: {run.status.value} {output}")
        (interrupt,) = detail.interrupts
        wanted = InterruptStatus.EXPIRED if expired else InterruptStatus.APPROVED
        if interrupt.status is not wanted or (not expired and interrupt.resolved_by is None):
            problems.append(f"{run_id}: {interrupt.status.value} by {interrupt.resolved_by}")
        problems += history_problems(detail, expired=expired)
    return problems


def _slack_problems(
    c: Cluster,
    fake: FakeSlack,
    details: dict[str, RunDetail],
    expiring: set[str],
    victim_token: str,
) -> tuple[list[str], int]:
    """Posts and replies once (within the bound), final messages without buttons;
    also how many calls were made again after the kill."""
    posts: list[Call] = []
    replies: list[Call] = []
    for call in fake.calls("chat.postMessage"):
        (replies if call.args.get("thread_ts") else posts).append(call)

    def ref_of(call: Call) -> Ref:
        return c.sender.ref_of({"blocks": call.args["blocks"], "ts": call.response["ts"]})

    expected: dict[Ref, str] = {}
    problems = []
    for detail in details.values():
        for interrupt in detail.interrupts:
            ref = Ref(interrupt.run_id, interrupt.id)
            messages = posted_messages(interrupt)
            if len(messages) != 1:
                made = [(c.token, c.received_at) for c in posts if ref_of(c) == ref]
                problems.append(f"{ref} ({interrupt.status.value}) records {messages}; {made}")
                continue
            expected[ref] = messages[0].ts

    reminded = {ref for ref in expected if ref.run_id in expiring}
    found, repeated = slack_problems(posts, replies, ref_of, expected, reminded, victim_token)
    problems += found
    for ref, ts in expected.items():
        blocks = fake.message(CHANNEL, ts).blocks
        if any(block.get("type") == "actions" for block in blocks):
            problems.append(f"{ref}: the request message still shows buttons")
    if fake.validation_failures or fake.ephemerals:
        problems.append(f"Slack: {fake.validation_failures} {fake.ephemerals}")
    failed = [(call.method, call.status, call.response) for call in fake.records if not call.ok]
    if failed:
        problems.append(f"failed Slack calls: {failed[:5]}")
    return problems, repeated
