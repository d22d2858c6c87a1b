"""Message metadata and ``conversations.history`` for the fake Slack Web API.

``conversations.history`` answers like Slack (slack-facts, "Added 2026-11-30"): top-level
messages only, newest first, ``latest``/``oldest`` bounds that exclude the bounds themselves
unless ``inclusive``, ``limit`` (default 100, at most 999) with cursor paging through
``response_metadata.next_cursor``, and ``metadata`` only with ``include_all_metadata``.
Thread parents carry ``thread_ts``, ``reply_count``, ``reply_users`` and ``latest_reply``.
``conversations.replies`` reads one thread back under the same rules (parent first).
"""

from __future__ import annotations

import base64
import binascii
import re
from decimal import Decimal, InvalidOperation
from typing import Any

from tests.fakes.slack_state import ApiError, SlackState, StoredMessage

__all__ = [
    "HISTORY_LIMIT_DEFAULT",
    "HISTORY_LIMIT_MAX",
    "check_metadata",
    "conversations_history",
    "conversations_replies",
]

HISTORY_LIMIT_DEFAULT = 100
HISTORY_LIMIT_MAX = 999
_CONVERSATION_ID = re.compile(r"^[CDG][A-Z0-9]{2,}$")
_TRUE = ("1", "true")


def check_metadata(metadata: Any) -> None:
    """Reject ``metadata`` that is not ``{"event_type": str, "event_payload": {...}}``."""
    if metadata is None:
        return
    if not isinstance(metadata, dict):
        raise ApiError("invalid_metadata_format")
    event_type, payload = metadata.get("event_type"), metadata.get("event_payload")
    if not isinstance(event_type, str) or not event_type or not isinstance(payload, dict):
        raise ApiError("invalid_metadata_format")


def conversations_history(state: SlackState, args: dict[str, Any]) -> dict[str, Any]:
    """The ``conversations.history`` answer for ``args`` (raises ``ApiError``)."""
    channel = str(args.get("channel") or "")
    if not _CONVERSATION_ID.match(channel):
        raise ApiError("channel_not_found")
    stored = state.messages.get(channel, {})
    inclusive = str(args.get("inclusive", "")).lower() in _TRUE
    latest, oldest = _bound(args.get("latest")), _bound(args.get("oldest"))
    limit = _limit(args.get("limit"))
    with_metadata = str(args.get("include_all_metadata", "")).lower() in _TRUE
    top_level = [m for m in stored.values() if not m.thread_ts or m.thread_ts == m.ts]
    in_range = [m for m in top_level if _within(Decimal(m.ts), latest, oldest, inclusive)]
    in_range.sort(key=lambda m: Decimal(m.ts), reverse=True)  # newest first
    start = _cursor_start(args.get("cursor"), in_range)
    page = in_range[start : start + limit]
    has_more = start + limit < len(in_range)
    next_cursor = _encode_cursor(in_range[start + limit].ts) if has_more else ""
    return {
        "ok": True,
        "messages": [_history_message(m, stored, with_metadata) for m in page],
        "has_more": has_more,
        "pin_count": 0,
        "response_metadata": {"next_cursor": next_cursor},
    }


def _history_message(
    message: StoredMessage, stored: dict[str, StoredMessage], with_metadata: bool
) -> dict[str, Any]:
    shown = message.to_api()
    if not with_metadata:
        shown.pop("metadata", None)  # Slack returns metadata only when asked for it
    if message.edits:
        shown["edited"] = {"user": message.user, "ts": message.ts}
    replies = [m for m in stored.values() if m.thread_ts == message.ts and m.ts != message.ts]
    if replies:
        shown.update(
            thread_ts=message.ts,
            reply_count=len(replies),
            reply_users=sorted({m.user for m in replies}),
            reply_users_count=len({m.user for m in replies}),
            latest_reply=max((m.ts for m in replies), key=Decimal),
        )
    return shown


def _bound(value: Any) -> Decimal | None:
    if value in (None, ""):
        return None
    try:
        return Decimal(str(value))
    except InvalidOperation as exc:
        raise ApiError("invalid_ts_latest") from exc


def _within(ts: Decimal, latest: Decimal | None, oldest: Decimal | None, inclusive: bool) -> bool:
    if latest is not None and (ts > latest or (ts == latest and not inclusive)):
        return False
    return oldest is None or ts > oldest or (ts == oldest and inclusive)


def _limit(value: Any) -> int:
    if value in (None, ""):
        return HISTORY_LIMIT_DEFAULT
    try:
        limit = int(value)
    except (TypeError, ValueError) as exc:
        raise ApiError("invalid_limit") from exc
    # Slack serves at most 999 and does not reject bigger numbers; 0 or less means the default.
    return HISTORY_LIMIT_DEFAULT if limit <= 0 else min(limit, HISTORY_LIMIT_MAX)


def _encode_cursor(ts: str) -> str:
    # Slack's history cursors are base64 of "next_ts:<ts without the dot>"; ours look alike.
    return base64.b64encode(f"next_ts:{ts}".encode()).decode()


def _cursor_start(cursor: Any, messages: list[StoredMessage]) -> int:
    if not cursor:
        return 0
    try:
        decoded = base64.b64decode(str(cursor), validate=True).decode()
    except (binascii.Error, UnicodeDecodeError) as exc:
        raise ApiError("invalid_cursor") from exc
    if not decoded.startswith("next_ts:"):
        raise ApiError("invalid_cursor")
    ts = decoded.removeprefix("next_ts:")
    for index, message in enumerate(messages):
        if message.ts == ts:
            return index
    # The message the cursor points at was deleted: resume at the next older one.
    try:
        bound = Decimal(ts)
    except InvalidOperation as exc:
        raise ApiError("invalid_cursor") from exc
    return next((i for i, m in enumerate(messages) if Decimal(m.ts) < bound), len(messages))


def conversations_replies(state: SlackState, args: dict[str, Any]) -> dict[str, Any]:
    """The ``conversations.replies`` answer for ``args`` (raises ``ApiError``).

    Like Slack: the thread's parent first, then its replies oldest first, within
    ``latest``/``oldest``; ``limit`` and cursor paging; ``metadata`` only with
    ``include_all_metadata``. A ``ts`` naming no message is ``thread_not_found``.
    """
    channel = str(args.get("channel") or "")
    if not _CONVERSATION_ID.match(channel):
        raise ApiError("channel_not_found")
    stored = state.messages.get(channel, {})
    parent = stored.get(str(args.get("ts") or ""))
    if parent is None:
        raise ApiError("thread_not_found")
    inclusive = str(args.get("inclusive", "")).lower() in _TRUE
    latest, oldest = _bound(args.get("latest")), _bound(args.get("oldest"))
    limit = _limit(args.get("limit"))
    with_metadata = str(args.get("include_all_metadata", "")).lower() in _TRUE
    replies = [
        m
        for m in stored.values()
        if m.thread_ts == parent.ts
        and m.ts != parent.ts
        and _within(Decimal(m.ts), latest, oldest, inclusive)
    ]
    thread = [parent, *sorted(replies, key=lambda m: Decimal(m.ts))]  # oldest first
    start = _replies_cursor_start(args.get("cursor"), thread)
    page = thread[start : start + limit]
    has_more = start + limit < len(thread)
    next_cursor = _encode_cursor(thread[start + limit].ts) if has_more else ""
    return {
        "ok": True,
        "messages": [_history_message(m, stored, with_metadata) for m in page],
        "has_more": has_more,
        "response_metadata": {"next_cursor": next_cursor},
    }


def _replies_cursor_start(cursor: Any, thread: list[StoredMessage]) -> int:
    if not cursor:
        return 0
    try:
        decoded = base64.b64decode(str(cursor), validate=True).decode()
        bound = Decimal(decoded.removeprefix("next_ts:"))
    except (binascii.Error, UnicodeDecodeError, InvalidOperation) as exc:
        raise ApiError("invalid_cursor") from exc
    # The next message at or after the cursor's (it may have been deleted since).
    return next((i for i, m in enumerate(thread) if Decimal(m.ts) >= bound), len(thread))
