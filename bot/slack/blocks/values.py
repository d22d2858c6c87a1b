"""Format a resume-model field's value as mrkdwn: mentions, choice labels, Slack dates."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterable
from typing import Any

from bot.slack.blocks.forms import FieldKind, FieldSpec
from bot.slack.blocks.layout import EMPTY, LONG_VALUE_MAX, plain_text
from bot.slack.blocks.text import ELLIPSIS, escape, escape_truncate, mention, slack_date

__all__ = ["format_value"]

_CONVERSATION_ID = re.compile(r"^[CGD][A-Z0-9]{2,}$")


def format_value(spec: FieldSpec, value: Any, *, limit: int = LONG_VALUE_MAX) -> str:
    """Render ``value`` of field ``spec`` as mrkdwn of at most ``limit`` characters."""
    if value is None:
        return EMPTY
    kind = spec.kind
    if kind is FieldKind.USER:
        return mention(str(value))
    if kind is FieldKind.USERS:
        return _join((mention(str(user)) for user in value), limit)
    if kind is FieldKind.CHANNEL:
        return _conversation(str(value))
    if kind is FieldKind.CHANNELS:
        return _join((_conversation(str(channel)) for channel in value), limit)
    if kind is FieldKind.CHOICE:
        return escape_truncate(_label(spec, value), limit)
    if kind is FieldKind.MULTI_CHOICE:
        return _join((escape(_label(spec, item)) for item in value), limit)
    if kind is FieldKind.DATETIME and isinstance(value, dt.datetime):
        return slack_date(value)
    if kind is FieldKind.TIME and isinstance(value, dt.time):
        return value.strftime("%H:%M")
    if isinstance(value, dt.date):
        return value.isoformat()
    return escape_truncate(plain_text(value), limit)


def _label(spec: FieldSpec, value: Any) -> str:
    choice = spec.choice_for_value(value)
    return choice.label if choice is not None else str(value)


def _conversation(channel: str) -> str:
    return f"<#{channel}>" if _CONVERSATION_ID.match(channel) else escape(channel)


def _join(parts: Iterable[str], limit: int) -> str:
    # Cut between whole parts so a mention or an entity is never split.
    out = ""
    for part in parts:
        candidate = f"{out}, {part}" if out else part
        if len(candidate) > limit - len(ELLIPSIS):
            return out + ELLIPSIS
        out = candidate
    return out or EMPTY
