"""The App Home tab: each person's inbox, published with ``views.publish`` and kept fresh.

What it shows comes from the engine's responder index (``Engine.list_interrupts(actor=)``,
``count_interrupts``, ``list_decided``), so it is exactly what a click would be allowed
to answer: the person's own requests are not offered to them, group requests are shown
to the groups' members (``UsergroupAuthorizer``'s cache), open requests to everyone.

Refreshes. The tab is published when the person opens it (``app_home_opened``) and when
something changes for them: an outbox message about a request (created, a vote, decided)
marks its responders, its requester, the members of its groups, and for requests open to
anyone everyone, as due for a refresh, if they opened their tab on this process since it
started (the others get a fresh tab when they open it; nobody who never looks costs a
``views.publish``). Refreshes are
coalesced per person (a person marked ten times before their turn is published once) and
paced under ``views.publish``'s Tier 4 (100 per minute per workspace): a small burst, then
``per_minute``. They are not durable: after a restart a tab is refreshed when next opened
or changed, which is all a Home tab needs.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from slack_sdk.errors import SlackApiError
from slack_sdk.models.views import View
from slack_sdk.web.async_client import AsyncWebClient

from bot.outbox_reads import delivery_reads
from bot.settings import Settings
from bot.slack.authorization import UsergroupAuthorizer
from bot.slack.bindings import posted_messages
from bot.slack.blocks.compose import request_info
from bot.slack.blocks.home import LIST_MAX, WAITING_MAX, DecidedItem, WaitingItem, render_home
from bot.slack.blocks.responders import group_id
from bot.slack.refs import RefSigner
from engine import (
    Engine,
    Interrupt,
    InterruptKind,
    InterruptNotFound,
    OutboxMessage,
    RunNotFound,
    SignoffError,
)

__all__ = ["HomeTab", "Inbox", "console_inbox_url", "load_inbox"]

log = logging.getLogger("signoff.bot.home")

_USER_PREFIXES = ("U", "W")


@dataclass(frozen=True, slots=True)
class Inbox:
    """What waits for one person: the first ``limit`` requests and how many in all."""

    waiting: list[Interrupt]
    total: int
    groups: list[str]


async def load_inbox(engine: Engine, user: str, *, limit: int) -> Inbox:
    """The requests ``user`` may answer now, oldest first (the Home tab's and
    ``/signoff pending``'s list): two reads of the responder index."""
    groups = await engine.groups_of(user)
    kind = InterruptKind.INPUT
    waiting = await engine.list_interrupts(actor=user, groups=groups, kind=kind, limit=limit)
    total = await engine.count_interrupts(actor=user, groups=groups, kind=kind)
    return Inbox(waiting=waiting, total=max(total, len(waiting)), groups=groups)


class HomeTab:
    """Builds, publishes and refreshes the Home tab of each person.

    Args:
        engine: The engine whose requests are shown.
        client: A Web API client for the bot token.
        signer: Signs the references the controls carry (the same as the messages').
        settings: For console links (``SIGNOFF_PUBLIC_URL``).
        authorizer: Knows user-group members (who to refresh for a group request).
        per_minute: Publishes per minute after the burst (Slack's Tier 4 is 100).
        burst: Publishes allowed back to back before pacing starts.
    """

    NAME = "slack-home"  # stable: the outbox records deliveries under this name
    TOPICS = ("interrupt.created", "interrupt.response", "interrupt.resolved")

    def __init__(
        self,
        engine: Engine,
        client: AsyncWebClient,
        signer: RefSigner,
        settings: Settings,
        authorizer: UsergroupAuthorizer,
        *,
        per_minute: float = 100.0,
        burst: int = 10,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.engine = engine
        self.client = client
        self.signer = signer
        self.settings = settings
        self.authorizer = authorizer
        self.per_minute = per_minute
        self.burst = burst
        self.clock = clock
        self.viewers: set[str] = set()  # opened their tab here: refreshed for open requests
        self.published = 0
        self._due: dict[str, None] = {}  # an ordered set: who waits for a refresh
        self._tokens = float(burst)
        self._refilled = clock()
        self._pump: asyncio.Task[None] | None = None
        self._workspace_url: str | None = None

    def subscribe(self) -> None:
        """Refresh the tabs of the people a request concerns whenever it changes."""
        self.engine.subscribe(self.on_outbox, topics=self.TOPICS, name=self.NAME)

    async def on_outbox(self, message: OutboxMessage) -> None:
        """Mark the people ``message``'s request concerns as due for a refresh."""
        if message.interrupt_id is None or not self.viewers:
            return  # only opened tabs are refreshed: with none, skip reading the request
        try:
            # Who is concerned changes only with messages of its own: a shared read will do.
            interrupt = await delivery_reads(self.engine).settled(message)
        except (RunNotFound, InterruptNotFound):
            return
        if interrupt.kind is not InterruptKind.INPUT:
            return
        self.schedule(*await self.concerned(interrupt))

    async def concerned(self, interrupt: Interrupt) -> list[str]:
        """Whose open tab shows ``interrupt``: of the people who opened their tab here,
        its responders (group members too), its requester, who voted or decided, and for a
        request open to anyone, all of them."""
        people: list[str] = []
        for responder in interrupt.responders:
            group = group_id(responder)
            if group is not None:
                people += sorted(await self.authorizer.members(group))
            elif responder.startswith(_USER_PREFIXES):
                people.append(responder)
        if not interrupt.responders:
            people += sorted(self.viewers)
        people += [r.actor for r in interrupt.responses]
        for who in (interrupt.requester, interrupt.resolved_by):
            if who and who.startswith(_USER_PREFIXES):
                people.append(who)
        # Only tabs that were opened (here, since start) are kept fresh: everyone else
        # gets theirs built when they open it, so people who never look cost nothing.
        return [p for p in dict.fromkeys(people) if p in self.viewers]

    def opened(self, user: str) -> None:
        """``user`` opened their Home tab: publish it (and remember them as a viewer)."""
        self.viewers.add(user)
        self.schedule(user)

    def schedule(self, *users: str) -> None:
        """Mark ``users`` as due for a refresh (coalesced, published in turn)."""
        for user in users:
            self._due[user] = None
        if self._due and (self._pump is None or self._pump.done()):
            self._pump = asyncio.ensure_future(self._run())

    async def _run(self) -> None:
        while self._due:
            await self._pace()
            user = next(iter(self._due))
            del self._due[user]
            try:
                await self.publish(user)
            except Exception as exc:  # e.g. shutting down: the tab is rebuilt when opened
                log.warning("could not refresh the Home tab of %s: %r", user, exc)

    async def _pace(self) -> None:
        """Wait for a token of the bucket: ``burst`` at once, then ``per_minute``."""
        rate = self.per_minute / 60.0
        while True:
            now = self.clock()
            self._tokens = min(self.burst, self._tokens + (now - self._refilled) * rate)
            self._refilled = now
            if self._tokens >= 1:
                self._tokens -= 1
                return
            await asyncio.sleep((1 - self._tokens) / rate)

    async def publish(self, user: str) -> None:
        """Build and publish ``user``'s tab now."""
        view = await self.build(user)
        try:
            await self.client.views_publish(user_id=user, view=view)
        except SlackApiError as exc:
            log.warning("views.publish for %s failed: %s", user, exc.response.get("error"))
            return
        self.published += 1

    async def build(self, user: str) -> View:
        """The Home view of ``user`` as things stand."""
        inbox = await load_inbox(self.engine, user, limit=WAITING_MAX)
        waiting = await self.items(inbox.waiting)
        own = await self.engine.list_runs(requester=user, limit=LIST_MAX)
        decided = await self.engine.list_decided(
            actor=user, groups=inbox.groups, kind=InterruptKind.INPUT, limit=LIST_MAX
        )
        return render_home(
            waiting=waiting,
            waiting_total=inbox.total - (len(inbox.waiting) - len(waiting)),
            own=own,
            decided=[self._decided(i) for i in decided],
            now=datetime.now(UTC),
            run_url=_run_urls(self.settings, [r.id for r in own]),
            inbox_url=console_inbox_url(self.settings),
        )

    async def items(self, interrupts: Iterable[Interrupt]) -> list[WaitingItem]:
        """Waiting requests as shown with controls (Home tab, digest); requests whose
        workflow version is not loaded here are left out."""
        waiting = []
        base = await self._workspace()
        for interrupt in interrupts:
            try:
                info = request_info(self.engine, interrupt)
            except SignoffError as exc:  # e.g. its workflow version is not loaded here
                log.info("not showing %s/%s on Home: %s", interrupt.run_id, interrupt.id, exc)
                continue
            waiting.append(
                WaitingItem(
                    info=info,
                    ref=self.signer.sign(interrupt.run_id, interrupt.id),
                    message_url=_message_url(base, interrupt),
                    console_url=_console_run_url(self.settings, interrupt.run_id),
                )
            )
        return waiting

    def _decided(self, interrupt: Interrupt) -> DecidedItem:
        try:
            info = request_info(self.engine, interrupt)
            title = f"{info.workflow}: {info.step}"
        except SignoffError:
            title = f"{interrupt.workflow}: {interrupt.title or interrupt.step}"
        url = _console_run_url(self.settings, interrupt.run_id)
        return DecidedItem(interrupt=interrupt, title=title, console_url=url)

    async def _workspace(self) -> str | None:
        """The workspace's URL (auth.test, asked once), for links to messages."""
        if self._workspace_url is None:
            try:
                found: Any = (await self.client.auth_test()).get("url")
            except SlackApiError:
                return None
            self._workspace_url = str(found) if found else ""
        return self._workspace_url or None


def console_inbox_url(settings: Settings) -> str | None:
    """The console's inbox, which lists what waits for the signed-in person (None
    without ``SIGNOFF_PUBLIC_URL``)."""
    # Imported here: the console package imports the Slack adapter (a cycle at import).
    from bot.web.console.links import console_url

    return console_url(settings, "/")


def _console_run_url(settings: Settings, run_id: str) -> str | None:
    # Imported here: the console package imports the Slack adapter (a cycle at import).
    from bot.web.console.links import console_url, run_path

    return console_url(settings, run_path(run_id))


def _message_url(base: str | None, interrupt: Interrupt) -> str | None:
    posted = posted_messages(interrupt)
    if not base or not posted:
        return None
    first = posted[0]
    return f"{base.rstrip('/')}/archives/{first.channel}/p{first.ts.replace('.', '')}"


def _run_urls(settings: Settings, run_ids: Iterable[str]) -> dict[str, str]:
    found = {}
    for run_id in run_ids:
        url = _console_run_url(settings, run_id)
        if url:
            found[run_id] = url
    return found
