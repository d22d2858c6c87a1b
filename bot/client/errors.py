"""Errors of the request client.

::

    ClientError                 anything the client reports
    ├── ApiError                the server refused (status, code, message, per-field errors)
    ├── ConnectionFailed        the server could not be reached after retries
    ├── WaitTimeout             no decision within the caller's timeout (still pending)
    └── NotApproved             the request ended without the answer asked for
        ├── Rejected            someone rejected it (who, when, their answer)
        ├── Expired             nobody decided in time
        ├── Cancelled           it was cancelled
        └── RequestFailed       it could not be asked (see the request's history)
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from bot.client.models import RequestView

__all__ = [
    "ApiError",
    "Cancelled",
    "ClientError",
    "ConnectionFailed",
    "Expired",
    "NotApproved",
    "Rejected",
    "RequestFailed",
    "WaitTimeout",
]


class ClientError(Exception):
    """Base of every error the request client raises."""


class ApiError(ClientError):
    """The server answered with an error (4xx, or 5xx after retries)."""

    def __init__(
        self, status: int, code: str, message: str, errors: dict[str, Any] | None = None
    ) -> None:
        self.status = status
        self.code = code
        self.message = message
        self.errors = errors or {}
        detail = f" {self.errors}" if self.errors else ""
        super().__init__(f"HTTP {status} {code}: {message}{detail}")


class ConnectionFailed(ClientError):
    """The server could not be reached (after the client's retries)."""


class WaitTimeout(ClientError):
    """The request was still pending when the caller's timeout ran out; it stays durable."""

    def __init__(self, request: RequestView) -> None:
        self.request = request
        super().__init__(f"request {request.id} is still pending; get it later by its id")


class NotApproved(ClientError):
    """The request ended without the answer asked for; ``request`` holds all of it."""

    def __init__(self, request: RequestView) -> None:
        self.request = request
        who = f" by {self.by}" if self.by else ""
        when = f" at {self.at.isoformat()}" if self.at else ""
        super().__init__(f"request {request.id} was {request.status.value}{who}{when}")

    @property
    def by(self) -> str | None:
        """Who decided (None for expiries)."""
        return self.request.decided_by

    @property
    def at(self) -> datetime | None:
        """When it was decided."""
        return self.request.decided_at

    @property
    def answer(self) -> dict[str, Any] | None:
        """The answer given (a rejection's comment, say)."""
        return self.request.answer


class Rejected(NotApproved):
    """Someone rejected the request."""


class Expired(NotApproved):
    """Nobody decided before the request expired."""


class Cancelled(NotApproved):
    """The request was cancelled."""


class RequestFailed(NotApproved):
    """The request could not be asked; its history on the server says why."""
