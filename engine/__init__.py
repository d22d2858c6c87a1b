"""Signoff's durable, typed workflow engine. Import from here (or from the public
``engine.errors`` and ``engine.models`` modules); nothing else is public.

Example::

    from engine import Engine, StepContext, Workflow, open_store, step
"""

import warnings
from typing import TYPE_CHECKING, Any

from engine.context import OnExpiry, StepContext
from engine.definition import ResumeTo, Retry, StepDef, Workflow, step
from engine.errors import (
    AlreadyResolved,
    DefinitionError,
    DuplicateResponse,
    IdempotencyKeyReused,
    InterruptExpired,
    InterruptNotFound,
    InvalidInput,
    NotAuthorized,
    ResumeRejected,
    ResumeValidationError,
    RunNotActive,
    RunNotFound,
    RunNotRetryable,
    SignoffError,
    StepOutputInvalid,
    StepTimedOut,
    StoreError,
    TooManyResumes,
    WorkflowNotRegistered,
    WrongInterruptKind,
    field_errors,
)
from engine.escalation import Escalation
from engine.json_schema import UnsupportedSchema, model_from_json_schema
from engine.models import (
    SETTLED,
    ErrorInfo,
    EscalationRecord,
    Event,
    EventType,
    ExpiryAction,
    Interrupt,
    InterruptKind,
    InterruptStatus,
    ItemResult,
    OutboxMessage,
    Response,
    ResumeOutcome,
    Run,
    RunDetail,
    RunStatus,
    StepRecord,
    StepStatus,
)
from engine.runner import Authorizer, Engine
from engine.store import Store, open_store

__all__ = [
    "SETTLED",
    "AlreadyResolved",
    "Authorizer",
    "DefinitionError",
    "DuplicateResponse",
    "Engine",
    "ErrorInfo",
    "Escalation",
    "EscalationRecord",
    "Event",
    "EventType",
    "ExpiryAction",
    "IdempotencyKeyReused",
    "Interrupt",
    "InterruptExpired",
    "InterruptKind",
    "InterruptNotFound",
    "InterruptStatus",
    "InvalidInput",
    "ItemResult",
    "NotAuthorized",
    "OnExpiry",
    "OutboxMessage",
    "Response",
    "ResumeOutcome",
    "ResumeRejected",
    "ResumeTo",
    "ResumeValidationError",
    "Retry",
    "Run",
    "RunDetail",
    "RunNotActive",
    "RunNotFound",
    "RunNotRetryable",
    "RunStatus",
    "SignoffError",
    "StepContext",
    "StepDef",
    "StepOutputInvalid",
    "StepRecord",
    "StepStatus",
    "StepTimedOut",
    "Store",
    "StoreError",
    "TooManyResumes",
    "UnsupportedSchema",
    "Workflow",
    "WorkflowNotRegistered",
    "WrongInterruptKind",
    "field_errors",
    "model_from_json_schema",
    "open_store",
    "step",
]

if not TYPE_CHECKING:  # hidden from type checkers, so typed code importing it is flagged

    def __getattr__(name: str) -> Any:
        """Deprecated names, still importable with a DeprecationWarning."""
        if name == "SQLiteStore":
            warnings.warn(
                "importing SQLiteStore from engine is deprecated: build stores with "
                "engine.open_store(url) (or import engine.store.sqlite.SQLiteStore)",
                DeprecationWarning,
                stacklevel=2,
            )
            from engine.store.sqlite import SQLiteStore

            return SQLiteStore
        raise AttributeError(f"module 'engine' has no attribute {name!r}")
