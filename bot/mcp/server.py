"""The MCP server for agents: ask a person before a risky action, get their typed answer.

Built on the official ``mcp`` SDK (2.x, ``MCPServer``). ``signoff mcp`` serves it over
stdio and talks to a Signoff server through ``bot.client.AsyncClient`` (``$SIGNOFF_URL``,
``$SIGNOFF_TOKEN``); ``signoff serve`` also serves it at ``/mcp`` over streamable HTTP
(``bot.mcp.http``), calling the request service directly. Tools:

* ``request_approval``: ask; returns the decision if it comes within ``wait_seconds``,
  else the request id and ``pending``. The request is durable either way.
* ``get_request``: a request's status and answer, optionally waiting for it.
* ``cancel_request``: withdraw a pending request.

A tool that fails (no such request, a refused token or argument, the server unreachable)
raises ``ToolError``: the host gets an MCP error result (``isError: true``) whose text
says what went wrong and what to do next. Building the server leaves logging alone
(the SDK's constructor would configure the root logger); ``signoff mcp`` sets it up.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any, Protocol

from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.exceptions import ToolError

from bot.client import (
    ApiError,
    AsyncClient,
    ClientError,
    ConnectionFailed,
    RequestView,
    WaitTimeout,
)

__all__ = ["MAX_TOOL_WAIT", "Requests", "build_server", "decision", "tool_error"]

MAX_TOOL_WAIT = 55.0  # MCP hosts time tool calls out after about a minute

INSTRUCTIONS = (
    "Use request_approval before any action a person should sign off: deploys, payments, "
    "deleting data, messages sent on someone's behalf. Put exactly what you will do in "
    "title and fields: the approval covers only that. If the result is pending, do not "
    "act; call get_request later with the request_id. Act only on status approved (or "
    "answered, for forms); rejected, expired and cancelled mean do not act."
)


class Requests(Protocol):
    """What the tools need: ``AsyncClient``, or the server's own request service."""

    async def request(self, title: str, **options: Any) -> RequestView:
        """Create a request (options as in ``bot.client.client.build_body``)."""

    async def get(self, request_id: str) -> RequestView:
        """The request now (``ApiError`` 404 if there is none)."""

    async def wait(self, request_id: str, *, timeout: float | None = None) -> RequestView:
        """The request once final (``WaitTimeout`` after ``timeout`` seconds)."""

    async def cancel(self, request_id: str, *, reason: str = "") -> RequestView:
        """Cancel a pending request."""


def decision(view: RequestView) -> dict[str, Any]:
    """What a tool returns about a request: short, and explicit about what to do next."""
    status = view.status.value
    advice = {
        "pending": "Nobody decided yet. Do not act. Call get_request with this request_id later.",
        "approved": "Approved. You may do exactly what was described, nothing else.",
        "answered": "Answered. Use the answer; act only within what was described.",
        "rejected": "Rejected. Do not act. Tell the user, with the comment if any.",
        "expired": "Nobody decided in time. Do not act unless the answer says otherwise.",
        "cancelled": "Cancelled. Do not act.",
        "failed": "The request could not be asked. Do not act.",
    }[status]
    return {
        "request_id": view.id,
        "status": status,
        "answer": view.answer,
        "decided_by": view.decided_by,
        "decided_at": view.decided_at.isoformat() if view.decided_at else None,
        "approvals": f"{view.quorum.approvals} of {view.quorum.needed}",
        "next": advice,
    }


def tool_error(exc: ClientError, *, request_id: str | None = None, then: str = "") -> ToolError:
    """The MCP error result for a failed call: what went wrong, and what to do next.

    Args:
        exc: what the client (or the request service) raised.
        request_id: the request the call was about, if any.
        then: what to do next, when it is not what the failure alone says.
    """
    if isinstance(exc, ConnectionFailed):
        what = f"the Signoff server could not be reached ({exc})"
        next_step = then or "Nothing was decided: do not act. Try again later."
    elif isinstance(exc, ApiError) and exc.status == 404 and request_id is not None:
        what = f"there is no request {request_id!r}"
        next_step = then or "Use the request_id that request_approval returned. Do not act."
    elif isinstance(exc, ApiError) and exc.status in (401, 403):
        what = f"Signoff refused the API token ({exc})"
        next_step = then or "Do not act. Ask the user to check SIGNOFF_TOKEN."
    elif isinstance(exc, ApiError) and exc.status == 422:
        what = f"Signoff refused the arguments ({exc})"
        next_step = then or "Correct the arguments named and call the tool again."
    elif isinstance(exc, ApiError) and exc.status == 409:
        what = str(exc)
        next_step = then or "Call get_request to see how the request ended."
    else:
        what = str(exc)
        next_step = then or "Do not act. Try again later."
    return ToolError(f"{what}. {next_step}")


def build_server(requests_for: Callable[[Context], Requests]) -> MCPServer:
    """The MCP server with Signoff's tools.

    Args:
        requests_for: the ``Requests`` to use for a tool call (given its context, which
            tells who is calling over HTTP).
    """
    server: MCPServer = _quiet_server("signoff", INSTRUCTIONS)

    async def _wait(client: Requests, view: RequestView, wait_seconds: float) -> RequestView:
        seconds = min(max(wait_seconds, 0.0), MAX_TOOL_WAIT)
        if view.status.final or seconds == 0:
            return view
        try:
            return await client.wait(view.id, timeout=seconds)
        except WaitTimeout as exc:
            return exc.request

    @server.tool()
    async def request_approval(
        title: str,
        details: str = "",
        fields: dict[str, str | int | float | bool] | None = None,
        response_schema: dict[str, Any] | None = None,
        responders: list[str] | None = None,
        quorum: int = 1,
        expires_in_minutes: float | None = None,
        wait_seconds: float = 45,
        ctx: Context | None = None,
    ) -> dict[str, Any]:
        """Ask a person (in Slack) to approve an action or answer a form, and wait.

        Args:
            title: one line saying exactly what you want to do.
            details: markdown context: why, what could go wrong.
            fields: the exact parameters of the action (shown, and bound to the decision).
            response_schema: a JSON Schema object for a form answer; omit for approve/reject.
            responders: Slack user ids (U...) or groups (group:S...); omit for anyone.
            quorum: distinct approvals needed (needs approve/reject or an "approved" field).
            expires_in_minutes: after this, the request expires and must not be acted on.
            wait_seconds: how long to wait for the decision now (at most 55).
        """
        client = requests_for(_required(ctx))
        try:
            created = await client.request(
                title,
                text=details,
                fields=fields or {},
                response=response_schema,
                responders=responders or [],
                quorum=quorum,
                expires=expires_in_minutes * 60 if expires_in_minutes else None,
                on_expiry="reject" if expires_in_minutes else None,
            )
        except ClientError as exc:
            fix = "Correct the arguments named and call request_approval again."
            then = fix if isinstance(exc, ApiError) and exc.status == 422 else "Do not act."
            raise tool_error(exc, then=f"The request was not created. {then}") from None
        try:
            return decision(await _wait(client, created, wait_seconds))
        except ClientError as exc:
            then = (
                f"Request {created.id} was created, but its decision could not be read: "
                f"do not act. Call get_request with request_id {created.id!r} later."
            )
            raise tool_error(exc, then=then) from None

    @server.tool()
    async def get_request(
        request_id: str, wait_seconds: float = 0, ctx: Context | None = None
    ) -> dict[str, Any]:
        """A request's status and answer; wait up to wait_seconds (at most 55) for it."""
        client = requests_for(_required(ctx))
        try:
            return decision(await _wait(client, await client.get(request_id), wait_seconds))
        except ClientError as exc:
            raise tool_error(exc, request_id=request_id) from None

    @server.tool()
    async def cancel_request(
        request_id: str, reason: str = "", ctx: Context | None = None
    ) -> dict[str, Any]:
        """Withdraw a pending request (e.g. the action is no longer needed)."""
        client = requests_for(_required(ctx))
        try:
            return decision(await client.cancel(request_id, reason=reason))
        except ClientError as exc:
            raise tool_error(exc, request_id=request_id) from None

    return server


def _quiet_server(name: str, instructions: str) -> MCPServer:
    """``MCPServer(name)`` without the logging set-up its constructor does.

    The SDK's constructor calls ``logging.basicConfig`` (a handler on the root logger, and
    its level) when the root logger has no handler yet: in a program that embeds these
    tools that is the program's choice, not ours. Whatever it added is taken off again.
    """
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    try:
        return MCPServer(name, instructions=instructions)
    finally:
        for added in [h for h in root.handlers if h not in handlers]:
            root.removeHandler(added)
            added.close()
        root.setLevel(level)


def _required(ctx: Context | None) -> Context:
    # The SDK always passes the context to a parameter annotated with it.
    assert ctx is not None, "the MCP SDK passes ctx to every tool"
    return ctx


async def run_stdio() -> None:
    """Serve the tools over stdio until the host closes it."""
    async with AsyncClient() as client:
        await build_server(lambda _ctx: client).run_stdio_async()
