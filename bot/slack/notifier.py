"""The outbox subscriber that keeps Slack in step with the engine.

* ``interrupt.created``: post the request (to the step's channel, as DMs to the named
  approvers, or to the default channel) and store each message's channel + ts on the
  interrupt (``refs["slack.msg:<target>"]``).
* ``interrupt.response`` / ``interrupt.resolved``: ``chat.update`` every posted message to the
  interrupt's current state (quorum progress, outcome, expired, cancelled).
* ``interrupt.reminder``: a reminder in each message's thread.
* ``run.finished``: the run's outcome in the thread of each of its messages.

Delivery is at least once, so every handler is idempotent: posts are skipped when the
interrupt's refs say they were made (checked before posting, written right after), and
updates always render the current state. The one gap is a crash between Slack accepting a
post and the ref being written: that post is made again on redelivery.

Errors: transient ones (429 and 5xx after slack-sdk's own retries, network errors) are
raised so the outbox retries the message with backoff. Permanent ones (``channel_not_found``,
``not_in_channel``, ``invalid_blocks``...) are logged and dropped, because retrying cannot fix
them and would hold back the run's later notifications.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from functools import partial
from typing import Any, TypeVar

import aiohttp
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from bot.slack.blocks.compose import (
    cancellation,
    current_message,
    finished_text,
    reminder_text,
    request_info,
)
from bot.slack.blocks.render import Message
from bot.slack.blocks.responders import group_id
from bot.slack.refs import RefSigner
from engine import (
    Engine,
    Interrupt,
    InterruptKind,
    InterruptNotFound,
    InterruptStatus,
    OutboxMessage,
    RunNotFound,
    WorkflowNotRegistered,
)

__all__ = ["MESSAGE_REF_PREFIX", "Notifier", "PostedMessage", "posted_messages"]

log = logging.getLogger("signoff.bot.notifier")

MESSAGE_REF_PREFIX = "slack.msg:"
FINISHED_REF = "slack.finished"
REMINDED_REF_PREFIX = "slack.reminded:"
_USER_ID_PREFIXES = ("U", "W")
# ok:false errors that are worth another try later; every other ok:false is permanent.
_TRANSIENT_ERRORS = frozenset(
    {
        "ratelimited",
        "rate_limited",
        "fatal_error",
        "internal_error",
        "service_unavailable",
        "request_timeout",
    }  # fmt: skip
)
T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class PostedMessage:
    """One Slack message showing an interrupt."""

    target: str  # the channel or user it was addressed to
    channel: str  # the conversation id it landed in (D… for a DM)
    ts: str


def posted_messages(interrupt: Interrupt) -> list[PostedMessage]:
    """The Slack messages recorded on ``interrupt.refs`` by the notifier."""
    found = []
    for key, value in interrupt.refs.items():
        if key.startswith(MESSAGE_REF_PREFIX) and isinstance(value, dict):
            channel, ts = value.get("channel"), value.get("ts")
            if isinstance(channel, str) and isinstance(ts, str):
                found.append(PostedMessage(key.removeprefix(MESSAGE_REF_PREFIX), channel, ts))
    return found


def is_transient(exc: BaseException) -> bool:
    """Whether a failed Slack call may succeed if tried again later."""
    if isinstance(exc, SlackApiError):
        status = exc.response.status_code
        return status == 429 or status >= 500 or exc.response.get("error") in _TRANSIENT_ERRORS
    return isinstance(exc, aiohttp.ClientError | OSError | TimeoutError)


class Notifier:
    """Posts and updates Slack messages for interrupts; subscribe it to the engine's outbox.

    Args:
        engine: The engine whose interrupts are shown.
        client: A Web API client (with retry handlers) for the bot token.
        signer: Signs the references carried by the controls.
        default_channel: Where requests go that name neither a channel nor user approvers.
    """

    NAME = "slack-notifier"  # stable: the outbox records deliveries under this name
    TOPICS = (
        "interrupt.created",
        "interrupt.response",
        "interrupt.resolved",
        "interrupt.reminder",
        "run.finished",
    )

    def __init__(
        self,
        engine: Engine,
        client: AsyncWebClient,
        signer: RefSigner,
        *,
        default_channel: str | None = None,
    ) -> None:
        self.engine = engine
        self.client = client
        self.signer = signer
        self.default_channel = default_channel

    def subscribe(self) -> None:
        """Subscribe to the engine's outbox. Do it before the engine starts, so nothing
        committed earlier (e.g. before a restart) is delivered without us."""
        self.engine.subscribe(self, topics=self.TOPICS, name=self.NAME)

    async def __call__(self, message: OutboxMessage) -> None:
        """Handle one outbox message (raises on transient Slack failures, to be retried)."""
        try:
            if message.topic == "run.finished":
                await self.announce_finished(message.run_id)
                return
            if message.interrupt_id is None:
                return
            interrupt = await self.engine.get_interrupt(message.run_id, message.interrupt_id)
            if interrupt.kind is not InterruptKind.INPUT:
                return  # events and sleeps have no one to ask in Slack
            if message.topic == "interrupt.created":
                await self.post_request(interrupt)
            elif message.topic == "interrupt.reminder":
                await self.remind(interrupt, str(message.data.get("due_at")))
            else:
                await self.refresh(interrupt)
        except (RunNotFound, InterruptNotFound):
            log.warning("outbox message %s refers to a missing run or interrupt", message.id)
        except WorkflowNotRegistered as exc:
            log.error("cannot show %s/%s in Slack: %s", message.run_id, message.interrupt_id, exc)

    # -- posting -----------------------------------------------------------------------------

    def targets(self, interrupt: Interrupt) -> list[str]:
        """Where a request goes: its channel; else DMs to user approvers (plus the default
        channel when user groups may answer too); else the default channel."""
        if interrupt.channel:
            return [interrupt.channel]
        users = [r for r in interrupt.responders if r.startswith(_USER_ID_PREFIXES)]
        groups = [r for r in interrupt.responders if group_id(r)]
        found = list(dict.fromkeys(users))
        if self.default_channel and (groups or not users):
            found.append(self.default_channel)
        return found

    async def post_request(self, interrupt: Interrupt) -> None:
        """Post the request to each target not posted to yet, recording channel + ts."""
        if interrupt.status is not InterruptStatus.PENDING:
            log.info("interrupt %s/%s was %s before it could be posted", interrupt.run_id,
                     interrupt.id, interrupt.status.value)  # fmt: skip
            return
        targets = self.targets(interrupt)
        if not targets:
            log.error(
                "interrupt %s/%s names no channel and no user approvers, and "
                "SIGNOFF_DEFAULT_CHANNEL is not set: it is not shown in Slack",
                interrupt.run_id,
                interrupt.id,
            )
            return
        message = self._render(interrupt)
        for target in targets:
            key = MESSAGE_REF_PREFIX + target
            if key in interrupt.refs:
                continue  # posted before a crash or a retry: never post twice
            posted = await self._slack(
                f"post {interrupt.run_id}/{interrupt.id} to {target}",
                partial(self._post, target, message),
            )
            if posted is not None:
                await self.engine.set_interrupt_ref(
                    interrupt.run_id, interrupt.id, key, {"channel": posted[0], "ts": posted[1]}
                )

    async def _post(self, target: str, message: Message) -> tuple[str, str]:
        channel = target
        if target.startswith(_USER_ID_PREFIXES):
            opened = await self.client.conversations_open(users=target)
            channel = str(opened["channel"]["id"])
        response = await self.client.chat_postMessage(
            channel=channel, text=message.text, blocks=message.blocks
        )
        return str(response["channel"]), str(response["ts"])

    # -- updating ----------------------------------------------------------------------------

    async def refresh(self, interrupt: Interrupt) -> None:
        """Update every posted message to the interrupt's current state."""
        messages = posted_messages(interrupt)
        if not messages:
            return
        cancelled = None
        if interrupt.status is InterruptStatus.CANCELLED:
            cancelled = cancellation(await self.engine.get_run(interrupt.run_id))
        message = self._render(interrupt, cancelled=cancelled)
        for posted in messages:
            await self._slack(
                f"update {interrupt.run_id}/{interrupt.id} in {posted.channel}",
                partial(
                    self.client.chat_update,
                    channel=posted.channel,
                    ts=posted.ts,
                    text=message.text,
                    blocks=message.blocks,
                ),
            )

    async def remind(self, interrupt: Interrupt, due_at: str) -> None:
        """Post a reminder in each message's thread, once per reminder time."""
        key = REMINDED_REF_PREFIX + due_at
        if interrupt.status is not InterruptStatus.PENDING or key in interrupt.refs:
            return
        text = reminder_text(interrupt)
        for posted in posted_messages(interrupt):
            await self._reply(posted, text)
        await self.engine.set_interrupt_ref(interrupt.run_id, interrupt.id, key, True)

    async def announce_finished(self, run_id: str) -> None:
        """Reply in the thread of each of the run's messages with how the run ended."""
        detail = await self.engine.get_run(run_id)
        text = finished_text(detail.run, cancellation(detail))
        for interrupt in detail.interrupts:
            messages = posted_messages(interrupt)
            if not messages or interrupt.refs.get(FINISHED_REF):
                continue
            for posted in messages:
                await self._reply(posted, text)
            await self.engine.set_interrupt_ref(run_id, interrupt.id, FINISHED_REF, True)

    async def _reply(self, posted: PostedMessage, text: str) -> None:
        await self._slack(
            f"reply in thread {posted.channel}/{posted.ts}",
            partial(
                self.client.chat_postMessage, channel=posted.channel, thread_ts=posted.ts, text=text
            ),
        )

    # -- helpers -----------------------------------------------------------------------------

    def _render(self, interrupt: Interrupt, **kwargs: Any) -> Message:
        info = request_info(self.engine, interrupt)
        ref = self.signer.sign(interrupt.run_id, interrupt.id)
        return current_message(info, ref, **kwargs)

    async def _slack(self, what: str, call: Callable[[], Awaitable[T]]) -> T | None:
        """Run one Slack call: transient failures raise (outbox retry), others are logged."""
        try:
            return await call()
        except Exception as exc:
            if is_transient(exc):
                raise
            log.error("Slack refused to %s: %s", what, exc)
            return None
