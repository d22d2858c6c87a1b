"""Who may answer an interrupt from Slack: user ids, Slack user groups, or anyone.

The convention for ``responders`` (what a step passes to ``ctx.suspend(responders=...)``):

* ``"U0123ABC"`` / ``"W0123ABC"``: a Slack user id. The engine matches it verbatim.
* ``"S0123ABC"`` or ``"group:S0123ABC"``: a Slack user group (its id, as shown in the
  group's URL); every current member may answer. Membership comes from
  ``usergroups.users.list`` and is cached for ``ttl`` seconds.
* an empty list: anyone who can see the message (anyone in the channel) may answer.

The engine always refuses the run's requester unless the step allows it, whatever the list.
``UsergroupAuthorizer`` is the engine's ``authorizer`` callback: it is asked only about
actors not listed verbatim.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from slack_sdk.errors import SlackApiError, SlackClientError
from slack_sdk.web.async_client import AsyncWebClient

from bot.slack.blocks.responders import GROUP_PREFIX, describe_responders, group_id
from engine import Interrupt

__all__ = ["GROUP_PREFIX", "UsergroupAuthorizer", "describe_responders", "group_id"]

log = logging.getLogger("signoff.bot.authorization")


@dataclass
class _Entry:
    members: frozenset[str]
    fetched_at: float


class UsergroupAuthorizer:
    """Lets members of the Slack user groups listed in ``responders`` answer.

    Fails closed: if Slack cannot be asked, the actor is refused (and the failure is not
    cached, so the next click asks again). Concurrent clicks share one lookup per group.

    Args:
        client: A Web API client with ``usergroups:read``.
        ttl: Seconds a group's membership is reused before asking Slack again.
        clock: Monotonic time source (tests move it).
    """

    def __init__(
        self,
        client: AsyncWebClient,
        *,
        ttl: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.client = client
        self.ttl = ttl
        self.clock = clock
        self._cache: dict[str, _Entry] = {}
        self._locks: dict[str, asyncio.Lock] = {}

    async def __call__(self, interrupt: Interrupt, actor: str) -> bool:
        """True if ``actor`` belongs to one of the groups in ``interrupt.responders``."""
        for responder in interrupt.responders:
            group = group_id(responder)
            if group is not None and actor in await self.members(group):
                return True
        return False

    async def members(self, group: str) -> frozenset[str]:
        """The user ids in ``group`` (cached; empty if Slack could not be asked)."""
        entry = self._fresh(group)
        if entry is not None:
            return entry.members
        lock = self._locks.setdefault(group, asyncio.Lock())
        async with lock:
            entry = self._fresh(group)  # another click may have fetched it while we waited
            if entry is not None:
                return entry.members
            try:
                response = await self.client.usergroups_users_list(usergroup=group)
            except (SlackApiError, SlackClientError, OSError, TimeoutError) as exc:
                log.warning("could not list members of user group %s: %s", group, exc)
                return frozenset()
            members = frozenset(str(user) for user in response.get("users") or [])
            self._cache[group] = _Entry(members, self.clock())
            return members

    async def groups_of(self, actor: str, responders: Iterable[str]) -> list[str]:
        """The responder entries naming groups that ``actor`` belongs to (for listings)."""
        found = []
        for responder in dict.fromkeys(responders):
            group = group_id(responder)
            if group is not None and actor in await self.members(group):
                found.append(responder)
        return found

    def _fresh(self, group: str) -> _Entry | None:
        entry = self._cache.get(group)
        if entry is not None and self.clock() - entry.fetched_at < self.ttl:
            return entry
        return None
