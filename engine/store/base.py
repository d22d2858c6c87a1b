"""The storage seam: the ``Store`` protocol and the records that cross it.

All SQL lives in the store modules. The engine hands the store *what* to write
(step results, interrupt specs, history events, outbox messages) and, for the one
decision that must be atomic with a read, a pure ``decide`` function that the store
calls inside its transaction. A backend passes the shared contract suite in
``tests/engine/store`` to be usable.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from engine.context import InterruptSpec
from engine.models import (
    Event,
    Interrupt,
    InterruptStatus,
    OutboxMessage,
    Run,
    RunDetail,
    RunStatus,
    StepRecord,
)


class LostOwnership(Exception):
    """The run is no longer ours (cancelled, finished, or taken over after our lease ran out)."""


@dataclass
class EventWrite:
    """A history entry to append."""

    type: str
    data: dict[str, Any] = field(default_factory=dict)
    at: float | None = None  # when it happened, if earlier than the commit


@dataclass
class OutboxWrite:
    """A notification to enqueue in the same transaction as the state change."""

    topic: str
    interrupt_id: str | None
    data: dict[str, Any]


@dataclass
class NewRun:
    """A run to create, owned by the creating worker."""

    id: str
    workflow: str
    version: str
    input_json: str
    requester: str | None
    idempotency_key: str | None
    owner: str
    lease_until: float
    now: float
    events: list[EventWrite]
    outbox: list[OutboxWrite]


@dataclass
class StepWrite:
    """A step's result (completed, failed, suspended or bailed) plus what goes with it."""

    path: str
    name: str
    status: str
    output_json: str | None
    error_json: str | None
    attempts: int
    started_at: float
    finished_at: float
    interrupts: list[InterruptSpec] = field(default_factory=list)
    events: list[EventWrite] = field(default_factory=list)
    outbox: list[OutboxWrite] = field(default_factory=list)


@dataclass
class FinishWrite:
    """The terminal state of a run."""

    status: RunStatus
    output_json: str | None
    error_json: str | None
    now: float
    events: list[EventWrite]
    outbox: list[OutboxWrite]
    steps: list[StepWrite] = field(default_factory=list)  # results not committed yet


@dataclass
class Resolution:
    """What ``decide`` wants written for an answer, event, expiry or timer."""

    status: InterruptStatus
    resolved_by: str | None
    data_json: str | None
    response_actor: str | None = None
    response_json: str | None = None
    response_approved: bool | None = None
    events: list[EventWrite] = field(default_factory=list)
    outbox: list[OutboxWrite] = field(default_factory=list)
    at: float | None = None
    """When the decision took effect (stamped inside the transaction); None: the call's
    ``now``. It is what ``resolved_at``, the response and the history entries record."""


@dataclass
class SpecChange:
    """A pending interrupt's new specification (e.g. escalated responders) and what to
    record with it."""

    spec: dict[str, Any]
    events: list[EventWrite] = field(default_factory=list)
    outbox: list[OutboxWrite] = field(default_factory=list)


ChangeSpec = Callable[[Interrupt, dict[str, Any]], SpecChange | None]
"""Called inside the store's transaction with a pending interrupt and its stored
specification (a copy: change it freely); None changes nothing."""

Decide = Callable[[Interrupt, Run], Resolution]
"""Called inside the store's transaction with fresh rows; may raise to abort."""

LeftoverBuilder = Callable[[Run, list[Interrupt]], tuple[list[EventWrite], list[OutboxWrite]]]
"""Builds the history and outbox entries for interrupts cancelled with their run."""


@dataclass
class RunState:
    """Everything a worker needs to drive a run: the run, its steps and its interrupts."""

    run: Run
    wake_seq: int
    steps: dict[str, StepRecord]
    step_outputs: dict[str, str | None]
    interrupts: dict[str, Interrupt]


@dataclass
class ResolveResult:
    """The outcome of ``Store.resolve``."""

    interrupt: Interrupt
    claimed: RunState | None  # set when this call took over driving the run


@dataclass
class TimerRow:
    """A due timer claimed by a worker."""

    id: int
    run_id: str
    interrupt_id: str
    kind: str  # "expiry" | "reminder" | "escalation:<n>" | "snooze"
    due_at: float
    actor: str | None = None  # who a "snooze" timer reminds


@dataclass
class OutboxResult:
    """How delivering one outbox row went."""

    id: int
    done_handlers: list[str]
    error: str | None = None
    next_at: float | None = None


@dataclass
class WorkerRow:
    """A registered engine process."""

    id: str
    host: str
    pid: int
    heartbeat_at: float


class Store(Protocol):
    """Durable storage for runs, steps, interrupts, history, timers and the outbox."""

    async def open(self) -> None:
        """Connect and apply pending migrations."""

    async def close(self) -> None:
        """Flush pending writes and close."""

    # -- runs -------------------------------------------------------------------------
    async def create_run(self, run: NewRun) -> tuple[str, bool]:
        """Insert a run; with an idempotency key already used, return that run instead."""

    async def load_state(self, run_id: str) -> RunState | None:
        """Read a run with its steps and interrupts."""

    async def commit_steps(
        self, run_id: str, owner: str, steps: Sequence[StepWrite], now: float
    ) -> None:
        """Record step results; raise LostOwnership unless ``owner`` drives the run."""

    async def release_run(
        self,
        run_id: str,
        owner: str,
        wake_seq: int,
        now: float,
        steps: Sequence[StepWrite] = (),
    ) -> bool:
        """Record ``steps`` (as ``commit_steps``) and park the run as suspended, atomically;
        False if something resolved meanwhile (the steps are recorded, the run is not
        parked: drive again). LostOwnership (nothing written) unless ``owner`` drives it."""

    async def abandon_run(self, run_id: str, owner: str, retry_at: float) -> None:
        """Give a run up so that recovery (anywhere) takes it again from ``retry_at``."""

    async def finish_run(
        self, run_id: str, owner: str, fin: FinishWrite, leftover: LeftoverBuilder | None = None
    ) -> None:
        """Record a terminal status; cancels leftover interrupts and timers."""

    async def cancel_run(
        self,
        run_id: str,
        now: float,
        events: list[EventWrite],
        outbox: list[OutboxWrite],
        leftover: LeftoverBuilder | None = None,
        by: str | None = None,
    ) -> Run:
        """Cancel an active run and its pending interrupts (RunNotFound / RunNotActive).

        The interrupts record ``resolved_by=by`` (``'system'`` when there is no actor)."""

    async def resolve(
        self,
        run_id: str,
        interrupt_id: str,
        decide: Decide,
        *,
        claim_owner: str,
        lease_until: float,
        now: float,
    ) -> ResolveResult:
        """Atomically apply ``decide`` to a pending interrupt; maybe take over the run."""

    # -- workers, leases, recovery ----------------------------------------------------
    async def heartbeat(self, worker: WorkerRow, lease_until: float) -> list[WorkerRow]:
        """Record that ``worker`` lives, extend its runs' leases; return all workers.

        A store may leave a lease alone while more than two thirds of it are left
        (``worker.heartbeat_at`` is now): heartbeats come every third of a lease or more
        often, so each is still renewed long before it runs out."""

    async def claim_runs(
        self, owner: str, now: float, lease_until: float, dead: Sequence[str], limit: int
    ) -> list[str]:
        """Take over running runs whose owner is dead or whose lease ran out."""

    async def remove_workers(self, ids: Sequence[str]) -> None:
        """Forget workers known to be dead and release their timer and outbox claims."""

    # -- timers -----------------------------------------------------------------------
    async def claim_timers(
        self, owner: str, now: float, claim_until: float, dead: Sequence[str], limit: int
    ) -> list[TimerRow]:
        """Claim due timers."""

    async def fire_reminder(
        self, timer: TimerRow, events: list[EventWrite], outbox: list[OutboxWrite], now: float
    ) -> None:
        """Delete a reminder timer and record that it fired (only if this call deleted it
        and the interrupt still waits: a reminder fired twice is recorded once)."""

    async def fire_escalation(self, timer: TimerRow, change: ChangeSpec, now: float) -> bool:
        """Delete an escalation timer and apply ``change`` to its interrupt: only if this
        call deleted the timer and the interrupt still waits (fired twice, applied once);
        True if something changed."""

    async def add_timer(
        self, run_id: str, interrupt_id: str, kind: str, due_at: float, actor: str | None = None
    ) -> bool:
        """Add a timer to a pending interrupt (e.g. a ``snooze`` for ``actor``); False,
        adding nothing, if the interrupt is not pending (or does not exist). Fire it with
        ``fire_reminder``'s rule: only the claimer that deletes it records it."""

    async def delete_timer(self, timer_id: int) -> None:
        """Drop a timer whose interrupt was resolved already."""

    async def next_timer_at(self) -> float | None:
        """When the earliest timer is due, or None."""

    # -- outbox -----------------------------------------------------------------------
    async def claim_outbox(
        self, owner: str, now: float, claim_until: float, dead: Sequence[str], limit: int
    ) -> list[tuple[OutboxMessage, list[str]]]:
        """Claim deliverable messages (in order per run) with their done handlers."""

    async def settle_outbox(self, results: Sequence[OutboxResult], now: float) -> None:
        """Mark messages done, or schedule their retry."""

    async def outbox_backlog(self) -> int:
        """How many messages are not delivered yet."""

    async def count_runs(self) -> dict[str, int]:
        """Number of runs per status."""

    async def set_ref(self, run_id: str, interrupt_id: str, key: str, value: Any) -> None:
        """Store an adapter's reference (e.g. Slack channel + ts) on an interrupt."""

    async def append_events(
        self, run_id: str, events: list[EventWrite], outbox: list[OutboxWrite], now: float
    ) -> None:
        """Add history entries and outbox messages to a run, whoever drives it (RunNotFound)."""

    # -- queries ----------------------------------------------------------------------
    async def get_run(self, run_id: str) -> Run | None:
        """One run without details."""

    async def get_detail(self, run_id: str) -> RunDetail | None:
        """One run with its ended steps (not ``running`` ones), interrupts and history."""

    async def list_runs(
        self,
        *,
        status: str | None,
        workflow: str | None,
        limit: int,
        offset: int,
        requester: str | None = None,
        created_after: float | None = None,
        created_before: float | None = None,
        before: tuple[float, str] | None = None,
    ) -> list[Run]:
        """Runs, newest first (``created_at`` descending, then ``id`` ascending).

        ``created_after`` is inclusive and ``created_before`` exclusive (Unix seconds).
        ``before=(created_at, id)`` is a keyset cursor: only runs after that one in this
        order, found through an index whatever the page (no OFFSET scan). Its time may be
        rounded to the microsecond (as ``Run.created_at`` is): rows within half a
        microsecond of it are ordered by id.
        """

    async def get_interrupt(self, run_id: str, interrupt_id: str) -> Interrupt | None:
        """One interrupt with its responses."""

    async def list_interrupts(
        self,
        *,
        status: str | None,
        workflow: str | None,
        run_id: str | None,
        limit: int,
        label: str | None = None,
        offset: int = 0,
        kind: str | None = None,
    ) -> list[Interrupt]:
        """Interrupts, oldest first (``limit`` -1: all), skipping ``offset`` rows."""

    async def list_events(self, run_id: str, *, after_id: int, limit: int) -> list[Event]:
        """History entries of a run after an event id."""

    async def latest_event_ids(self, run_ids: Sequence[str]) -> dict[str, int]:
        """The id of each run's newest history entry (runs without one are left out)."""

    # -- preferences --------------------------------------------------------------------
    async def get_preference(self, actor: str, key: str) -> str | None:
        """The JSON text stored for ``(actor, key)``, or None."""

    async def set_preference(
        self, actor: str, key: str, value_json: str | None, now: float
    ) -> None:
        """Store (or with None, delete) the JSON text for ``(actor, key)``."""

    # -- the responder index (who may answer what) ------------------------------------
    async def list_answerable(
        self,
        *,
        responders: Sequence[str],
        actor: str | None,
        kind: str | None = None,
        limit: int,
        newest: bool = False,
        counted: bool = True,
    ) -> tuple[list[Interrupt], int]:
        """Pending interrupts whose responders include any of ``responders`` (``'*'``
        matches those open to anyone), without ``actor``'s own requests unless they allow
        it; oldest (or ``newest``) first, at most ``limit`` (-1: all), with the total
        (-1 with ``counted=False``, which skips counting).

        Reads the responder index only (indexed by responder), however many interrupts
        are pending for others: the page at most ``limit`` rows per responder, the total
        every row of theirs."""

    async def list_decided(
        self, *, responders: Sequence[str], kind: str | None = None, limit: int
    ) -> list[Interrupt]:
        """Resolved interrupts whose responders included any of ``responders``, most
        recently resolved first (indexed)."""

    async def pending_responders(self) -> list[str]:
        """The distinct responders named by pending interrupts (not ``'*'``)."""

    # -- retry and per-workflow counts (additive) ---------------------------------------
    async def retry_run(
        self,
        run_id: str,
        *,
        owner: str,
        lease_until: float,
        now: float,
        events: list[EventWrite],
    ) -> RunState:
        """Send a failed run back to running, owned by ``owner``: its failed step records
        are deleted (they run again with fresh attempts), completed ones kept; ``events``
        are appended. RunNotFound, or RunNotRetryable saying why not (not failed, or its
        requests were cancelled when it failed)."""

    async def count_runs_by_workflow(self) -> dict[str, dict[str, int]]:
        """Number of runs per workflow and status (one indexed aggregate)."""

    async def count_pending_interrupts(self) -> dict[str, dict[str, int]]:
        """Number of pending interrupts per workflow and kind (one aggregate over the
        pending interrupts' index, with their runs' rows by primary key)."""
