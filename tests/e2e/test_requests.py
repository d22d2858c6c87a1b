"""Ask from anywhere, end to end: a real ``signoff serve``, the fake Slack, signed clicks."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
from typing import Any

from standardwebhooks import Webhook

from bot.client import AsyncClient, Rejected, verify_receipt
from bot.slack import action_ids
from tests.e2e.requests_server import (
    CALLBACK_SECRET,
    TOKEN,
    Receiver,
    RequestsServer,
    api,
)
from tests.support.polling import eventually
from tests.support.slack_bot import CHANNEL


async def test_create_slack_click_wait_returns_the_answer_and_a_verified_callback(
    requests_server: Any, receiver: Receiver
) -> None:
    server: RequestsServer = await requests_server()
    body = {
        "title": "Deploy billing 2.4.1",
        "text": "*Production* deploy",
        "fields": {"service": "billing", "version": "2.4.1"},
        "callback_url": receiver.url,
    }
    status, created = await api("POST", f"{server.url}/api/requests", json=body)
    assert status == 201, created
    assert created["status"] == "pending" and created["client"] == "ci"
    message = await server.message_for(created["id"])
    assert "Deploy billing 2.4.1" in str(message.blocks) and "billing" in str(message.blocks)

    waiting = asyncio.create_task(api("GET", f"{server.url}/api/requests/{created['id']}?wait=30"))
    await asyncio.sleep(0.3)
    assert not waiting.done()  # the long poll holds until the decision
    assert await server.click(message, action_ids.APPROVE, user="U0ALICE") == 200
    status, decided = await waiting
    assert status == 200
    assert decided["status"] == "approved" and decided["decided_by"] == "U0ALICE"
    assert decided["answer"]["approved"] is True
    assert verify_receipt(decided["receipt"], body["fields"], secret=CALLBACK_SECRET)
    assert not verify_receipt(decided["receipt"], {**body["fields"], "version": "2.5"},
                              secret=CALLBACK_SECRET)  # fmt: skip

    await eventually(lambda: receiver.received, timeout=10, what="the callback")
    headers, raw, _ = receiver.received[0]
    sent = Webhook(CALLBACK_SECRET).verify(raw, headers)  # raises unless signed correctly
    assert sent["type"] == "request.approved" and sent["request"]["id"] == created["id"]
    state = await eventually(
        lambda: _callback_state(server, created["id"]), timeout=5, what="delivered state"
    )
    assert state["state"] == "delivered" and state["attempts"] == 1


async def _callback_state(server: RequestsServer, request_id: str) -> dict[str, Any] | None:
    _, view = await api("GET", f"{server.url}/api/requests/{request_id}")
    callback = view.get("callback") or {}
    return callback if callback.get("state") == "delivered" else None


async def test_every_bad_input_is_a_4xx_that_creates_nothing(requests_server: Any) -> None:
    server: RequestsServer = await requests_server()
    url = f"{server.url}/api/requests"
    cases: list[tuple[Any, dict[str, str], int, str]] = [
        ({"title": "x", "response": {"type": "object", "properties": {"o": {"type": "object"}}}},
         {}, 422, "unsupported_schema"),
        ({"title": "x", "quorum": "two"}, {}, 422, "invalid_body"),
        ({"title": "", "fields": {"a": {"nested": 1}}}, {}, 422, "invalid_body"),
        ({"title": "x", "quorum": 2, "response": {"type": "object", "properties":
          {"size": {"type": "string", "enum": ["s", "m"]}}}}, {}, 422, "quorum_needs_approval"),
        ({"title": "x", "callback_url": "ftp://example.com/x"}, {}, 422, "invalid_body"),
        ({"title": "x", "on_expiry": "reject"}, {}, 422, "invalid_body"),
        ({"title": "x", "expires_in": 60, "on_expiry": {"action": "default",
          "answer": {"approved": "maybe"}}}, {}, 422, "invalid_expiry_answer"),
        ({"title": "x" * 10, "text": "y" * 300_000}, {}, 413, "body_too_large"),
        ({"title": "x"}, {"Authorization": "Bearer wrong-token-123456"}, 401, "unauthorized"),
    ]  # fmt: skip
    for body, headers, want, code in cases:
        status, error = await api("POST", url, json=body, headers=headers)
        assert (status, error["error"]) == (want, code), (body, error)
    status, error = await api("GET", f"{url}/nope")
    assert (status, error["error"]) == (404, "not_found")
    status, first = await api("POST", url, json={"title": "a"}, headers={"Idempotency-Key": "k"})
    assert status == 201
    again = await api("POST", url, json={"title": "a"}, headers={"Idempotency-Key": "k"})
    assert again[1]["id"] == first["id"]
    other = await api("POST", url, json={"title": "b"}, headers={"Idempotency-Key": "k"})
    assert (other[0], other[1]["error"]) == (422, "idempotency_key_reused")
    _, listed = await api("GET", url)
    assert [r["id"] for r in listed["requests"]] == [first["id"]]  # nothing else was created


async def test_two_of_three_quorum_records_every_voter(requests_server: Any) -> None:
    server: RequestsServer = await requests_server()
    body = {
        "title": "Rotate keys",
        "responders": ["U0ALICE", "U0BOB", "U0DAVE"],
        "quorum": 2,
        "channel": CHANNEL,
    }
    _, created = await api("POST", f"{server.url}/api/requests", json=body)
    message = await server.message_for(created["id"])
    await server.click(message, user="U0ALICE")
    _, halfway = await api("GET", f"{server.url}/api/requests/{created['id']}?wait=1")
    assert halfway["status"] == "pending" and halfway["quorum"]["approvals"] == 1
    await server.click(message, user="U0BOB")
    _, done = await api("GET", f"{server.url}/api/requests/{created['id']}?wait=20")
    assert done["status"] == "approved"
    assert [v["actor"] for v in done["quorum"]["voters"]] == ["U0ALICE", "U0BOB"]
    assert "U0BOB" in done["receipt"]["payload"] and "U0ALICE" in done["receipt"]["payload"]


async def test_expiry_with_a_default_answer(requests_server: Any) -> None:
    server: RequestsServer = await requests_server()
    default = {"approved": False, "comment": "late"}
    body = {
        "title": "Quick one",
        "expires_in": 0.5,
        "on_expiry": {"action": "default", "answer": default},
    }
    _, created = await api("POST", f"{server.url}/api/requests", json=body)
    _, done = await api("GET", f"{server.url}/api/requests/{created['id']}?wait=20")
    assert done["status"] == "expired" and done["decided_by"] is None
    assert done["answer"] == {"approved": False, "comment": "late"}


async def test_the_client_asks_and_survives_a_kill_9_and_restart_while_waiting(
    requests_server: Any,
) -> None:
    server: RequestsServer = await requests_server()
    async with AsyncClient(server.url, TOKEN) as client:
        created = await client.request("Drop table users", fields={"table": "users"})
        message = await server.message_for(created.id)
        waiting = asyncio.create_task(client.wait(created.id, timeout=60))
        await asyncio.sleep(0.5)
        await server.service.kill()
        await server.restart()
        client.http.base_url = server.url  # a new port: as behind a load balancer
        assert await server.click(message, action_ids.REJECT, user="U0BOB") == 200
        view = await asyncio.wait_for(waiting, 60)
        assert view.status.value == "rejected" and view.decided_by == "U0BOB"

        second = asyncio.create_task(client.ask("Again?", fields={"n": 2}))
        message = await eventually(lambda: _newest(server, "Again?"), what="second post")
        assert await server.click(message, action_ids.REJECT, user="U0BOB") == 200
        try:
            await asyncio.wait_for(second, 30)
        except Rejected as exc:
            assert exc.by == "U0BOB"
        else:
            raise AssertionError("ask() should raise Rejected")


def _newest(server: RequestsServer, title: str) -> Any:
    found = [m for m in server.posts() if title in str(m.blocks)]
    return found[-1] if found else None


async def test_signoff_ask_exit_codes_for_each_outcome(requests_server: Any) -> None:
    server: RequestsServer = await requests_server()
    env = server.client_env()

    async def ask(title: str, *extra: str) -> asyncio.subprocess.Process:
        return await asyncio.create_subprocess_exec(
            sys.executable, "-m", "bot.cli", "ask", "--title", title, "--field", "env=prod",
            "--wait", *extra, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        )  # fmt: skip

    approved = await ask("approve me")
    await server.click(await eventually(lambda: _newest(server, "approve me")), user="U0ALICE")
    out, _ = await approved.communicate()
    assert approved.returncode == 0 and b"approved" in out
    rejected = await ask("reject me")
    await server.click(
        await eventually(lambda: _newest(server, "reject me")), action_ids.REJECT, user="U0BOB"
    )
    assert await rejected.wait() == 1
    expired = await ask("expire me", "--expires", "1s", "--on-expiry", "reject", "--json")
    out, _ = await expired.communicate()
    assert expired.returncode == 3 and json.loads(out)["status"] == "expired"
    bad = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bot.cli", "ask", "--title", "x",
        env={**env, "SIGNOFF_URL": "http://127.0.0.1:9"}, stderr=subprocess.PIPE,
    )  # fmt: skip
    started = time.monotonic()
    assert await bad.wait() == 2 and time.monotonic() - started < 30
