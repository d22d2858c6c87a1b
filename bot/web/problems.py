"""HTTP plumbing shared by the webhook and REST handlers: JSON bodies and JSON errors.

Handlers raise ``Problem`` (or let engine errors through); ``problem_middleware`` turns both into
a JSON body ``{"error": code, "message": ..., ...}`` with the right status. The REST API
and the webhooks are sub-applications with ``problem_middleware``, so no handler builds an
error response by hand and every error looks the same.
"""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError
from aiohttp.typedefs import Handler, Middleware
from aiohttp.web_protocol import RequestPayloadError
from pydantic import BaseModel

from bot.logs import REFUSED_LOGGER
from engine import (
    AlreadyResolved,
    DuplicateResponse,
    InterruptNotFound,
    InvalidInput,
    NotAuthorized,
    ResumeValidationError,
    RunNotActive,
    RunNotFound,
    StoreError,
    WorkflowNotRegistered,
    WrongInterruptKind,
)

__all__ = [
    "BODY_TIMEOUT",
    "DEFAULT_BODY_TIMEOUT",
    "MAX_BODY",
    "MAX_JSON_DEPTH",
    "Problem",
    "check_length",
    "json_depth_ok",
    "json_not_found",
    "json_response",
    "parse_json",
    "problem_middleware",
    "read_body",
    "read_json",
    "require_json",
]

log = logging.getLogger("signoff.http")
refused = logging.getLogger(REFUSED_LOGGER + ".http")

MAX_BODY = 1024 * 1024  # 1 MiB: far above any sane workflow input, far below a DoS
MAX_JSON_DEPTH = 64  # nesting levels; deeper documents are refused before anything walks them
DEFAULT_BODY_TIMEOUT = 30.0  # seconds, when the app does not say (SIGNOFF_BODY_TIMEOUT)

BODY_TIMEOUT = web.AppKey("signoff.body_timeout", float)
"""Seconds a client has to send a whole body, set by the route installers from settings."""


class Problem(Exception):
    """An HTTP error with a machine-readable code and a human message.

    Args:
        http_status: the HTTP status.
        code: a stable, snake_case error code (``invalid_input``, ``not_found``...).
        message: one sentence a person can act on.
        extra: more fields for the body (``errors``, ``resolved_by``...).
    """

    def __init__(self, http_status: int, code: str, message: str, /, **extra: Any) -> None:
        self.http_status = http_status
        self.code = code
        self.message = message
        self.extra = {k: v for k, v in extra.items() if v is not None}
        super().__init__(message)

    def response(self) -> web.Response:
        """The JSON error response."""
        body = {"error": self.code, "message": self.message, **self.extra}
        headers = {"WWW-Authenticate": "Bearer"} if self.http_status == 401 else None
        response = web.json_response(body, status=self.http_status, headers=headers, dumps=_dumps)
        if self.http_status in (408, 413):
            # The rest of the body is unread: close the connection rather than wait for it.
            response.force_close()
        return response


def _dumps(value: Any) -> str:
    return json.dumps(value, default=str)


def json_response(value: BaseModel | dict[str, Any], status: int = 200) -> web.Response:
    """A JSON response from a pydantic model (as its JSON dump) or a plain dict."""
    text = value.model_dump_json() if isinstance(value, BaseModel) else _dumps(value)
    return web.Response(text=text, status=status, content_type="application/json")


def from_engine_error(exc: Exception, *, invalid_status: int) -> Problem | None:
    """The Problem an engine error stands for (None: not an engine error we map).

    ``invalid_status`` is used for failed validation of inputs and answers: webhooks
    answer 400, the REST API 422.
    """
    if isinstance(exc, RunNotFound | InterruptNotFound):
        return Problem(404, "not_found", str(exc))
    if isinstance(exc, WorkflowNotRegistered):
        if exc.version is None:
            return Problem(404, "unknown_workflow", str(exc))
        return Problem(409, "version_not_registered", str(exc))
    if isinstance(exc, InvalidInput):
        return Problem(invalid_status, "invalid_input", str(exc), errors=exc.errors)
    if isinstance(exc, ResumeValidationError):
        return Problem(invalid_status, "invalid_data", str(exc), errors=exc.errors)
    if isinstance(exc, AlreadyResolved):
        return Problem(
            409,
            "already_resolved",
            str(exc),
            status=exc.status,
            resolved_by=exc.resolved_by,
            resolved_at=exc.resolved_at.isoformat() if exc.resolved_at else None,
        )
    if isinstance(exc, DuplicateResponse):
        return Problem(409, "duplicate_response", str(exc))
    if isinstance(exc, RunNotActive):
        return Problem(409, "run_not_active", str(exc), status=exc.status)
    if isinstance(exc, WrongInterruptKind):
        return Problem(409, "wrong_interrupt_kind", str(exc))
    if isinstance(exc, NotAuthorized):
        return Problem(403, "not_authorized", str(exc))
    if isinstance(exc, StoreError):
        return Problem(503, "store_unavailable", str(exc))
    return None


def problem_middleware(*, invalid_status: int) -> Middleware:
    """Middleware turning Problems and engine errors into JSON error responses.

    Args:
        invalid_status: the status for failed validation of inputs and answers (see
            ``from_engine_error``).
    """

    @web.middleware
    async def problems(request: web.Request, handler: Handler) -> web.StreamResponse:
        try:
            return await handler(request)
        except Problem as p:
            return p.response()
        except Exception as exc:
            problem = from_engine_error(exc, invalid_status=invalid_status)
            if problem is None:
                raise
            return problem.response()

    return problems


_JSON_PREFIXES = ("/api/", "/hooks/")


@web.middleware
async def json_not_found(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Answer unknown routes under ``/api/`` and ``/hooks/`` with a JSON error too.

    Clients of a JSON API should never have to parse aiohttp's plain-text 404/405 (e.g.
    for an interrupt id sent with an unencoded ``#``, which cuts the path short). This runs
    on the root application: aiohttp resolves an unknown path there, not in a sub-app.
    """
    try:
        return await handler(request)
    except (web.HTTPNotFound, web.HTTPMethodNotAllowed) as exc:
        if not request.path.startswith(_JSON_PREFIXES):
            raise
        message = f"no route {request.method} {request.path}"
        if isinstance(exc, web.HTTPNotFound):
            message += " (percent-encode ids that contain '/', '#' or '?')"
        return Problem(exc.status, "no_route", message).response()


def is_json(request: web.Request) -> bool:
    """True for ``application/json`` and ``application/*+json`` bodies."""
    ctype = request.content_type
    return ctype == "application/json" or (
        ctype.startswith("application/") and ctype.endswith("+json")
    )


def require_json(request: web.Request) -> None:
    """Refuse (415) a body that is not JSON."""
    if not is_json(request):
        raise Problem(
            415, "unsupported_media_type", "send the body as JSON (Content-Type: application/json)"
        )


def check_length(request: web.Request, limit: int = MAX_BODY) -> None:
    """Refuse (413) a body whose declared Content-Length is over ``limit`` bytes."""
    if request.content_length is not None and request.content_length > limit:
        raise _too_large(limit)


def _too_large(limit: int) -> Problem:
    return Problem(413, "body_too_large", f"the body is larger than {limit} bytes")


async def read_body(
    request: web.Request, limit: int = MAX_BODY, *, timeout: float | None = None
) -> bytes:
    """The raw body, refusing (413) anything over ``limit`` bytes before reading it all.

    The whole body must arrive within ``timeout`` seconds (default: the app's
    ``BODY_TIMEOUT``), else 408. A client that disconnects or sends a broken body gets a
    400 it will never read, and one INFO line: neither is a server error. The stream is
    read directly so the limit holds whatever ``client_max_size`` the application was built
    with, and for chunked bodies without a Content-Length.
    """
    check_length(request, limit)
    content = request.content
    if content.is_eof() and content.exception() is None:
        # The whole body came with the head (the usual small JSON body): nothing to wait
        # for, so no timer and no read loop.
        body = content.read_nowait()
        if len(body) > limit:
            raise _too_large(limit)
        return body
    if timeout is None:
        timeout = request.config_dict.get(BODY_TIMEOUT, DEFAULT_BODY_TIMEOUT)
    phase = getattr(request.protocol, "reading_body", None)  # bot.web.guard's handler
    chunks: list[bytes] = []
    size = 0
    try:
        async with asyncio.timeout(timeout):
            if phase is not None:
                phase(True)
            async for chunk in request.content.iter_any():
                size += len(chunk)
                if size > limit:
                    raise _too_large(limit)
                chunks.append(chunk)
    except TimeoutError:
        refused.info("a request body did not arrive within %gs: answered 408", timeout)
        raise Problem(
            408, "body_timeout", f"the body did not arrive within {timeout:g} seconds"
        ) from None
    except (ConnectionError, RuntimeError) as exc:
        # aiohttp raises RuntimeError("Connection closed.") when the connection was closed
        # by us (a slow client evicted by bot.web.guard) before the read began.
        if isinstance(exc, RuntimeError) and request.protocol.connected:
            raise
        refused.info("the client went away while sending its body")
        raise Problem(400, "client_disconnected", "the connection closed mid-body") from None
    except asyncio.CancelledError:
        # With handler_cancellation (aiohttp's test server) a disconnect cancels the handler
        # instead: say so once, and let the cancellation run its course.
        refused.info("the client went away while sending its body (handler cancelled)")
        raise
    except (RequestPayloadError, HttpProcessingError) as exc:
        refused.info("a request body could not be read: %s", exc)
        raise Problem(400, "invalid_body_encoding", "the body could not be read") from None
    finally:
        if phase is not None:
            phase(False)
    return b"".join(chunks)


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


_CONTAINERS = (dict, list)


def json_depth_ok(
    value: Any, limit: int = MAX_JSON_DEPTH, *, text: str | bytes | None = None
) -> bool:
    """True if ``value`` nests lists and objects at most ``limit`` levels deep.

    ``text``, the JSON that ``value`` was parsed from, lets most documents skip the walk:
    every level opens with its own ``{`` or ``[`` in the text (a bracket in a string is
    counted too, which only over-counts), so a text with at most ``limit`` of them cannot
    nest deeper. A Signoff click's payload, its message included, has about 35.
    """
    if text is not None:
        openers = (
            text.count("{") + text.count("[")
            if isinstance(text, str)
            else text.count(b"{") + text.count(b"[")
        )
        if openers <= limit:
            return True
    # Level by level, keeping only the containers: a Slack click's payload has some 200
    # values, nearly all scalars, and it is checked on the way to every ack.
    level: list[Any] = [value] if isinstance(value, _CONTAINERS) else []
    depth = 0
    while level:
        depth += 1
        if depth > limit:
            return False
        below: list[Any] = []
        for item in level:
            for child in item.values() if isinstance(item, dict) else item:
                if isinstance(child, _CONTAINERS):
                    below.append(child)
        level = below
    return True


def parse_json(body: bytes) -> Any:
    """The body as JSON (400 ``invalid_json`` if it is not).

    Refused alike: bytes that are not UTF-8 or not JSON, NaN and Infinity, numbers over
    Python's 4300-digit conversion limit (ValueError), nesting deeper than the parser's
    recursion limit (RecursionError) or than ``MAX_JSON_DEPTH`` (which later code,
    serialising the value again, could not take).
    """
    try:
        value = json.loads(body, parse_constant=_reject_constant)
    except (ValueError, RecursionError, TypeError) as exc:
        # ValueError covers JSONDecodeError and UnicodeDecodeError too.
        reason = "too deeply nested" if isinstance(exc, RecursionError) else str(exc)[:200]
        raise Problem(400, "invalid_json", f"the body is not valid JSON: {reason}") from None
    if not json_depth_ok(value, text=body):
        raise Problem(
            400, "invalid_json", f"the body nests deeper than {MAX_JSON_DEPTH} levels"
        ) from None
    return value


async def read_json(request: web.Request, limit: int = MAX_BODY) -> Any:
    """Check the content type (415), the size (413) and parse the body (400)."""
    require_json(request)
    return parse_json(await read_body(request, limit))
