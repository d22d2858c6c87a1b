"""The outbox subscriber that keeps Slack in step with the engine.

* ``interrupt.created``: post the request (to the step's channel, as DMs to the named
  approvers, or to the default channel) and store each message's channel + ts on the
  interrupt (``refs["slack.msg:<target>"]``).
* ``interrupt.response`` / ``interrupt.resolved``: ``chat.update`` every posted message to the
  interrupt's current state (quorum progress, outcome, expired, cancelled).
* ``interrupt.reminder``: a reminder in each message's thread.
* ``run.finished``: the run's outcome in the thread of each of its messages.

Delivery is at least once, so every handler is idempotent. Updates always render the
current state. Posts are skipped when the interrupt's refs say they were made; and because
a post can reach Slack without its ref being written (a crash, or a response lost on the
way back), each post is announced first (``refs["slack.attempt:<kind>"]``, a count) and
carries message metadata naming the interrupt, target and kind (``bot.slack.recall``). A
post whose attempt was announced before, by this process or one that died, first reads the
conversation back for its earlier copy and adopts it instead of posting again. The
outbox's ``attempt`` is not used for this: a message reclaimed after a crash mid-delivery
keeps ``attempt == 1`` (attempts are counted when a delivery is settled), so only a marker
written before the Slack call can tell that a post may already have happened.

Errors: transient ones (429 and 5xx after slack-sdk's own retries, network errors) are
raised so the outbox retries the message with backoff. Permanent ones (``channel_not_found``,
``not_in_channel``, ``invalid_blocks``...) are logged and dropped, because retrying cannot fix
them and would hold back the run's later notifications; a request that could not be posted
at all is reported with ``engine.report_undelivered`` (see ``bot.slack.undelivered``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Collection, Mapping
from functools import partial
from typing import Any, TypeVar

from slack_sdk.web.async_client import AsyncWebClient

from bot.outbox_reads import delivery_reads
from bot.slack.acks import MAX_DEFER, AckFirst
from bot.slack.bindings import MESSAGE_REF_PREFIX, Bindings, PostedMessage, posted_messages
from bot.slack.blocks.compose import (
    cancellation,
    current_message,
    finished_text,
    reminder_text,
    request_info,
    superseded_message,
)
from bot.slack.blocks.render import Message
from bot.slack.blocks.responders import describe_responders
from bot.slack.delivery import delivery_mode
from bot.slack.delivery import targets as delivery_targets
from bot.slack.digest import Digest
from bot.slack.failures import error_code, is_transient
from bot.slack.recall import (
    FINISHED_KIND,
    REQUEST_KIND,
    Copy,
    find_copies,
    find_replies,
    metadata_for,
    reminder_kind,
)
from bot.slack.refs import RefSigner
from engine import (
    Engine,
    Interrupt,
    InterruptKind,
    InterruptNotFound,
    InterruptStatus,
    OutboxMessage,
    RunNotFound,
    RunStatus,
    WorkflowNotRegistered,
)

__all__ = [
    "MESSAGE_REF_PREFIX",
    "NO_DESTINATION",
    "Notifier",
    "PostedMessage",
    "is_transient",
    "posted_messages",
]

log = logging.getLogger("signoff.bot.notifier")

ATTEMPT_REF_PREFIX = "slack.attempt:"  # + kind: how many times posting it was started
UNDELIVERED_REF_PREFIX = "slack.undelivered:"  # + target: reported already
NO_DESTINATION = "no_destination"  # the undelivered reason when nothing says where to post
_USER_ID_PREFIXES = ("U", "W")
T = TypeVar("T")


def _legacy_done(kind: str) -> str:
    # The ref earlier versions wrote after replying: still honoured after an upgrade.
    if kind.startswith("reminder:"):
        return "slack.reminded:" + kind.removeprefix("reminder:")
    return "slack." + kind


class Notifier:
    """Posts and updates Slack messages for interrupts; subscribe it to the engine's outbox.

    Args:
        engine: The engine whose interrupts are shown.
        client: A Web API client (with retry handlers) for the bot token.
        signer: Signs the references carried by the controls.
        default_channel: Where requests go that name neither a channel nor user approvers.
        bindings: Told of every message posted, so clicks on it need no store read.
        digest: Takes over the reminders of people who get digests (None: no digests).
        delivery: The delivery policy (``bot.slack.delivery.parse_policy``; default auto).
        acks: Slack requests waiting for their answer go first (``bot.slack.acks``).
        updates_first: Thread replies wait while message updates are in progress. Only
            for an unpaced client: a pacer already sends updates first, and replies wait
            for a budget of their own there.
    """

    NAME = "slack-notifier"  # stable: the outbox records deliveries under this name
    TOPICS = (
        "interrupt.created",
        "interrupt.response",
        "interrupt.resolved",
        "interrupt.reminder",
        "interrupt.escalated",
        "run.finished",
    )

    def __init__(
        self,
        engine: Engine,
        client: AsyncWebClient,
        signer: RefSigner,
        *,
        default_channel: str | None = None,
        bindings: Bindings | None = None,
        digest: Digest | None = None,
        delivery: Mapping[str, str] | None = None,
        acks: AckFirst | None = None,
        updates_first: bool = False,
    ) -> None:
        self.engine = engine
        self.acks = acks
        self.updates_first = updates_first
        self._updating = 0  # message updates in progress: thread replies let them go first
        self._updated = asyncio.Event()
        self.digest = digest
        self.delivery = dict(delivery or {})
        self.client = client
        self.signer = signer
        self.default_channel = default_channel
        self.bindings = bindings or Bindings(engine)
        self.reads = delivery_reads(engine)

    def subscribe(self) -> None:
        """Subscribe to the engine's outbox. Do it before the engine starts, so nothing
        committed earlier (e.g. before a restart) is delivered without us."""
        self.engine.subscribe(self, topics=self.TOPICS, name=self.NAME)

    async def __call__(self, message: OutboxMessage) -> None:
        """Handle one outbox message (raises on transient Slack failures, to be retried)."""
        if self.acks is not None:
            await self.acks.turn()  # clicks waiting for their ack go first
        try:
            if message.topic == "run.finished":
                await self.announce_finished(message.run_id)
                return
            if message.interrupt_id is None:
                return
            # Read now (current state), and left for the other subscribers of the message.
            interrupt = await self.reads.current(message)
            if interrupt.kind is not InterruptKind.INPUT:
                return  # events and sleeps have no one to ask in Slack
            if message.topic == "interrupt.created":
                await self.post_request(interrupt)
            elif message.topic == "interrupt.reminder":
                await self.remind(interrupt, str(message.data.get("due_at")))
            elif message.topic == "interrupt.escalated":
                await self.escalate(interrupt, message.data)
            else:
                self._updating += 1
                try:
                    await self.refresh(interrupt)
                finally:
                    self._updating -= 1
                    if not self._updating:
                        self._updated.set()
        except (RunNotFound, InterruptNotFound):
            log.warning("outbox message %s refers to a missing run or interrupt", message.id)
        except WorkflowNotRegistered as exc:
            log.error("cannot show %s/%s in Slack: %s", message.run_id, message.interrupt_id, exc)

    async def _updates_first(self) -> None:
        """Wait (at most ``MAX_DEFER``) until no message update is in progress: after a
        burst of answers, every message shows its outcome before the runs' thread
        replies (each a read, a ref write and a post) take the loop."""
        if not self.updates_first or not self._updating:
            return
        self._updated.clear()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._updated.wait(), MAX_DEFER)

    # -- posting -----------------------------------------------------------------------------

    def targets(self, interrupt: Interrupt) -> list[str]:
        """Where a request goes, by its delivery mode (``bot.slack.delivery``): by default
        its channel; else DMs to user approvers (plus the default channel when user groups
        may answer too); else the default channel."""
        mode = delivery_mode(interrupt, self.delivery)
        return delivery_targets(interrupt, mode, self.default_channel)

    async def post_request(self, interrupt: Interrupt) -> None:
        """Post the request to each target not posted to yet, recording channel + ts."""
        targets = self.targets(interrupt)
        pending = interrupt.status is InterruptStatus.PENDING
        if not targets:
            if pending:
                log.error(
                    "interrupt %s/%s names no channel and no user approvers, and "
                    "SIGNOFF_DEFAULT_CHANNEL is not set: it is not shown in Slack",
                    interrupt.run_id,
                    interrupt.id,
                )
                await self._undelivered(interrupt, None, NO_DESTINATION)
            return
        missing = [t for t in targets if MESSAGE_REF_PREFIX + t not in interrupt.refs]
        if not missing:
            return  # posted before a crash or a retry: never post twice
        if not pending:
            log.info("interrupt %s/%s was %s before it could be posted", interrupt.run_id,
                     interrupt.id, interrupt.status.value)  # fmt: skip
            if ATTEMPT_REF_PREFIX + REQUEST_KIND in interrupt.refs:
                # Too late to ask anyone, but a copy posted before a crash may be in Slack
                # with live buttons (and been answered): record it, so the update that
                # follows this message shows the outcome on it.
                for target in missing:
                    await self._post_once(interrupt, target, None, retried=True)
            return
        retried = await self._announce(interrupt, REQUEST_KIND)
        message = self._render(interrupt)
        for target in missing:
            await self._post_once(interrupt, target, message, retried)

    async def _announce(self, interrupt: Interrupt, kind: str) -> bool:
        """Record that posting ``kind`` starts; True if it was started before (a copy of
        it may be in Slack already)."""
        key = ATTEMPT_REF_PREFIX + kind
        before = interrupt.refs.get(key)
        count = before if isinstance(before, int) else 0
        await self.engine.set_interrupt_ref(interrupt.run_id, interrupt.id, key, count + 1)
        return count > 0

    async def _post_once(
        self, interrupt: Interrupt, target: str, message: Message | None, retried: bool
    ) -> None:
        """Post ``message`` to ``target`` unless an earlier copy is found (``retried``);
        with no ``message``, only look for (and record) an earlier copy."""
        where = f"post {interrupt.run_id}/{interrupt.id} to {target}"
        try:
            channel = await self._conversation(target)
            copies = await find_copies(self.client, channel, interrupt, target) if retried else []
            live = [c for c in copies or [] if not c.superseded]
            if live:
                kept, extra = live[0], live[1:]
                log.info("%s: adopted the copy posted earlier at %s", where, kept.ts)
            elif message is None:
                return
            else:
                metadata = metadata_for(interrupt, target, REQUEST_KIND)
                response = await self.client.chat_postMessage(
                    channel=channel, text=message.text, blocks=message.blocks, metadata=metadata
                )
                kept, extra = Copy(str(response["channel"]), str(response["ts"]), False), []
        except Exception as exc:
            if is_transient(exc):
                raise
            log.error("Slack refused to %s: %s", where, exc)
            await self._undelivered(interrupt, target, error_code(exc))
            return
        ref = {"channel": kept.channel, "ts": kept.ts}
        await self.engine.set_interrupt_ref(
            interrupt.run_id, interrupt.id, MESSAGE_REF_PREFIX + target, ref
        )
        self.bindings.remember(interrupt, [(kept.channel, kept.ts)])
        for orphan in extra:
            await self._supersede(interrupt, target, orphan)

    async def _conversation(self, target: str) -> str:
        """The conversation id a post to ``target`` lands in (a user's DM is opened)."""
        if not target.startswith(_USER_ID_PREFIXES):
            return target
        opened = await self.client.conversations_open(users=target)
        return str(opened["channel"]["id"])

    async def _supersede(self, interrupt: Interrupt, target: str, orphan: Copy) -> None:
        """Turn a duplicate copy into a notice without controls, so nobody answers it."""
        message = superseded_message(request_info(self.engine, interrupt))
        log.warning("superseding duplicate request message %s/%s of %s/%s",
                    orphan.channel, orphan.ts, interrupt.run_id, interrupt.id)  # fmt: skip
        await self._slack(
            f"supersede {orphan.channel}/{orphan.ts}",
            partial(
                self.client.chat_update,
                channel=orphan.channel,
                ts=orphan.ts,
                text=message.text,
                blocks=message.blocks,
                metadata=metadata_for(interrupt, target, REQUEST_KIND, superseded=True),
            ),
        )

    async def _undelivered(self, interrupt: Interrupt, target: str | None, reason: str) -> None:
        """Report (once per target) that nobody at ``target`` can see the request."""
        key = UNDELIVERED_REF_PREFIX + (target or "-")
        if key in interrupt.refs:
            return
        await self.engine.report_undelivered(
            interrupt.run_id, interrupt.id, target=target, reason=reason
        )
        await self.engine.set_interrupt_ref(interrupt.run_id, interrupt.id, key, reason)

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
                    metadata=metadata_for(interrupt, posted.target, REQUEST_KIND),
                ),
            )
        retried = interrupt.refs.get(ATTEMPT_REF_PREFIX + REQUEST_KIND)
        if interrupt.status is not InterruptStatus.PENDING and isinstance(retried, int):
            if retried > 1:
                await self._sweep(interrupt, messages)

    async def _sweep(self, interrupt: Interrupt, messages: list[PostedMessage]) -> None:
        """Supersede copies of a decided request that were posted more than once but not
        recorded (a response lost after Slack accepted the post; a lookup that missed)."""
        for posted in messages:
            copies = await find_copies(self.client, posted.channel, interrupt, posted.target)
            for copy in copies or []:
                if copy.ts != posted.ts and not copy.superseded:
                    await self._supersede(interrupt, posted.target, copy)

    async def remind(self, interrupt: Interrupt, due_at: str) -> None:
        """Post a reminder in each message's thread, once per reminder time."""
        if interrupt.status is not InterruptStatus.PENDING:
            return
        # People who take digests get one DM listing everything instead (bot.slack.digest).
        skip = await self.digest.claim(interrupt) if self.digest is not None else set()
        await self._reply_in_threads(
            interrupt, reminder_kind(due_at), reminder_text(interrupt), skip=skip
        )

    async def escalate(self, interrupt: Interrupt, change: Mapping[str, Any]) -> None:
        """Show an escalation (``interrupt.escalated``): the request's messages show who may
        respond now, their threads say what changed, and the request is posted in the
        escalation's channel, with working controls, once."""
        if interrupt.status is not InterruptStatus.PENDING:
            return
        await self.refresh(interrupt)
        added = [str(r) for r in change.get("added_responders") or []]
        rung = change.get("escalation", 0)
        channel = change.get("channel")
        where = f" and posted in <#{channel}>" if isinstance(channel, str) and channel else ""
        who = f"{describe_responders(added)} may now respond too" if added else "escalated"
        text = f":arrow_double_up: Escalated: {who}{where}."
        await self._reply_in_threads(interrupt, f"escalated:{rung}", text)
        if isinstance(channel, str) and channel:
            if MESSAGE_REF_PREFIX + channel in interrupt.refs:
                return  # posted there before a crash, or it was already a target
            retried = await self._announce(interrupt, f"{REQUEST_KIND}:{channel}")
            await self._post_once(interrupt, channel, self._render(interrupt), retried)

    async def announce_finished(self, run_id: str) -> None:
        """Reply in the thread of each of the run's messages with how the run ended."""
        await self._updates_first()
        # The run and its interrupts, not its whole history (get_run): only a cancelled
        # run's reply needs that, to say who cancelled it and why.
        run = await self.engine.find_run(run_id)
        if run is None:
            raise RunNotFound(run_id)
        cancelled = None
        if run.status is RunStatus.CANCELLED:
            cancelled = cancellation(await self.engine.get_run(run_id))
        text = finished_text(run, cancelled)
        for interrupt in await self.engine.list_interrupts(run_id=run_id, status=None, limit=-1):
            await self._reply_in_threads(interrupt, FINISHED_KIND, text)

    async def _reply_in_threads(
        self, interrupt: Interrupt, kind: str, text: str, *, skip: Collection[str] = ()
    ) -> None:
        """Reply ``text`` once in the thread of each of the interrupt's messages.

        One ref write per reply kind, made *before* replying (``slack.attempt:<kind>``): a
        redelivery that finds it reads each thread back and replies only where no reply of
        this kind is (a crash may have cut the earlier attempt short). No write after:
        the threads themselves say what was done.
        """
        messages = [p for p in posted_messages(interrupt) if p.target not in skip]
        if not messages or _legacy_done(kind) in interrupt.refs:
            return
        retried = await self._announce(interrupt, kind)
        for posted in messages:
            await self._reply_once(interrupt, posted, kind, text, retried)

    async def _reply_once(
        self, interrupt: Interrupt, posted: PostedMessage, kind: str, text: str, retried: bool
    ) -> None:
        """Reply in ``posted``'s thread, unless an earlier attempt's reply is there."""
        if retried:
            earlier = await find_replies(
                self.client, posted.channel, posted.ts, interrupt, posted.target, kind
            )
            if earlier:
                return
        await self._slack(
            f"reply in thread {posted.channel}/{posted.ts}",
            partial(
                self.client.chat_postMessage,
                channel=posted.channel,
                thread_ts=posted.ts,
                text=text,
                metadata=metadata_for(interrupt, posted.target, kind),
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
