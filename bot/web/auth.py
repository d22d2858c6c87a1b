"""Bearer-token authentication for the REST API, as middleware on the ``/api`` sub-app."""

from __future__ import annotations

import hmac

from aiohttp import web
from aiohttp.typedefs import Handler, Middleware
from aiohttp.web_urldispatcher import MatchInfoError

from bot.settings import Settings
from bot.web.problems import Problem

__all__ = ["authenticate", "bearer_token_middleware"]


def authenticate(request: web.Request, settings: Settings) -> None:
    """Raise 503 if the API is disabled, 401 unless the bearer token matches."""
    token = settings.api_token
    if token is None:
        raise Problem(
            503, "api_disabled", "the REST API is disabled: set SIGNOFF_API_TOKEN to enable it"
        )
    scheme, _, given = request.headers.get("Authorization", "").partition(" ")
    expected = token.get_secret_value().encode()
    # compare_digest: the time taken must not tell how much of a guessed token was right.
    if scheme.lower() != "bearer" or not hmac.compare_digest(given.strip().encode(), expected):
        raise Problem(401, "unauthorized", "send Authorization: Bearer <SIGNOFF_API_TOKEN>")


def bearer_token_middleware(settings: Settings) -> Middleware:
    """Middleware checking ``Authorization: Bearer $SIGNOFF_API_TOKEN`` before any handler.

    Place it inside ``problem_middleware`` so its Problems become JSON responses.
    """

    @web.middleware
    async def bearer_token(request: web.Request, handler: Handler) -> web.StreamResponse:
        # aiohttp runs a sub-app's middlewares for unknown paths under its prefix too; those
        # must stay a JSON 404/405 (json_not_found), not turn into a 401.
        if not isinstance(request.match_info, MatchInfoError):
            authenticate(request, settings)
        return await handler(request)

    return bearer_token
