"""Sign in with Slack (OpenID Connect) for the fake Slack, over real HTTP.

* ``GET /openid/connect/authorize`` checks ``client_id`` and ``redirect_uri`` against a
  client registered with ``FakeSlack.add_oidc_client`` (unknown ones get a 400 page and no
  redirect, as an OAuth server must), then shows a consent page with one button per
  registered user. A browser test clicks one; ``login_hint=U…`` or
  ``FakeSlack.oidc_auto_login(user_id)`` skips the page. The choice redirects (302) to
  ``redirect_uri?code=…&state=…``; Cancel redirects with ``error=access_denied``.
* ``openid.connect.token`` takes the client credentials (HTTP Basic, as slack-sdk sends
  them, or form fields) and a code: single use, valid 10 minutes, bound to its client and
  ``redirect_uri``. It answers ``access_token``, ``token_type: Bearer`` and an ``id_token``
  (a JWT signed HS256 with the client secret; Slack signs RS256 with published keys).
* ``openid.connect.userInfo`` answers the same claims for ``Authorization: Bearer <token>``.

Claims follow the granted scopes: ``openid`` gives ``sub`` and the Slack ids, ``profile``
adds names, picture, locale and the team, ``email`` adds ``email`` and ``email_verified``.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import html
import json
import re
import secrets
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode, urlsplit, urlunsplit

from aiohttp import web

from tests.fakes.slack_state import ApiError, SlackState

__all__ = [
    "AUTHORIZE_PATH",
    "CODE_TTL_SECONDS",
    "ISSUER",
    "OIDC_METHODS",
    "FakeOidc",
    "OidcClient",
    "decode_jwt",
    "encode_jwt",
]

AUTHORIZE_PATH = "/openid/connect/authorize"
OIDC_METHODS = ("openid.connect.token", "openid.connect.userInfo")
CODE_TTL_SECONDS = 600
ID_TOKEN_TTL_SECONDS = 3600
ISSUER = "https://slack.com"
_SCOPE_SPLIT = re.compile(r"[\s,+]+")  # slack-sdk joins scopes with ","; the spec uses spaces


@dataclass(frozen=True, slots=True)
class OidcClient:
    """A Sign in with Slack app: its credentials and allowed redirect URIs."""

    client_id: str
    client_secret: str
    redirect_uris: tuple[str, ...]


@dataclass(slots=True)
class _Grant:
    client_id: str
    redirect_uri: str
    user_id: str
    nonce: str | None
    scopes: frozenset[str]
    issued_at: float
    used: bool = False


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def encode_jwt(claims: dict[str, Any], key: str) -> str:
    """An HS256 JWT of ``claims`` signed with ``key``."""
    header = _b64(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
    body = _b64(json.dumps(claims, separators=(",", ":")).encode())
    signature = hmac.new(key.encode(), f"{header}.{body}".encode(), hashlib.sha256).digest()
    return f"{header}.{body}.{_b64(signature)}"


def decode_jwt(token: str, key: str) -> dict[str, Any]:
    """The claims of an HS256 JWT, after checking its signature (``ValueError`` if wrong)."""
    header, body, signature = token.split(".")
    expected = hmac.new(key.encode(), f"{header}.{body}".encode(), hashlib.sha256).digest()
    if not hmac.compare_digest(_b64(expected), signature):
        raise ValueError("bad JWT signature")
    claims: dict[str, Any] = json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
    return claims


class _PageError(Exception):
    """An authorize request that must not redirect: shown as a 400 page."""


class FakeOidc:
    """The identity-provider half of the fake: clients, codes and access tokens."""

    def __init__(self, state: SlackState) -> None:
        self.state = state
        self.clients: dict[str, OidcClient] = {}
        self.auto_login: str | None = None
        self.clock_offset = 0.0  # added to time.time(); advance() moves it
        self.codes: dict[str, _Grant] = {}  # authorization codes issued, by code
        self.access_tokens: dict[str, _Grant] = {}

    def add_client(self, client_id: str, client_secret: str, redirect_uris: list[str]) -> None:
        """Register a client (``FakeSlack.add_oidc_client``)."""
        self.clients[client_id] = OidcClient(client_id, client_secret, tuple(redirect_uris))

    def advance(self, seconds: float) -> None:
        """Move the provider's clock forward, e.g. past the 10-minute code lifetime."""
        self.clock_offset += seconds

    def now(self) -> float:
        """The provider's Unix time."""
        return time.time() + self.clock_offset

    def add_routes(self, app: web.Application) -> None:
        """Serve the authorize endpoint (GET shows the page, POST is the user's choice)."""
        app.router.add_get(AUTHORIZE_PATH, self._authorize)
        app.router.add_post(AUTHORIZE_PATH, self._choose)

    # -- browser side ------------------------------------------------------------------

    async def _authorize(self, request: web.Request) -> web.Response:
        query = dict(request.query)
        try:
            redirect_uri = self._checked_redirect(query)
        except _PageError as exc:
            return _page(f"<h1>Something went wrong</h1><p>{html.escape(str(exc))}</p>", 400)
        state = query.get("state", "")
        if query.get("response_type") != "code":
            raise _redirect(redirect_uri, error="unsupported_response_type", state=state)
        if "openid" not in _scopes(query.get("scope")):
            raise _redirect(redirect_uri, error="invalid_scope", state=state)
        if query.get("team") and query["team"] != self.state.team_id:
            raise _redirect(redirect_uri, error="access_denied", state=state)
        chosen = query.get("login_hint") or self.auto_login
        if chosen in self._people():
            raise self._grant(query, redirect_uri, str(chosen))
        return self._consent_page(query, redirect_uri)

    async def _choose(self, request: web.Request) -> web.Response:
        form = {k: str(v) for k, v in (await request.post()).items()}
        try:
            redirect_uri = self._checked_redirect(form)
        except _PageError as exc:
            return _page(f"<h1>Something went wrong</h1><p>{html.escape(str(exc))}</p>", 400)
        if "cancel" in form:
            raise _redirect(redirect_uri, error="access_denied", state=form.get("state", ""))
        if form.get("user_id") not in self._people():
            return _page("<h1>Unknown user</h1>", 400)
        raise self._grant(form, redirect_uri, form["user_id"])

    def _checked_redirect(self, params: dict[str, str]) -> str:
        client = self.clients.get(params.get("client_id", ""))
        if client is None:
            raise _PageError("invalid_client_id")
        redirect_uri = params.get("redirect_uri") or (
            client.redirect_uris[0] if len(client.redirect_uris) == 1 else ""
        )
        if redirect_uri not in client.redirect_uris:
            raise _PageError("bad_redirect_uri")
        return redirect_uri

    def _people(self) -> dict[str, dict[str, Any]]:
        return {
            uid: user
            for uid, user in self.state.users.items()
            if not user.get("is_bot") and not user.get("deleted")
        }

    def _consent_page(self, params: dict[str, str], redirect_uri: str) -> web.Response:
        team = html.escape(self.state.team)
        keep = {**params, "redirect_uri": redirect_uri}
        hidden = "".join(
            f'<input type="hidden" name="{html.escape(k)}" value="{html.escape(v)}">'
            for k, v in keep.items()
            if k in ("client_id", "redirect_uri", "state", "nonce", "scope")
        )
        buttons = "".join(
            f'<button type="submit" name="user_id" value="{html.escape(uid)}">'
            f"Sign in to {team} as {html.escape(str(user['name']))}</button>"
            for uid, user in self._people().items()
        )
        cancel = '<button type="submit" name="cancel" value="1">Cancel</button>'
        form = f'<form method="post" action="{AUTHORIZE_PATH}">{hidden}{buttons}{cancel}</form>'
        return _page(f"<h1>Sign in to {team}</h1>{form}", 200)

    def _grant(self, params: dict[str, str], redirect_uri: str, user_id: str) -> web.HTTPFound:
        code = f"{secrets.randbelow(10**12)}.{secrets.token_hex(16)}"
        self.codes[code] = _Grant(
            client_id=params["client_id"],
            redirect_uri=redirect_uri,
            user_id=user_id,
            nonce=params.get("nonce") or None,
            scopes=_scopes(params.get("scope")),
            issued_at=self.now(),
        )
        return _redirect(redirect_uri, code=code, state=params.get("state", ""))

    # -- Web API side ------------------------------------------------------------------

    def call(
        self, method: str, args: dict[str, Any], basic: tuple[str, str] | None, bearer: str | None
    ) -> dict[str, Any]:
        """Answer one of ``OIDC_METHODS`` (raises ``ApiError``)."""
        if method == "openid.connect.token":
            return self._token(args, basic)
        if not bearer:
            raise ApiError("not_authed")
        grant = self.access_tokens.get(bearer)
        if grant is None:
            raise ApiError("invalid_auth")
        return {"ok": True, "sub": grant.user_id, **self._claims(grant)}

    def _token(self, args: dict[str, Any], basic: tuple[str, str] | None) -> dict[str, Any]:
        client_id, secret = basic or (args.get("client_id"), args.get("client_secret"))
        client = self.clients.get(str(client_id or ""))
        if client is None:
            raise ApiError("invalid_client_id")
        if not hmac.compare_digest(str(secret or ""), client.client_secret):
            raise ApiError("bad_client_secret")
        if (args.get("grant_type") or "authorization_code") != "authorization_code":
            raise ApiError("invalid_grant_type")
        grant = self.codes.get(str(args.get("code") or ""))
        expired = grant is not None and self.now() - grant.issued_at > CODE_TTL_SECONDS
        if grant is None or grant.used or expired or grant.client_id != client.client_id:
            raise ApiError("invalid_code")
        # Slack documents redirect_uri here as "must match ... if one was sent".
        if args.get("redirect_uri") and args["redirect_uri"] != grant.redirect_uri:
            raise ApiError("bad_redirect_uri")
        grant.used = True
        access_token = f"xoxp-{secrets.randbelow(10**12)}-{secrets.token_hex(16)}"
        self.access_tokens[access_token] = grant
        issued = int(self.now())
        claims = {
            "iss": ISSUER,
            "sub": grant.user_id,
            "aud": client.client_id,
            "exp": issued + ID_TOKEN_TTL_SECONDS,
            "iat": issued,
            "auth_time": issued,
            **({"nonce": grant.nonce} if grant.nonce else {}),
            **self._claims(grant),
        }
        return {
            "ok": True,
            "access_token": access_token,
            "token_type": "Bearer",
            "id_token": encode_jwt(claims, client.client_secret),
        }

    def _claims(self, grant: _Grant) -> dict[str, Any]:
        user = self.state.users[grant.user_id]
        profile = user.get("profile", {})
        claims: dict[str, Any] = {
            "https://slack.com/user_id": grant.user_id,
            "https://slack.com/team_id": self.state.team_id,
        }
        if "email" in grant.scopes:
            claims["email"] = profile.get("email") or f"{user['name']}@example.com"
            claims["email_verified"] = True
            claims["date_email_verified"] = int(user.get("updated", 0))
        if "profile" in grant.scopes:
            real_name = str(user.get("real_name") or user["name"])
            given, _, family = real_name.partition(" ")
            picture = profile.get("image_512") or f"https://avatars.example/{grant.user_id}.png"
            claims.update(
                {
                    "name": real_name,
                    "picture": picture,
                    "given_name": profile.get("first_name", given),
                    "family_name": profile.get("last_name", family),
                    "locale": user.get("locale", "en-US"),
                    "https://slack.com/team_name": self.state.team,
                    "https://slack.com/team_domain": self.state.team_domain,
                    "https://slack.com/user_image_512": picture,
                }
            )
        return claims


def _scopes(value: str | None) -> frozenset[str]:
    return frozenset(s for s in _SCOPE_SPLIT.split(value or "") if s)


def _redirect(uri: str, **params: str) -> web.HTTPFound:
    parts = urlsplit(uri)
    query = "&".join(q for q in (parts.query, urlencode(params)) if q)
    return web.HTTPFound(urlunsplit(parts._replace(query=query)))


def _page(body: str, status: int) -> web.Response:
    document = f"<!doctype html><html><head><title>Slack</title></head><body>{body}</body></html>"
    return web.Response(text=document, status=status, content_type="text/html")
