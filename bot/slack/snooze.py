"""Snooze: "remind me in 1h / tomorrow" on a request, for the person who clicked only.

The click records a durable engine timer (``Engine.snooze``) before it is acked; the
request's own expiry, reminders and escalation are not touched. When the timer fires (on
any worker, after restarts too) and the request still waits, the engine emits
``interrupt.snoozed`` once, and ``SnoozeReminder`` DMs that person the request with its
controls (message metadata binds those controls to the request, like the channel copy).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from bot.errors import InvalidReference
from bot.slack.blocks.compose import current_message, request_info
from bot.slack.blocks.text import escape_truncate, slack_date
from bot.slack.failures import is_transient
from bot.slack.recall import metadata_for
from bot.slack.refs import RefSigner
from engine import (
    Engine,
    InterruptKind,
    InterruptNotFound,
    InterruptStatus,
    OutboxMessage,
    RunNotFound,
    SignoffError,
)

__all__ = ["SNOOZE_KIND", "SnoozeReminder", "snooze", "snooze_until"]

log = logging.getLogger("signoff.bot.snooze")

SNOOZE_KIND = "snooze"  # the metadata kind of a snooze DM
SENT_REF_PREFIX = "slack.snooze:"  # + actor + ":" + due_at: the DM was sent
MORNING_HOUR = 9


def snooze_until(choice: str, now: datetime, tz_offset: int) -> datetime:
    """When a snooze ends: in an hour, or at 9:00 the next day in the person's time zone."""
    if choice == "1h":
        return now + timedelta(hours=1)
    local = now + timedelta(seconds=tz_offset)
    morning = (local + timedelta(days=1)).replace(
        hour=MORNING_HOUR, minute=0, second=0, microsecond=0
    )
    return morning - timedelta(seconds=tz_offset)


async def snooze(
    engine: Engine,
    signer: RefSigner,
    client: AsyncWebClient,
    body: Mapping[str, Any],
    action: Mapping[str, Any],
    *,
    clock: Callable[[], float] = time.time,
) -> str:
    """Record a snooze click (before the ack); return what to tell the clicker."""
    user = str(body["user"]["id"])
    try:
        ref = signer.verify(str(action.get("value") or ""))
    except InvalidReference as exc:
        log.warning("refused a snooze by %s: %s", user, exc)
        return ":warning: This control is not valid. Nothing was changed."
    choice = str(action.get("action_id", "")).rsplit(":", 1)[-1]
    until = snooze_until(
        choice, datetime.fromtimestamp(clock(), UTC), await _tz_offset(client, user)
    )
    try:
        interrupt = await engine.get_interrupt(ref.run_id, ref.interrupt_id)
        await engine.check_authorized(interrupt, user)  # only those who may answer
        await engine.snooze(ref.run_id, ref.interrupt_id, user, until)
    except SignoffError as exc:
        return f":warning: Not snoozed: {escape_truncate(str(exc), 300)}"
    return f":zzz: I'll remind you about this request {slack_date(until)}."


async def _tz_offset(client: AsyncWebClient, user: str) -> int:
    try:
        found = await client.users_info(user=user)
    except SlackApiError:
        return 0
    offset = (found.get("user") or {}).get("tz_offset")
    return int(offset) if isinstance(offset, int | float) else 0


class SnoozeReminder:
    """DMs a person the request they snoozed when the snooze runs out (outbox subscriber)."""

    NAME = "slack-snooze"  # stable: the outbox records deliveries under this name
    TOPICS = ("interrupt.snoozed",)

    def __init__(self, engine: Engine, client: AsyncWebClient, signer: RefSigner) -> None:
        self.engine = engine
        self.client = client
        self.signer = signer
        self.sent = 0

    def subscribe(self) -> None:
        """Subscribe to the engine's outbox (before it starts)."""
        self.engine.subscribe(self, topics=self.TOPICS, name=self.NAME)

    async def __call__(self, message: OutboxMessage) -> None:
        """DM the snoozing person, once per snooze (raises on transient failures: retried)."""
        actor = message.data.get("actor")
        if message.interrupt_id is None or not isinstance(actor, str):
            return
        try:
            interrupt = await self.engine.get_interrupt(message.run_id, message.interrupt_id)
            if interrupt.kind is not InterruptKind.INPUT:
                return
            if interrupt.status is not InterruptStatus.PENDING:
                return  # decided since: nothing to remind of
            key = f"{SENT_REF_PREFIX}{actor}:{message.data.get('due_at')}"
            if key in interrupt.refs:
                return  # sent before a crash or a redelivery
            info = request_info(self.engine, interrupt)
            ref = self.signer.sign(interrupt.run_id, interrupt.id)
            shown = current_message(info, ref)
        except (RunNotFound, InterruptNotFound):
            return
        except SignoffError as exc:
            log.error("cannot remind %s of %s/%s: %s", actor, message.run_id,
                      message.interrupt_id, exc)  # fmt: skip
            return
        try:
            await self.client.chat_postMessage(
                channel=actor,
                text=f"Reminder, as you asked: {shown.text}",
                blocks=shown.blocks,
                metadata=metadata_for(interrupt, actor, SNOOZE_KIND),
            )
        except Exception as exc:
            if is_transient(exc):
                raise
            log.error("could not DM %s their snoozed request: %s", actor, exc)
            return
        self.sent += 1
        # Recorded after the post: a crash in between sends it again on redelivery, rather
        # than never.
        await self.engine.set_interrupt_ref(interrupt.run_id, interrupt.id, key, True)
