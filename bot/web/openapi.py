"""The OpenAPI 3.1 document, generated from the routes' pydantic models.

Each module declares its routes as ``Operation`` records and adds them with
``add_operations`` (or ``mount_operations`` for a sub-app), which both registers the
aiohttp routes and remembers the operations; ``GET /openapi.json`` builds the document
from those records and the models' ``model_json_schema``. Nothing in the document is
written by hand, so it cannot drift from what the handlers accept and return.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from importlib import metadata
from typing import Any

from aiohttp import web
from pydantic import BaseModel
from pydantic.json_schema import JsonSchemaMode, models_json_schema

from bot.web.models import ErrorBody

__all__ = [
    "OPERATIONS",
    "Header",
    "Operation",
    "add_operations",
    "build_document",
    "install_openapi",
    "mount_operations",
]

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

OPERATIONS = web.AppKey("signoff.operations", list["Operation"])

_REASONS = {
    400: "Malformed request (invalid JSON, query or header); see `errors` for fields",
    401: "Missing or wrong credentials",
    403: "The actor may not do this",
    404: "Not found",
    409: "Conflicts with the current state (e.g. already resolved: by whom and when)",
    413: "Body larger than 1 MiB",
    415: "Body is not JSON",
    422: "Input or answer fails its model; see `errors` for fields",
    503: "Disabled by configuration, or the database is unavailable",
}


@dataclass(frozen=True)
class Header:
    """A request header an operation reads."""

    name: str
    description: str
    required: bool = False


@dataclass(frozen=True)
class Operation:
    """One route: how it is served and how it is documented.

    Attributes:
        method: HTTP method.
        path: aiohttp path template (``/api/runs/{run_id}``); the same syntax as OpenAPI.
        operation_id: unique name of the operation in the document.
        summary: one line for the document.
        handler: the aiohttp handler.
        response: model of the success body (None: no JSON body).
        status: the success status.
        body: model of the JSON request body, if any.
        query: model whose fields are the query parameters.
        errors: error statuses the operation answers with an ``ErrorBody``.
        headers: request headers it reads.
        media_type: success content type when it is not JSON.
        secured: whether the bearer token is required.
        tag: group in the document.
    """

    method: str
    path: str
    operation_id: str
    summary: str
    handler: Handler
    response: type[BaseModel] | None = None
    status: int = 200
    body: type[BaseModel] | dict[str, Any] | None = None
    query: type[BaseModel] | None = None
    errors: tuple[int, ...] = ()
    headers: tuple[Header, ...] = ()
    media_type: str = "application/json"
    secured: bool = True
    tag: str = "runs"
    description: str = ""
    extra_responses: dict[int, str] = field(default_factory=dict)


def add_operations(app: web.Application, operations: Sequence[Operation]) -> None:
    """Register the operations' routes on ``app`` and record them for the document."""
    for op in operations:
        app.router.add_route(op.method, op.path, op.handler)
    _record(app, operations)


def mount_operations(
    app: web.Application, prefix: str, sub_app: web.Application, operations: Sequence[Operation]
) -> None:
    """Serve ``operations`` from ``sub_app`` mounted on ``app`` at ``prefix``.

    Operations keep their full paths (``/api/runs``) so the document shows what clients
    call; the sub-app's routes are those paths without the prefix. The sub-app's
    middlewares (authentication, JSON errors) then apply to exactly these routes.
    """
    for op in operations:
        if not op.path.startswith(prefix + "/"):
            raise ValueError(f"{op.path} is not under {prefix}")
        sub_app.router.add_route(op.method, op.path.removeprefix(prefix), op.handler)
    _record(app, operations)
    app.add_subapp(prefix, sub_app)


def _record(app: web.Application, operations: Sequence[Operation]) -> None:
    if OPERATIONS not in app:
        app[OPERATIONS] = []
    app[OPERATIONS].extend(operations)


# One Server-Sent Event as a client parses it; ``data`` holds a JSON-encoded ``Event``.
_SSE_EVENT: dict[str, Any] = {
    "type": "object",
    "properties": {
        "id": {"type": "string"},
        "event": {"type": "string"},
        "data": {"type": "string", "contentMediaType": "application/json"},
    },
    "required": ["event", "data"],
}

_PARAM = re.compile(r"\{(\w+)(?::[^}]*)?\}")


def _models(operations: Sequence[Operation]) -> list[tuple[type[BaseModel], JsonSchemaMode]]:
    found: dict[tuple[type[BaseModel], JsonSchemaMode], None] = {(ErrorBody, "serialization"): None}
    for op in operations:
        if op.response is not None:
            found[(op.response, "serialization")] = None
        if isinstance(op.body, type):
            found[(op.body, "validation")] = None
        if op.query is not None:
            found[(op.query, "validation")] = None
    return list(found)


def _parameters(
    op: Operation, schemas: dict[str, Any], query_ref: dict[str, Any] | None
) -> list[dict[str, Any]]:
    params: list[dict[str, Any]] = [
        {"name": name, "in": "path", "required": True, "schema": {"type": "string", "minLength": 1}}
        for name in _PARAM.findall(op.path)
    ]
    if op.query is not None and query_ref is not None:
        model_schema = schemas[query_ref["$ref"].rsplit("/", 1)[-1]]
        required = set(model_schema.get("required", ()))
        for name, prop in model_schema.get("properties", {}).items():
            param: dict[str, Any] = {
                "name": name,
                "in": "query",
                "required": name in required,
                "schema": {k: v for k, v in prop.items() if k not in ("title", "description")},
            }
            if "description" in prop:
                param["description"] = prop["description"]
            params.append(param)
    for header in op.headers:
        params.append(
            {
                "name": header.name,
                "in": "header",
                "required": header.required,
                "description": header.description,
                "schema": {"type": "string"},
            }
        )
    return params


def _operation(op: Operation, refs: Mapping[Any, Any], schemas: dict[str, Any]) -> dict[str, Any]:
    error_ref = refs[(ErrorBody, "serialization")]
    success: dict[str, Any] = {"description": op.summary}
    if op.response is not None:
        success["content"] = {op.media_type: {"schema": refs[(op.response, "serialization")]}}
    elif op.media_type == "text/event-stream":
        success["content"] = {op.media_type: {"schema": _SSE_EVENT}}
    elif op.media_type != "application/json":
        success["content"] = {op.media_type: {"schema": {"type": "string"}}}
    responses: dict[str, Any] = {str(op.status): success}
    for status, description in op.extra_responses.items():
        responses[str(status)] = {"description": description}
    for status in op.errors:
        responses[str(status)] = {
            "description": _REASONS.get(status, "Error"),
            "content": {"application/json": {"schema": error_ref}},
        }
    doc: dict[str, Any] = {
        "operationId": op.operation_id,
        "summary": op.summary,
        "tags": [op.tag],
        "parameters": _parameters(
            op, schemas, refs.get((op.query, "validation")) if op.query else None
        ),
        "responses": responses,
        "security": [{"bearer": []}] if op.secured else [],
    }
    if op.description:
        doc["description"] = op.description
    if op.body is not None:
        schema = refs[(op.body, "validation")] if isinstance(op.body, type) else op.body
        # A body whose fields all have defaults may be left out (e.g. cancel).
        required = not isinstance(op.body, type) or any(
            f.is_required() for f in op.body.model_fields.values()
        )
        doc["requestBody"] = {
            "required": required,
            "content": {"application/json": {"schema": schema}},
        }
    return doc


def build_document(operations: Sequence[Operation], *, version: str) -> dict[str, Any]:
    """The OpenAPI 3.1 document describing ``operations``."""
    refs, top = models_json_schema(_models(operations), ref_template="#/components/schemas/{model}")
    schemas: dict[str, Any] = top.get("$defs", {})
    paths: dict[str, dict[str, Any]] = {}
    for op in operations:
        path = _PARAM.sub(r"{\1}", op.path)
        paths.setdefault(path, {})[op.method.lower()] = _operation(op, refs, schemas)
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Signoff",
            "version": version,
            "description": (
                "Human approvals on a durable workflow engine. The REST API needs "
                "`Authorization: Bearer $SIGNOFF_API_TOKEN`; webhooks are signed with "
                "HMAC-SHA256 (see bot/web/webhooks.py)."
            ),
        },
        "paths": paths,
        "components": {
            "schemas": schemas,
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
    }


_CACHE = web.AppKey("signoff.openapi_cache", dict)


def _version() -> str:
    try:
        return metadata.version("signoff")
    except metadata.PackageNotFoundError:  # pragma: no cover - running from a bare source tree
        return "0"


async def _serve_document(request: web.Request) -> web.StreamResponse:
    cache = request.app[_CACHE]
    if not cache:
        # Built on first use, once every installer has added its operations; the app is
        # frozen by then, so the cache is a dict stored at install time and filled here.
        operations = request.app[OPERATIONS] if OPERATIONS in request.app else []
        cache.update(build_document(operations, version=_version()))
    return web.json_response(cache)


def install_openapi(app: web.Application) -> None:
    """Serve ``GET /openapi.json`` (no authentication: it is documentation)."""
    if _CACHE in app:
        return
    app[_CACHE] = {}
    app.router.add_get("/openapi.json", _serve_document)
