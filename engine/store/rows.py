"""Row <-> record mapping shared by the SQL backends (same columns, same order)."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from pydantic import BaseModel
from pydantic_core import from_json, to_json

from engine.context import InterruptSpec
from engine.models import (
    ErrorInfo,
    EscalationRecord,
    Event,
    EventType,
    ExpiryAction,
    Interrupt,
    InterruptKind,
    InterruptStatus,
    OutboxMessage,
    Response,
    Run,
    RunStatus,
    StepRecord,
    StepStatus,
)


class Row(Protocol):
    """A result row indexed by column position (a tuple, ``sqlite3.Row``, asyncpg ``Record``)."""

    def __getitem__(self, index: int, /) -> Any: ...


if TYPE_CHECKING:
    from collections.abc import Sequence

    from engine.store.base import EventWrite, OutboxWrite, Resolution


def dumps(value: Any) -> str:
    """JSON text of plain data (pydantic-core's encoder: ~7x faster than ``json.dumps``)."""
    return to_json(value).decode()


def encode_data(
    events: Sequence[EventWrite], outbox: Sequence[OutboxWrite]
) -> tuple[list[str], list[str]]:
    """The ``data`` JSON of history entries and outbox messages, each object encoded once.

    The engine announces most entries with a message carrying the very same dict (an
    interrupt resolved, a run finished), so the same object is not encoded twice. Keyed
    by identity: both sequences hold their objects alive for the whole call.
    """
    events_json = [dumps(e.data) for e in events]
    if not outbox:  # most writes (a step's record) have no message
        return events_json, []
    seen = {id(e.data): text for e, text in zip(events, events_json, strict=True)}
    return events_json, [seen.get(id(o.data)) or dumps(o.data) for o in outbox]


def loads(text: str | bytes) -> Any:
    """Plain data from JSON text (pydantic-core's parser: ~3x faster than ``json.loads``)."""
    return from_json(text)


ANYONE = "*"
"""The responder-index row of an interrupt without responders (anyone may answer)."""

CURSOR_SLACK = 0.5e-6
"""Half a microsecond: how far a keyset cursor's time (a ``datetime``, rounded to the
microsecond) may be from the stored Unix seconds of the run it names."""

RUN_COLS = (
    "id, workflow, version, status, input_json, output_json, error_json, requester, "
    "created_at, updated_at, wake_seq"
)
"""Columns ``run_from_row`` expects, in order (``wake_seq`` is read by callers)."""

STEP_COLS = "path, name, status, output_json, error_json, attempts, started_at, finished_at"
"""Columns ``step_from_row`` expects, in order."""

OUTBOX_COLS = "id, topic, run_id, interrupt_id, data, created_at, attempts, done_handlers"
"""Columns ``outbox_from_row`` expects, in order."""

PENDING_BY_WORKFLOW_AND_KIND = (
    "SELECT r.workflow, i.kind, COUNT(*) FROM interrupts i JOIN runs r ON r.id = i.run_id "
    "WHERE i.status = 'pending' GROUP BY r.workflow, i.kind"
)
"""Pending interrupts counted per workflow and kind: the pending interrupts' index, and
each one's run by primary key (for ``signoff_pending_interrupts``)."""


def first_distinct(
    rows: Iterable[Sequence[Any]],
    limit: int,
    *,
    key: Callable[[tuple[str, str, Any]], Any],
    reverse: bool = False,
) -> list[tuple[str, str, Any]]:
    """(run_id, interrupt_id, time) rows sorted by ``key``, each interrupt once, at most
    ``limit`` (-1: all): the merge of one index range per responder.

    Each range must come in the same order, filtered the same way and cut at ``limit``:
    an interrupt among the first ``limit`` of the union is among the first ``limit`` of
    its own responder's range, so the merge misses none.
    """
    ordered = sorted(((str(r[0]), str(r[1]), r[2]) for r in rows), key=key, reverse=reverse)
    seen: set[tuple[str, str]] = set()
    found: list[tuple[str, str, Any]] = []
    for row in ordered:
        if (row[0], row[1]) in seen:
            continue
        seen.add((row[0], row[1]))
        found.append(row)
        if len(found) == limit:
            break
    return found


def newest_first(row: tuple[str, str, Any]) -> tuple[bool, float, str]:
    """Most recently resolved first (no time last), then by interrupt id."""
    return (row[2] is None, -(row[2] or 0.0), row[1])


def by_creation(row: tuple[str, str, Any]) -> tuple[float, str, str]:
    """By creation time, then interrupt id (``reverse=True``: newest first)."""
    return (row[2], row[1], row[0])


M = TypeVar("M", bound=BaseModel)

_COMPLETE: set[tuple[type[BaseModel], frozenset[str]]] = set()


def construct(cls: type[M], values: dict[str, Any]) -> M:
    """``cls.model_construct(**values)`` for data validated when it was written, ~3x faster.

    ``values`` must name every field (checked once per class and set of names), so
    no default needs filling in: the result equals ``model_construct``'s.
    """
    key = (cls, frozenset(values))
    if key not in _COMPLETE:
        if set(values) != set(cls.model_fields):
            return cls.model_construct(**values)
        _COMPLETE.add(key)
    m = cls.__new__(cls)
    object.__setattr__(m, "__dict__", values)
    object.__setattr__(m, "__pydantic_fields_set__", set(values))
    object.__setattr__(m, "__pydantic_extra__", None)
    object.__setattr__(m, "__pydantic_private__", None)
    return m


def replace(model: M, update: dict[str, Any]) -> M:
    """``model.model_copy(update=update)`` without its deep machinery (a shallow copy of
    ``__dict__`` with ``update`` applied; the updated fields count as set)."""
    m = type(model).__new__(type(model))
    object.__setattr__(m, "__dict__", {**model.__dict__, **update})
    object.__setattr__(m, "__pydantic_fields_set__", model.__pydantic_fields_set__ | update.keys())
    object.__setattr__(m, "__pydantic_extra__", model.__pydantic_extra__)
    object.__setattr__(m, "__pydantic_private__", model.__pydantic_private__)
    return m


def ts(x: float | None) -> datetime | None:
    """Unix seconds (or None) as an aware UTC datetime."""
    return None if x is None else datetime.fromtimestamp(x, UTC)


def dt(x: float) -> datetime:
    """Unix seconds as an aware UTC datetime."""
    return datetime.fromtimestamp(x, UTC)


def run_from_row(r: Row) -> Run:
    """A ``Run`` from a row of ``RUN_COLS``."""
    return construct(
        Run,
        dict(
            id=r[0],
            workflow=r[1],
            version=r[2],
            status=RunStatus(r[3]),
            input=loads(r[4]),
            output=loads(r[5]) if r[5] is not None else None,
            error=ErrorInfo.model_validate_json(r[6]) if r[6] is not None else None,
            requester=r[7],
            created_at=dt(r[8]),
            updated_at=dt(r[9]),
        ),
    )


def step_from_row(r: Row) -> StepRecord:
    """A ``StepRecord`` (without its output, which callers decode lazily) from ``STEP_COLS``."""
    return construct(
        StepRecord,
        dict(
            path=r[0],
            name=r[1],
            status=StepStatus(r[2]),
            output=None,
            error=ErrorInfo.model_validate_json(r[4]) if r[4] else None,
            attempts=r[5],
            started_at=dt(r[6]),
            finished_at=dt(r[7]),
        ),
    )


def response_from_row(actor: str, data: str, approved: Any, at: float) -> Response:
    """A ``Response`` from its columns (``approved`` is 0/1/None or a bool)."""
    return construct(
        Response,
        dict(
            actor=actor,
            data=loads(data),
            approved=None if approved is None else bool(approved),
            at=dt(at),
        ),
    )


def interrupt_from_row(r: Row, responses: list[Response]) -> Interrupt:
    """An ``Interrupt`` from a row of the backends' interrupt-join columns.

    Columns: run_id, id, path, step, kind, status, spec_json, expires_at, created_at,
    resolved_at, resolved_by, data_json, refs (JSON text), workflow, version, requester.
    """
    spec = loads(r[6])
    on_expiry = spec.get("on_expiry")
    return construct(
        Interrupt,
        dict(
            run_id=r[0],
            id=r[1],
            path=r[2],
            step=r[3],
            kind=InterruptKind(r[4]),
            status=InterruptStatus(r[5]),
            payload=spec.get("payload"),
            event=spec.get("event"),
            responders=spec.get("responders", []),
            quorum=spec.get("quorum", 1),
            allow_requester=spec.get("allow_requester", False),
            channel=spec.get("channel"),
            title=spec.get("title"),
            meta=spec.get("meta", {}),
            label=spec.get("label"),
            expires_at=ts(r[7]),
            on_expiry=ExpiryAction(on_expiry) if on_expiry else None,
            expiry_value=spec.get("expiry_value"),
            reminders=[dt(x) for x in spec.get("reminders", [])],
            escalations=[_escalation(e) for e in spec.get("escalations", ())],
            created_at=dt(r[8]),
            resolved_at=ts(r[9]),
            resolved_by=r[10],
            data=loads(r[11]) if r[11] is not None else None,
            responses=responses,
            refs=loads(r[12]),
            workflow=r[13],
            version=r[14],
            requester=r[15],
            resume_schema=spec.get("resume_schema"),
        ),
    )


def _escalation(e: dict[str, Any]) -> EscalationRecord:
    return construct(
        EscalationRecord,
        dict(
            after=e["after"],
            due_at=dt(e["due_at"]),
            add_responders=e.get("add_responders", []),
            channel=e.get("channel"),
            escalated_at=ts(e.get("escalated_at")),
            added=e.get("added", []),
        ),
    )


def event_from_row(run_id: str, r: Row) -> Event:
    """An ``Event`` from (id, at, type, data)."""
    return construct(
        Event, dict(id=r[0], run_id=run_id, at=dt(r[1]), type=EventType(r[2]), data=loads(r[3]))
    )


def outbox_from_row(r: Row) -> tuple[OutboxMessage, list[str]]:
    """An ``OutboxMessage`` and its done handlers from a row of ``OUTBOX_COLS``."""
    msg = construct(
        OutboxMessage,
        dict(
            id=r[0],
            topic=r[1],
            run_id=r[2],
            interrupt_id=r[3],
            data=loads(r[4]),
            created_at=dt(r[5]),
            attempt=r[6] + 1,
        ),
    )
    return msg, list(loads(r[7]))


def spec_json(s: InterruptSpec) -> str:
    """The stored form of an interrupt's specification."""
    stored = {
        "payload": s.payload,
        "event": s.event,
        "responders": s.responders,
        "quorum": s.quorum,
        "allow_requester": s.allow_requester,
        "on_expiry": s.on_expiry.value if s.on_expiry else None,
        "expiry_value": s.expiry_value,
        "reminders": s.reminders,
        "escalations": s.escalations,
        "channel": s.channel,
        "title": s.title,
        "meta": s.meta,
        "label": s.label,
    }
    if s.resume_schema is not None:  # only when set: other interrupts are stored as before
        stored["resume_schema"] = s.resume_schema
    return dumps(stored)


def resolved_interrupt(before: Interrupt, res: Resolution, now: float) -> Interrupt:
    """The interrupt as ``res`` leaves it (what ``resolve`` returns)."""
    responses = list(before.responses)
    if res.response_actor is not None:
        responses.append(
            response_from_row(
                res.response_actor, res.response_json or "null", res.response_approved, now
            )
        )
    update: dict[str, Any] = {"responses": responses}
    if res.status is not InterruptStatus.PENDING:
        update.update(
            status=res.status,
            resolved_at=dt(now),
            resolved_by=res.resolved_by,
            data=loads(res.data_json) if res.data_json is not None else None,
        )
    return replace(before, update)
