"""The REST API over real HTTP: auth, runs, interrupts, errors, and the SSE stream."""

from __future__ import annotations

import asyncio
import json
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from aiohttp import ClientResponse
from pydantic import BaseModel

from engine import Engine, Escalation, Event, RunStatus, StepContext, Workflow, open_store, step
from tests.bot.web.service import AUTH, WORKFLOWS, Service, running_service
from tests.bot.web.workflows import Decision, Order, Question, Result


@pytest.fixture
def db(tmp_path: Path) -> str:
    """A fresh database file."""
    return str(tmp_path / "api.db")


async def start_order(svc: Service, item: str = "laptop", requester: str = "carol") -> str:
    """Start an ``order`` run through the API and wait until it asks for approval."""
    resp = await svc.client.post(
        "/api/runs",
        json={"workflow": "order", "input": {"item": item}, "requester": requester},
        headers=AUTH,
    )
    assert resp.status == 202, await resp.text()
    run_id: str = (await resp.json())["run_id"]
    await svc.engine.wait(run_id, timeout=10)
    return run_id


def resume_url(run_id: str, interrupt_id: str) -> str:
    """The resume URL, with the interrupt id percent-encoded (it holds ':' and '#')."""
    return f"/api/runs/{run_id}/interrupts/{quote(interrupt_id, safe='')}/resume"


async def test_missing_or_wrong_token_is_401(db: str) -> None:
    async with running_service(db) as svc:
        resp = await svc.client.get("/api/runs")
        assert resp.status == 401
        assert resp.headers["WWW-Authenticate"] == "Bearer"
        wrong = await svc.client.get("/api/runs", headers={"Authorization": "Bearer nope"})
        assert wrong.status == 401
        basic = await svc.client.get("/api/runs", headers={"Authorization": "Basic dG9r"})
        assert basic.status == 401
        assert (await svc.client.get("/openapi.json")).status == 200  # docs need no token


async def test_unknown_routes_are_json_404_and_405_before_any_token_check(db: str) -> None:
    async with running_service(db) as svc:
        missing = await svc.client.get("/api/nope")
        assert missing.status == 404
        assert (await missing.json())["error"] == "no_route"
        wrong_method = await svc.client.delete("/api/runs")
        assert wrong_method.status == 405
        assert (await wrong_method.json())["error"] == "no_route"
        hook = await svc.client.get("/hooks/order")
        assert hook.status == 405
        assert (await hook.json())["error"] == "no_route"


async def test_without_a_token_the_api_is_disabled_and_says_so(db: str) -> None:
    async with running_service(db, SIGNOFF_API_TOKEN=None) as svc:
        svc.settings.api_token = None
        resp = await svc.client.post("/api/runs", json={"workflow": "order"}, headers=AUTH)
        assert resp.status == 503
        assert "SIGNOFF_API_TOKEN" in (await resp.json())["message"]
        assert await svc.engine.list_runs() == []


async def test_start_list_and_page_runs(db: str) -> None:
    async with running_service(db) as svc:
        ids = [await start_order(svc, item=f"item{i}") for i in range(3)]
        resp = await svc.client.get("/api/runs?limit=2", headers=AUTH)
        page = await resp.json()
        assert [r["id"] for r in page["runs"]] == ids[::-1][:2]  # newest first
        assert page["next_offset"] == 2
        rest = await (await svc.client.get("/api/runs?limit=2&offset=2", headers=AUTH)).json()
        assert [r["id"] for r in rest["runs"]] == [ids[0]] and rest["next_offset"] is None
        done = await svc.client.get("/api/runs?status=completed&workflow=order", headers=AUTH)
        assert (await done.json())["runs"] == []
        bad = await svc.client.get("/api/runs?status=bogus&limit=0", headers=AUTH)
        assert bad.status == 400
        assert set((await bad.json())["errors"]) == {"status", "limit"}


async def test_invalid_input_unknown_workflow_and_bad_bodies_create_nothing(db: str) -> None:
    async with running_service(db) as svc:
        resp = await svc.client.post(
            "/api/runs", json={"workflow": "order", "input": {"qty": 0}}, headers=AUTH
        )
        assert resp.status == 422
        assert set((await resp.json())["errors"]) == {"item", "qty"}
        resp = await svc.client.post("/api/runs", json={"workflow": "nope"}, headers=AUTH)
        assert resp.status == 404
        resp = await svc.client.post("/api/runs", json={"input": {}}, headers=AUTH)
        assert resp.status == 400 and "workflow" in (await resp.json())["errors"]
        resp = await svc.client.post("/api/runs", data="x", headers=AUTH)
        assert resp.status == 415
        headers = {**AUTH, "Content-Type": "application/json"}
        resp = await svc.client.post("/api/runs", data="{", headers=headers)
        assert resp.status == 400 and (await resp.json())["error"] == "invalid_json"
        assert await svc.engine.list_runs() == []


async def test_idempotency_key_through_the_api(db: str) -> None:
    async with running_service(db) as svc:
        body = {"workflow": "order", "input": {"item": "pen"}}
        headers = {**AUTH, "Idempotency-Key": "k1"}
        first = await (await svc.client.post("/api/runs", json=body, headers=headers)).json()
        second = await (await svc.client.post("/api/runs", json=body, headers=headers)).json()
        assert first["run_id"] == second["run_id"]
        assert len(await svc.engine.list_runs()) == 1


async def test_get_run_shows_pending_interrupts_with_resume_schema(db: str) -> None:
    async with running_service(db) as svc:
        run_id = await start_order(svc)
        detail = await (await svc.client.get(f"/api/runs/{run_id}", headers=AUTH)).json()
        assert detail["status"] == "suspended"
        assert [s["name"] for s in detail["steps"]] == ["approve"]
        (pending,) = detail["pending"]
        assert pending["resume_schema"]["required"] == ["approved"]
        assert pending["payload"] == {"question": "Order 1 x laptop?"}
        assert pending["responders"] == ["alice", "bob"]
        assert pending["resume_url"] == resume_url(run_id, pending["id"])
        assert [e["type"] for e in detail["events"]][:2] == ["started", "step_started"]
        listed = await (await svc.client.get("/api/interrupts", headers=AUTH)).json()
        assert [i["id"] for i in listed["interrupts"]] == [pending["id"]]
        mine = await svc.client.get("/api/interrupts?actor=carol", headers=AUTH)
        assert (await mine.json())["interrupts"] == []  # carol asked: she may not answer
        missing = await svc.client.get("/api/runs/nope", headers=AUTH)
        assert missing.status == 404 and (await missing.json())["error"] == "not_found"


async def test_resume_errors_then_success_then_409_naming_who(db: str) -> None:
    async with running_service(db) as svc:
        run_id = await start_order(svc)
        (interrupt,) = await svc.engine.list_interrupts(run_id=run_id)
        url = resume_url(run_id, interrupt.id)

        bad = await svc.client.post(
            url,
            json={"data": {"approved": "maybe", "comment": "x" * 60}, "actor": "alice"},
            headers=AUTH,
        )
        assert bad.status == 422
        assert set((await bad.json())["errors"]) == {"approved", "comment"}
        for actor in ("mallory", "carol"):  # not a responder; the requester
            denied = await svc.client.post(
                url, json={"data": {"approved": True}, "actor": actor}, headers=AUTH
            )
            assert denied.status == 403, actor
        ok = await svc.client.post(
            url, json={"data": {"approved": True, "comment": "ok"}, "actor": "alice"}, headers=AUTH
        )
        assert ok.status == 200
        assert (await ok.json())["status"] == "approved"
        late = await svc.client.post(
            url, json={"data": {"approved": False}, "actor": "bob"}, headers=AUTH
        )
        assert late.status == 409
        body = await late.json()
        assert body["resolved_by"] == "alice" and body["status"] == "approved"
        assert "alice" in body["message"]
        run = await svc.engine.wait(run_id, timeout=10)
        assert run.status is RunStatus.COMPLETED and run.output["by"] == "alice"
        unknown = await svc.client.post(
            resume_url(run_id, "nope"), json={"data": {}, "actor": "a"}, headers=AUTH
        )
        assert unknown.status == 404


async def test_cancel_and_cancel_again(db: str) -> None:
    async with running_service(db) as svc:
        run_id = await start_order(svc)
        body = {"reason": "not needed", "actor": "ops"}
        resp = await svc.client.post(f"/api/runs/{run_id}/cancel", json=body, headers=AUTH)
        assert resp.status == 200 and (await resp.json())["status"] == "cancelled"
        again = await svc.client.post(f"/api/runs/{run_id}/cancel", headers=AUTH)
        assert again.status == 409 and (await again.json())["error"] == "run_not_active"
        events = await (await svc.client.get(f"/api/runs/{run_id}/events", headers=AUTH)).json()
        assert "cancelled" in [e["type"] for e in events["events"]]
        after = events["events"][-1]["id"]
        tail = await svc.client.get(f"/api/runs/{run_id}/events?after={after}", headers=AUTH)
        assert (await tail.json())["events"] == []


async def test_stream_sends_each_event_once_then_ends(db: str) -> None:
    async with running_service(db) as svc:
        run_id = await start_order(svc)
        resp = await svc.client.get(f"/api/runs/{run_id}/stream", headers=AUTH)
        assert resp.status == 200
        assert resp.headers["Content-Type"].startswith("text/event-stream")
        seen: list[tuple[str, str]] = []
        (interrupt,) = await svc.engine.list_interrupts(run_id=run_id)
        resumed = False
        while True:
            line = (await resp.content.readline()).decode()
            if line.startswith("event: "):
                name = line[len("event: ") :].strip()
                data = (await resp.content.readline()).decode()
                seen.append((name, data))
                if name == "suspended" and not resumed:
                    resumed = True
                    await svc.engine.resume(run_id, interrupt.id, {"approved": True}, actor="bob")
                if name == "end":
                    break
        names = [n for n, _ in seen]
        assert names[0] == "started" and names[-2:] == ["completed", "end"]
        ids = [json.loads(d[len("data: ") :])["id"] for n, d in seen if n != "end"]
        assert ids == sorted(set(ids))  # each event once, in order
        # Reconnecting after the last id replays nothing but the end.
        tail = await svc.client.get(
            f"/api/runs/{run_id}/stream", headers={**AUTH, "Last-Event-ID": str(ids[-1])}
        )
        assert "event: end" in await tail.text()
        assert "event: completed" not in await tail.text()
        missing = await svc.client.get("/api/runs/nope/stream", headers=AUTH)
        assert missing.status == 404


async def next_event(stream: ClientResponse, wanted: str) -> dict[str, Any]:
    """Read a stream up to the next ``wanted`` event; its data."""
    while True:
        line = (await stream.content.readline()).decode()
        if not line:
            raise AssertionError(f"the stream ended before {wanted!r}")
        if line.strip() == f"event: {wanted}":
            data: dict[str, Any] = json.loads((await stream.content.readline())[len("data: ") :])
            return data


async def test_idle_streams_read_nothing_each_and_see_another_engines_commits(
    db: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with running_service(db) as svc:
        run_id = await start_order(svc)
        streams = [
            await svc.client.get(f"/api/runs/{run_id}/stream", headers=AUTH) for _ in range(20)
        ]
        for stream in streams:
            await next_event(stream, "suspended")  # caught up
        reads: list[str] = []
        real_events = svc.engine.events

        async def events(run: str, **kwargs: Any) -> list[Event]:
            reads.append(run)
            return await real_events(run, **kwargs)

        monkeypatch.setattr(svc.engine, "events", events)

        await asyncio.sleep(0.6)  # a few of the watch's looks (every 0.25 s)
        assert reads == []  # no stream read its run's history while nothing changed

        # Another engine on the same database (another process, or instance) answers.
        other = Engine(open_store(db), workflows=WORKFLOWS, poll_interval=0.05, lease=2.0)
        await other.start_background()
        try:
            (interrupt,) = await other.list_interrupts(run_id=run_id)
            await other.resume(run_id, interrupt.id, {"approved": True}, actor="bob")
            ends = [await asyncio.wait_for(next_event(s, "end"), 5.0) for s in streams]
        finally:
            await other.close(grace=1.0)
        assert ends == [{"status": "completed"}] * 20


async def test_an_open_stream_ends_when_the_server_shuts_down(db: str) -> None:
    async with running_service(db) as svc:
        run_id = await start_order(svc)
        stream = await svc.client.get(f"/api/runs/{run_id}/stream", headers=AUTH)
        await next_event(stream, "suspended")  # caught up: now it waits for news
        end = asyncio.create_task(next_event(stream, "end"))
        await asyncio.sleep(0.1)
        assert not end.done()

        assert svc.client.server.runner is not None
        await svc.client.server.runner.shutdown()  # graceful shutdown's first step

        # At once, not at the next keep-alive (15 s): the run itself is still parked.
        assert await asyncio.wait_for(end, 5.0) == {"status": "server_closing"}
        run = await svc.engine.find_run(run_id)
        assert run is not None and run.status is RunStatus.SUSPENDED


async def test_workflows_list_their_schemas(db: str) -> None:
    async with running_service(db) as svc:
        listed = await (await svc.client.get("/api/workflows", headers=AUTH)).json()
        names = sorted(w["name"] for w in listed["workflows"])
        assert names == ["billing", "order", "slow"]
        order = await (await svc.client.get("/api/workflows/order", headers=AUTH)).json()
        assert order["input_schema"]["required"] == ["item"]
        (step,) = order["steps"]
        assert step["resume_schema"]["properties"]["approved"]["type"] == "boolean"
        billing = await (await svc.client.get("/api/workflows/billing", headers=AUTH)).json()
        assert "amount" in billing["steps"][0]["events"]["payment"]["properties"]
        assert (await svc.client.get("/api/workflows/nope", headers=AUTH)).status == 404


class Refusal(BaseModel):
    """A rejected order's typed result."""

    item: str
    reason: str


@step(title="Approve refund", bail=Refusal)
async def approve_refund(order: Order, ctx: StepContext[Question, Decision]) -> Result:
    """Labelled, with an escalation ladder; a rejection bails with a typed result."""
    answer = await ctx.suspend(
        Question(question=f"Refund {order.item}?"),
        responders=["alice"],
        label="refund",
        expires=timedelta(days=2),
        escalate=[Escalation(after=timedelta(hours=4), add_responders=["bob"], channel="C0ESC")],
    )
    if not answer.approved:
        ctx.bail("refund refused", result=Refusal(item=order.item, reason=answer.comment))
    return Result(item=order.item, approved=True)


refund = Workflow("refund", input=Order, output=Result).then(approve_refund)


async def test_interrupts_show_their_label_and_ladder_and_filter_by_label(db: str) -> None:
    async with running_service(db, workflows=[*WORKFLOWS, refund]) as svc:
        await start_order(svc)
        resp = await svc.client.post(
            "/api/runs", json={"workflow": "refund", "input": {"item": "mug"}}, headers=AUTH
        )
        run_id = (await resp.json())["run_id"]
        await svc.engine.wait(run_id, timeout=10)
        listed = await svc.client.get("/api/interrupts?label=refund", headers=AUTH)
        (shown,) = (await listed.json())["interrupts"]
        assert (shown["run_id"], shown["label"]) == (run_id, "refund")
        (ladder,) = shown["escalations"]
        assert (ladder["after"], ladder["add_responders"], ladder["channel"]) == (
            4 * 3600,
            ["bob"],
            "C0ESC",
        )
        assert ladder["escalated_at"] is None
        everything = await svc.client.get("/api/interrupts", headers=AUTH)
        assert len((await everything.json())["interrupts"]) == 2


async def test_a_rejected_run_shows_its_typed_bail_result(db: str) -> None:
    async with running_service(db, workflows=[*WORKFLOWS, refund]) as svc:
        resp = await svc.client.post(
            "/api/runs", json={"workflow": "refund", "input": {"item": "mug"}}, headers=AUTH
        )
        run_id = (await resp.json())["run_id"]
        await svc.engine.wait(run_id, timeout=10)
        (pending,) = await svc.engine.list_interrupts(run_id=run_id)
        answer = {"actor": "alice", "data": {"approved": False, "comment": "broken"}}
        resumed = await svc.client.post(resume_url(run_id, pending.id), json=answer, headers=AUTH)
        assert resumed.status == 200, await resumed.text()
        await svc.engine.wait(run_id, timeout=10, until=[RunStatus.REJECTED])
        detail = await (await svc.client.get(f"/api/runs/{run_id}", headers=AUTH)).json()
        assert detail["status"] == "rejected"
        assert detail["output"] == {"item": "mug", "reason": "broken"}
        assert detail["error"]["message"] == "refund refused"
