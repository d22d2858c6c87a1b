"""The request API under ``/api/requests``: ask people from anywhere (docs/requests.md).

    ``POST /api/requests``               create (``Idempotency-Key`` honoured); 201
    ``GET  /api/requests``               list, newest first (``?status=&limit=&offset=``)
    ``GET  /api/requests/{id}``          status, answer, voters, receipt (``?wait=`` <= 60 s)
    ``POST /api/requests/{id}/cancel``   cancel a pending request (409 once final)
    ``GET  /api/requests/{id}/stream``   the request's history as Server-Sent Events

A sub-app of its own at ``/api/requests`` with the same middlewares as ``/api``: JSON
errors, then the bearer token, whose name is recorded as the request's ``client``.
"""

from __future__ import annotations

import logging

from aiohttp import web
from pydantic import ValidationError

from bot.client.models import (
    CancelRequestBody,
    CreateRequest,
    RequestList,
    RequestsQuery,
    RequestView,
    WaitQuery,
)
from bot.requests.callbacks import install_callbacks
from bot.requests.service import RequestService
from bot.requests.workflow import ensure_registered
from bot.settings import Settings
from bot.web.api import parse_query
from bot.web.auth import bearer_token_middleware, client_name
from bot.web.openapi import OPERATIONS, Header, Operation, install_openapi
from bot.web.problems import Problem, json_response, problem_middleware, read_json
from bot.web.sse import CLOSING, install_streams, stream_events
from bot.web.triggers import check_idempotency_key
from engine import Engine, field_errors

__all__ = ["REQUESTS_PREFIX", "REQUEST_BODY_MAX", "RequestHandlers", "install_requests"]

log = logging.getLogger("signoff.requests")

REQUESTS_PREFIX = "/api/requests"
REQUEST_BODY_MAX = 256 * 1024  # a request is a title, some fields and a schema


class RequestHandlers:
    """The handlers of the request API, bound to a ``RequestService``."""

    def __init__(self, service: RequestService) -> None:
        self.service = service

    async def create(self, request: web.Request) -> web.StreamResponse:
        """Create a request (201); the same ``Idempotency-Key`` and body return it again."""
        data = await read_json(request, REQUEST_BODY_MAX)
        try:
            body = CreateRequest.model_validate(data)
        except ValidationError as exc:
            errors = field_errors(exc)
            raise Problem(422, "invalid_body", "invalid request body", errors=errors) from None
        key = check_idempotency_key(request.headers.get("Idempotency-Key"))
        client = client_name(request)
        view = await self.service.create(body, client=client, idempotency_key=key)
        log.info("request %s created by %s", view.id, client, extra={"run_id": view.id})
        return json_response(view, status=201)

    async def get(self, request: web.Request) -> web.StreamResponse:
        """A request; with ``?wait=N`` held until it is final or N seconds passed."""
        query = parse_query(request, WaitQuery)
        request_id = request.match_info["request_id"]
        if query.wait > 0:
            closing = request.config_dict[CLOSING]
            view = await self.service.wait(request_id, query.wait, closing=closing)
        else:
            view = await self.service.get(request_id)
        return json_response(view)

    async def list_requests(self, request: web.Request) -> web.StreamResponse:
        """Requests, newest first."""
        return json_response(await self.service.list_page(parse_query(request, RequestsQuery)))

    async def cancel(self, request: web.Request) -> web.StreamResponse:
        """Cancel a pending request."""
        body = CancelRequestBody()
        if request.can_read_body:
            try:
                body = CancelRequestBody.model_validate(await read_json(request, 16 * 1024))
            except ValidationError as exc:
                errors = field_errors(exc)
                raise Problem(422, "invalid_body", "invalid request body", errors=errors) from None
        view = await self.service.cancel(
            request.match_info["request_id"], reason=body.reason, client=client_name(request)
        )
        return json_response(view)

    async def stream(self, request: web.Request) -> web.StreamResponse:
        """The request's history as Server-Sent Events, until it ends."""
        request_id = request.match_info["request_id"]
        await self.service.get(request_id)  # 404 for anything that is not a request
        last = request.headers.get("Last-Event-ID", "")
        after = int(last) if last.isdigit() else 0
        return await stream_events(request, self.service.engine, request_id, after=after)

    def operations(self) -> list[Operation]:
        """The routes, documented in /openapi.json."""
        auth = (400, 401, 503)
        idem = Header(
            "Idempotency-Key",
            "Retries with the same key and body return the same request (422 for another body)",
        )
        one = f"{REQUESTS_PREFIX}/{{request_id}}"
        return [
            Operation(
                "POST", REQUESTS_PREFIX, "createRequest", "Ask people something",
                self.create, RequestView, status=201, body=CreateRequest, headers=(idem,),
                errors=(*auth, 413, 415, 422), tag="requests",
            ),
            Operation(
                "GET", REQUESTS_PREFIX, "listRequests", "List requests, newest first",
                self.list_requests, RequestList, query=RequestsQuery, errors=auth, tag="requests",
            ),
            Operation(
                "GET", one, "getRequest",
                "Get a request: status, typed answer, voters, receipt (?wait= long-polls)",
                self.get, RequestView, query=WaitQuery, errors=(*auth, 404), tag="requests",
            ),
            Operation(
                "POST", f"{one}/cancel", "cancelRequest", "Cancel a pending request",
                self.cancel, RequestView, body=CancelRequestBody,
                errors=(*auth, 404, 409, 413, 415, 422), tag="requests",
            ),
            Operation(
                "GET", f"{one}/stream", "streamRequest",
                "Follow a request's history (Server-Sent Events) until it ends",
                self.stream, errors=(*auth, 404), media_type="text/event-stream",
                headers=(Header("Last-Event-ID", "Resume after this event id"),),
                tag="requests",
            ),
        ]  # fmt: skip


def install_requests(app: web.Application, engine: Engine, settings: Settings) -> None:
    """Register the request workflow, mount ``/api/requests`` (and ``/mcp``, with the
    mcp SDK installed) and subscribe callbacks."""
    ensure_registered(engine)
    service = RequestService(
        engine, callback_secret=settings.callback_secret, callback_hosts=settings.callback_hosts
    )
    handlers = RequestHandlers(service)
    sub = web.Application(
        middlewares=[problem_middleware(invalid_status=422), bearer_token_middleware(settings)]
    )
    operations = handlers.operations()
    for op in operations:
        sub.router.add_route(op.method, op.path.removeprefix(REQUESTS_PREFIX), op.handler)
    if OPERATIONS not in app:
        app[OPERATIONS] = []
    app[OPERATIONS].extend(operations)
    app.add_subapp(REQUESTS_PREFIX, sub)
    install_streams(app)
    install_openapi(app)
    install_callbacks(app, service, settings)
    try:
        from bot.mcp.http import install_mcp  # needs the optional mcp SDK
    except ImportError:
        log.info("/mcp is off: install signoff[mcp] to serve the agent tools over HTTP")
    else:
        install_mcp(app, service, settings)
