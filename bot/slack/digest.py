"""Digest reminders: one DM listing everything waiting for a person, instead of one
reminder per request.

When a request's reminder is due, the notifier asks ``Digest.claim`` which of the people
it was DMed to take digests: those who said so (``/signoff digest on``), and by default
(``auto``) those with more than one request waiting for them. For them the per-request
thread reply is skipped, and one digest DM (with every waiting request's controls) goes
out instead. Reminders due together are coalesced: the first one waits ``delay`` seconds
for the others, and one digest per person is sent per ``window``. People with a single
request (or ``/signoff digest off``) keep the per-request reminder in its thread.

At least once: the outbox handlers of the coalesced reminders wait for the digest to be
sent, so a crash before it was sent redelivers them and the digest goes out then.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from slack_sdk.web.async_client import AsyncWebClient

from bot.slack.bindings import posted_messages
from bot.slack.blocks.digest import DIGEST_MAX, render_digest
from bot.slack.home import HomeTab, load_inbox
from bot.slack.recall import EVENT_TYPE
from engine import Engine, Interrupt, InterruptKind

__all__ = ["DIGEST_KIND", "DIGEST_PREFERENCE", "MODES", "Digest"]

log = logging.getLogger("signoff.bot.digest")

DIGEST_PREFERENCE = "slack.digest"  # Engine preference: "on" | "off"; absent means "auto"
DIGEST_KIND = "digest"  # the metadata kind of a digest DM
MODES = ("on", "off", "auto")
_USER_PREFIXES = ("U", "W")


class Digest:
    """Coalesces the reminders due for a person into one DM.

    Args:
        engine: The engine (preferences, the responder index).
        client: A Web API client for the bot token.
        home: Builds the waiting items with their controls (shared with the Home tab).
        delay: Seconds the first reminder waits for the others due with it.
        window: Seconds after a digest during which a person gets no other.
    """

    def __init__(
        self,
        engine: Engine,
        client: AsyncWebClient,
        home: HomeTab,
        *,
        delay: float = 1.0,
        window: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.engine = engine
        self.client = client
        self.home = home
        self.delay = delay
        self.window = window
        self.clock = clock
        self.sent = 0
        self._pending: dict[str, asyncio.Future[None]] = {}
        self._last: dict[str, float] = {}

    async def mode(self, user: str) -> str:
        """The person's digest setting: ``on``, ``off`` or ``auto`` (the default)."""
        found = await self.engine.get_preference(user, DIGEST_PREFERENCE)
        return found if found in ("on", "off") else "auto"

    async def takes(self, user: str) -> bool:
        """Whether ``user``'s reminders go to a digest now."""
        mode = await self.mode(user)
        if mode != "auto":
            return mode == "on"
        # More than one is all it needs to know: a page of two, not a count of all of them.
        waiting = await self.engine.list_interrupts(actor=user, kind=InterruptKind.INPUT, limit=2)
        return len(waiting) > 1

    async def claim(self, interrupt: Interrupt) -> set[str]:
        """The DM targets of ``interrupt`` whose reminder the digest takes over; returns
        once their digest is sent (raises if sending failed, so the reminder is retried)."""
        users = [
            p.target for p in posted_messages(interrupt) if p.target.startswith(_USER_PREFIXES)
        ]
        taken = {u for u in dict.fromkeys(users) if await self.takes(u)}
        await asyncio.gather(*(self._digest_for(u) for u in sorted(taken)))
        return taken

    async def _digest_for(self, user: str) -> None:
        pending = self._pending.get(user)
        if pending is None:
            last = self._last.get(user)
            if last is not None and self.clock() - last < self.window:
                return  # one just went out, listing this request too
            pending = self._pending[user] = asyncio.ensure_future(self._send_later(user))
        await asyncio.shield(pending)

    async def _send_later(self, user: str) -> None:
        try:
            await asyncio.sleep(self.delay)
            await self.send(user)
            self._last[user] = self.clock()
        finally:
            self._pending.pop(user, None)

    async def send(self, user: str) -> None:
        """DM ``user`` the digest of everything waiting for them now."""
        inbox = await load_inbox(self.engine, user, limit=DIGEST_MAX)
        items = await self.home.items(inbox.waiting)
        if not items:
            return
        message = render_digest(items, inbox.total, now=datetime.now(UTC))
        requests = [[i.info.interrupt.run_id, i.info.interrupt.id] for i in items]
        metadata: dict[str, Any] = {
            "event_type": EVENT_TYPE,
            "event_payload": {"kind": DIGEST_KIND, "target": user, "requests": requests},
        }
        await self.client.chat_postMessage(
            channel=user, text=message.text, blocks=message.blocks, metadata=metadata
        )
        self.sent += 1
