"""``/mcp`` on ``signoff serve``: the agent tools over MCP streamable HTTP, behind the API
tokens.

The SDK's transport is an ASGI app; aiohttp serves it here through a small bridge. The
bearer token is checked first (the same named tokens as ``/api``, 401 otherwise); its name
reaches the tools in a header the bridge sets (``x-signoff-client``, dropped from what the
caller sent), so each request records which client asked. The transport is stateless with
JSON responses: any instance can answer any call, and a tool that waits for a decision
simply holds its POST open (at most ``MAX_TOOL_WAIT`` seconds).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, MutableMapping
from typing import Any

from aiohttp import web
from mcp.server.mcpserver import Context, MCPServer
from mcp.server.streamable_http_manager import StreamableHTTPSessionManager
from mcp.server.transport_security import TransportSecuritySettings
from pydantic import ValidationError

from bot.client import ApiError, RequestView, WaitTimeout
from bot.client.client import build_body
from bot.client.models import CreateRequest
from bot.mcp.server import build_server
from bot.requests.service import RequestService
from bot.settings import Settings
from bot.web.auth import bearer_token_middleware, client_name
from bot.web.problems import Problem, from_engine_error, problem_middleware
from engine import SignoffError, field_errors

__all__ = ["CLIENT_HEADER", "MCP_PATH", "ServiceRequests", "install_mcp"]

log = logging.getLogger("signoff.mcp")

MCP_PATH = "/mcp"
CLIENT_HEADER = "x-signoff-client"
MCP_BODY_MAX = 1024 * 1024
_MANAGER: Any = getattr(web, "AppKey", lambda name, _type: name)(
    "signoff.mcp.manager", StreamableHTTPSessionManager
)


class ServiceRequests:
    """``Requests`` on the server's own request service, as the API token ``client``."""

    def __init__(self, service: RequestService, client: str) -> None:
        self.service = service
        self.client = client

    async def request(self, title: str, **options: Any) -> RequestView:
        """Create a request as the calling token's client."""
        try:
            body = CreateRequest.model_validate(build_body(title, **options))
        except ValidationError as exc:
            raise ApiError(422, "invalid_body", "invalid request", field_errors(exc)) from None
        return await self._call(self.service.create(body, client=self.client))

    async def get(self, request_id: str) -> RequestView:
        """The request now."""
        return await self._call(self.service.get(request_id))

    async def wait(self, request_id: str, *, timeout: float | None = None) -> RequestView:
        """The request once final, or ``WaitTimeout`` after ``timeout`` seconds."""
        view = await self._call(self.service.wait(request_id, timeout or 0))
        if not view.status.final:
            raise WaitTimeout(view)
        return view

    async def cancel(self, request_id: str, *, reason: str = "") -> RequestView:
        """Cancel a pending request."""
        return await self._call(self.service.cancel(request_id, reason=reason, client=self.client))

    async def _call(self, pending: Any) -> RequestView:
        # What the REST API would answer, as the client would raise it: the tools turn
        # it into an error result (an engine error, e.g. cancelling a finished request,
        # included: unmapped, it would reach the host as a crash).
        try:
            view: RequestView = await pending
        except Problem as exc:
            raise _api_error(exc) from None
        except SignoffError as exc:
            problem = from_engine_error(exc, invalid_status=422)
            if problem is None:
                raise
            raise _api_error(problem) from None
        return view


def _api_error(problem: Problem) -> ApiError:
    return ApiError(problem.http_status, problem.code, problem.message, problem.extra.get("errors"))


def _client_of(ctx: Context) -> str:
    headers = ctx.headers or {}
    return str(headers.get(CLIENT_HEADER) or "default")


def install_mcp(app: web.Application, service: RequestService, settings: Settings) -> None:
    """Serve the agent tools at ``/mcp`` (streamable HTTP) behind the API tokens."""
    server: MCPServer = build_server(lambda ctx: ServiceRequests(service, _client_of(ctx)))
    manager = StreamableHTTPSessionManager(
        app=server._lowlevel_server,  # what MCPServer.streamable_http_app() passes too
        json_response=True,
        stateless=True,
        # The bearer token guards /mcp: a DNS-rebinding page has no token to send.
        security_settings=TransportSecuritySettings(enable_dns_rebinding_protection=False),
        max_request_body_size=MCP_BODY_MAX,
    )
    sub = web.Application(
        middlewares=[problem_middleware(invalid_status=422), bearer_token_middleware(settings)],
        client_max_size=MCP_BODY_MAX,
    )
    sub[_MANAGER] = manager
    sub.router.add_route("*", "", _handle)
    app.add_subapp(MCP_PATH, sub)
    app.cleanup_ctx.append(_run_manager(manager))


def _run_manager(manager: StreamableHTTPSessionManager) -> Any:
    async def run(_: web.Application) -> AsyncIterator[None]:
        # The manager's task group must be entered and left in one task, and aiohttp runs
        # the two halves of a cleanup context in different tasks: so a task of its own.
        started, stop = asyncio.Event(), asyncio.Event()

        async def serve() -> None:
            async with manager.run():
                started.set()
                await stop.wait()

        task = asyncio.create_task(serve())
        waiting = asyncio.create_task(started.wait())
        await asyncio.wait({task, waiting}, return_when=asyncio.FIRST_COMPLETED)
        waiting.cancel()
        if task.done():
            task.result()  # raise what stopped it
        try:
            yield
        finally:
            stop.set()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    return run


async def _handle(request: web.Request) -> web.StreamResponse:
    """Hand the request to the SDK's ASGI transport and stream its answer back."""
    manager: StreamableHTTPSessionManager = request.app[_MANAGER]
    body = await request.read()
    headers = [
        (k.lower().encode("latin-1"), v.encode("latin-1"))
        for k, v in request.headers.items()
        if k.lower() != CLIENT_HEADER
    ]
    headers.append((CLIENT_HEADER.encode(), client_name(request).encode("latin-1")))
    peer = request.transport.get_extra_info("peername") if request.transport else None
    scope: dict[str, Any] = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": request.method,
        "scheme": request.scheme,
        "path": MCP_PATH,
        "raw_path": MCP_PATH.encode(),
        "query_string": request.query_string.encode("latin-1"),
        "root_path": "",
        "headers": headers,
        "client": tuple(peer[:2]) if peer else None,
        "server": None,
    }
    bridge = _Bridge(request, body)
    await manager.handle_request(scope, bridge.receive, bridge.send)
    return await bridge.finish()


class _Bridge:
    """ASGI ``receive``/``send`` over one aiohttp request."""

    def __init__(self, request: web.Request, body: bytes) -> None:
        self.request = request
        self.body: bytes | None = body
        self.response: web.StreamResponse | None = None
        self.done = asyncio.Event()

    async def receive(self) -> MutableMapping[str, Any]:
        if self.body is not None:
            body, self.body = self.body, None
            return {"type": "http.request", "body": body, "more_body": False}
        await self.done.wait()  # nothing more comes from the client
        return {"type": "http.disconnect"}

    async def send(self, message: MutableMapping[str, Any]) -> None:
        if message["type"] == "http.response.start":
            response = web.StreamResponse(status=message["status"])
            for key, value in message.get("headers", []):
                name = key.decode("latin-1")
                if name.lower() != "content-length":
                    response.headers.add(name, value.decode("latin-1"))
            self.response = response
            await response.prepare(self.request)
        elif message["type"] == "http.response.body" and self.response is not None:
            await self.response.write(message.get("body", b""))
            if not message.get("more_body", False):
                self.done.set()

    async def finish(self) -> web.StreamResponse:
        self.done.set()
        if self.response is None:  # the transport answered nothing: should not happen
            return web.Response(status=500, text="no response from the MCP transport")
        await self.response.write_eof()
        return self.response
