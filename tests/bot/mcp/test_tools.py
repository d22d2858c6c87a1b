"""The MCP tools in process (the SDK's in-memory client): failures are MCP error results a
model can act on, and building the server leaves the program's logging alone."""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

import pytest
from mcp import Client

from bot.client import ApiError, ConnectionFailed, RequestView, WaitTimeout
from bot.client.models import QuorumProgress, RequestStatus
from bot.mcp.server import build_server

NOW = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)


def _view(request_id: str, status: RequestStatus = RequestStatus.PENDING) -> RequestView:
    return RequestView(
        id=request_id,
        status=status,
        title="Delete bucket logs-2019",
        response_schema={"type": "object"},
        created_at=NOW,
        quorum=QuorumProgress(needed=1, approvals=0, voters=[]),
        links={},
    )


class FakeRequests:
    """``Requests`` whose calls fail as told."""

    def __init__(self, *, create: Exception | None = None, read: Exception | None = None):
        self.create_fails = create
        self.read_fails = read

    async def request(self, title: str, **options: Any) -> RequestView:
        if self.create_fails is not None:
            raise self.create_fails
        return _view("r-new")

    async def get(self, request_id: str) -> RequestView:
        if self.read_fails is not None:
            raise self.read_fails
        return _view(request_id)

    async def wait(self, request_id: str, *, timeout: float | None = None) -> RequestView:
        if self.read_fails is not None:
            raise self.read_fails
        raise WaitTimeout(_view(request_id))

    async def cancel(self, request_id: str, *, reason: str = "") -> RequestView:
        if self.read_fails is not None:
            raise self.read_fails
        return _view(request_id, RequestStatus.CANCELLED)


async def _call(requests: FakeRequests, tool: str, args: dict[str, Any]) -> Any:
    async with Client(build_server(lambda _ctx: requests)) as client:
        return await client.call_tool(tool, args)


def _text(result: Any) -> str:
    return " ".join(c.text for c in result.content)


async def test_an_unknown_request_id_is_an_error_result_naming_it() -> None:
    missing = ApiError(404, "not_found", "no request 'r-nope'")
    for tool in ("get_request", "cancel_request"):
        result = await _call(FakeRequests(read=missing), tool, {"request_id": "r-nope"})
        assert result.is_error, tool
        text = _text(result)
        assert "no request 'r-nope'" in text and "request_approval returned" in text


async def test_a_refused_token_and_an_unreachable_server_are_error_results() -> None:
    refused = ApiError(401, "unauthorized", "a valid API token is required")
    result = await _call(FakeRequests(create=refused), "request_approval", {"title": "Deploy"})
    assert result.is_error
    assert "refused the API token" in _text(result) and "was not created" in _text(result)

    down = ConnectionFailed("cannot connect to http://127.0.0.1:9: connection refused")
    result = await _call(FakeRequests(read=down), "get_request", {"request_id": "r-1"})
    assert result.is_error
    assert "could not be reached" in _text(result) and "do not act" in _text(result)


async def test_a_refused_argument_says_what_to_fix_and_a_lost_wait_names_the_request() -> None:
    bad = ApiError(422, "invalid_body", "invalid request", {"quorum": "too high"})
    result = await _call(FakeRequests(create=bad), "request_approval", {"title": "Deploy"})
    assert result.is_error
    assert "quorum" in _text(result) and "Correct the arguments" in _text(result)

    down = ConnectionFailed("connection reset")
    result = await _call(
        FakeRequests(read=down), "request_approval", {"title": "Deploy", "wait_seconds": 5}
    )
    assert result.is_error
    assert "Request r-new was created" in _text(result) and "get_request" in _text(result)


async def test_a_good_call_is_not_an_error() -> None:
    result = await _call(FakeRequests(), "get_request", {"request_id": "r-1"})
    assert not result.is_error
    assert result.structured_content["status"] == "pending"


def test_building_the_server_leaves_the_root_logger_as_it_was(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    root = logging.getLogger()
    monkeypatch.setattr(root, "handlers", [])  # a program that has not set logging up
    monkeypatch.setattr(root, "level", logging.WARNING)

    build_server(lambda _ctx: FakeRequests())

    assert root.handlers == [] and root.level == logging.WARNING
