"""How answers, events, expiries and timers resolve an interrupt.

The quorum rule (documented in README): an interrupt whose resume model has a bool
``approved`` field collects one response per actor. A response with ``approved=False``
resolves it as ``rejected`` at once (one rejection is final). It resolves as
``approved`` when ``quorum`` distinct actors approved; the answer the step receives is
the approving response that completed the quorum (all responses are in
``ctx.resolution.responses``). The same actor counts once: a second response from them
is refused with ``DuplicateResponse``. Models without ``approved`` resolve on the first
answer (quorum must be 1).

Each function here returns a ``decide`` callback that the store runs inside its
transaction with the freshly read interrupt, so the check and the write are atomic.
"""

from __future__ import annotations

from typing import Any

from engine.errors import AlreadyResolved, DuplicateResponse
from engine.models import EventType, Interrupt, InterruptStatus, Run
from engine.store.base import ChangeSpec, Decide, EventWrite, OutboxWrite, Resolution, SpecChange
from engine.store.rows import dumps


def ensure_pending(interrupt: Interrupt) -> None:
    """Raise AlreadyResolved (who, when, how) unless the interrupt is still pending."""
    if interrupt.status is not InterruptStatus.PENDING:
        raise AlreadyResolved(
            interrupt.run_id,
            interrupt.id,
            interrupt.status.value,
            interrupt.resolved_by,
            interrupt.resolved_at,
        )


def _resolved(
    interrupt: Interrupt, status: InterruptStatus, by: str | None, data: Any
) -> tuple[EventWrite, OutboxWrite]:
    info = {"interrupt_id": interrupt.id, "status": status.value, "by": by, "data": data}
    return (
        EventWrite(EventType.RESOLVED, info),
        OutboxWrite("interrupt.resolved", interrupt.id, info),
    )


def answer(actor: str, data: dict[str, Any], *, approval: bool) -> Decide:
    """A person's validated answer (``data`` is JSON-ready)."""

    def decide(interrupt: Interrupt, run: Run) -> Resolution:
        ensure_pending(interrupt)
        approvals = interrupt.approvals
        if any(r.actor == actor for r in interrupt.responses):
            raise DuplicateResponse(
                interrupt.run_id, interrupt.id, actor, approvals, interrupt.quorum
            )
        approved = bool(data.get("approved")) if approval else None
        if approved is False:
            status = InterruptStatus.REJECTED
        elif approved is True:
            approvals += 1
            status = (
                InterruptStatus.APPROVED
                if approvals >= interrupt.quorum
                else InterruptStatus.PENDING
            )
        else:
            status = InterruptStatus.RESOLVED
        data_json = dumps(data)
        recorded = {
            "interrupt_id": interrupt.id,
            "actor": actor,
            "data": data,
            "approved": approved,
            "approvals": approvals,
            "needed": interrupt.quorum,
        }
        res = Resolution(
            status=status,
            resolved_by=actor if status is not InterruptStatus.PENDING else None,
            data_json=data_json if status is not InterruptStatus.PENDING else None,
            response_actor=actor,
            response_json=data_json,
            response_approved=approved,
            events=[EventWrite(EventType.RESPONSE_RECORDED, recorded)],
        )
        if status is InterruptStatus.PENDING:
            res.outbox.append(OutboxWrite("interrupt.response", interrupt.id, recorded))
        else:
            event, message = _resolved(interrupt, status, actor, data)
            res.events.append(event)
            res.outbox.append(message)
        return res

    return decide


def event(actor: str | None, data: dict[str, Any]) -> Decide:
    """A named event delivered by another system."""

    def decide(interrupt: Interrupt, run: Run) -> Resolution:
        ensure_pending(interrupt)
        ev, msg = _resolved(interrupt, InterruptStatus.RESOLVED, actor, data)
        return Resolution(
            status=InterruptStatus.RESOLVED,
            resolved_by=actor,
            data_json=dumps(data),
            events=[ev],
            outbox=[msg],
        )

    return decide


def expiry() -> Decide:
    """The deadline passed (or a durable sleep finished)."""

    def decide(interrupt: Interrupt, run: Run) -> Resolution:
        ensure_pending(interrupt)
        resume = interrupt.on_expiry is not None and interrupt.on_expiry.value == "resume"
        expiry_value = interrupt.expiry_value if resume else None
        if interrupt.kind.value == "sleep":
            ev, msg = _resolved(interrupt, InterruptStatus.RESOLVED, None, None)
            return Resolution(InterruptStatus.RESOLVED, None, None, events=[ev], outbox=[msg])
        action = interrupt.on_expiry.value if interrupt.on_expiry else "fail"
        info = {"interrupt_id": interrupt.id, "action": action, "data": expiry_value}
        ev, msg = _resolved(interrupt, InterruptStatus.EXPIRED, None, expiry_value)
        return Resolution(
            status=InterruptStatus.EXPIRED,
            resolved_by=None,
            data_json=dumps(expiry_value) if expiry_value is not None else None,
            events=[EventWrite(EventType.EXPIRED, info), ev],
            outbox=[msg],
        )

    return decide


def escalation(index: int, now: float) -> ChangeSpec:
    """Step ``index`` of a pending interrupt's escalation ladder fires.

    The responders it adds join ``responders`` at once (unless the request is open to
    anyone, which stays so); the step is marked as fired. Nothing changes if it fired
    already or the ladder has no such step.
    """

    def change(interrupt: Interrupt, spec: dict[str, Any]) -> SpecChange | None:
        ladder = [dict(e) for e in spec.get("escalations") or ()]
        if index >= len(ladder) or ladder[index].get("escalated_at") is not None:
            return None
        rung = ladder[index]
        responders = list(spec.get("responders") or [])
        added = [r for r in dict.fromkeys(rung["add_responders"]) if r not in responders]
        if not responders:  # open to anyone: adding names would shut everyone else out
            added = []
        rung.update(escalated_at=now, added=added)
        spec.update(responders=responders + added, escalations=ladder)
        info = {
            "interrupt_id": interrupt.id,
            "escalation": index,
            "after": rung["after"],
            "due_at": rung["due_at"],
            "add_responders": rung["add_responders"],
            "added_responders": added,
            "responders": spec["responders"],
            "channel": rung.get("channel"),
            "title": interrupt.title,
        }
        return SpecChange(
            spec,
            events=[EventWrite(EventType.ESCALATED, info)],
            outbox=[OutboxWrite("interrupt.escalated", interrupt.id, info)],
        )

    return change
