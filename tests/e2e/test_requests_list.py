"""Listing requests with filters and pages, and the CLI seeing requests, on a real
``signoff serve`` with the fake Slack."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlencode

from bot.client import AsyncClient
from bot.slack import action_ids
from tests.e2e.requests_server import TOKEN, RequestsServer, api

AGENT_TOKEN = "agent-token-0123456789abcdef"
TOKENS = json.dumps({"ci": TOKEN, "agent": AGENT_TOKEN})


async def _ids(server: RequestsServer, **query: Any) -> list[str]:
    _, page = await api("GET", f"{server.url}/api/requests?{urlencode(query)}")
    return [r["id"] for r in page["requests"]]


async def test_a_just_created_request_is_listed_as_pending_at_once(requests_server: Any) -> None:
    server: RequestsServer = await requests_server()
    _, created = await api("POST", f"{server.url}/api/requests", json={"title": "fresh"})
    assert created["id"] in await _ids(server, status="pending")  # before Slack has it


async def test_list_filters_by_status_requester_client_and_time_and_pages_by_matches(
    requests_server: Any,
) -> None:
    server: RequestsServer = await requests_server(SIGNOFF_API_TOKENS=TOKENS)
    url = f"{server.url}/api/requests"
    made: list[str] = []
    for n in range(5):
        body: dict[str, Any] = {"title": f"ci {n}", "requester": "U0DAVE" if n % 2 else None}
        made.append((await api("POST", url, json=body))[1]["id"])
    async with AsyncClient(server.url, AGENT_TOKEN) as agent:
        by_agent = (await agent.request("from the agent")).id
    newest_first = [by_agent, *reversed(made)]
    message = await server.message_for(made[1])
    assert await server.click(message, action_ids.APPROVE, user="U0ALICE") == 200
    await api("GET", f"{url}/{made[1]}?wait=20")

    assert await _ids(server) == newest_first
    assert await _ids(server, status="approved") == [made[1]]
    pending = [i for i in newest_first if i != made[1]]
    assert await _ids(server, status="pending") == pending
    assert await _ids(server, client="agent") == [by_agent]
    assert await _ids(server, client="ci", requester="U0DAVE") == [made[3], made[1]]
    future = (datetime.now(UTC) + timedelta(hours=1)).isoformat().replace("+00:00", "Z")
    assert await _ids(server, created_after=future) == []
    assert await _ids(server, created_before=future) == newest_first

    # Pages count matching requests: two pending per page, by offset or by cursor.
    _, first = await api("GET", f"{url}?status=pending&limit=2")
    assert [r["id"] for r in first["requests"]] == pending[:2]
    assert first["next_offset"] == 2 and first["next_cursor"]
    by_offset = await _ids(server, status="pending", limit=2, offset=2)
    by_cursor = await _ids(server, status="pending", limit=2, cursor=first["next_cursor"])
    assert by_offset == by_cursor == pending[2:4]
    _, last = await api("GET", f"{url}?status=pending&limit=2&offset=4")
    assert [r["id"] for r in last["requests"]] == pending[4:]
    assert last["next_offset"] is None and last["next_cursor"] is None
    status, error = await api("GET", f"{url}?cursor=nonsense")
    assert (status, error["error"]) == (400, "invalid_query")

    async with AsyncClient(server.url, TOKEN) as client:
        page = await client.list(status="pending", limit=2, cursor=first["next_cursor"])
    assert [r.id for r in page.requests] == pending[2:4]


async def test_signoff_run_shows_what_a_pending_request_accepts(requests_server: Any) -> None:
    server: RequestsServer = await requests_server()
    schema = {
        "type": "object",
        "properties": {"size": {"type": "string", "enum": ["s", "m"]}},
        "required": ["size"],
    }
    _, created = await api(
        "POST", f"{server.url}/api/requests", json={"title": "Pick", "response": schema}
    )
    await server.message_for(created["id"])
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bot.cli", "run", created["id"], env=server.env,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )  # fmt: skip
    out, err = await proc.communicate()
    assert proc.returncode == 0, err.decode()
    text = out.decode()
    assert "Answer request with data matching:" in text
    shown = json.loads(text.split("matching:", 1)[1].split("\nHistory", 1)[0])
    assert shown["properties"]["size"]["enum"] == ["s", "m"] and shown["required"] == ["size"]
