"""What travels over the fake Slack's HTTP boundary: recorded calls, canned failures, arguments.

Split out of ``tests.fakes.slack_api`` (which re-exports the public names) so the server
module stays about the methods themselves.
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl

from aiohttp import web

from tests.fakes.slack_state import ApiError

__all__ = [
    "Call",
    "Failure",
    "Injections",
    "ResponseUrlPost",
    "ValidationFailure",
    "read_args",
    "read_token",
]

# Arguments that carry JSON; form bodies and query strings send them as JSON strings.
_JSON_ARGS = ("blocks", "view", "attachments", "metadata")


@dataclass(frozen=True, slots=True)
class Call:
    """One request the fake received, with what it answered."""

    method: str
    args: dict[str, Any]  # query + body merged; JSON-valued arguments decoded
    http_method: str
    content_type: str
    body: str
    token: str | None
    status: int
    response: dict[str, Any]
    received_at: float  # time.monotonic()
    client: str = ""  # "host:port" of the client's TCP connection (one per connection)

    @property
    def ok(self) -> bool:
        """Whether the call succeeded (HTTP 200 and ``ok: true``)."""
        return self.status == 200 and self.response.get("ok") is True


@dataclass(frozen=True, slots=True)
class ValidationFailure:
    """A message or view the fake rejected, with Slack-style error messages."""

    method: str
    errors: list[str]
    args: dict[str, Any]


@dataclass(frozen=True, slots=True)
class ResponseUrlPost:
    """One POST to a ``response_url`` minted by ``FakeSlack.response_url``."""

    key: str
    body: dict[str, Any]
    status: int


@dataclass(frozen=True, slots=True)
class Failure:
    """A canned failure for ``FakeSlack.fail_next``."""

    status: int
    error: str
    retry_after: int | None = None
    applied: bool = False  # the call takes effect anyway; only its answer is the failure

    @classmethod
    def lost_answer(cls, *, status: int = 503) -> Failure:
        """Slack does what was asked, but the caller gets a 5xx instead of the answer (a
        response lost on the way back)."""
        return cls(status=status, error="service_unavailable", applied=True)

    @classmethod
    def rate_limited(cls, *, retry_after: int = 1) -> Failure:
        """HTTP 429 with an integer ``Retry-After`` header, as Slack sends it."""
        return cls(status=429, error="ratelimited", retry_after=retry_after)

    @classmethod
    def server_error(cls, *, status: int = 500) -> Failure:
        """An HTTP 5xx from Slack's side."""
        return cls(status=status, error="fatal_error")

    @classmethod
    def api_error(cls, error: str) -> Failure:
        """HTTP 200 with ``{"ok": false, "error": error}``, e.g. ``invalid_auth``."""
        return cls(status=200, error=error)


@dataclass
class _Queued:
    failure: Failure
    remaining: int


@dataclass
class Injections:
    """Failures queued by ``FakeSlack.fail_next``, per method, each for a number of calls."""

    queues: dict[str, list[_Queued]] = field(default_factory=dict)

    def add(self, method: str, failure: Failure, times: int) -> None:
        """Queue ``failure`` for the next ``times`` calls of ``method`` (after earlier ones)."""
        self.queues.setdefault(method, []).append(_Queued(failure, times))

    def take(self, method: str) -> Failure | None:
        """The failure for this call of ``method``, if one is queued."""
        queue = self.queues.get(method) or []
        if not queue:
            return None
        queue[0].remaining -= 1
        failure = queue[0].failure
        if queue[0].remaining <= 0:
            queue.pop(0)
        return failure


def client_address(request: web.Request) -> str:
    """``host:port`` of the request's TCP peer ("" if unknown)."""
    peer = request.transport.get_extra_info("peername") if request.transport else None
    return f"{peer[0]}:{peer[1]}" if peer else ""


def read_args(request: web.Request, body: str) -> dict[str, Any]:
    """Merge the query string and a JSON or form body, decoding JSON-valued arguments."""
    args: dict[str, Any] = dict(request.query)
    if request.content_type == "application/json":
        try:
            decoded = json.loads(body) if body else {}
        except json.JSONDecodeError as exc:
            raise ApiError("invalid_json") from exc
        if not isinstance(decoded, dict):
            raise ApiError("invalid_json")
        args.update(decoded)
    elif body:
        args.update(parse_qsl(body, keep_blank_values=True))
    for key in _JSON_ARGS:
        if isinstance(args.get(key), str):
            try:
                args[key] = json.loads(args[key])
            except json.JSONDecodeError as exc:
                error = "invalid_blocks_format" if key == "blocks" else "invalid_arguments"
                raise ApiError(error) from exc
    return args


def read_token(request: web.Request, args: dict[str, Any]) -> str | None:
    """The ``Authorization: Bearer`` token, else a ``token`` argument (popped from ``args``)."""
    header = request.headers.get("Authorization", "")
    token = args.pop("token", None)
    if header.startswith("Bearer "):
        return header.removeprefix("Bearer ").strip()
    return str(token) if token else None


def read_basic_auth(request: web.Request) -> tuple[str, str] | None:
    """``(user, password)`` from ``Authorization: Basic``, as slack-sdk sends client credentials."""
    header = request.headers.get("Authorization", "")
    if not header.startswith("Basic "):
        return None
    try:
        decoded = base64.b64decode(header.removeprefix("Basic ").strip()).decode()
    except (binascii.Error, UnicodeDecodeError):
        return None
    user, _, password = decoded.partition(":")
    return user, password
