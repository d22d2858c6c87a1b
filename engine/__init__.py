"""Signoff's durable, typed workflow engine. Import from here; nothing else is public.

Example::

    from engine import Engine, StepContext, Workflow, open_store, step
"""

from engine.context import InterruptExpired, OnExpiry, StepContext
from engine.definition import Retry, StepDef, Workflow, step
from engine.errors import (
    AlreadyResolved,
    DefinitionError,
    DuplicateResponse,
    IdempotencyKeyReused,
    InterruptNotFound,
    InvalidInput,
    NotAuthorized,
    ResumeRejected,
    ResumeValidationError,
    RunNotActive,
    RunNotFound,
    SignoffError,
    StoreError,
    WorkflowNotRegistered,
    WrongInterruptKind,
    field_errors,
)
from engine.models import (
    ErrorInfo,
    Event,
    EventType,
    ExpiryAction,
    Interrupt,
    InterruptKind,
    InterruptStatus,
    OutboxMessage,
    Response,
    ResumeOutcome,
    Run,
    RunDetail,
    RunStatus,
    StepRecord,
    StepStatus,
)
from engine.runner import SETTLED, Authorizer, Engine
from engine.store import SQLiteStore, Store, open_store

__all__ = [
    "SETTLED",
    "AlreadyResolved",
    "Authorizer",
    "DefinitionError",
    "DuplicateResponse",
    "Engine",
    "ErrorInfo",
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
    "NotAuthorized",
    "OnExpiry",
    "OutboxMessage",
    "Response",
    "ResumeOutcome",
    "ResumeRejected",
    "ResumeValidationError",
    "Retry",
    "Run",
    "RunDetail",
    "RunNotActive",
    "RunNotFound",
    "RunStatus",
    "SQLiteStore",
    "SignoffError",
    "StepContext",
    "StepDef",
    "StepRecord",
    "StepStatus",
    "Store",
    "StoreError",
    "Workflow",
    "WorkflowNotRegistered",
    "WrongInterruptKind",
    "field_errors",
    "open_store",
    "step",
]
