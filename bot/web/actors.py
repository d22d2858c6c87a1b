"""Who may be named as the ``actor`` of an API answer: a person or a named client, never a group.

The API token may act for anyone, and the engine matches an actor against an interrupt's
responders verbatim, so an actor named like a responder *group* (``group:S0PROD``,
``S0PROD``, ``@ops``) would be let in as if it were a member, and counted as one more
approval towards a quorum. A group never answers; its members do. So an actor must be:

* a Slack user id: ``U0123ABC`` or ``W0123ABC``; or
* a named API client (``deploy-bot``, ``alice``, ``ci@example.com``): letters, digits and
  ``. _ - : @ +``, starting with a letter or digit, and not shaped like a group.
"""

from __future__ import annotations

import re

from bot.slack.blocks.responders import GROUP_PREFIX, group_id
from bot.web.problems import Problem

__all__ = ["actor_problem", "check_actor"]

_CLIENT_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:@+-]*$")
_SLACK_PERSON = re.compile(r"^[UW][A-Z0-9]{2,}$")


def _names_a_group(actor: str) -> bool:
    # ``group_id`` is the Slack adapter's own reading of a responder entry, so whatever it
    # would treat as a group is refused here too; the rest are mention-style group handles.
    lowered = actor.lower()
    return (
        lowered.startswith((GROUP_PREFIX, "@", "!", "<!", "subteam^"))
        or group_id(actor) is not None
    )


def actor_problem(actor: str) -> str | None:
    """Why ``actor`` may not answer (a group, or not a plain name), or None if it may.

    Shared by the API (422 ``invalid_actor``) and the CLI (``signoff resume --as``).
    """
    if _SLACK_PERSON.match(actor):
        return None
    if _names_a_group(actor):
        return (
            f"actor {actor[:80]!r} names a user group: an answer must come from one person "
            "(a Slack user id such as U0123ABC) or a named API client, never a group"
        )
    if not _CLIENT_NAME.match(actor):
        return (
            "actor must be a Slack user id (U0123ABC) or an API client name made of letters, "
            "digits and . _ - : @ +, starting with a letter or digit"
        )
    return None


def check_actor(actor: str) -> None:
    """Refuse (422 ``invalid_actor``) an actor that is a group or not a plain name."""
    problem = actor_problem(actor)
    if problem is not None:
        raise Problem(422, "invalid_actor", problem)
