"""Bearer-token authentication for the REST API, as middleware on the ``/api`` sub-app."""

from __future__ import annotations

import hmac
from typing import Any

from aiohttp import web
from aiohttp.typedefs import Handler, Middleware
from aiohttp.web_urldispatcher import MatchInfoError

from bot.settings import Settings
from bot.web.problems import Problem

__all__ = ["CLIENT", "authenticate", "bearer_token_middleware", "client_name"]

# aiohttp >= 3.12 wants typed request keys (and warns on strings); older versions have none.
CLIENT: Any = getattr(web, "RequestKey", lambda name, _type: name)("signoff.client", str)
"""Request key: the name of the API token that authenticated the request."""


def authenticate(request: web.Request, settings: Settings) -> None:
    """Raise 503 if the API is disabled, 401 unless the bearer token matches.

    Any of the named tokens (``SIGNOFF_API_TOKENS``) or the single ``SIGNOFF_API_TOKEN``
    (named ``default``) is accepted; the name is kept on the request (``client_name``).
    """
    tokens = settings.api_token_names()
    if not tokens:
        raise Problem(
            503, "api_disabled", "the REST API is disabled: set SIGNOFF_API_TOKEN to enable it"
        )
    scheme, _, given = request.headers.get("Authorization", "").partition(" ")
    offered = given.strip().encode()
    found = None
    for name, token in tokens:
        # compare_digest, and every token compared: the time taken must not tell how much
        # of a guessed token was right, nor which token it resembled.
        if hmac.compare_digest(offered, token.get_secret_value().encode()):
            found = name
    if scheme.lower() != "bearer" or found is None:
        raise Problem(401, "unauthorized", "send Authorization: Bearer <SIGNOFF_API_TOKEN>")
    request[CLIENT] = found


def client_name(request: web.Request) -> str:
    """The name of the token the request was authenticated with."""
    return str(request.get(CLIENT, "default"))


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
