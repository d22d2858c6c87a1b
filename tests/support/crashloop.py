"""A crash loop: a real ``signoff serve`` SIGKILLed at random moments while it is used.

One service process at a time, on one SQLite file, talking to a ``FakeSlack`` in this
process. Each round starts the service and, while it runs, sends what the world sends:
signed webhooks starting ``change`` runs (quorum 1 or 2), signed Approve clicks on the
request messages the fake holds, and REST API resumes. Then the process is SIGKILLed,
either the moment a click's 200 has been read or after a random delay, and the next round
starts a new one. A sender whose request got no answer sends it again later, with the same
``Idempotency-Key`` or by the same person, as Slack users and webhook senders do.

After the last kill a final process runs until every run has completed and the outbox is
empty, and ``Report`` counts what the guarantees forbid:

* ``lost``: an acknowledged answer (a click answered 200, an API resume answered 2xx) not
  recorded as a response by that person;
* ``runs_lost`` / ``duplicate_runs``: an acknowledged webhook without exactly one run;
* ``resolved_twice``: an interrupt with more than one ``resolved`` history entry;
* ``duplicates``: more than one live request message per interrupt and target, or a
  message still showing buttons once everything is decided;
* ``duplicate_replies``: more than one thread reply of one kind under a request message;
* ``unposted``: a request never shown in Slack.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

from bot.slack import action_ids
from bot.slack.refs import RefSigner
from engine import EventType, RunDetail, RunStatus, open_store
from tests.fakes.slack_api import FakeSlack, StoredMessage
from tests.support.service import Client, ServiceProcess, service_env

__all__ = ["CHANNEL", "CrashLoop", "Report"]

CHANNEL = "C0APPROVALS"
VOTERS = ("U0ALICE", "U0BOB")  # the first answers quorum-1 runs; both answer quorum-2 ones
REQUESTER_FREE = ("U0ALICE", "U0BOB", "U0CAROL", "U0ADMIN")


@dataclass
class Report:
    """What a crash loop found; ``ok`` when the guarantees held."""

    kills: int = 0
    kills_after_ack: int = 0
    clicks_acked: int = 0
    resumes_acked: int = 0
    webhooks_acked: int = 0
    lost: int = 0
    runs: int = 0
    runs_lost: int = 0
    duplicate_runs: int = 0
    resolved_twice: int = 0
    duplicates: int = 0
    duplicate_replies: int = 0
    unposted: int = 0
    seconds: float = 0.0
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """No acknowledged answer or run lost, nothing resolved or posted twice."""
        return not (
            self.lost
            or self.runs_lost
            or self.duplicate_runs
            or self.resolved_twice
            or self.duplicates
            or self.duplicate_replies
            or self.unposted
        )

    def summary(self) -> dict[str, Any]:
        """The figures (without the problem list), for a JSON line."""
        figures = asdict(self)
        figures.pop("problems")
        return figures


@dataclass
class _Vote:
    """One person's answer to one interrupt, sent until acknowledged."""

    run_id: str
    interrupt_id: str
    user: str
    by_api: bool
    acked: bool = False  # answered 2xx: must be recorded
    done: bool = False  # no need to send it again


class CrashLoop:
    """Kill and restart a service while it is used; see the module docstring.

    Args:
        fake: The fake Slack the service talks to (users are registered here).
        work: A directory for the database file.
        secret: The Slack signing secret.
        seed: Makes the kill moments and choices repeatable.
        new_runs: Webhook runs started per round.
    """

    def __init__(
        self, fake: FakeSlack, work: Path, *, secret: str, seed: int = 0, new_runs: int = 2
    ) -> None:
        self.fake = fake
        self.db = work / "signoff.db"
        self.secret = secret
        self.rng = random.Random(seed)
        self.new_runs = new_runs
        self.env = service_env(
            api_url=fake.api_url, token=fake.token, secret=secret, db=self.db,
            SIGNOFF_DEFAULT_CHANNEL=CHANNEL,
        )  # fmt: skip
        for user in REQUESTER_FREE:
            fake.add_user(user)
        self.keys: dict[str, int] = {}  # webhook key -> quorum
        self.acked_keys: set[str] = set()
        self.votes: dict[tuple[str, str, str], _Vote] = {}
        self.report = Report()
        self.signer = RefSigner(secret)

    async def run(self, kills: int) -> Report:
        """``kills`` rounds ended by SIGKILL, then a final process that settles everything."""
        began = time.monotonic()
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as http:
            client = Client(http, slack_secret=self.secret)
            for _ in range(kills):
                await self._round(client)
            await self._settle(client)
        self.report.seconds = round(time.monotonic() - began, 1)
        await self._check()
        return self.report

    # -- rounds -------------------------------------------------------------------------

    async def _round(self, client: Client) -> None:
        service = await ServiceProcess.start(self.env)
        after_ack = self.rng.random() < 0.4
        acked = asyncio.Event()
        work = asyncio.ensure_future(self._traffic(client, service.url, acked))
        try:
            if after_ack:
                # Kill the moment a click's 200 has been read (or give up waiting).
                first_ack = asyncio.ensure_future(acked.wait())
                await asyncio.wait(
                    [first_ack, work], timeout=1.0, return_when=asyncio.FIRST_COMPLETED
                )
                first_ack.cancel()
            else:
                await asyncio.sleep(self.rng.uniform(0.0, 0.3))
        finally:
            await service.kill()
            self.report.kills += 1
            self.report.kills_after_ack += int(after_ack and acked.is_set())
            await asyncio.gather(work, return_exceptions=True)

    async def _traffic(self, client: Client, url: str, acked: asyncio.Event) -> None:
        """One round's requests, concurrently: new and retried webhooks, clicks, resumes."""
        for _ in range(self.new_runs):
            key = f"k{len(self.keys):04d}"
            self.keys[key] = 2 if self.rng.random() < 0.3 else 1
        sends = [self._webhook(client, url, key) for key in self.keys if key not in self.acked_keys]
        self._plan_votes()
        pending = [v for v in self.votes.values() if not v.done]
        self.rng.shuffle(pending)
        sends += [self._vote(client, url, vote, acked) for vote in pending[:6]]
        await asyncio.gather(*sends)

    async def _webhook(self, client: Client, url: str, key: str) -> None:
        data = {"service": key, "quorum": self.keys[key]}
        if await client.webhook(url, "change", data, key) == 202:
            self.acked_keys.add(key)

    def _plan_votes(self) -> None:
        """A vote for each person who should answer each request message seen in Slack."""
        for message in self._requests():
            about = self._about(message)
            if about is None:
                continue
            run_id, interrupt_id = about
            quorum = self.keys.get(self._key_in(message), 1)
            for user in VOTERS[:quorum]:
                vote_key = (run_id, interrupt_id, user)
                if vote_key not in self.votes:
                    by_api = self.rng.random() < 0.25
                    self.votes[vote_key] = _Vote(run_id, interrupt_id, user, by_api)

    def _key_in(self, message: StoredMessage) -> str:
        # The run's input is shown in the message: its "service" field is the webhook key.
        text = str(message.blocks)
        return next((key for key in self.keys if key in text), "")

    async def _vote(self, client: Client, url: str, vote: _Vote, acked: asyncio.Event) -> None:
        if vote.by_api:
            status = await client.resume(
                url, vote.run_id, vote.interrupt_id, {"approved": True}, vote.user
            )
            if status is not None and 200 <= status < 300:
                vote.acked = vote.done = True
                self.report.resumes_acked += 1
            elif status == 409:  # answered already (its 2xx was lost in a kill)
                vote.done = True
            return
        message = self._message_of(vote)
        if message is None:
            return
        status = await client.click(url, message.to_api(), message.channel, vote.user)
        if status == 200:
            vote.acked = vote.done = True
            self.report.clicks_acked += 1
            acked.set()

    def _message_of(self, vote: _Vote) -> StoredMessage | None:
        for message in self._requests():
            if self._about(message) == (vote.run_id, vote.interrupt_id):
                return message
        return None

    def _about(
        self, message: StoredMessage, details: dict[str, RunDetail] | None = None
    ) -> tuple[str, str] | None:
        """(run id, interrupt id) a request message shows: from its Approve button's
        signed reference while it has one, else from the run id it shows."""
        for block in message.blocks:
            for element in block.get("elements") or []:
                if element.get("action_id") == action_ids.APPROVE:
                    ref = self.signer.verify(str(element.get("value")))
                    return ref.run_id, ref.interrupt_id
        for run_id, detail in (details or {}).items():
            if run_id in str(message.blocks) and detail.interrupts:
                return run_id, detail.interrupts[0].id
        return None

    def _requests(self) -> list[StoredMessage]:
        return [m for m in self.fake.messages(CHANNEL) if m.thread_ts is None]

    # -- the end --------------------------------------------------------------------------

    async def _settle(self, client: Client) -> None:
        """A last process: retry what was never acknowledged, answer what is left, and
        wait until every run completed and every notification was delivered."""
        service = await ServiceProcess.start(self.env)
        try:
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                for key in self.keys:
                    if key not in self.acked_keys:
                        await self._webhook(client, service.url, key)
                details = await self._details()
                for detail in details.values():
                    await self._answer_rest(client, service.url, detail)
                store = open_store(f"sqlite:///{self.db}")
                await store.open()
                try:
                    backlog = await store.outbox_backlog()
                finally:
                    await store.close()
                done = all(d.run.status is RunStatus.COMPLETED for d in details.values())
                if done and backlog == 0 and len(self.acked_keys) == len(self.keys):
                    await asyncio.sleep(0.5)  # Slack calls of the last deliveries
                    return
                await asyncio.sleep(0.2)
            self.report.problems.append("the final process did not settle in 60 s")
        finally:
            await service.kill()

    async def _answer_rest(self, client: Client, url: str, detail: RunDetail) -> None:
        quorum = self.keys.get(str((detail.run.input or {}).get("service")), 1)
        for interrupt in detail.pending:
            answered = {r.actor for r in interrupt.responses}
            for user in VOTERS[:quorum]:
                if user not in answered:
                    await client.resume(url, detail.run.id, interrupt.id, {"approved": True}, user)

    async def _details(self) -> dict[str, RunDetail]:
        store = open_store(f"sqlite:///{self.db}")
        await store.open()
        try:
            runs = await store.list_runs(status=None, workflow=None, limit=100_000, offset=0)
            found = {}
            for run in runs:
                detail = await store.get_detail(run.id)
                if detail is not None:
                    found[run.id] = detail
            return found
        finally:
            await store.close()

    async def _check(self) -> None:
        report = self.report
        details = await self._details()
        report.runs = len(details)
        report.webhooks_acked = len(self.acked_keys)
        by_key = Counter(str((d.run.input or {}).get("service")) for d in details.values())
        for key in self.acked_keys:
            if by_key[key] == 0:
                report.runs_lost += 1
                report.problems.append(f"webhook {key} was acknowledged but started no run")
            elif by_key[key] > 1:
                report.duplicate_runs += by_key[key] - 1
                report.problems.append(f"webhook {key} started {by_key[key]} runs")
        responses = {
            (d.run.id, i.id): {r.actor for r in i.responses}
            for d in details.values()
            for i in d.interrupts
        }
        for vote in self.votes.values():
            recorded = responses.get((vote.run_id, vote.interrupt_id), set())
            if vote.acked and vote.user not in recorded:
                report.lost += 1
                report.problems.append(f"acknowledged answer lost: {vote}")
        for detail in details.values():
            resolved = Counter(
                str(e.data.get("interrupt_id")) for e in detail.events
                if e.type is EventType.RESOLVED
            )  # fmt: skip
            for interrupt_id, n in resolved.items():
                if n > 1:
                    report.resolved_twice += 1
                    report.problems.append(f"{detail.run.id}/{interrupt_id} resolved {n} times")
        self._check_slack(details)

    def _check_slack(self, details: dict[str, RunDetail]) -> None:
        report = self.report
        live: Counter[tuple[str, str, str]] = Counter()
        for message in self._requests():
            payload = (message.metadata or {}).get("event_payload") or {}
            about = self._about(message, details) or ("?", message.ts)
            if not payload.get("superseded"):
                live[(about[0], about[1], CHANNEL)] += 1
            if _has_buttons(message):  # everything is decided: no buttons anywhere
                report.duplicates += 1
                report.problems.append(f"message {message.ts} still has buttons: {payload}")
            kinds = Counter(
                _reply_kind(r)
                for r in self.fake.messages(CHANNEL)
                if r.thread_ts == message.ts and r.ts != message.ts
            )
            for kind, n in kinds.items():
                if n > 1:
                    report.duplicate_replies += n - 1
                    report.problems.append(f"{n} '{kind}' replies under {message.ts}")
        for key, n in live.items():
            if n > 1:
                report.duplicates += n - 1
                report.problems.append(f"{n} live request messages for {key}")
        for detail in details.values():
            for interrupt in detail.interrupts:
                if live[(detail.run.id, interrupt.id, CHANNEL)] == 0:
                    report.unposted += 1
                    report.problems.append(f"{detail.run.id}/{interrupt.id} never posted")


def _reply_kind(reply: StoredMessage) -> str:
    kind = ((reply.metadata or {}).get("event_payload") or {}).get("kind")
    if kind:
        return str(kind)
    return "finished" if "Run `" in (reply.text or "") else (reply.text or "")[:40]


def _has_buttons(message: StoredMessage) -> bool:
    return any(block.get("type") == "actions" for block in message.blocks)
