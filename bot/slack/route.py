"""``POST /slack/events``: Slack's HTTP requests, checked, then handed to bolt.

Nothing from the network reaches a parser before it is known to come from Slack. In order:

1. **Size and pace**: a body over 1 MiB is refused (413; Slack's payloads are a few KB),
   and the whole body must arrive within ``SIGNOFF_BODY_TIMEOUT`` (408).
2. **Signature** over the raw bytes and the 5-minute replay window, as slack-sdk's
   ``SignatureVerifier`` checks it (slack-facts §1.2; ``bot.slack.signature``): anything
   else is a 401, before any parsing.
3. **Shape** (``bot.slack.inbound``): a verified body bolt could not handle is a 400; a
   payload of a type Signoff has no listener for is a 404, as bolt would answer.
4. **Bolt** dispatches the payload parsed in 3 (parsing a click's body is the costliest
   step of its ack, so it is done once): bolt takes a parsed body only in what it calls
   ``socket_mode``, where it skips its own signature check, which step 2 made on the raw
   bytes. An exception escaping bolt is a bug, since the input was checked: it is logged
   at ERROR with its traceback and answered 400, never 500, as is a listener's failure
   that bolt turned into a 500.

Each refusal is one log line on the rate-limited ``signoff.refused`` logger. Socket Mode
does not come through here: Slack's envelopes arrive over the websocket, unsigned.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web
from slack_bolt.adapter.aiohttp import to_aiohttp_response
from slack_bolt.app.async_app import AsyncApp
from slack_bolt.request.async_request import AsyncBoltRequest

from bot.logs import REFUSED_LOGGER
from bot.settings import Settings
from bot.slack.acks import AckFirst
from bot.slack.app import SLACK_BOT
from bot.slack.inbound import InvalidPayload, UnhandledPayload, check_payload, parse_payload
from bot.slack.signature import SlackSignature
from bot.web.problems import MAX_BODY, Problem, read_body
from engine import Engine

__all__ = ["MAX_SLACK_BODY", "SLACK_EVENTS_PATH", "install_slack_routes", "slack_events_handler"]

log = logging.getLogger("signoff.bot.route")
refused = logging.getLogger(REFUSED_LOGGER + ".slack")

SLACK_EVENTS_PATH = "/slack/events"
MAX_SLACK_BODY = MAX_BODY  # 1 MiB; a modal submission with every input filled is ~10 KB
REPLAY_WINDOW = 300  # seconds, as SignatureVerifier checks
_TIMESTAMP = "X-Slack-Request-Timestamp"
_SIGNATURE = "X-Slack-Signature"


def _json(status: int, error: str) -> web.Response:
    # Bolt's own error body ({"error": "invalid request"}), so callers see one format.
    return web.json_response({"error": error}, status=status)


def _unverified(request: web.Request, now: float) -> str | None:
    """Why the request's signature headers cannot be Slack's (None: they may be), checked
    before the verifier so that its ``int()``, ``encode("ascii")`` and ``compare_digest``
    never see what they reject with an exception."""
    timestamp = request.headers.get(_TIMESTAMP, "")
    signature = request.headers.get(_SIGNATURE, "")
    if not timestamp or not signature:
        return "no signature headers"
    if not (timestamp.isascii() and timestamp.isdigit() and len(timestamp) <= 12):
        return "the timestamp is not Unix seconds"
    if abs(now - int(timestamp)) > REPLAY_WINDOW:
        return "the timestamp is outside the 5-minute window"
    if not signature.isascii():
        return "the signature does not match"
    return None


def slack_events_handler(
    bolt: AsyncApp, settings: Settings, acks: AckFirst | None = None
) -> Callable[[web.Request], Awaitable[web.Response]]:
    """The aiohttp handler checking one Slack request and dispatching it to ``bolt``;
    ``acks`` counts the requests waiting for their answer (``bot.slack.acks``)."""
    assert settings.slack_signing_secret is not None  # HTTP mode requires it (Settings)
    # Built now, so an unusable secret stops start-up instead of failing every request.
    verifier = SlackSignature(settings.slack_signing_secret.get_secret_value())

    async def slack_events(request: web.Request) -> web.Response:
        if acks is None:
            return await handle(request)
        with acks.answering():
            response = await handle(request)
            # Sent here, not after the handler returns: until it is on the wire, the
            # notifier's work waits (bot.slack.acks). aiohttp then finds it sent, or
            # finds the client gone, as it would have (and handles that quietly).
            with contextlib.suppress(ConnectionError):
                await response.prepare(request)
                await response.write_eof()
        return response

    async def handle(request: web.Request) -> web.Response:
        try:
            body = await read_body(request, MAX_SLACK_BODY, timeout=settings.body_timeout)
        except Problem as problem:
            return problem.response()
        now = time.time()
        reason = _unverified(request, now)
        if reason is None and not verifier.matches(
            body, request.headers[_TIMESTAMP], request.headers[_SIGNATURE]
        ):
            reason = "the signature does not match"
        text = ""
        if reason is None:
            try:
                text = body.decode("utf-8")  # once: the parser takes this text
            except UnicodeDecodeError:
                reason = "the body is not UTF-8"
        if reason is not None:
            refused.warning("refused an unsigned Slack request: %s", reason)
            return _json(401, "invalid request")
        # Bolt reads the Content-Type as sent, up to any ';' (not lower-cased): so do we.
        content_type = request.headers.get("Content-Type", "").split(";")[0] or None
        try:
            payload = parse_payload(text, content_type)
            kind = check_payload(payload)
        except UnhandledPayload as exc:
            refused.info("ignored a signed Slack request: %s", exc)
            return _json(404, "unhandled request")  # what bolt answers, without its warning
        except InvalidPayload as exc:
            refused.warning("refused a signed Slack request: %s", exc)
            return _json(400, "invalid payload")
        return await _dispatch(bolt, request, payload, kind)

    return slack_events


async def _dispatch(
    bolt: AsyncApp, request: web.Request, payload: dict[str, Any], kind: str
) -> web.Response:
    try:
        bolt_request = AsyncBoltRequest(
            body=payload,
            query=request.query_string,
            headers={k.lower(): v for k, v in request.headers.items()},
            mode="socket_mode",  # a parsed body, verified above (see the module docstring)
        )
        response = await bolt.async_dispatch(bolt_request)
    except Exception:
        # The payload's shape was checked, so this is a bug in our code or bolt's: keep its
        # traceback, but answer like any request Signoff could not handle.
        log.error("handling a Slack %s request failed", kind, exc_info=True)
        return _json(400, "request could not be handled")
    if response.status >= 500:
        # A listener raised and bolt logged it; Slack shows the person an error either way.
        log.error("a Slack %s listener failed (bolt answered %d)", kind, response.status)
        return _json(400, "request could not be handled")
    return await to_aiohttp_response(response)


def install_slack_routes(app: web.Application, engine: Engine, settings: Settings) -> None:
    """``POST /slack/events``: events, interactivity and slash commands, signed by Slack.

    Not mounted in Socket Mode (Slack then delivers over the websocket) or without Slack
    credentials.
    """
    if SLACK_BOT not in app or settings.socket_mode:
        return
    slack = app[SLACK_BOT]
    app.router.add_post(SLACK_EVENTS_PATH, slack_events_handler(slack.app, settings, slack.acks))
