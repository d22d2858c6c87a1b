"""Errors raised by the Slack adapter.

::

    BotError
    ├── UnsupportedResumeModel (also ValueError)  a resume model Slack cannot ask for
    ├── InvalidSubmission (also ValueError)       what the approver gave failed validation
    ├── UnknownAction (also ValueError)           a click that Signoff did not render
    └── InvalidReference (also ValueError)        a control's reference is forged or garbled
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

__all__ = [
    "BotError",
    "InvalidReference",
    "InvalidSubmission",
    "UnknownAction",
    "UnsupportedResumeModel",
]


class BotError(Exception):
    """Base class for every error raised by ``bot``."""


class UnsupportedResumeModel(BotError, ValueError):
    """A resume model (or one of its fields) cannot be rendered as Slack controls.

    Raised at registration time by ``check_renderable`` so a workflow that Slack could never
    answer is refused up front rather than when the first approver clicks.

    Attributes:
        model: Name of the resume model class.
        field: The offending field's name, or ``None`` when the model as a whole is the problem.
        annotation: The field's type as written, when relevant.
        reason: What is wrong, in words.
    """

    def __init__(
        self,
        *,
        model: str,
        reason: str,
        field: str | None = None,
        annotation: Any = None,
    ) -> None:
        self.model = model
        self.field = field
        self.annotation = annotation
        self.reason = reason
        where = f"{model}.{field}" if field else model
        shown = f" (type {_type_name(annotation)})" if annotation is not None else ""
        super().__init__(f"{where}{shown} cannot be rendered in Slack: {reason}")


class InvalidSubmission(BotError, ValueError):
    """The approver's input did not validate against the resume model.

    Attributes:
        errors: ``{block_id: message}`` in plain words; block ids are field names, so this can
            be passed straight to ``ack(response_action="errors", errors=...)``.
    """

    def __init__(self, errors: Mapping[str, str]) -> None:
        self.errors: dict[str, str] = dict(errors)
        listed = "; ".join(f"{key}: {message}" for key, message in self.errors.items())
        super().__init__(f"invalid submission: {listed}")


class UnknownAction(BotError, ValueError):
    """A block action whose ``action_id`` or value does not match anything Signoff renders."""

    def __init__(self, action_id: str, reason: str) -> None:
        self.action_id = action_id
        self.reason = reason
        super().__init__(f"unknown action {action_id!r}: {reason}")


class InvalidReference(BotError, ValueError):
    """A reference carried by a button or modal did not verify: nothing may be done with it."""

    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(f"invalid reference: {reason}")


def _type_name(annotation: Any) -> str:
    # Classes print as "<class 'x'>" by default; their bare name reads better in an error.
    if isinstance(annotation, type):
        return annotation.__qualname__
    return repr(annotation).replace("typing.", "")
