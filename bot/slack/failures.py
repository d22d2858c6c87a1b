"""How a failed Slack Web API call is handled: retried later, or given up on."""

from __future__ import annotations

import aiohttp
from slack_sdk.errors import SlackApiError

__all__ = ["error_code", "is_transient"]

# ok:false errors that are worth another try later; every other ok:false is permanent.
_TRANSIENT_ERRORS = frozenset(
    {
        "ratelimited",
        "rate_limited",
        "fatal_error",
        "internal_error",
        "service_unavailable",
        "request_timeout",
    }  # fmt: skip
)


def is_transient(exc: BaseException) -> bool:
    """Whether a failed Slack call may succeed if tried again later."""
    if isinstance(exc, SlackApiError):
        status = exc.response.status_code
        return status == 429 or status >= 500 or exc.response.get("error") in _TRANSIENT_ERRORS
    return isinstance(exc, aiohttp.ClientError | OSError | TimeoutError)


def error_code(exc: BaseException) -> str:
    """Slack's error code (``channel_not_found``...), or the exception's type name."""
    if isinstance(exc, SlackApiError):
        code = exc.response.get("error")
        if isinstance(code, str) and code:
            return code
    return type(exc).__name__
