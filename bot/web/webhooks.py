"""Signed webhook triggers: start a run, or deliver an event to a waiting run, over HTTP.

Signing (like Slack's and Stripe's): the sender computes
``HMAC-SHA256(secret, f"{timestamp}.{raw body}")`` and sends::

    X-Signoff-Timestamp: 1718000000          (Unix seconds)
    X-Signoff-Signature: v1=<hex digest>     (several "v1=" values, comma-separated,
                                              are accepted while rotating secrets)

A request older or newer than five minutes is refused, so a captured request cannot be
replayed later; within the window, send an ``Idempotency-Key`` so a retry returns the
same run instead of starting another. The secret is ``SIGNOFF_WEBHOOK_SECRETS[workflow]``
if set, else ``SIGNOFF_WEBHOOK_SECRET``.

Routes:
    ``POST /hooks/{workflow}``: body = the workflow's input; 202 ``{run_id, status, links}``.
    ``POST /hooks/{workflow}/runs/{run_id}/events/{name}``: body = the event's data.

Errors change nothing: 400 (invalid JSON or input, with per-field ``errors``), 401 (bad,
stale or missing signature), 404 (unknown workflow, run or waited-for event), 408 (body not
sent within SIGNOFF_BODY_TIMEOUT), 409 (event already delivered), 413 (body over 1 MiB),
415 (not JSON), 503 (no secret configured).
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import time
from collections.abc import Callable

from aiohttp import web

from bot.logs import REFUSED_LOGGER
from bot.settings import Settings
from bot.web.models import EventAccepted, RunCreated
from bot.web.openapi import Header, Operation, mount_operations
from bot.web.problems import (
    BODY_TIMEOUT,
    MAX_BODY,
    Problem,
    check_length,
    json_not_found,
    json_response,
    parse_json,
    problem_middleware,
    read_body,
    require_json,
)
from bot.web.triggers import check_idempotency_key, start_run
from bot.web.views import run_links
from engine import Engine, WorkflowNotRegistered

__all__ = [
    "SIGNATURE_HEADER",
    "TIMESTAMP_HEADER",
    "TOLERANCE",
    "WEBHOOKS_PREFIX",
    "WebhookHandlers",
    "install_webhooks",
    "sign",
    "verify",
]

log = logging.getLogger("signoff.webhooks")
refused = logging.getLogger(REFUSED_LOGGER + ".webhooks")  # rate-limited: anyone can cause it

WEBHOOKS_PREFIX = "/hooks"

TIMESTAMP_HEADER = "X-Signoff-Timestamp"
SIGNATURE_HEADER = "X-Signoff-Signature"
TOLERANCE = 300  # seconds either side of now: the replay window


def sign(secret: str, timestamp: int | str, body: bytes) -> str:
    """The ``X-Signoff-Signature`` value for ``body`` sent at ``timestamp``."""
    base = str(timestamp).encode() + b"." + body
    return "v1=" + hmac.new(secret.encode(), base, hashlib.sha256).hexdigest()


def verify(
    secret: str,
    timestamp: str | None,
    signature: str | None,
    body: bytes,
    *,
    now: float,
    tolerance: float = TOLERANCE,
) -> str | None:
    """Check a request's signature; None if valid, else why not (for the 401 message)."""
    if not timestamp or not signature:
        return f"missing {TIMESTAMP_HEADER} or {SIGNATURE_HEADER} header"
    try:
        sent = int(timestamp)
    except ValueError:
        return f"{TIMESTAMP_HEADER} must be Unix seconds"
    if abs(now - sent) > tolerance:
        return f"{TIMESTAMP_HEADER} is over {int(tolerance)} seconds off: sign the request anew"
    expected = sign(secret, sent, body).encode()
    # Compare every candidate in constant time, and never stop early on a match, so the
    # time taken says nothing about which part of which signature was right.
    valid = False
    for candidate in signature.split(","):
        valid |= hmac.compare_digest(candidate.strip().encode(), expected)
    return None if valid else "signature does not match"


class WebhookHandlers:
    """The webhook routes' handlers, bound to an engine and settings.

    Args:
        engine: the engine runs are started on.
        settings: where the secrets come from.
        clock: current Unix time (tests use it to move the replay window).
        max_body: largest accepted body in bytes.
    """

    def __init__(
        self,
        engine: Engine,
        settings: Settings,
        *,
        clock: Callable[[], float] = time.time,
        max_body: int = MAX_BODY,
    ) -> None:
        self.engine = engine
        self.settings = settings
        self.clock = clock
        self.max_body = max_body

    async def _authenticated_body(self, request: web.Request, workflow: str) -> bytes:
        """Size, type and signature checks, in that order; the verified raw body."""
        check_length(request, self.max_body)
        require_json(request)
        body = await read_body(request, self.max_body)
        secret = self.settings.webhook_secret_for(workflow)
        if secret is None:
            if not self.settings.webhook_secrets:
                raise Problem(
                    503,
                    "webhooks_disabled",
                    "webhooks are disabled: set SIGNOFF_WEBHOOK_SECRET or SIGNOFF_WEBHOOK_SECRETS",
                )
            raise Problem(404, "unknown_workflow", f"no webhook is configured for {workflow!r}")
        problem = verify(
            secret.get_secret_value(),
            request.headers.get(TIMESTAMP_HEADER),
            request.headers.get(SIGNATURE_HEADER),
            body,
            now=self.clock(),
        )
        if problem is not None:
            refused.warning("refused a webhook for %.80r: %s", workflow, problem)
            raise Problem(401, "bad_signature", problem)
        try:
            self.engine.registry.get(workflow)
        except WorkflowNotRegistered:
            raise Problem(404, "unknown_workflow", f"no workflow named {workflow!r}") from None
        return body

    async def start(self, request: web.Request) -> web.StreamResponse:
        """``POST /hooks/{workflow}``: start a run with the body as its input."""
        workflow = request.match_info["workflow"]
        body = await self._authenticated_body(request, workflow)
        key = check_idempotency_key(request.headers.get("Idempotency-Key"))
        run = await start_run(self.engine, workflow, parse_json(body), idempotency_key=key)
        log.info("webhook started run %s of %s", run.id, workflow, extra={"run_id": run.id})
        created = RunCreated(run_id=run.id, status=run.status, links=run_links(run.id))
        return json_response(created, status=202)

    async def event(self, request: web.Request) -> web.StreamResponse:
        """``POST /hooks/{workflow}/runs/{run_id}/events/{name}``: deliver an event."""
        workflow = request.match_info["workflow"]
        run_id = request.match_info["run_id"]
        name = request.match_info["name"]
        body = await self._authenticated_body(request, workflow)
        data = parse_json(body)
        run = await self.engine.find_run(run_id)
        if run is None or run.workflow != workflow:
            # A run of another workflow is "not found" here: a sender holding one
            # workflow's secret must not reach other workflows' runs.
            raise Problem(404, "not_found", f"workflow {workflow!r} has no run {run_id!r}")
        outcome = await self.engine.send_event(run_id, name, data, actor=f"webhook:{workflow}")
        log.info("webhook delivered event %s to run %s", name, run_id, extra={"run_id": run_id})
        accepted = EventAccepted(run_id=run_id, event=name, status=outcome.status)
        return json_response(accepted, status=202)


def install_webhooks(app: web.Application, engine: Engine, settings: Settings) -> None:
    """Mount the webhook routes at ``/hooks`` on ``app``."""
    handlers = WebhookHandlers(engine, settings)
    signature = (
        Header(TIMESTAMP_HEADER, "Unix seconds when the request was signed", required=True),
        Header(SIGNATURE_HEADER, "v1=<hex HMAC-SHA256 of timestamp.body>", required=True),
    )
    errors = (400, 401, 404, 409, 413, 415, 503)
    # Invalid input is a 400 here, as documented above; the REST API answers 422.
    hooks = web.Application(middlewares=[problem_middleware(invalid_status=400)])
    hooks[BODY_TIMEOUT] = settings.body_timeout
    mount_operations(
        app,
        WEBHOOKS_PREFIX,
        hooks,
        [
            Operation(
                "POST",
                "/hooks/{workflow}",
                "webhookStartRun",
                "Start a run from a signed webhook; the body is the workflow's input",
                handlers.start,
                RunCreated,
                status=202,
                body={"description": "The workflow's input (see its input_schema)"},
                headers=(*signature, Header("Idempotency-Key", "Same key, same run")),
                errors=(*errors, 422),
                secured=False,
                tag="webhooks",
            ),
            Operation(
                "POST",
                "/hooks/{workflow}/runs/{run_id}/events/{name}",
                "webhookSendEvent",
                "Deliver a named event to a run waiting for it; the body is the event's data",
                handlers.event,
                EventAccepted,
                status=202,
                body={"description": "The event's data (see the step's events schemas)"},
                headers=signature,
                errors=errors,
                secured=False,
                tag="webhooks",
            ),
        ],
    )
    if json_not_found not in app.middlewares:
        app.middlewares.append(json_not_found)
