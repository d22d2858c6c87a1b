"""Agents through MCP: the SDK's own clients against ``signoff mcp`` (stdio) and ``/mcp``
(streamable HTTP) on a real ``signoff serve``, with people answering in the fake Slack."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path
from typing import Any

import httpx2
from mcp import ClientSession
from mcp.client.stdio import StdioServerParameters, stdio_client
from mcp.client.streamable_http import streamable_http_client

from bot.slack import action_ids
from tests.e2e.requests_server import TOKEN, RequestsServer, api
from tests.support.polling import eventually
from tests.support.service import ROOT


def _result(result: Any) -> dict[str, Any]:
    assert not result.is_error, result
    found: dict[str, Any] = result.structured_content
    return found


def _text(result: Any) -> str:
    return " ".join(getattr(c, "text", "") for c in result.content)


async def _posted(server: RequestsServer, title: str) -> Any:
    return await eventually(
        lambda: next((m for m in server.posts() if title in str(m.blocks)), None),
        timeout=15,
        what=f"the post of {title!r}",
    )


async def _approve_wait_get_cancel(session: ClientSession, server: RequestsServer) -> None:
    """The agent recipe: ask and wait; ask, do not wait, come back; withdraw."""
    await session.initialize()
    tools = {t.name for t in (await session.list_tools()).tools}
    assert tools == {"request_approval", "get_request", "cancel_request"}

    asking = asyncio.create_task(
        session.call_tool(
            "request_approval",
            {
                "title": "Delete bucket logs-2019",
                "fields": {"bucket": "logs-2019"},
                "wait_seconds": 30,
            },
        )  # fmt: skip
    )
    message = await _posted(server, "Delete bucket logs-2019")
    assert await server.click(message, action_ids.APPROVE, user="U0ALICE") == 200
    approved = _result(await asyncio.wait_for(asking, 30))
    assert approved["status"] == "approved" and approved["decided_by"] == "U0ALICE"
    assert approved["answer"]["approved"] is True and "You may" in approved["next"]

    later = _result(
        await session.call_tool(
            "request_approval", {"title": "Rotate DB password", "wait_seconds": 0}
        )
    )
    assert later["status"] == "pending" and "Do not act" in later["next"]
    message = await _posted(server, "Rotate DB password")
    assert await server.click(message, action_ids.REJECT, user="U0BOB") == 200
    got = _result(
        await session.call_tool(
            "get_request", {"request_id": later["request_id"], "wait_seconds": 20}
        )
    )
    assert got["status"] == "rejected" and got["decided_by"] == "U0BOB"

    withdrawn = _result(
        await session.call_tool("request_approval", {"title": "Email customers", "wait_seconds": 0})
    )
    cancelled = _result(
        await session.call_tool(
            "cancel_request", {"request_id": withdrawn["request_id"], "reason": "not needed"}
        )
    )
    assert cancelled["status"] == "cancelled"
    _, view = await api("GET", f"{server.url}/api/requests/{withdrawn['request_id']}")
    assert view["status"] == "cancelled" and view["client"] == "ci"

    unknown = await session.call_tool("get_request", {"request_id": "no-such-request"})
    assert unknown.is_error  # an MCP error result, with what to do next
    assert "no request 'no-such-request'" in _text(unknown) and "Do not act" in _text(unknown)
    again = await session.call_tool("cancel_request", {"request_id": withdrawn["request_id"]})
    assert again.is_error and "get_request" in _text(again)  # 409: it is final already


async def test_an_agent_asks_waits_comes_back_and_cancels_through_signoff_mcp_on_stdio(
    requests_server: Any, tmp_path: Path
) -> None:
    server: RequestsServer = await requests_server()
    params = StdioServerParameters(
        command=sys.executable,
        args=["-m", "bot.cli", "mcp"],
        env={"SIGNOFF_URL": server.url, "SIGNOFF_TOKEN": TOKEN, "PYTHONPATH": str(ROOT)},
        cwd=ROOT,
    )
    with (tmp_path / "mcp.log").open("w") as errlog:
        async with stdio_client(params, errlog=errlog) as (read, write):
            async with ClientSession(read, write) as session:
                await _approve_wait_get_cancel(session, server)


async def test_a_refused_token_is_an_error_result_that_says_so(
    requests_server: Any, tmp_path: Path
) -> None:
    server: RequestsServer = await requests_server()
    params = StdioServerParameters(
        command=sys.executable,
        args=["-m", "bot.cli", "mcp"],
        env={"SIGNOFF_URL": server.url, "SIGNOFF_TOKEN": "not-a-token", "PYTHONPATH": str(ROOT)},
        cwd=ROOT,
    )
    with (tmp_path / "mcp.log").open("w") as errlog:
        async with stdio_client(params, errlog=errlog) as (read, write):
            async with ClientSession(read, write) as session:
                await session.initialize()
                result = await session.call_tool("request_approval", {"title": "Drop table"})
    assert result.is_error
    assert "refused the API token" in _text(result) and "was not created" in _text(result)
    assert not server.posts()  # nothing was asked
    # `signoff mcp` logs to stderr (stdout is the protocol), the token redacted.
    log = (tmp_path / "mcp.log").read_text()
    assert "request_approval" in log and "not-a-token" not in log


async def test_an_agent_uses_mcp_over_streamable_http_with_an_api_token(
    requests_server: Any,
) -> None:
    server: RequestsServer = await requests_server()
    url = f"{server.url}/mcp"
    async with httpx2.AsyncClient(timeout=60) as anonymous:
        refused = await anonymous.post(url, json={"jsonrpc": "2.0", "id": 1, "method": "ping"})
        assert refused.status_code == 401
    headers = {"Authorization": f"Bearer {TOKEN}"}
    async with (
        httpx2.AsyncClient(headers=headers, timeout=httpx2.Timeout(60, read=120)) as http,
        streamable_http_client(url, http_client=http) as (read, write),
        ClientSession(read, write) as session,
    ):
        await _approve_wait_get_cancel(session, server)
