"""Responder entries as Slack shows them: user ids, ``group:S…`` user groups, or anyone.

The convention itself is described in ``bot.slack.authorization``, which checks it.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from bot.slack.blocks.text import mention

__all__ = ["GROUP_PREFIX", "describe_responders", "group_id"]

GROUP_PREFIX = "group:"
_GROUP_ID = re.compile(r"^S[A-Z0-9]{2,}$")


def group_id(responder: str) -> str | None:
    """The Slack user group id a responder entry names, or None if it names none."""
    candidate = responder.removeprefix(GROUP_PREFIX)
    return candidate if _GROUP_ID.match(candidate) else None


def describe_responders(responders: Sequence[str]) -> str:
    """Who may respond, as mrkdwn: ``<@U1>, <!subteam^S1>``, or "anyone in the channel"."""
    if not responders:
        return "anyone in the channel"
    shown = []
    for responder in responders:
        group = group_id(responder)
        shown.append(f"<!subteam^{group}>" if group else mention(responder))
    return ", ".join(shown)
