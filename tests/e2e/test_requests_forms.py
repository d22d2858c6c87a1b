"""Requests answered through Slack modals, typed answers, reasons on reject, and expiry,
on a real ``signoff serve`` with the fake Slack."""

from __future__ import annotations

import asyncio
import enum
from datetime import date
from typing import Any

from pydantic import BaseModel, Field

from bot.client import AsyncClient
from bot.slack import action_ids
from tests.e2e.requests_server import TOKEN, RequestsServer, api
from tests.support.polling import eventually


def _buttons(message: Any) -> list[str]:
    return [
        e["action_id"]
        for b in message.blocks
        if b.get("type") == "actions"
        for e in b.get("elements", [])
    ]


async def test_a_json_schema_form_shows_per_field_errors_then_resolves_with_typed_values(
    requests_server: Any,
) -> None:
    server: RequestsServer = await requests_server()
    schema = {
        "type": "object",
        "properties": {
            "quantity": {"type": "integer", "minimum": 1, "maximum": 10, "title": "Quantity"},
            "ticket": {"type": "string", "pattern": "^[A-Z]+-[0-9]+$", "title": "Ticket"},
            "ship_on": {"type": "string", "format": "date", "title": "Ship on"},
            "size": {"type": "string", "enum": ["s", "m", "l"]},
        },
        "required": ["quantity", "ticket", "ship_on", "size"],
    }
    _, created = await api(
        "POST", f"{server.url}/api/requests", json={"title": "Order parts", "response": schema}
    )
    message = await server.message_for(created["id"])
    assert _buttons(message) == [action_ids.RESPOND]
    modal = await server.open_modal(message, action_ids.RESPOND, user="U0ALICE")
    assert {b["block_id"] for b in modal["blocks"] if b["type"] == "input"} == {
        "quantity", "ticket", "ship_on", "size",
    }  # fmt: skip

    bad = {"quantity": "0", "ticket": "not a ticket", "ship_on": "2031-02-03", "size": "m"}
    answer = await server.submit(modal, bad, user="U0ALICE")
    assert answer["response_action"] == "errors"
    assert set(answer["errors"]) == {"quantity", "ticket"}  # each invalid field, named
    _, still = await api("GET", f"{server.url}/api/requests/{created['id']}")
    assert still["status"] == "pending" and still["quorum"]["voters"] == []

    good = {**bad, "quantity": "4", "ticket": "OPS-12"}
    assert (await server.submit(modal, good, user="U0ALICE")).get("response_action") != "errors"
    _, done = await api("GET", f"{server.url}/api/requests/{created['id']}?wait=20")
    assert done["status"] == "answered" and done["decided_by"] == "U0ALICE"
    assert done["answer"] == {"quantity": 4, "ticket": "OPS-12", "ship_on": "2031-02-03",
                              "size": "m"}  # fmt: skip


class Size(enum.StrEnum):
    SMALL = "s"
    MEDIUM = "m"


class Restock(BaseModel):
    count: int = Field(ge=1, le=100, title="How many")
    arrive_by: date
    size: Size


async def test_ask_with_a_response_model_returns_an_instance_of_it(requests_server: Any) -> None:
    server: RequestsServer = await requests_server()
    async with AsyncClient(server.url, TOKEN) as client:
        asking = asyncio.create_task(
            client.ask("Restock", fields={"sku": "A-1"}, response=Restock, timeout=30)
        )
        message = await eventually(
            lambda: next((m for m in server.posts() if "Restock" in str(m.blocks)), None),
            timeout=15,
            what="the post",
        )
        modal = await server.open_modal(message, action_ids.RESPOND, user="U0BOB")
        answers = {"count": "12", "arrive_by": "2031-05-06", "size": "m"}
        assert (await server.submit(modal, answers, user="U0BOB")).get("response_action") is None
        restock = await asyncio.wait_for(asking, 30)
    assert isinstance(restock, Restock)
    assert restock == Restock(count=12, arrive_by=date(2031, 5, 6), size=Size.MEDIUM)
    assert type(restock.count) is int and restock.size is Size.MEDIUM


async def test_reject_asks_for_a_reason_and_approve_does_not(requests_server: Any) -> None:
    server: RequestsServer = await requests_server()
    preset = {"preset": "approval", "comment": "required_on_reject"}
    url = f"{server.url}/api/requests"
    _, first = await api("POST", url, json={"title": "Wipe staging", "response": preset})
    message = await server.message_for(first["id"])
    assert _buttons(message) == [action_ids.APPROVE, action_ids.REJECT_MODAL]

    modal = await server.open_modal(message, action_ids.REJECT_MODAL, user="U0BOB")
    (reason,) = [b for b in modal["blocks"] if b["type"] == "input"]
    assert reason["block_id"] == "comment" and not reason.get("optional")
    answer = await server.submit(modal, {"comment": None}, user="U0BOB")
    assert answer["response_action"] == "errors" and set(answer["errors"]) == {"comment"}
    await server.submit(modal, {"comment": "staging is in use"}, user="U0BOB")
    _, rejected = await api("GET", f"{url}/{first['id']}?wait=20")
    assert rejected["status"] == "rejected" and rejected["decided_by"] == "U0BOB"
    assert rejected["answer"] == {"approved": False, "comment": "staging is in use"}

    _, second = await api("POST", url, json={"title": "Wipe dev", "response": preset})
    message = await server.message_for(second["id"])
    views_before = len(server.fake.views())
    assert await server.click(message, action_ids.APPROVE, user="U0ALICE") == 200
    _, approved = await api("GET", f"{url}/{second['id']}?wait=20")
    assert approved["status"] == "approved" and approved["answer"]["approved"] is True
    assert len(server.fake.views()) == views_before  # approving opened no modal

    # Through the API too, a rejection without a reason is refused.
    _, third = await api("POST", url, json={"title": "Wipe qa", "response": preset})
    await server.message_for(third["id"])
    status, error = await api(
        "POST",
        f"{server.url}/api/runs/{third['id']}/interrupts/request/resume",
        json={"data": {"approved": False}, "actor": "U0BOB"},
    )
    assert status == 422, error


async def test_an_expiry_is_expired_whatever_the_action_with_the_action_applied_shown(
    requests_server: Any,
) -> None:
    server: RequestsServer = await requests_server()
    url = f"{server.url}/api/requests"
    default = {"approved": False, "comment": "nobody answered"}
    policies: dict[str, Any] = {
        "reject": "reject",
        "fail": "fail",
        "default": {"action": "default", "answer": default},
    }
    ids = {}
    for name, policy in policies.items():
        body = {"title": f"expire {name}", "expires_in": 0.5, "on_expiry": policy}
        status, created = await api("POST", url, json=body)
        assert status == 201, created
        ids[name] = created["id"]
    views = {name: (await api("GET", f"{url}/{rid}?wait=20"))[1] for name, rid in ids.items()}
    for name, view in views.items():
        assert view["status"] == "expired", (name, view)
        assert view["expired"] is True and view["expiry_action"] == name
        assert view["decided_by"] is None
    assert views["reject"]["answer"] is None and views["fail"]["answer"] is None
    assert views["default"]["answer"] == default  # the typed default, answered by nobody
    _, listed = await api("GET", f"{url}?status=expired")
    assert {r["id"] for r in listed["requests"]} == set(ids.values())
