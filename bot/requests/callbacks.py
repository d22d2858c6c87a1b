"""Callbacks: when a request is decided, expired or cancelled, POST it to its callback_url.

Delivered by the engine's outbox (topic ``run.finished``, the last message of a request's
run), so at least once, after the decision committed, retried with backoff (1 s doubling
to 5 min) while the receiver fails, and never able to block or change the decision.
Signed per Standard Webhooks (``webhook-id``, ``webhook-timestamp``,
``webhook-signature``) with ``SIGNOFF_CALLBACK_SECRET``. The delivery state (attempts,
last error, delivered at) is kept on the request's interrupt (``refs.callback``), so the
API shows it on every instance; ``signoff_request_callbacks_total{outcome}`` counts
attempts in /metrics.
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime

import aiohttp
from aiohttp import web
from prometheus_client import CollectorRegistry, Counter
from standardwebhooks import Webhook

from bot.requests.service import CALLBACK_REF, RequestService
from bot.requests.workflow import INTERRUPT_ID, REQUEST_WORKFLOW
from bot.settings import Settings
from bot.web.metrics import METRICS
from engine import InterruptNotFound, OutboxMessage, RunNotFound

__all__ = ["SUBSCRIPTION", "CallbackFailed", "CallbackSender", "install_callbacks"]

log = logging.getLogger("signoff.callbacks")

SUBSCRIPTION = "signoff.request.callbacks"
USER_AGENT = "Signoff-Callbacks/1"


class CallbackFailed(Exception):
    """The receiver did not answer 2xx; the outbox retries later."""


class CallbackSender:
    """Outbox handler posting finished requests to their callback URLs."""

    def __init__(
        self,
        service: RequestService,
        *,
        secret: str | None,
        timeout: float = 10.0,
        registry: CollectorRegistry | None = None,
    ) -> None:
        self.service = service
        self.webhook = Webhook(secret) if secret else None
        self.timeout = timeout
        self.session: aiohttp.ClientSession | None = None
        self.attempts = Counter(
            "signoff_request_callbacks",
            "Callback delivery attempts by outcome (delivered, failed)",
            ["outcome"],
            registry=registry,
        )

    async def close(self) -> None:
        """Close the HTTP session."""
        if self.session is not None:
            await self.session.close()
            self.session = None

    async def on_finished(self, message: OutboxMessage) -> None:
        """Outbox handler (``run.finished``): deliver the request's callback once."""
        engine = self.service.engine
        run = await engine.find_run(message.run_id)
        if run is None or run.workflow != REQUEST_WORKFLOW:
            return
        view = await self.service.get(run.id)
        if view.callback is None or view.callback.state == "delivered":
            return
        if self.webhook is None:
            log.warning("request %s has a callback but no secret is configured", run.id)
            return
        body = json.dumps(
            {"type": f"request.{view.status.value}", "request": view.model_dump(mode="json")}
        )
        now = datetime.now(UTC)
        headers = {
            "Content-Type": "application/json",
            "User-Agent": USER_AGENT,
            "webhook-id": f"req_{run.id}",
            "webhook-timestamp": str(int(now.timestamp())),
            "webhook-signature": self.webhook.sign(f"req_{run.id}", now, body),
        }
        error = await self._post(view.callback.url, body, headers)
        state: dict[str, object] = {"attempts": message.attempt}
        if error is None:
            state.update(state="delivered", delivered_at=now.isoformat(), last_error=None)
        else:
            state.update(state="retrying", last_error=error)
        self.attempts.labels("delivered" if error is None else "failed").inc()
        try:
            await engine.set_interrupt_ref(run.id, INTERRUPT_ID, CALLBACK_REF, state)
        except (InterruptNotFound, RunNotFound):
            pass  # cancelled before it was ever asked: nothing to keep the state on
        if error is not None:
            raise CallbackFailed(error)
        log.info("callback of request %s delivered", run.id, extra={"run_id": run.id})

    async def _post(self, url: str, body: str, headers: dict[str, str]) -> str | None:
        if self.session is None:
            self.session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=self.timeout))
        try:
            async with self.session.post(
                url, data=body.encode(), headers=headers, allow_redirects=False
            ) as response:
                await response.read()
                if 200 <= response.status < 300:
                    return None
                return f"HTTP {response.status}"
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            return f"{type(exc).__name__}: {exc}"[:300]


def install_callbacks(app: web.Application, service: RequestService, settings: Settings) -> None:
    """Subscribe the callback sender to the engine's outbox; close it with the app."""
    secret = settings.callback_secret.get_secret_value() if settings.callback_secret else None
    metrics = app.get(METRICS)
    sender = CallbackSender(
        service,
        secret=secret,
        timeout=settings.callback_timeout,
        registry=metrics.registry if metrics is not None else CollectorRegistry(),
    )
    try:
        service.engine.subscribe(sender.on_finished, topics=["run.finished"], name=SUBSCRIPTION)
    except ValueError:
        log.debug("engine already has a %s subscription", SUBSCRIPTION)

    async def close(_: web.Application) -> None:
        await sender.close()

    app.on_cleanup.append(close)
