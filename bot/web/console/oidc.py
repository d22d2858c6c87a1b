"""Sign in with Slack (OpenID Connect) for the console.

``begin`` sends the browser to Slack's authorize page with a fresh ``state`` and ``nonce``
kept in the session; ``finish`` (the redirect back) checks ``state``, exchanges the code
with ``openid.connect.token`` (client credentials ``SIGNOFF_OIDC_CLIENT_ID``/``SECRET``,
never ``SLACK_CLIENT_ID``/``SECRET``, which would switch bolt into OAuth mode), checks the
ID token's ``nonce``, audience and expiry, reads ``openid.connect.userInfo`` and accepts
the user only if ``https://slack.com/team_id`` is the workspace of the bot token
(``auth.test``). The web user is then the same Slack user id as in Slack.

The ID token's signature is not verified: it comes straight from Slack's token endpoint
over TLS, which OpenID Connect Core §3.1.3.7 accepts in place of a signature check.
"""

from __future__ import annotations

import base64
import hmac
import json
import logging
import secrets
import time
from typing import Any

from aiohttp import web
from slack_sdk.errors import SlackApiError, SlackClientError
from slack_sdk.oauth import OpenIDConnectAuthorizeUrlGenerator
from slack_sdk.web.async_client import AsyncWebClient

from bot.settings import Settings
from bot.web.console.auth import Identity, get_session

__all__ = ["CALLBACK_PATH", "SCOPES", "SignInFailed", "SlackSignIn", "USER_CLAIM", "TEAM_CLAIM"]

log = logging.getLogger("signoff.console.oidc")

CALLBACK_PATH = "/signin/slack/callback"
SCOPES = ("openid", "profile")
USER_CLAIM = "https://slack.com/user_id"
TEAM_CLAIM = "https://slack.com/team_id"
ISSUER = "https://slack.com"
_PENDING = "oidc"  # session key: {"state", "nonce", "next"} while the browser is at Slack


class SignInFailed(Exception):
    """Sign-in was refused; the message is shown to the person."""


def _claims(id_token: str) -> dict[str, Any]:
    try:
        body = id_token.split(".")[1]
        claims = json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
    except (IndexError, ValueError) as exc:
        raise SignInFailed("Slack sent an unreadable ID token") from exc
    if not isinstance(claims, dict):
        raise SignInFailed("Slack sent an unreadable ID token")
    return claims


def _same(a: object, b: object) -> bool:
    return isinstance(a, str) and isinstance(b, str) and hmac.compare_digest(a, b)


class SlackSignIn:
    """The relying-party side of Sign in with Slack.

    Args:
        settings: OIDC credentials, authorize URL, ``SLACK_API_URL``, public URL.
        bot_client: the bot's Web API client, asked once (``auth.test``) for its team.
    """

    def __init__(self, settings: Settings, bot_client: AsyncWebClient) -> None:
        assert settings.oidc_client_id and settings.oidc_client_secret  # oidc_enabled
        self.settings = settings
        self.client_id = settings.oidc_client_id
        self.client_secret = settings.oidc_client_secret.get_secret_value()
        self.bot_client = bot_client
        self._team_id: str | None = None

    def redirect_uri(self, request: web.Request) -> str:
        """Where Slack sends the browser back (``SIGNOFF_PUBLIC_URL`` or this request's host)."""
        base = self.settings.public_url or f"{request.scheme}://{request.host}"
        return base + CALLBACK_PATH

    async def team_id(self) -> str:
        """The bot token's workspace (asked once)."""
        if self._team_id is None:
            try:
                found = await self.bot_client.auth_test()
            except (SlackApiError, SlackClientError, OSError, TimeoutError) as exc:
                raise SignInFailed("Signoff could not ask Slack which workspace it is in") from exc
            self._team_id = str(found.get("team_id") or "")
        return self._team_id

    async def begin(self, request: web.Request, next_path: str) -> web.HTTPFound:
        """Redirect to Slack's authorize page with a new state and nonce."""
        session = await get_session(request)
        state, nonce = secrets.token_urlsafe(24), secrets.token_urlsafe(24)
        session[_PENDING] = {"state": state, "nonce": nonce, "next": next_path}
        generator = OpenIDConnectAuthorizeUrlGenerator(
            client_id=self.client_id,
            redirect_uri=self.redirect_uri(request),
            scopes=list(SCOPES),
            authorization_url=self.settings.oidc_authorize_url,
        )
        return web.HTTPFound(generator.generate(state=state, nonce=nonce))

    async def finish(self, request: web.Request) -> tuple[Identity, str]:
        """Check the redirect back from Slack; the person and where they were going.

        Raises:
            SignInFailed: state or nonce mismatch, a refused or failed exchange, another
                workspace, missing claims.
        """
        session = await get_session(request)
        pending = session.pop(_PENDING, None)  # single use, whatever happens next
        query = request.query
        if not isinstance(pending, dict) or not _same(query.get("state"), pending.get("state")):
            raise SignInFailed("This sign-in link is stale or was not started here: try again")
        if "error" in query:
            raise SignInFailed(f"Slack did not sign you in ({query['error'][:80]})")
        code = query.get("code", "")
        if not code:
            raise SignInFailed("Slack sent no sign-in code")
        api = AsyncWebClient(base_url=self.settings.slack_api_url)
        try:
            token = await api.openid_connect_token(
                client_id=self.client_id,
                client_secret=self.client_secret,
                code=code,
                redirect_uri=self.redirect_uri(request),
            )
            claims = _claims(str(token.get("id_token") or ""))
            self._check_id_token(claims, pending)
            user_api = AsyncWebClient(
                token=str(token["access_token"]), base_url=self.settings.slack_api_url
            )
            info = (await user_api.openid_connect_userInfo()).data
        except (SlackApiError, SlackClientError, OSError, TimeoutError) as exc:
            log.warning("Sign in with Slack failed: %s", exc)
            raise SignInFailed("Slack refused the sign-in: try again") from exc
        assert isinstance(info, dict)
        user, team = info.get(USER_CLAIM), info.get(TEAM_CLAIM)
        if not isinstance(user, str) or info.get("sub") != claims.get("sub"):
            raise SignInFailed("Slack did not say who you are")
        if not _same(team, await self.team_id()):
            log.warning("refused a sign-in from another workspace: %s in %s", user, team)
            raise SignInFailed("You signed in to another Slack workspace than Signoff's")
        name = str(info.get("name") or info.get("given_name") or user)
        next_path = str(pending.get("next") or "/")
        return Identity(user=user, name=name, kind="slack"), next_path

    def _check_id_token(self, claims: dict[str, Any], pending: dict[str, Any]) -> None:
        if not _same(claims.get("nonce"), pending.get("nonce")):
            raise SignInFailed("The sign-in answer does not match this browser (nonce): try again")
        audience = claims.get("aud")
        audiences = audience if isinstance(audience, list) else [audience]
        if self.client_id not in audiences or claims.get("iss") != ISSUER:
            raise SignInFailed("The sign-in answer was meant for another app")
        expires = claims.get("exp")
        if not isinstance(expires, int | float) or expires < time.time():
            raise SignInFailed("The sign-in answer has expired: try again")
