"""Build the bolt ``AsyncApp`` and attach Slack to an engine.

``attach_slack(engine, settings)`` is the whole Slack adapter in one call: a Web API client
pointed at ``SLACK_API_URL`` with retry handlers, the user-group authorizer (installed as
the engine's ``authorizer`` unless it has one), the reference signer, the bolt app with its
listeners and slash command, the notifier and the App Home tab subscribed to the engine's
outbox, and the
undelivered-request notice (plus a start-up warning when requests may have nowhere to go).
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterator
from dataclasses import dataclass

import aiohttp
from aiohttp import web
from slack_bolt.app.async_app import AsyncApp
from slack_sdk.http_retry.async_handler import AsyncRetryHandler
from slack_sdk.http_retry.builtin_async_handlers import (
    AsyncConnectionErrorRetryHandler,
    AsyncRateLimitErrorRetryHandler,
    AsyncServerErrorRetryHandler,
)
from slack_sdk.web.async_client import AsyncWebClient

from bot.settings import Settings
from bot.slack.acks import AckFirst
from bot.slack.authorization import UsergroupAuthorizer
from bot.slack.bindings import Bindings
from bot.slack.commands import register_commands
from bot.slack.delivery import parse_policy
from bot.slack.deps import Deps
from bot.slack.digest import Digest
from bot.slack.feedback import Feedback
from bot.slack.home import HomeTab
from bot.slack.listeners import register_listeners
from bot.slack.notifier import Notifier
from bot.slack.pacing import paced_client, pacer_from_settings
from bot.slack.refs import RefSigner
from bot.slack.snooze import SnoozeReminder
from bot.slack.undelivered import UndeliveredNotice, warn_without_default_channel
from engine import Engine

__all__ = [
    "SLACK_BOT",
    "SlackBot",
    "attach_slack",
    "build_slack_app",
    "make_client",
    "reference_secret",
]

log = logging.getLogger("signoff.bot")

# AsyncApp reads these while it is built: the first two, both set, silently switch it into
# OAuth (multi-workspace) mode, ignoring our token (slack-facts §3.4); the bot token is
# only read to warn that the client's token wins.
_BOLT_ENV = ("SLACK_CLIENT_ID", "SLACK_CLIENT_SECRET", "SLACK_BOT_TOKEN")
BOLT_APP_NAME = "slack_bolt.signoff"


@dataclass(frozen=True, slots=True)
class SlackBot:
    """The Slack adapter attached to one engine."""

    app: AsyncApp
    client: AsyncWebClient
    deps: Deps
    notifier: Notifier
    acks: AckFirst  # Slack requests waiting for their answer; the notifier lets them first


SLACK_BOT = web.AppKey("signoff.slack", SlackBot)
"""Where ``create_web_app`` keeps the Slack adapter, for route installers to find it."""


def make_client(
    settings: Settings, *, session: aiohttp.ClientSession | None = None
) -> AsyncWebClient:
    """A Web API client for the bot token at ``settings.slack_api_url``.

    Pass a long-lived ``session`` (the service does) so calls reuse connections: without
    one, slack-sdk opens a new connection, and against Slack a new TLS handshake, per call.

    Each retry handler makes up to ``settings.slack_retries`` extra attempts: 429s after
    ``Retry-After``, 500/503s and dropped connections with backoff. What still fails is
    raised to the caller (the notifier leaves it to the outbox to retry later).
    """
    if settings.slack_bot_token is None:
        raise ValueError("SLACK_BOT_TOKEN is not set")
    retries = settings.slack_retries
    handlers: list[AsyncRetryHandler] = [
        AsyncConnectionErrorRetryHandler(max_retry_count=retries),
        AsyncRateLimitErrorRetryHandler(max_retry_count=retries),
        AsyncServerErrorRetryHandler(max_retry_count=retries),
    ]
    return AsyncWebClient(
        token=settings.slack_bot_token.get_secret_value(),
        base_url=settings.slack_api_url,
        timeout=max(1, round(settings.slack_timeout)),
        retry_handlers=handlers,
        session=session,
    )


@contextlib.contextmanager
def _without_bolt_env() -> Iterator[None]:
    saved = {name: os.environ.pop(name) for name in _BOLT_ENV if name in os.environ}
    try:
        yield
    finally:
        os.environ.update(saved)


def build_slack_app(deps: Deps, client: AsyncWebClient) -> AsyncApp:
    """The bolt app with Signoff's listeners and slash command (single workspace).

    Token and signing secret are passed explicitly and the OAuth variables are hidden while
    bolt reads its environment defaults, so the environment cannot change the mode.
    """
    settings = deps.settings
    signing = settings.slack_signing_secret
    secret = signing.get_secret_value() if signing else ""
    # Building the app is synchronous, so no other task can observe the hidden variables.
    with _without_bolt_env():
        app = AsyncApp(
            # Bolt names a logger after the app and resets its level to the root's on every
            # request: keep it in bolt's namespace, away from our "signoff" loggers.
            name=BOLT_APP_NAME,
            client=client,
            signing_secret=secret,  # unused in Socket Mode, whose envelopes are not signed
            # The HTTP response goes out as soon as a listener returns, not at bolt's next
            # 10 ms poll for ack(): listeners record the answer, ack, then hand the rest
            # (ephemeral feedback, modals) to after_ack.
            process_before_response=True,
        )
    register_listeners(app, deps)
    register_commands(app, deps)
    return app


def reference_secret(settings: Settings) -> str:
    """The secret the button references are signed with: the signing secret, or in
    Socket Mode without one, the bot token."""
    for secret in (settings.slack_signing_secret, settings.slack_bot_token):
        if secret is not None and secret.get_secret_value():
            return secret.get_secret_value()
    raise ValueError("no Slack secret to sign references with")


def attach_slack(
    engine: Engine, settings: Settings, *, client: AsyncWebClient | None = None
) -> SlackBot:
    """Wire Slack to ``engine``: client, authorizer, bolt app, notifier (subscribed).

    Call it before the engine starts, so outbox messages committed before a restart are
    delivered to the notifier too.
    """
    client = client or make_client(settings)
    authorizer = UsergroupAuthorizer(client, ttl=settings.usergroup_cache_seconds)
    if engine.authorizer is None:
        engine.authorizer = authorizer
    signer = RefSigner(reference_secret(settings))
    bindings = Bindings(engine)
    home = HomeTab(engine, client, signer, settings, authorizer)
    pacer = pacer_from_settings(settings)  # the notifier waits its turn; listeners do not
    # Without pacing, the notifier's chat.update follows the click at once: no feedback.
    feedback = Feedback(engine, signer, proxy=client.proxy) if pacer is not None else None
    deps = Deps(
        engine=engine,
        settings=settings,
        signer=signer,
        authorizer=authorizer,
        bindings=bindings,
        home=home,
        feedback=feedback,
    )
    app = build_slack_app(deps, client)
    outbound = paced_client(client, pacer) if pacer is not None else client
    acks = AckFirst()
    engine.yield_to(acks.turn)  # runs answered by a click go on once the clicks are acked
    notifier = Notifier(
        engine,
        outbound,
        signer,
        default_channel=settings.default_channel,
        bindings=bindings,
        digest=Digest(engine, outbound, home),
        delivery=parse_policy(settings.delivery),
        acks=acks,
        updates_first=pacer is None,
    )
    notifier.subscribe()
    home.subscribe()
    SnoozeReminder(engine, outbound, signer).subscribe()
    UndeliveredNotice(engine, outbound, settings.admins).subscribe()
    warn_without_default_channel(engine, settings.default_channel)
    return SlackBot(app=app, client=client, deps=deps, notifier=notifier, acks=acks)
