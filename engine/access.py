"""Who may respond to an interrupt: the responder list, the requester rule, the authorizer.

The rules, in order:

1. The run's requester may not answer their own request unless the interrupt allows it
   (``allow_requester``).
2. An interrupt without responders is open to anyone; one with responders accepts an
   actor listed verbatim.
3. Anyone else is asked about through the engine's ``Authorizer`` (e.g. membership of a
   Slack user group listed among the responders). Without an authorizer they are refused.

Rules 1 and 2 need no I/O, so ``Engine.resume`` applies them inside the store's
transaction; only rule 3 is asked outside it (see ``AskAuthorizer``).
"""

from __future__ import annotations

from collections.abc import Awaitable
from typing import Protocol

from engine.errors import NotAuthorized
from engine.models import Interrupt


class Authorizer(Protocol):
    """Decides whether an actor not listed verbatim among the responders may respond.

    Pass one to ``Engine(store, authorizer=...)``: any async callable taking
    ``(interrupt, actor)`` and returning a bool. Example, for responders such as
    ``"group:S0FINANCE"``::

        async def in_group(interrupt: Interrupt, actor: str) -> bool:
            groups = await my_directory.groups_of(actor)  # cache this: it is called often
            return any(f"group:{g}" in interrupt.responders for g in groups)

        engine = Engine(open_store(url), workflows=[...], authorizer=in_group)

    The engine calls it as ``await authorizer(interrupt, actor)`` only when the rules
    that need no I/O cannot decide: the actor is not the (disallowed) requester, the
    interrupt has responders, and the actor is not one of them. A typical authorizer
    checks whether ``actor`` belongs to a group named in ``interrupt.responders`` (the
    Slack bot's ``UsergroupAuthorizer`` asks Slack which user groups the actor is in).

    Where it is called: ``Engine.resume`` and ``Engine.check_authorized`` (outside the
    store's transaction; the resume's checks then run again inside it), and
    ``Engine.list_interrupts(actor=...)``, which asks it once per distinct responder
    list in a call, so its answer should depend on the responders and the actor only.

    Optional method ``groups_of(actor, responders) -> list[str]`` (async): of the given
    responder entries, those naming groups ``actor`` belongs to. With it, listings
    (``Engine.list_interrupts(actor=...)``, ``count_interrupts``, ``list_decided``) ask it
    once per call about the responders of pending interrupts and then read the responder
    index only; without it, they fall back to asking ``__call__`` per responder list. The
    Slack bot's ``UsergroupAuthorizer`` has one (its membership cache answers it).

    Args:
        interrupt: the pending interrupt, with ``responders``, ``requester``,
            ``workflow`` and the rest of its record.
        actor: the id of who is responding (for the Slack bot, a Slack user id).

    Returns:
        True to let the actor respond; False refuses with ``NotAuthorized``. An exception
        it raises reaches the caller of ``resume`` (or ``check_authorized``) unchanged.
    """

    def __call__(self, interrupt: Interrupt, actor: str, /) -> Awaitable[bool]:
        """Answer whether ``actor`` may respond to ``interrupt``."""
        ...


class AskAuthorizer(Exception):
    """Raised inside a resume transaction when only the authorizer hook can decide.

    The hook may do I/O, which must not happen while the store's transaction is open:
    the transaction is abandoned, the hook asked, and the resume tried again.
    """

    def __init__(self, interrupt: Interrupt) -> None:
        super().__init__(interrupt.id)
        self.interrupt = interrupt


def authorize_known(
    interrupt: Interrupt, actor: str, authorizer: Authorizer | None, *, hook_allowed: bool
) -> None:
    """Apply the rules that need no I/O.

    Args:
        interrupt: the interrupt being answered.
        actor: who answers.
        authorizer: the engine's hook, if any (only whether there is one matters here).
        hook_allowed: the hook already said yes for this actor and interrupt.

    Raises:
        NotAuthorized: the actor may not respond.
        AskAuthorizer: only the hook can tell.
    """
    if interrupt.requester == actor and not interrupt.allow_requester:
        raise NotAuthorized(
            interrupt.run_id,
            interrupt.id,
            actor,
            "the requester may not respond to their own request",
        )
    if not interrupt.responders or actor in interrupt.responders or hook_allowed:
        return
    if authorizer is not None:
        raise AskAuthorizer(interrupt)
    raise not_listed(interrupt, actor)


def not_listed(interrupt: Interrupt, actor: str) -> NotAuthorized:
    """The refusal of an actor who is not among the interrupt's responders."""
    who = ", ".join(interrupt.responders)
    return NotAuthorized(interrupt.run_id, interrupt.id, actor, f"only {who} may respond")


async def ask_authorizer(authorizer: Authorizer | None, interrupt: Interrupt, actor: str) -> None:
    """Ask the hook about an actor not listed verbatim; raise NotAuthorized on a no."""
    if authorizer is None or not await authorizer(interrupt, actor):
        raise not_listed(interrupt, actor)


async def check_authorized(authorizer: Authorizer | None, interrupt: Interrupt, actor: str) -> None:
    """Raise NotAuthorized unless ``actor`` may respond to ``interrupt`` (all three rules)."""
    try:
        authorize_known(interrupt, actor, authorizer, hook_allowed=False)
    except AskAuthorizer:
        await ask_authorizer(authorizer, interrupt, actor)
