"""Text helpers for Slack: mrkdwn escaping, length-safe truncation, mentions and dates."""

from __future__ import annotations

import re
from datetime import UTC, datetime

__all__ = [
    "ELLIPSIS",
    "escape",
    "escape_truncate",
    "humanize",
    "humanize_choice",
    "mention",
    "slack_date",
    "truncate",
]

ELLIPSIS = "…"

# Slack mrkdwn needs exactly these three escaped; everything else is shown as typed.
_ESCAPES = {"&": "&amp;", "<": "&lt;", ">": "&gt;"}
# User IDs start with U (or W on Enterprise Grid); anything else must not become a mention.
_USER_ID = re.compile(r"^[UW][A-Z0-9]{2,}$")
_PLAIN_IDENTIFIER = re.compile(r"^[a-z][a-z0-9_]*$")


def escape(text: str) -> str:
    """Escape ``&``, ``<`` and ``>`` so arbitrary text cannot form links or mentions in mrkdwn."""
    # str.replace runs in C (a per-character join was the renderer's largest cost); "&"
    # first, so the entities added after it are not escaped again.
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def truncate(text: str, limit: int) -> str:
    """Cut ``text`` to at most ``limit`` characters, ending with an ellipsis when cut."""
    if len(text) <= limit:
        return text
    return text[: max(limit - len(ELLIPSIS), 0)] + ELLIPSIS


def escape_truncate(text: str, limit: int) -> str:
    """Escape ``text`` for mrkdwn and cut it so the *escaped* result fits in ``limit``.

    Cutting after escaping could split an entity such as ``&amp;`` in half, and cutting before
    could overflow when escapes expand the text, so characters are taken one at a time.
    """
    escaped = escape(text)
    if len(escaped) <= limit:
        return escaped
    budget = limit - len(ELLIPSIS)
    kept: list[str] = []
    used = 0
    for char in text:
        piece = _ESCAPES.get(char, char)
        if used + len(piece) > budget:
            break
        kept.append(piece)
        used += len(piece)
    return "".join(kept) + ELLIPSIS


def humanize(name: str) -> str:
    """Turn ``deploy_target`` into ``Deploy target`` for labels."""
    words = name.replace("_", " ").strip()
    return words[:1].upper() + words[1:] if words else name


def humanize_choice(value: str) -> str:
    """Label a choice: ``needs_changes`` reads ``Needs changes``; ``us-east-1`` stays as is."""
    return humanize(value) if _PLAIN_IDENTIFIER.match(value) else value


def mention(user: str) -> str:
    """Render a user ID as ``<@U…>``; anything that is not an ID is escaped as plain text."""
    if _USER_ID.match(user):
        return f"<@{user}>"
    return escape(user)


def slack_date(moment: datetime) -> str:
    """Render a time with Slack's date token, shown in each reader's own time zone.

    Naive datetimes are taken as UTC. The fallback text (after ``|``) is ISO-8601 UTC.
    """
    aware = moment if moment.tzinfo else moment.replace(tzinfo=UTC)
    stamp = int(aware.timestamp())
    fallback = aware.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")
    return f"<!date^{stamp}^{{date_short_pretty}} at {{time}}|{fallback}>"
