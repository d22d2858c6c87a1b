"""Errors raised by the Signoff engine.

The hierarchy::

    SignoffError
    ├── DefinitionError              a workflow or step is defined wrongly (raised at registration)
    ├── WorkflowNotRegistered        no such workflow name / pinned version in this engine
    ├── RunNotFound                  no run with that id
    ├── InterruptNotFound            the run has no interrupt with that id
    ├── InvalidInput                 start input failed the workflow's input model
    ├── IdempotencyKeyReused         an idempotency key already started a run with other input
    ├── RunNotActive                 the run already finished (cancel on a finished run)
    ├── RunNotRetryable              retry() of a run that did not fail, or cannot run again
    ├── InterruptExpired             an interrupt with OnExpiry.fail() expired: the step fails
    ├── StepTimedOut                 an attempt of a step ran over its timeout (a TimeoutError)
    ├── StepOutputInvalid            a step's (or the run's) output failed its declared model
    ├── TooManyResumes               a step asked again after @step(max_resumes=N) resumes
    ├── ResumeRejected               a resume was refused; nothing was changed
    │   ├── ResumeValidationError    the data failed the resume model (per-field messages)
    │   ├── AlreadyResolved          the interrupt was decided already (who, when, how)
    │   ├── DuplicateResponse        this actor already responded to a quorum interrupt
    │   ├── NotAuthorized            the actor may not respond to this interrupt
    │   └── WrongInterruptKind       e.g. resume() on a sleep, send_event() on a form
    └── StoreError                   the database is unusable (schema too new, closed, ...)

Every error builds its own message from the ids it carries, so ``str(err)`` is
something a user can act on. All but ``InterruptExpired``, ``StepTimedOut``,
``StepOutputInvalid`` and ``TooManyResumes`` are raised to callers of the engine's API;
those four are raised inside a run and are what the failed step and run record
(``Run.error.type``). ``InterruptExpired``, ``StepOutputInvalid`` and ``TooManyResumes``
are never retried, whatever the step's ``Retry``; ``StepTimedOut`` is retried like any
other exception. A ``DefinitionError`` raised inside a step (e.g.
``ctx.suspend(quorum=2)`` without an ``approved`` field) fails the step at once, before
anything is written, and is never retried either.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime

from pydantic import ValidationError

__all__ = [
    "AlreadyResolved",
    "DefinitionError",
    "DuplicateResponse",
    "IdempotencyKeyReused",
    "InterruptExpired",
    "InterruptNotFound",
    "InvalidInput",
    "NotAuthorized",
    "ResumeRejected",
    "ResumeValidationError",
    "RunNotActive",
    "RunNotFound",
    "RunNotRetryable",
    "SignoffError",
    "StepOutputInvalid",
    "StepTimedOut",
    "StoreError",
    "TooManyResumes",
    "WorkflowNotRegistered",
    "WrongInterruptKind",
    "field_errors",
]


def field_errors(exc: ValidationError) -> dict[str, str]:
    """Pydantic's errors as ``{"field.path": "message"}``, the first message per field.

    The one shape every Signoff error with per-field messages carries
    (``InvalidInput.errors``, ``ResumeValidationError.errors``, the API's 400 bodies).
    Input values are never included: some of them may be secrets.
    """
    out: dict[str, str] = {}
    for err in exc.errors(include_url=False, include_input=False):
        key = ".".join(str(p) for p in err["loc"])
        out.setdefault(key, err["msg"])
    return out


class SignoffError(Exception):
    """Base class of every error the engine raises on purpose."""


class DefinitionError(SignoffError):
    """A workflow, step or composition is defined wrongly; raised when it is registered."""

    def __init__(self, where: str, problem: str) -> None:
        self.where = where
        self.problem = problem
        super().__init__(f"{where}: {problem}")


class WorkflowNotRegistered(SignoffError):
    """The named workflow (or the version a run is pinned to) is not registered."""

    def __init__(self, name: str, version: str | None = None) -> None:
        self.name = name
        self.version = version
        if version is None:
            msg = f"workflow {name!r} is not registered with this engine"
        else:
            msg = (
                f"workflow {name!r} version {version!r} is not registered with this engine; "
                "runs are pinned to the version they started on, so register that version "
                "again (alongside the new one) to resume or recover them"
            )
        super().__init__(msg)


class RunNotFound(SignoffError):
    """No run has this id."""

    def __init__(self, run_id: str) -> None:
        self.run_id = run_id
        super().__init__(f"run {run_id!r} not found")


class InterruptNotFound(SignoffError):
    """The run exists but has no interrupt with this id."""

    def __init__(self, run_id: str, interrupt_id: str) -> None:
        self.run_id = run_id
        self.interrupt_id = interrupt_id
        super().__init__(f"run {run_id!r} has no interrupt {interrupt_id!r}")


class InvalidInput(SignoffError):
    """The input given to start a run failed the workflow's input model."""

    def __init__(self, workflow: str, errors: Mapping[str, str]) -> None:
        self.workflow = workflow
        self.errors = dict(errors)
        detail = "; ".join(f"{k}: {v}" for k, v in self.errors.items())
        super().__init__(f"invalid input for workflow {workflow!r}: {detail}")


class IdempotencyKeyReused(SignoffError):
    """An idempotency key already started a run of another workflow or with other input.

    Retrying a start with the same key and the same input returns the same run; a key
    reused for a different request is refused rather than answered with an unrelated run.
    """

    def __init__(self, key: str, run_id: str) -> None:
        self.key = key
        self.run_id = run_id
        super().__init__(
            f"idempotency key {key!r} already started run {run_id} with a different input; "
            "use a new key for a new request"
        )


class RunNotActive(SignoffError):
    """The run already reached a terminal status."""

    def __init__(self, run_id: str, status: str) -> None:
        self.run_id = run_id
        self.status = status
        super().__init__(f"run {run_id!r} is already {status}")


class RunNotRetryable(SignoffError):
    """``Engine.retry`` refused: only a failed run can run again, and ``reason`` says why
    this one cannot (e.g. it is still active, it completed, or its requests were cancelled
    when it failed)."""

    def __init__(self, run_id: str, status: str, reason: str) -> None:
        self.run_id = run_id
        self.status = status
        self.reason = reason
        super().__init__(f"run {run_id!r} cannot be retried: {reason}")


class InterruptExpired(SignoffError):
    """An interrupt with ``OnExpiry.fail()`` expired before anyone answered.

    Raised inside the step that waited, which then fails without retries; the run fails
    with it. Also importable from ``engine.context``, where it used to live.
    """

    def __init__(self, run_id: str, interrupt_id: str) -> None:
        self.run_id = run_id
        self.interrupt_id = interrupt_id
        super().__init__(f"interrupt {run_id}/{interrupt_id} expired before anyone answered")


class StepTimedOut(SignoffError, TimeoutError):
    """One attempt of a step ran longer than its ``@step(timeout=...)``.

    Also a ``TimeoutError``, so ``Retry(on=(TimeoutError,))`` retries it. Carries the
    step's name, the limit in seconds and the attempt (1-based) that timed out.
    """

    def __init__(self, step: str, limit: float, attempt: int) -> None:
        self.step = step
        self.limit = limit
        self.attempt = attempt
        super().__init__(
            f"step {step!r} timed out after {limit:g}s on attempt {attempt}: raise "
            f"@step(timeout=...) or make the step faster (retries apply to timeouts too)"
        )


class StepOutputInvalid(SignoffError):
    """A step returned (or a run ended with) data that fails its declared output model.

    Raised when the output is recorded: outputs built with ``model_construct`` (or
    mutated after validation) are validated again, so invalid data is never recorded.
    ``errors`` maps each field path to a message. Never retried: it is a bug.
    """

    def __init__(self, where: str, errors: Mapping[str, str]) -> None:
        self.where = where
        self.errors = dict(errors)
        detail = "; ".join(f"{k or '(value)'}: {v}" for k, v in self.errors.items())
        super().__init__(f"{where} returned an invalid output: {detail}")


class TooManyResumes(SignoffError):
    """A step with ``@step(max_resumes=N)`` asked again after being resumed N times.

    A guard against a step that never stops asking (e.g. re-suspending whenever the
    answer is not the one it hoped for). Counted from the step's recorded interrupts,
    so the count survives crashes and restarts. The step fails (never retried) and the
    request it was about to make is not created.
    """

    def __init__(self, step: str, cap: int) -> None:
        self.step = step
        self.cap = cap
        super().__init__(
            f"step {step!r} was resumed {cap} times (@step(max_resumes={cap})) and asked "
            "again: end the loop in the step (return, or ctx.bail) or raise max_resumes"
        )


class ResumeRejected(SignoffError):
    """A resume (or event delivery) was refused and nothing was recorded."""


class ResumeValidationError(ResumeRejected):
    """The resume data does not fit the interrupt's resume model.

    ``errors`` maps a field path (``"comment"``, ``"items.0.qty"``; ``""`` for the
    whole value) to a message a person can read.
    """

    def __init__(self, run_id: str, interrupt_id: str, errors: Mapping[str, str]) -> None:
        self.run_id = run_id
        self.interrupt_id = interrupt_id
        self.errors = dict(errors)
        detail = "; ".join(f"{k or '(value)'}: {v}" for k, v in self.errors.items())
        super().__init__(f"invalid resume data for {run_id}/{interrupt_id}: {detail}")


class AlreadyResolved(ResumeRejected):
    """The interrupt was already resolved; says by whom, when and how."""

    def __init__(
        self,
        run_id: str,
        interrupt_id: str,
        status: str,
        resolved_by: str | None,
        resolved_at: datetime | None,
    ) -> None:
        self.run_id = run_id
        self.interrupt_id = interrupt_id
        self.status = status
        self.resolved_by = resolved_by
        self.resolved_at = resolved_at
        who = f" by {resolved_by}" if resolved_by else ""
        when = f" at {resolved_at.isoformat()}" if resolved_at else ""
        super().__init__(f"interrupt {run_id}/{interrupt_id} was already {status}{who}{when}")


class DuplicateResponse(ResumeRejected):
    """This actor already responded to the (quorum) interrupt; one actor counts once."""

    def __init__(self, run_id: str, interrupt_id: str, actor: str, approvals: int, needed: int):
        self.run_id = run_id
        self.interrupt_id = interrupt_id
        self.actor = actor
        self.approvals = approvals
        self.needed = needed
        super().__init__(
            f"{actor} already responded to {run_id}/{interrupt_id}; "
            f"{approvals} of {needed} approvals so far, each actor counts once"
        )


class NotAuthorized(ResumeRejected):
    """The actor is not allowed to respond to this interrupt."""

    def __init__(self, run_id: str, interrupt_id: str, actor: str, reason: str) -> None:
        self.run_id = run_id
        self.interrupt_id = interrupt_id
        self.actor = actor
        self.reason = reason
        super().__init__(f"{actor} may not respond to {run_id}/{interrupt_id}: {reason}")


class WrongInterruptKind(ResumeRejected):
    """The call does not fit the interrupt's kind (e.g. resume() on a durable sleep)."""

    def __init__(self, run_id: str, interrupt_id: str, kind: str, hint: str) -> None:
        self.run_id = run_id
        self.interrupt_id = interrupt_id
        self.kind = kind
        super().__init__(f"interrupt {run_id}/{interrupt_id} is a {kind!r} interrupt: {hint}")


class StoreError(SignoffError):
    """The store cannot be used (closed, or its schema is newer than this code)."""
