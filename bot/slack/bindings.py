"""What a click needs to know about an interrupt, kept so a click costs one store trip.

A click carries only a signed reference (run id, interrupt id). To turn it into an answer
the listener needs the interrupt's resume model (to read the clicked control) and the
messages it was posted in (a click must come from one of them). Both are fixed once known:
the model is pinned by the interrupt's workflow version and step, and a posted message
stays posted. So they are kept here, filled by the notifier when it posts (the common
case: the same process posts and is clicked) and otherwise by reading the interrupt once.
Everything that can change (is it still pending, may this person answer, quorum) is left
to ``engine.resume``, which checks it in its own transaction.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass

from pydantic import BaseModel

from engine import Engine, Interrupt

__all__ = [
    "MESSAGE_REF_PREFIX",
    "Binding",
    "Bindings",
    "MessageKey",
    "PostedMessage",
    "message_keys",
    "posted_messages",
]

MessageKey = tuple[str, str]  # (channel id, ts) of a posted message
# interrupt.refs["slack.msg:<channel or user>"] = {"channel": ..., "ts": ...}
MESSAGE_REF_PREFIX = "slack.msg:"


@dataclass(frozen=True, slots=True)
class Binding:
    """An interrupt's resume model and the messages it is shown in."""

    model: type[BaseModel]
    messages: frozenset[MessageKey]


class Bindings:
    """A bounded cache of ``Binding`` by (run id, interrupt id), least recently used out.

    Args:
        engine: Where an interrupt is read when it is not cached.
        size: How many interrupts are kept (a few hundred bytes each).
    """

    def __init__(self, engine: Engine, *, size: int = 4096) -> None:
        self.engine = engine
        self.size = size
        self._cache: OrderedDict[tuple[str, str], Binding] = OrderedDict()

    def remember(self, interrupt: Interrupt, messages: Iterable[MessageKey]) -> Binding:
        """Keep ``interrupt``'s binding with ``messages`` (added to any known already).

        Raises:
            WorkflowNotRegistered: the interrupt's workflow version is not loaded.
        """
        key = (interrupt.run_id, interrupt.id)
        known = self._cache.get(key)
        model = known.model if known else self.engine.resume_model(interrupt)
        binding = Binding(model, frozenset(messages) | (known.messages if known else frozenset()))
        self._cache[key] = binding
        self._cache.move_to_end(key)
        while len(self._cache) > self.size:
            self._cache.popitem(last=False)
        return binding

    async def lookup(self, run_id: str, interrupt_id: str, clicked: MessageKey | None) -> Binding:
        """The binding of an interrupt, read from the store when not known, or when the
        clicked message is not among the known ones (it may have been recorded since).

        Raises:
            RunNotFound, InterruptNotFound, WorkflowNotRegistered.
        """
        known = self._cache.get((run_id, interrupt_id))
        if known is not None and (clicked is None or clicked in known.messages):
            self._cache.move_to_end((run_id, interrupt_id))
            return known
        interrupt = await self.engine.get_interrupt(run_id, interrupt_id)
        return self.remember(interrupt, message_keys(interrupt))


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


def message_keys(interrupt: Interrupt) -> list[MessageKey]:
    """(channel, ts) of every message recorded on ``interrupt.refs`` by the notifier."""
    return [(posted.channel, posted.ts) for posted in posted_messages(interrupt)]
