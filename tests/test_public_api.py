"""The engine's public surface: what ``from engine import ...`` offers changes only on purpose."""

import inspect

import pytest

import engine
from engine import errors, models

EXPECTED = [
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


def test_engine_exports_exactly_the_pinned_names() -> None:
    assert engine.__all__ == EXPECTED


EXPECTED_ERRORS = [
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

EXPECTED_MODELS = [
    "SETTLED",
    "ErrorInfo",
    "EscalationRecord",
    "Event",
    "EventType",
    "ExpiryAction",
    "Interrupt",
    "InterruptKind",
    "InterruptStatus",
    "ItemResult",
    "OutboxMessage",
    "Response",
    "ResumeOutcome",
    "Run",
    "RunDetail",
    "RunStatus",
    "StepRecord",
    "StepStatus",
]


def test_engine_errors_exports_exactly_the_pinned_names() -> None:
    assert errors.__all__ == EXPECTED_ERRORS
    for name in EXPECTED_ERRORS:  # the same objects as at the package root
        assert getattr(errors, name) is getattr(engine, name), name


def test_engine_models_exports_exactly_the_pinned_names() -> None:
    assert models.__all__ == EXPECTED_MODELS
    for name in EXPECTED_MODELS:
        assert getattr(models, name) is getattr(engine, name), name


def test_sqlite_store_from_engine_still_imports_but_is_deprecated() -> None:
    from engine.store.sqlite import SQLiteStore

    with pytest.warns(DeprecationWarning, match="open_store"):
        from engine import SQLiteStore as old

    assert old is SQLiteStore
    assert "SQLiteStore" not in engine.__all__


def test_interrupt_expired_is_a_signoff_error_still_importable_from_context() -> None:
    from engine.context import InterruptExpired

    assert InterruptExpired is engine.InterruptExpired
    assert issubclass(InterruptExpired, engine.SignoffError)
    assert not issubclass(InterruptExpired, engine.ResumeRejected)


def test_every_exported_name_exists_and_star_import_gives_exactly_them() -> None:
    for name in EXPECTED:
        assert getattr(engine, name) is not None, name
    namespace: dict[str, object] = {}
    exec("from engine import *", namespace)
    assert sorted(k for k in namespace if k != "__builtins__") == sorted(EXPECTED)


def test_exported_classes_and_functions_are_documented() -> None:
    undocumented = [
        name
        for name in EXPECTED
        if (inspect.isclass(obj := getattr(engine, name)) or inspect.isfunction(obj))
        and not inspect.getdoc(obj)
    ]
    assert undocumented == []


def test_every_engine_error_is_a_signoff_error() -> None:
    exported_errors = [
        getattr(engine, n)
        for n in EXPECTED
        if inspect.isclass(getattr(engine, n)) and issubclass(getattr(engine, n), Exception)
    ]
    assert {e for e in exported_errors if not issubclass(e, engine.SignoffError)} == set()
    refused = {
        engine.ResumeValidationError,
        engine.AlreadyResolved,
        engine.DuplicateResponse,
        engine.NotAuthorized,
        engine.WrongInterruptKind,
    }
    assert {e for e in exported_errors if issubclass(e, engine.ResumeRejected)} - {
        engine.ResumeRejected
    } == refused
    defined = {
        obj
        for _, obj in inspect.getmembers(errors, inspect.isclass)
        if issubclass(obj, errors.SignoffError) and obj.__module__ == errors.__name__
    }
    assert defined <= set(exported_errors)
    for cls in defined:  # the hierarchy drawn in the module docstring names every error
        assert cls.__name__ in (errors.__doc__ or ""), cls.__name__


def test_run_statuses_are_lower_case_strings() -> None:
    assert [s.value for s in engine.RunStatus] == [
        "running",
        "suspended",
        "completed",
        "failed",
        "rejected",
        "cancelled",
    ]
    assert {s for s in engine.RunStatus if s.terminal} == engine.SETTLED - {
        engine.RunStatus.SUSPENDED
    }
    assert {s for s in engine.RunStatus if s.settled} == engine.SETTLED
    assert engine.SETTLED == frozenset(engine.RunStatus) - {engine.RunStatus.RUNNING}
