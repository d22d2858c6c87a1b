"""The REST API under ``/api``: start, list, inspect, resume, cancel and follow runs.

Every route needs ``Authorization: Bearer $SIGNOFF_API_TOKEN``; without a configured
token the API is disabled and answers 503 saying so. The token is trusted to act for
anyone: the ``actor`` of a resume is taken from the body, and the engine still applies
the interrupt's responders, quorum and no-self-approval rules to it.

Routes (see ``/openapi.json``):
    ``GET  /api/workflows``, ``GET /api/workflows/{name}``: schemas.
    ``POST /api/runs`` (``Idempotency-Key`` header honoured), ``GET /api/runs``.
    ``GET  /api/runs/{run_id}``: status, output, steps, pending interrupts, history.
    ``GET  /api/runs/{run_id}/events`` (JSON), ``GET /api/runs/{run_id}/stream`` (SSE).
    ``POST /api/runs/{run_id}/cancel``.
    ``GET  /api/interrupts``: pending interrupts with their resume schemas.
    ``POST /api/runs/{run_id}/interrupts/{interrupt_id}/resume``: 422 field errors,
    409 already resolved (by whom), 403 not authorized.
"""

from __future__ import annotations

import logging
from typing import TypeVar

from aiohttp import web
from pydantic import BaseModel, ValidationError

from bot.settings import Settings
from bot.web.actors import check_actor
from bot.web.auth import bearer_token_middleware
from bot.web.models import (
    CancelRequest,
    EventList,
    EventsQuery,
    InterruptList,
    InterruptsQuery,
    ResumeRequest,
    ResumeResult,
    RunCreated,
    RunDetailView,
    RunList,
    RunsQuery,
    RunView,
    StartRunRequest,
    WorkflowList,
    WorkflowView,
)
from bot.web.openapi import Header, Operation, install_openapi, mount_operations
from bot.web.problems import (
    BODY_TIMEOUT,
    Problem,
    json_not_found,
    json_response,
    problem_middleware,
    read_json,
)
from bot.web.sse import install_streams, last_event_id, stream_events
from bot.web.triggers import check_idempotency_key, start_run
from bot.web.views import (
    describe_workflow,
    interrupt_view,
    run_detail_view,
    run_links,
    run_view,
)
from engine import Engine, RunNotFound, field_errors

__all__ = ["API_PREFIX", "ApiHandlers", "install_api"]

log = logging.getLogger("signoff.api")

M = TypeVar("M", bound=BaseModel)

API_PREFIX = "/api"

_AUTH_ERRORS = (400, 401, 503)


def parse_query(request: web.Request, model: type[M]) -> M:
    """The query string as ``model`` (400 with per-field errors)."""
    try:
        return model.model_validate(dict(request.query))
    except ValidationError as exc:
        raise Problem(
            400, "invalid_query", "invalid query parameters", errors=field_errors(exc)
        ) from None


async def parse_body(request: web.Request, model: type[M]) -> M:
    """The JSON body as ``model`` (415, 413, 400 invalid JSON, 400 with field errors)."""
    data = await read_json(request)
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise Problem(
            400, "invalid_body", "invalid request body", errors=field_errors(exc)
        ) from None


class ApiHandlers:
    """The REST handlers, bound to an engine (authentication is the sub-app's middleware)."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    # -- workflows ------------------------------------------------------------------
    async def list_workflows(self, request: web.Request) -> web.StreamResponse:
        """Every registered workflow version with its schemas."""
        views = [describe_workflow(wf) for wf in self.engine.registry.all()]
        return json_response(WorkflowList(workflows=views))

    async def get_workflow(self, request: web.Request) -> web.StreamResponse:
        """The newest version of one workflow."""
        wf = self.engine.registry.get(request.match_info["name"])
        return json_response(describe_workflow(wf))

    # -- runs -----------------------------------------------------------------------
    async def start(self, request: web.Request) -> web.StreamResponse:
        """Start a run (202); an ``Idempotency-Key`` returns the run it started before."""
        body = await parse_body(request, StartRunRequest)
        key = check_idempotency_key(request.headers.get("Idempotency-Key"))
        run = await start_run(
            self.engine, body.workflow, body.input, requester=body.requester, idempotency_key=key
        )
        log.info("API started run %s of %s", run.id, body.workflow, extra={"run_id": run.id})
        created = RunCreated(run_id=run.id, status=run.status, links=run_links(run.id))
        return json_response(created, status=202)

    async def list_runs(self, request: web.Request) -> web.StreamResponse:
        """Runs, newest first, filtered by status and workflow, paged."""
        q = parse_query(request, RunsQuery)
        # One extra row tells whether there is a next page without a COUNT query.
        runs = await self.engine.list_runs(
            status=q.status, workflow=q.workflow, limit=q.limit + 1, offset=q.offset
        )
        more = len(runs) > q.limit
        page = RunList(
            runs=[run_view(r) for r in runs[: q.limit]],
            limit=q.limit,
            offset=q.offset,
            next_offset=q.offset + q.limit if more else None,
        )
        return json_response(page)

    async def get_run(self, request: web.Request) -> web.StreamResponse:
        """A run with steps, pending interrupts (with resume schemas) and history."""
        detail = await self.engine.get_run(request.match_info["run_id"])
        return json_response(run_detail_view(self.engine, detail))

    async def events(self, request: web.Request) -> web.StreamResponse:
        """A run's history entries after ``after``."""
        run_id = request.match_info["run_id"]
        q = parse_query(request, EventsQuery)
        if await self.engine.find_run(run_id) is None:
            raise RunNotFound(run_id)
        return json_response(EventList(events=await self.engine.events(run_id, after_id=q.after)))

    async def stream(self, request: web.Request) -> web.StreamResponse:
        """Follow a run's history as Server-Sent Events until it finishes."""
        q = parse_query(request, EventsQuery)
        try:
            last = last_event_id(request.headers.get("Last-Event-ID"))
        except ValueError as exc:
            raise Problem(400, "invalid_header", str(exc)) from None
        after = q.after if last is None else max(q.after, last)
        return await stream_events(request, self.engine, request.match_info["run_id"], after=after)

    async def cancel(self, request: web.Request) -> web.StreamResponse:
        """Cancel a run (409 if it already finished)."""
        body = (
            await parse_body(request, CancelRequest) if request.can_read_body else CancelRequest()
        )
        if body.actor is not None:
            check_actor(body.actor)
        run = await self.engine.cancel(
            request.match_info["run_id"], reason=body.reason, actor=body.actor
        )
        log.info("API cancelled run %s", run.id, extra={"run_id": run.id})
        return json_response(run_view(run))

    # -- interrupts -----------------------------------------------------------------
    async def list_interrupts(self, request: web.Request) -> web.StreamResponse:
        """Pending interrupts (oldest first) with their resume schemas."""
        q = parse_query(request, InterruptsQuery)
        found = await self.engine.list_interrupts(
            workflow=q.workflow, run_id=q.run_id, label=q.label, actor=q.actor, limit=q.limit
        )
        views = [interrupt_view(self.engine, i) for i in found]
        return json_response(InterruptList(interrupts=views))

    async def resume(self, request: web.Request) -> web.StreamResponse:
        """Answer an interrupt as ``actor`` (422 field errors or a group actor, 409, 403)."""
        body = await parse_body(request, ResumeRequest)
        check_actor(body.actor)
        run_id = request.match_info["run_id"]
        interrupt_id = request.match_info["interrupt_id"]
        outcome = await self.engine.resume(run_id, interrupt_id, body.data, actor=body.actor)
        log.info(
            "API resume of %s/%s by %s: %s",
            run_id,
            interrupt_id,
            body.actor,
            outcome.status.value,
            extra={"run_id": run_id},
        )
        result = ResumeResult(
            run_id=run_id,
            interrupt_id=interrupt_id,
            status=outcome.status,
            resolved=outcome.resolved,
            approvals=outcome.approvals,
            needed=outcome.needed,
        )
        return json_response(result)

    # -- routing --------------------------------------------------------------------
    def operations(self) -> list[Operation]:
        """The API's routes with what the OpenAPI document says about them."""
        idem = Header(
            "Idempotency-Key",
            "Retries with the same key return the run the first request started",
        )
        run_errors = (*_AUTH_ERRORS, 404)
        body_errors = (*_AUTH_ERRORS, 404, 409, 413, 415)
        return [
            Operation(
                "GET",
                "/api/workflows",
                "listWorkflows",
                "List workflows and their schemas",
                self.list_workflows,
                WorkflowList,
                errors=_AUTH_ERRORS,
                tag="workflows",
            ),
            Operation(
                "GET",
                "/api/workflows/{name}",
                "getWorkflow",
                "Get a workflow's schemas",
                self.get_workflow,
                WorkflowView,
                errors=run_errors,
                tag="workflows",
            ),
            Operation(
                "POST",
                "/api/runs",
                "startRun",
                "Start a run",
                self.start,
                RunCreated,
                status=202,
                body=StartRunRequest,
                headers=(idem,),
                errors=(*body_errors, 422),
            ),
            Operation(
                "GET",
                "/api/runs",
                "listRuns",
                "List runs, newest first",
                self.list_runs,
                RunList,
                query=RunsQuery,
                errors=_AUTH_ERRORS,
            ),
            Operation(
                "GET",
                "/api/runs/{run_id}",
                "getRun",
                "Get a run: status, output, steps, pending interrupts, history",
                self.get_run,
                RunDetailView,
                errors=run_errors,
            ),
            Operation(
                "GET",
                "/api/runs/{run_id}/events",
                "listRunEvents",
                "Get a run's history",
                self.events,
                EventList,
                query=EventsQuery,
                errors=run_errors,
            ),
            Operation(
                "GET",
                "/api/runs/{run_id}/stream",
                "streamRunEvents",
                "Follow a run's history (Server-Sent Events) until it finishes",
                self.stream,
                query=EventsQuery,
                errors=run_errors,
                media_type="text/event-stream",
                headers=(Header("Last-Event-ID", "Resume after this event id"),),
            ),
            Operation(
                "POST",
                "/api/runs/{run_id}/cancel",
                "cancelRun",
                "Cancel a run",
                self.cancel,
                RunView,
                body=CancelRequest,
                errors=(*body_errors, 422),
            ),
            Operation(
                "GET",
                "/api/interrupts",
                "listInterrupts",
                "List pending interrupts with their resume schemas",
                self.list_interrupts,
                InterruptList,
                query=InterruptsQuery,
                errors=_AUTH_ERRORS,
                tag="interrupts",
            ),
            Operation(
                "POST",
                "/api/runs/{run_id}/interrupts/{interrupt_id}/resume",
                "resumeInterrupt",
                "Answer an interrupt",
                self.resume,
                ResumeResult,
                body=ResumeRequest,
                errors=(*body_errors, 403, 422),
                tag="interrupts",
            ),
        ]


def install_api(app: web.Application, engine: Engine, settings: Settings) -> None:
    """Mount the REST API at ``/api``; serve ``/openapi.json``; end SSE streams on shutdown."""
    handlers = ApiHandlers(engine)
    # Outermost first: errors (the token check's too) become JSON, then the token is checked.
    api = web.Application(
        middlewares=[problem_middleware(invalid_status=422), bearer_token_middleware(settings)]
    )
    api[BODY_TIMEOUT] = settings.body_timeout
    mount_operations(app, API_PREFIX, api, handlers.operations())
    install_openapi(app)
    if json_not_found not in app.middlewares:
        app.middlewares.append(json_not_found)
    install_streams(app)
    if settings.api_token is None:
        log.warning("the REST API is disabled: set SIGNOFF_API_TOKEN to enable it")
