"""What a person may answer: pending and decided interrupts for an actor and their groups.

Reads the responder index where it can (one indexed query per list or count), and
falls back to pages of interrupts checked one responder list at a time.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from engine.core import EngineCore
from engine.models import Interrupt, InterruptKind, InterruptStatus


class Inbox(EngineCore):
    """The ``Engine``'s per-actor views of interrupts (a Slack Home tab, a web inbox)."""

    async def list_interrupts(
        self,
        *,
        status: InterruptStatus | str | None = InterruptStatus.PENDING,
        workflow: str | None = None,
        run_id: str | None = None,
        actor: str | None = None,
        groups: Iterable[str] | None = None,
        label: str | None = None,
        limit: int = 100,
        kind: InterruptKind | str | None = None,
    ) -> list[Interrupt]:
        """Interrupts (default: pending), oldest first, at most ``limit`` (-1: all).

        ``workflow``, ``run_id``, ``label`` (``ctx.suspend(label=...)``) and ``kind``
        filter in the database. With ``actor``, only those the actor may answer now (what
        a Slack Home tab or a web inbox shows): open to anyone, or listing the actor or one
        of ``groups`` among the responders, and not the actor's own request unless allowed.
        Without ``groups`` (None), the ``Authorizer``'s ``groups_of`` is asked which groups
        the actor is in (``Engine.groups_of``); pass them when you have them already.

        Cost: without ``actor``, one query. With ``actor`` (pending interrupts, no
        ``workflow``/``run_id``/``label`` filter, and an authorizer that has
        ``groups_of`` or none at all), the responder index: at most ``limit`` rows each
        for the actor, each of their groups and ``'*'`` (open to anyone), however many
        interrupts wait for them or for others.
        Otherwise interrupts are read in pages (of ``max(limit, 100)``) and the authorizer
        is asked once per distinct responder list.
        """
        kind_value = str(kind) if kind else None
        base: dict[str, Any] = {
            "status": str(status) if status else None,
            "workflow": workflow,
            "run_id": run_id,
            "label": label,
            "kind": kind_value,
        }
        if actor is None:
            return await self.store.list_interrupts(**base, limit=limit)
        indexed = base["status"] == InterruptStatus.PENDING.value and not (
            workflow or run_id or label
        )
        if indexed and self._groups_known():
            page, _ = await self.store.list_answerable(
                responders=await self._responders_of(actor, groups),
                actor=actor,
                kind=kind_value,
                limit=limit,
                counted=False,  # count_interrupts counts; a page reads only the page
            )
            return page
        allowed = {actor, *(groups or ())}
        asked: dict[tuple[str, ...], bool] = {}
        mine: list[Interrupt] = []
        page_size = max(limit, 100)
        offset = 0
        while limit < 0 or len(mine) < limit:
            found = await self.store.list_interrupts(**base, limit=page_size, offset=offset)
            offset += len(found)
            for i in found:
                if await self._may_answer(i, actor, allowed, asked):
                    mine.append(i)
            if len(found) < page_size:
                break
        return mine if limit < 0 else mine[:limit]

    async def count_interrupts(
        self,
        *,
        actor: str,
        groups: Iterable[str] | None = None,
        kind: InterruptKind | str | None = None,
    ) -> int:
        """How many pending interrupts ``actor`` may answer now (see ``list_interrupts``),
        counted on the responder index: for "and N more" under a capped list."""
        if not self._groups_known():
            return len(await self.list_interrupts(actor=actor, groups=groups, kind=kind, limit=-1))
        _, total = await self.store.list_answerable(
            responders=await self._responders_of(actor, groups),
            actor=actor,
            kind=str(kind) if kind else None,
            limit=0,
        )
        return total

    async def list_decided(
        self,
        *,
        actor: str,
        groups: Iterable[str] | None = None,
        kind: InterruptKind | str | None = None,
        limit: int = 10,
    ) -> list[Interrupt]:
        """Interrupts that ``actor`` (or one of ``groups``, or anyone) could answer and that
        are decided now, most recently decided first (the responder index; indexed)."""
        return await self.store.list_decided(
            responders=await self._responders_of(actor, groups),
            kind=str(kind) if kind else None,
            limit=limit,
        )

    async def groups_of(self, actor: str) -> list[str]:
        """The responder entries naming groups ``actor`` is in, as the authorizer knows them.

        Asks the authorizer's optional ``groups_of(actor, responders)`` method (see
        ``Authorizer``) about the responders of pending interrupts; [] without one.
        """
        hook = getattr(self.authorizer, "groups_of", None)
        if hook is None:
            return []
        candidates = [r for r in await self.store.pending_responders() if r != actor]
        if not candidates:
            return []
        return [str(g) for g in await hook(actor, candidates)]

    def _groups_known(self) -> bool:
        """Whether the index alone can answer "what may this actor answer": no authorizer,
        or one that can list an actor's groups."""
        return self.authorizer is None or hasattr(self.authorizer, "groups_of")

    async def _responders_of(self, actor: str, groups: Iterable[str] | None) -> list[str]:
        known = list(groups) if groups is not None else await self.groups_of(actor)
        return list(dict.fromkeys([actor, *known, "*"]))

    async def _may_answer(
        self, i: Interrupt, actor: str, allowed: set[str], asked: dict[tuple[str, ...], bool]
    ) -> bool:
        if i.requester == actor and not i.allow_requester:
            return False
        if not i.responders or allowed & set(i.responders):
            return True
        if self.authorizer is None:
            return False
        key = tuple(i.responders)
        if key not in asked:
            asked[key] = bool(await self.authorizer(i, actor))
        return asked[key]
