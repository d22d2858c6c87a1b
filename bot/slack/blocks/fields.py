"""Markers that tell the renderer how to ask for a resume-model field in Slack.

Attach them with ``typing.Annotated``; pydantic ignores them, so validation is unchanged::

    class Handover(BaseModel):
        assignee: Annotated[str, SlackUser()]
        reviewers: list[Annotated[str, SlackUser()]] = []
        announce_in: Annotated[str, SlackChannel()] | None = None

A marked ``str`` becomes a ``users_select`` / ``conversations_select`` in the modal and a
``list`` of them a ``multi_users_select`` / ``multi_conversations_select``. The submitted
value is the Slack ID (``U…`` for users; ``C…``/``G…``/``D…`` for conversations).
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["SlackChannel", "SlackUser"]


@dataclass(frozen=True, slots=True)
class SlackUser:
    """Marks a ``str`` field (or a list's items) as a Slack user ID picked from a menu."""


@dataclass(frozen=True, slots=True)
class SlackChannel:
    """Marks a ``str`` field (or a list's items) as a Slack conversation ID picked from a menu."""
