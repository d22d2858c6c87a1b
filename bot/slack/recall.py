"""Recognise Signoff's own earlier posts in Slack, so a retried post finds its copy.

Every message the notifier posts for an interrupt (the request, and each thread reply)
carries Slack message metadata naming what it is::

    {"event_type": "signoff_request",
     "event_payload": {"run_id": ..., "interrupt_id": ..., "target": ..., "kind": ...}}

``kind`` is ``"request"`` for the top-level request message, ``"finished"`` for the run's
outcome in its thread and ``"reminder:<due_at>"`` for a reminder. A copy that was replaced
by another is re-marked ``"superseded": true`` (and loses its buttons).

When a post may have reached Slack without its reference being stored (a crash or a lost
response between Slack accepting it and the notifier recording it), the notifier reads the
conversation back (``conversations.history``, or ``conversations.replies`` for a thread)
with ``include_all_metadata`` and looks for a message with the same metadata before posting
again. Reads are bounded (``oldest`` = the interrupt's creation minus ``CLOCK_MARGIN``, at
most ``MAX_PAGES`` pages of ``PAGE_SIZE``): a copy older or further back is not found and the
post is made again, as before this lookup existed.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from bot.slack.failures import is_transient
from engine import Interrupt

__all__ = [
    "CLOCK_MARGIN",
    "EVENT_TYPE",
    "FINISHED_KIND",
    "MAX_PAGES",
    "PAGE_SIZE",
    "REQUEST_KIND",
    "Copy",
    "find_copies",
    "find_replies",
    "metadata_for",
    "reminder_kind",
]

log = logging.getLogger("signoff.bot.recall")

EVENT_TYPE = "signoff_request"
REQUEST_KIND = "request"
FINISHED_KIND = "finished"
# Slack stamps a message with its own clock; ours may be behind or ahead by this much.
CLOCK_MARGIN = 60.0
PAGE_SIZE = 200
MAX_PAGES = 5  # at most 1,000 messages read back per lookup


@dataclass(frozen=True, slots=True)
class Copy:
    """One message Signoff posted earlier for an interrupt."""

    channel: str
    ts: str
    superseded: bool


def metadata_for(
    interrupt: Interrupt, target: str, kind: str, *, superseded: bool = False
) -> dict[str, Any]:
    """The metadata Signoff posts with a message about ``interrupt`` for ``target``."""
    payload: dict[str, Any] = {
        "run_id": interrupt.run_id,
        "interrupt_id": interrupt.id,
        "target": target,
        "kind": kind,
    }
    if superseded:
        payload["superseded"] = True
    return {"event_type": EVENT_TYPE, "event_payload": payload}


def reminder_kind(due_at: str) -> str:
    """The ``kind`` of the reminder due at ``due_at``."""
    return f"reminder:{due_at}"


def _matches(message: dict[str, Any], interrupt: Interrupt, target: str, kind: str) -> bool:
    metadata = message.get("metadata") or {}
    if metadata.get("event_type") != EVENT_TYPE:
        return False
    payload = metadata.get("event_payload") or {}
    return (
        payload.get("run_id") == interrupt.run_id
        and payload.get("interrupt_id") == interrupt.id
        and payload.get("target") == target
        and payload.get("kind") == kind
    )


def _copy(channel: str, message: dict[str, Any]) -> Copy:
    payload = (message.get("metadata") or {}).get("event_payload") or {}
    return Copy(channel, str(message["ts"]), bool(payload.get("superseded")))


def _oldest(created_at: datetime) -> str:
    return f"{max(0.0, created_at.timestamp() - CLOCK_MARGIN):.6f}"


async def find_copies(
    client: AsyncWebClient, channel: str, interrupt: Interrupt, target: str
) -> list[Copy] | None:
    """Request messages posted earlier in ``channel`` for ``interrupt`` and ``target``,
    oldest first; None when the history cannot be read (no ``*:history`` scope, ...).

    Raises:
        SlackApiError: transient failures (429, 5xx), for the outbox to retry.
    """
    found: list[Copy] = []
    cursor: str | None = None
    for _ in range(MAX_PAGES):
        response = await _read(
            client.conversations_history,
            channel=channel,
            oldest=_oldest(interrupt.created_at),
            include_all_metadata=True,
            limit=PAGE_SIZE,
            cursor=cursor,
        )
        if response is None:
            return None
        for message in response.get("messages") or []:
            if _matches(message, interrupt, target, REQUEST_KIND):
                found.append(_copy(channel, message))
        cursor = (response.get("response_metadata") or {}).get("next_cursor") or None
        if not response.get("has_more") or not cursor:
            break
    return sorted(found, key=lambda c: float(c.ts))


async def find_replies(
    client: AsyncWebClient,
    channel: str,
    thread_ts: str,
    interrupt: Interrupt,
    target: str,
    kind: str,
) -> list[Copy] | None:
    """Replies of ``kind`` posted earlier in the thread ``channel``/``thread_ts``; None
    when the thread cannot be read.

    Raises:
        SlackApiError: transient failures, for the outbox to retry.
    """
    found: list[Copy] = []
    cursor: str | None = None
    for _ in range(MAX_PAGES):
        response = await _read(
            client.conversations_replies,
            channel=channel,
            ts=thread_ts,
            include_all_metadata=True,
            limit=PAGE_SIZE,
            cursor=cursor,
        )
        if response is None:
            return None
        for message in response.get("messages") or []:
            if message.get("ts") != thread_ts and _matches(message, interrupt, target, kind):
                found.append(_copy(channel, message))
        cursor = (response.get("response_metadata") or {}).get("next_cursor") or None
        if not response.get("has_more") or not cursor:
            break
    return found


async def _read(method: Any, **kwargs: Any) -> Any:
    """One history read; None on a permanent refusal (logged), raising transient ones."""
    kwargs = {k: v for k, v in kwargs.items() if v is not None}
    try:
        return await method(**kwargs)
    except SlackApiError as exc:
        if is_transient(exc):
            raise
        # missing_scope (channels:history, groups:history, im:history not granted),
        # not_in_channel, ...: fall back to posting again, as without the lookup.
        log.warning("cannot read %s back to find an earlier post: %s", kwargs.get("channel"), exc)
        return None
