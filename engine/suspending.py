"""Recording a step that parked: the interrupt it opened (with its history entry and
``interrupt.created`` message), or the one it already had, or the answer it awaits."""

from __future__ import annotations

import json
from collections.abc import Awaitable
from typing import Any

from engine.context import InterruptSpec
from engine.definition import StepDef, Workflow
from engine.models import EventType, InterruptStatus, StepStatus
from engine.store.base import EventWrite, OutboxWrite, RunState, StepWrite


class Suspending:
    """``StepRunner``'s recording of suspended steps (a mixin: it uses its attributes)."""

    s: Any  # engine.execution.Services
    wf: Workflow
    state: RunState

    def commit(self, write: StepWrite | None = None) -> Awaitable[None]:  # pragma: no cover
        """Commit ``write`` with buffered results (implemented by ``Execution``)."""
        raise NotImplementedError

    def defer(self, write: StepWrite) -> None:  # pragma: no cover
        """Buffer ``write`` for the next commit (implemented by ``Execution``)."""
        raise NotImplementedError

    def suspended(
        self,
        sd: StepDef[Any, Any],
        path: str,
        started: float,
        attempts: int,
        spec: InterruptSpec | None,
        notes: list[EventWrite],
        waiting_for: str | None = None,
    ) -> None:
        """Record a step parked on a new interrupt (or on one it already had, or on the
        answer a ``ResumeTo.event`` step will get).

        The record is buffered, not committed: it is committed before any more user code
        runs, or, when the run parks, in the same write that parks it (one commit
        instead of two). Nothing is announced before then: its history entry and
        ``interrupt.created`` message are written with it.
        """
        if spec is None and waiting_for is not None:
            on = json.dumps({"waiting_for_event": waiting_for})
            self.defer(
                StepWrite(
                    path,
                    sd.name,
                    StepStatus.SUSPENDED,
                    on,
                    None,
                    attempts,
                    started,
                    self.s.clock(),
                    events=notes,
                )
            )
            return
        if spec is None:
            # Waiting on an interrupt that already exists: find the pending one it asked for.
            pending = [
                i
                for i in self.state.interrupts.values()
                if i.path == path and i.status is InterruptStatus.PENDING
            ]
            if not pending:
                return
            self.defer(
                StepWrite(
                    path,
                    sd.name,
                    StepStatus.SUSPENDED,
                    json.dumps({"waiting_on": pending[-1].id}),
                    None,
                    attempts,
                    started,
                    self.s.clock(),
                    events=notes,
                )
            )
            return
        spec.title = spec.title or sd.title  # the stored interrupt gets the default title too
        info = {
            "interrupt_id": spec.id,
            "kind": spec.kind.value,
            "workflow": self.wf.name,
            "version": self.wf.version,
            "step": sd.name,
            "title": spec.title or sd.title,
            "path": path,
            "payload": spec.payload,
            "event": spec.event,
            "responders": spec.responders,
            "quorum": spec.quorum,
            "allow_requester": spec.allow_requester,
            "requester": self.state.run.requester,
            "expires_at": spec.expires_at,
            "on_expiry": spec.on_expiry.value if spec.on_expiry else None,
            "escalations": spec.escalations,
            "channel": spec.channel,
            "label": spec.label,
            "meta": {k: v for k, v in spec.meta.items() if not k.startswith("_")},
        }
        self.defer(
            StepWrite(
                path,
                sd.name,
                StepStatus.SUSPENDED,
                json.dumps({"waiting_on": spec.id}),
                None,
                attempts,
                started,
                self.s.clock(),
                interrupts=[spec],
                events=[*notes, EventWrite(EventType.SUSPENDED, info)],
                outbox=[OutboxWrite("interrupt.created", spec.id, info)],
            )
        )
