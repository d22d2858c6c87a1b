"""Who is using the console: encrypted session cookies, CSRF tokens, operator sign-in.

* Sessions are aiohttp-session's ``EncryptedCookieStorage`` (Fernet: encrypted and signed)
  keyed by ``SIGNOFF_SESSION_SECRET``, or by a random key made once and kept in
  ``SIGNOFF_SESSION_SECRET_FILE``. Cookies are HttpOnly, SameSite=Lax, and Secure when
  ``SIGNOFF_PUBLIC_URL`` is https; they expire after ``SIGNOFF_SESSION_HOURS``.
* Every session, even before sign-in, carries a CSRF token; every form posts it back and
  every POST without the right one is refused (403) before anything else happens.
* Operators (no Slack sign-in configured) sign in with a one-time link that
  ``signoff serve`` prints (random, single use, expiring), or with ``SIGNOFF_API_TOKEN``.
  They act as ``SIGNOFF_OPERATOR_NAME`` and may cancel any run.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import os
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from aiohttp import web
from aiohttp.typedefs import Handler
from aiohttp_session import Session
from aiohttp_session.cookie_storage import EncryptedCookieStorage

from bot.settings import Settings

__all__ = [
    "COOKIE_NAME",
    "CSRF_FIELD",
    "Identity",
    "OperatorLinks",
    "check_csrf",
    "csrf_token",
    "current_identity",
    "get_session",
    "is_admin",
    "session_key",
    "session_storage",
    "sign_in",
    "sign_out",
    "with_session",
]

log = logging.getLogger("signoff.console")

COOKIE_NAME = "signoff_session"
CSRF_FIELD = "csrf"
_USER, _NAME, _KIND, _CSRF = "user", "name", "kind", "csrf"


@dataclass(frozen=True, slots=True)
class Identity:
    """The signed-in person: the actor the engine sees, and how to show them."""

    user: str  # a Slack user id, or the operator name
    name: str
    kind: Literal["slack", "operator"]


def is_admin(identity: Identity, settings: Settings) -> bool:
    """Admins (``SIGNOFF_ADMINS``) and operators may cancel any run."""
    return identity.kind == "operator" or identity.user in settings.admins


def session_key(settings: Settings) -> bytes:
    """The 32-byte cookie key: from ``SIGNOFF_SESSION_SECRET``, else the key file.

    The file is created (mode 0600) with a random key when missing, so sessions survive
    restarts; several instances behind one address must share the setting instead.
    """
    if settings.session_secret is not None:
        return hashlib.sha256(settings.session_secret.get_secret_value().encode()).digest()
    path = Path(settings.session_secret_file)
    try:
        text = path.read_text().strip()
    except FileNotFoundError:
        text = secrets.token_hex(32)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as out:
            out.write(text + "\n")
        log.info("made a console session key in %s", path)
    return hashlib.sha256(text.encode()).digest()


def session_storage(settings: Settings) -> EncryptedCookieStorage:
    """The cookie storage for the console's sessions."""
    secure = bool(settings.public_url and settings.public_url.startswith("https://"))
    return EncryptedCookieStorage(
        session_key(settings),
        cookie_name=COOKIE_NAME,
        max_age=int(settings.session_hours * 3600),
        httponly=True,
        samesite="Lax",
        secure=secure,
    )


_SESSION = web.RequestKey("signoff.console.session", Session)


def with_session(storage_of: Callable[[], EncryptedCookieStorage], handler: Handler) -> Handler:
    """``handler`` with the console session loaded first and saved (if changed) after.

    ``storage_of`` is called per request (cache it): the key is read, or made, on the
    first console request, not when the app is built.

    Only the console's routes carry sessions: the API, webhooks and Slack routes never
    read or set the cookie. (aiohttp-session's own middleware would do this for every
    route, and stores under plain string keys, which aiohttp 3.14 warns about.)
    """

    async def handle(request: web.Request) -> web.StreamResponse:
        storage = storage_of()
        session = await storage.load_session(request)
        request[_SESSION] = session
        try:
            response = await handler(request)
        except web.HTTPException as exc:  # redirects carry cookies too
            if session._changed:
                await storage.save_session(request, exc, session)
            raise
        if isinstance(response, web.Response) and not response.prepared and session._changed:
            await storage.save_session(request, response, session)
        return response

    return handle


async def get_session(request: web.Request) -> Session:
    """The console session of this request (loaded by ``with_session``)."""
    return request[_SESSION]


def csrf_token(session: Session) -> str:
    """This session's CSRF token (made on first use)."""
    token = session.get(_CSRF)
    if not isinstance(token, str):
        token = secrets.token_urlsafe(32)
        session[_CSRF] = token
    return token


async def check_csrf(request: web.Request) -> None:
    """Raise 403 unless the posted form carries this session's CSRF token."""
    session = await get_session(request)
    expected = session.get(_CSRF)
    given = (await request.post()).get(CSRF_FIELD)
    if (
        not isinstance(expected, str)
        or not isinstance(given, str)
        or not hmac.compare_digest(given.encode(), expected.encode())
    ):
        raise web.HTTPForbidden(text="missing or wrong CSRF token: reload the page and try again")


async def current_identity(request: web.Request) -> Identity | None:
    """The signed-in person, or None."""
    session = await get_session(request)
    user, name, kind = session.get(_USER), session.get(_NAME), session.get(_KIND)
    if isinstance(user, str) and isinstance(name, str) and kind in ("slack", "operator"):
        return Identity(user=user, name=name, kind=kind)
    return None


async def sign_in(request: web.Request, identity: Identity) -> None:
    """Start a fresh session for ``identity`` (a new cookie and a new CSRF token)."""
    # A new session's content and a new CSRF token (no fixation of an earlier one).
    session = await get_session(request)
    session.clear()
    session[_USER], session[_NAME], session[_KIND] = identity.user, identity.name, identity.kind
    csrf_token(session)
    log.info("console sign-in: %s (%s)", identity.user, identity.kind)


async def sign_out(request: web.Request) -> None:
    """End the session (the cookie is cleared)."""
    session = await get_session(request)
    session.invalidate()


class OperatorLinks:
    """One-time sign-in links: random tokens, each valid once and for a limited time.

    Only a hash of each token is kept, in this process's memory: a link works on the
    instance that printed it, until it is used, it expires, or the process stops.
    """

    def __init__(self, ttl: float, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.ttl = ttl
        self.clock = clock
        self._valid: dict[str, float] = {}

    @staticmethod
    def _digest(token: str) -> str:
        return hashlib.sha256(token.encode()).hexdigest()

    def issue(self) -> str:
        """A new token, valid for ``ttl`` seconds."""
        token = secrets.token_urlsafe(32)
        self._valid[self._digest(token)] = self.clock() + self.ttl
        return token

    def redeem(self, token: str) -> bool:
        """True (once) for an issued, unexpired token; it is spent either way."""
        expires = self._valid.pop(self._digest(token), None)
        return expires is not None and self.clock() < expires
