"""A request nobody can see in Slack is not silent.

The notifier reports a request it could not post anywhere (no destination, or Slack refused
the post for good: ``channel_not_found``, ``not_in_channel``, ``is_archived``...) with
``engine.report_undelivered``: an ``undelivered`` entry in the run's history (the API shows
it) and an ``interrupt.undelivered`` outbox message. ``UndeliveredNotice`` handles that
message: a DM to the requester (when the requester is a Slack user) and to each admin
(``SIGNOFF_ADMINS``) saying what is waiting and why nobody was shown it. Delivery is at least
once; each person told is recorded on the interrupt (``refs["slack.told:<target>:<user>"]``),
so a redelivery tells nobody twice except after a crash between a DM and its record.

``warn_without_default_channel`` is the start-up warning. Where a request goes is decided at
run time (``ctx.suspend(channel=..., responders=...)`` takes values from the run), so it
cannot be known statically which steps will have no destination; without
``SIGNOFF_DEFAULT_CHANNEL`` any request naming no channel and no user responders has none,
so one line says so and names the workflows that ask for input.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from slack_sdk.web.async_client import AsyncWebClient

from bot.slack.blocks.text import escape, mention
from bot.slack.failures import is_transient
from engine import Engine, Interrupt, InterruptNotFound, OutboxMessage, RunNotFound

__all__ = [
    "TOLD_REF_PREFIX",
    "UndeliveredNotice",
    "undelivered_text",
    "warn_without_default_channel",
]

log = logging.getLogger("signoff.bot.undelivered")

TOLD_REF_PREFIX = "slack.told:"
_USER_ID_PREFIXES = ("U", "W")
_REASONS = {
    "no_destination": "it names no channel and no user approvers, and no default channel "
    "(SIGNOFF_DEFAULT_CHANNEL) is set",
    "channel_not_found": "the channel does not exist or the bot cannot see it",
    "not_in_channel": "the bot is not a member of the channel (invite it)",
    "is_archived": "the channel is archived",
}


def undelivered_text(interrupt: Interrupt, target: str | None, reason: str) -> str:
    """The DM telling someone that a request could not be shown."""
    where = f" in {escape(target)}" if target else ""
    why = _REASONS.get(reason, f"Slack refused the post (`{escape(reason)}`)")
    by = f", requested by {mention(interrupt.requester)}" if interrupt.requester else ""
    return (
        f":warning: A request of run `{escape(interrupt.run_id)}` "
        f"(*{escape(interrupt.workflow)}* / {escape(interrupt.step)}{by}) could not be shown"
        f"{where}: {why}. Nobody has been asked. It still waits: answer it with "
        f"`signoff resume` or the API, or cancel the run."
    )


class UndeliveredNotice:
    """Tells the requester and the admins about an ``interrupt.undelivered`` message.

    Args:
        engine: Where the interrupt is read and the people told are recorded.
        client: A Web API client for the bot token.
        admins: User ids told about every undelivered request.
    """

    NAME = "slack-undelivered"  # stable: the outbox records deliveries under this name
    TOPICS = ("interrupt.undelivered",)

    def __init__(self, engine: Engine, client: AsyncWebClient, admins: Sequence[str]) -> None:
        self.engine = engine
        self.client = client
        self.admins = list(admins)

    def subscribe(self) -> None:
        """Subscribe to the engine's outbox (before it starts)."""
        self.engine.subscribe(self, topics=self.TOPICS, name=self.NAME)

    async def __call__(self, message: OutboxMessage) -> None:
        """DM each person to tell, once (raises on transient Slack failures)."""
        if message.interrupt_id is None:
            return
        try:
            interrupt = await self.engine.get_interrupt(message.run_id, message.interrupt_id)
        except (RunNotFound, InterruptNotFound):
            return
        target = message.data.get("target")
        target = str(target) if target else None
        reason = str(message.data.get("reason") or "unknown")
        text = undelivered_text(interrupt, target, reason)
        for user in self.recipients(interrupt):
            key = f"{TOLD_REF_PREFIX}{target or '-'}:{user}"
            if key in interrupt.refs:
                continue
            try:
                await self.client.chat_postMessage(channel=user, text=text)
            except Exception as exc:
                if is_transient(exc):
                    raise
                log.error("could not tell %s about undelivered request %s/%s: %s",
                          user, interrupt.run_id, interrupt.id, exc)  # fmt: skip
                continue
            await self.engine.set_interrupt_ref(interrupt.run_id, interrupt.id, key, True)

    def recipients(self, interrupt: Interrupt) -> list[str]:
        """The requester (if a Slack user) and the admins, each once."""
        people = [*self.admins]
        if interrupt.requester and interrupt.requester.startswith(_USER_ID_PREFIXES):
            people.insert(0, interrupt.requester)
        return list(dict.fromkeys(people))


def warn_without_default_channel(engine: Engine, default_channel: str | None) -> None:
    """Log once, at start-up, when requests may have nowhere to go (see the module doc)."""
    if default_channel:
        return
    asking = sorted({wf.name for wf in engine.registry.all() if _asks_for_input(wf)})
    log.warning(
        "SIGNOFF_DEFAULT_CHANNEL is not set: a request whose step names no channel= and no "
        "user responders (only user groups, or anyone) is not shown in Slack; it is recorded "
        "as undelivered and its requester and SIGNOFF_ADMINS are told. Workflows asking for "
        "input: %s",
        ", ".join(asking) or "none",
    )


def _asks_for_input(workflow: object) -> bool:
    # Any step with a resume model, at any depth (branches, parallels, sub-workflows).
    seen: list[object] = list(getattr(workflow, "nodes", []))
    while seen:
        node = seen.pop()
        if getattr(node, "resume_model", None) is not None:
            return True
        seen.extend(getattr(node, "nodes", []))
        seen.extend(child for _, child in getattr(node, "cases", []))
        seen.extend(getattr(node, "branches", []))
        for name in ("otherwise", "body"):
            if getattr(node, name, None) is not None:
                seen.append(getattr(node, name))
    return False
