"""The Signoff HTTP service: ``create_web_app`` (aiohttp routes) and ``serve`` (the process).

Routes come from ``ROUTE_INSTALLERS``, each ``(app, engine, settings) -> None``. To add
routes (an API, webhooks), write an installer in your module and add it to that list here.
The Slack adapter, when configured, is built once by ``create_web_app`` and available to
installers as ``app[SLACK_BOT]``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import Callable

import aiohttp
from aiohttp import web
from slack_bolt.adapter.socket_mode.async_handler import AsyncSocketModeHandler

from bot.loader import check_slack_renderable, load_workflows
from bot.settings import Settings
from bot.slack.app import SLACK_BOT, SlackBot, attach_slack, make_client
from bot.slack.route import SLACK_EVENTS_PATH, install_slack_routes
from bot.web.api import install_api
from bot.web.console import announce_console, install_console
from bot.web.guard import ConnectionGuard, GuardedSite, Limits
from bot.web.metrics import install_metrics
from bot.web.problems import BODY_TIMEOUT
from bot.web.requests import install_requests
from bot.web.webhooks import install_webhooks
from engine import Engine, open_store

__all__ = [
    "ENGINE",
    "ROUTE_INSTALLERS",
    "SETTINGS",
    "SLACK_BOT",
    "SLACK_EVENTS_PATH",
    "RouteInstaller",
    "create_web_app",
    "install_slack_routes",
    "open_engine",
    "run_service",
    "serve",
]

log = logging.getLogger("signoff.server")

ENGINE = web.AppKey("signoff.engine", Engine)
SETTINGS = web.AppKey("signoff.settings", Settings)

RouteInstaller = Callable[[web.Application, Engine, Settings], None]


ROUTE_INSTALLERS: list[RouteInstaller] = [
    # install_metrics serves /healthz (database check, worker id, slack flag) and /metrics.
    install_metrics,
    install_slack_routes,
    install_webhooks,
    install_api,
    install_console,  # the web console at /
    install_requests,  # /api/requests: ask from anywhere (bot/web/requests.py)
]


def create_web_app(
    engine: Engine, settings: Settings, *, slack: SlackBot | None = None
) -> web.Application:
    """The aiohttp application serving Signoff for ``engine``.

    When Slack is configured (``settings.slack_enabled``) and no ``slack`` adapter is given,
    one is attached here (see ``attach_slack``): create the web app *before* the engine
    starts, so the notifier misses no outbox message.
    """
    app = web.Application()
    app[ENGINE] = engine
    app[SETTINGS] = settings
    app[BODY_TIMEOUT] = settings.body_timeout
    if slack is None and settings.slack_enabled:
        slack = attach_slack(engine, settings)
    if slack is not None:
        app[SLACK_BOT] = slack
        feedback = slack.deps.feedback
        if feedback is not None:

            async def close_feedback(_: web.Application) -> None:
                await feedback.close()

            app.on_cleanup.append(close_feedback)
    for install in ROUTE_INSTALLERS:
        install(app, engine, settings)
    return app


def open_engine(settings: Settings) -> Engine:
    """An engine (not started) on ``settings.database_url`` with the configured workflows."""
    engine = Engine(
        open_store(settings.database_url),
        lease=settings.lease_seconds,
        poll_interval=settings.poll_interval,
        # Live views (SSE streams) and long polls see other instances' commits within a
        # quarter second: one read per interval serves all of them (engine.watch).
        watch_interval=min(0.25, settings.poll_interval),
    )
    for workflow in load_workflows(settings.workflows):
        engine.register(workflow)
        if settings.slack_enabled:
            check_slack_renderable(workflow)
    return engine


async def serve(settings: Settings) -> None:
    """Run Signoff until SIGTERM or SIGINT, then shut down gracefully (see ``run_service``)."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        await run_service(settings, stop=stop)
    finally:
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(sig)


async def run_service(settings: Settings, *, stop: asyncio.Event) -> None:
    """Run Signoff until ``stop`` is set.

    Opens the engine (recovering runs left by a previous process), serves HTTP on
    ``settings.host:port`` and, with ``SLACK_APP_TOKEN``, connects Socket Mode. When
    stopped it stops taking requests, then lets running steps finish for
    ``shutdown_grace`` seconds; what is still running then is resumed by the next process.
    Connections are served under ``bot.web.guard``'s deadlines and connection cap.
    """
    engine = open_engine(settings)
    # One HTTP session for every Slack Web API call of this process: connections are
    # reused instead of opened (and TLS-negotiated) per call.
    session = aiohttp.ClientSession() if settings.slack_enabled else None
    slack = None
    if session is not None:
        slack = attach_slack(engine, settings, client=make_client(settings, session=session))
    web_app = create_web_app(engine, settings, slack=slack)
    runner = web.AppRunner(web_app, handle_signals=False)
    socket_mode: AsyncSocketModeHandler | None = None
    await engine.start_background()
    try:
        await runner.setup()
        limits = Limits.from_settings(settings)
        site = GuardedSite(
            runner, settings.host, settings.port, guard=ConnectionGuard(limits),
            reuse_port=settings.worker_index is not None,  # signoff serve --workers
        )  # fmt: skip
        await site.start()
        for address in runner.addresses:
            log.info("Signoff listening on http://%s:%s", address[0], address[1])
        log.info(
            "at most %d connections; timeouts: headers %gs, body %gs, idle keep-alive %gs",
            limits.max_connections,
            limits.header_timeout,
            limits.body_timeout,
            limits.keepalive_timeout,
        )
        announce_console(web_app, "http://{}:{}".format(*runner.addresses[0][:2]))
        slack = web_app.get(SLACK_BOT)
        # With several workers, only worker 0 owns the Socket Mode connection.
        if slack is not None and settings.socket_mode and not settings.worker_index:
            assert settings.slack_app_token is not None  # socket_mode implies it
            socket_mode = AsyncSocketModeHandler(
                slack.app, app_token=settings.slack_app_token.get_secret_value()
            )
            await socket_mode.connect_async()  # type: ignore[no-untyped-call]
            log.info("Slack Socket Mode connected")
        await stop.wait()
        log.info("shutting down")
    finally:
        if socket_mode is not None:
            with contextlib.suppress(Exception):
                await socket_mode.close_async()  # type: ignore[no-untyped-call]
        await runner.cleanup()
        await engine.close(grace=settings.shutdown_grace)
        if session is not None:
            await session.close()
        log.info("stopped")
