"""Hostile input on the webhooks and the REST API: a 4xx naming the problem, nothing changed.

Deep nesting, huge numbers, odd ``Last-Event-ID`` values, group actors and clients that
vanish mid-body must never be a 500, a dropped stream or a traceback in the log.
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from urllib.parse import quote

import pytest

from engine import RunStatus
from tests.bot.web.service import AUTH, running_service, serving_like_signoff, signed
from tests.bot.web.workflows import WORKFLOWS
from tests.e2e.wf_approvals import change

DEEP = b"[" * 100_000
HUGE_NUMBER = b"1" * 5000
JSON_AUTH = {**AUTH, "Content-Type": "application/json"}


@pytest.fixture
def db(tmp_path: Path) -> str:
    """A fresh database file."""
    return str(tmp_path / "hostile.db")


def resume_url(run_id: str, interrupt_id: str) -> str:
    """The resume URL of an interrupt (its id percent-encoded)."""
    return f"/api/runs/{run_id}/interrupts/{quote(interrupt_id, safe='')}/resume"


async def test_deep_json_huge_numbers_and_nan_are_400_invalid_json_everywhere(db: str) -> None:
    async with running_service(db, workflows=[*WORKFLOWS, change]) as svc:
        run_id = await svc.engine.start("order", {"item": "pen"}, requester="carol")
        await svc.engine.wait(run_id, timeout=10)
        (interrupt,) = await svc.engine.list_interrupts(run_id=run_id)
        before = await svc.engine.get_run(run_id)
        bodies = [
            DEEP,
            HUGE_NUMBER,
            b'{"workflow": "order", "input": {"qty": ' + HUGE_NUMBER + b"}}",
            b'{"a": ' + b"[" * 80 + b"]" * 80 + b"}",  # valid JSON, deeper than 64 levels
            b'{"workflow": "order", "input": {"qty": NaN}}',
        ]
        for body in bodies:
            for path in (
                "/api/runs",
                f"/api/runs/{run_id}/cancel",
                resume_url(run_id, interrupt.id),
            ):
                resp = await svc.client.post(path, data=body, headers=JSON_AUTH)
                assert resp.status == 400, (path, body[:40], await resp.text())
                assert (await resp.json())["error"] == "invalid_json"
            data, headers = signed(None, raw=body)
            resp = await svc.client.post("/hooks/order", data=data, headers=headers)
            assert resp.status == 400 and (await resp.json())["error"] == "invalid_json"
        assert [r.id for r in await svc.engine.list_runs()] == [run_id]
        assert await svc.engine.get_run(run_id) == before


@pytest.mark.parametrize(
    "value",
    ["9223372036854775808", str(2**62 + 1), "²", "٣", "-1", "1e3", "0x1f", "9" * 5000],
)
async def test_a_last_event_id_out_of_range_or_not_ascii_digits_is_400(db: str, value: str) -> None:
    async with running_service(db) as svc:
        run_id = await svc.engine.start("order", {"item": "pen"}, requester="carol")
        await svc.engine.wait(run_id, timeout=10)
        resp = await svc.client.get(
            f"/api/runs/{run_id}/stream", headers={**AUTH, "Last-Event-ID": value}
        )
        assert resp.status == 400, await resp.text()
        assert "Last-Event-ID" in (await resp.json())["message"]
        # The bound itself is an event id: the stream opens.
        ok = await svc.client.get(
            f"/api/runs/{run_id}/stream", headers={**AUTH, "Last-Event-ID": str(2**62)}
        )
        assert ok.status == 200
        ok.close()


@pytest.mark.parametrize("actor", ["group:S0PROD", "S0PROD", "@ops", "<!subteam^S0PROD>", "a b"])
async def test_a_group_cannot_answer_or_count_towards_a_quorum_through_the_api(
    db: str, actor: str
) -> None:
    async with running_service(db, workflows=[*WORKFLOWS, change]) as svc:
        policy = {"service": "db", "approvers": ["group:S0PROD", "U0ALICE"], "quorum": 2}
        run_id = await svc.engine.start("change", policy, requester="U0CAROL")
        await svc.engine.wait(run_id, timeout=10)
        (interrupt,) = await svc.engine.list_interrupts(run_id=run_id)
        url = resume_url(run_id, interrupt.id)

        refused = await svc.client.post(
            url, json={"data": {"approved": True}, "actor": actor}, headers=AUTH
        )
        assert refused.status == 422, await refused.text()
        assert (await refused.json())["error"] == "invalid_actor"
        cancel = await svc.client.post(
            f"/api/runs/{run_id}/cancel", json={"actor": actor}, headers=AUTH
        )
        assert cancel.status == 422
        (still,) = await svc.engine.list_interrupts(run_id=run_id)
        assert still.approvals == 0 and still == interrupt

        # A person still counts: one of two approvals.
        person = await svc.client.post(
            url, json={"data": {"approved": True}, "actor": "U0ALICE"}, headers=AUTH
        )
        assert person.status == 200, await person.text()
        assert (await person.json())["approvals"] == 1
        assert (await svc.engine.get_run(run_id)).run.status is RunStatus.SUSPENDED


async def test_a_client_that_disconnects_mid_body_is_one_info_line(
    db: str, caplog: pytest.LogCaptureFixture
) -> None:
    async with serving_like_signoff(db) as (engine, url):
        caplog.set_level(logging.DEBUG)
        host, port = url.removeprefix("http://").split(":")
        for path in ("/api/runs", "/hooks/order"):
            reader, writer = await asyncio.open_connection(host, port)
            writer.write(
                f"POST {path} HTTP/1.1\r\nHost: x\r\nAuthorization: {AUTH['Authorization']}\r\n"
                'Content-Type: application/json\r\nContent-Length: 1000\r\n\r\n{"wor'.encode()
            )
            await writer.drain()
            await asyncio.sleep(0.1)
            writer.close()
        await asyncio.sleep(0.3)  # the server notices the closed connections
        assert await engine.list_runs() == []

    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert errors == [], [r.getMessage() for r in errors]
    assert not any(r.exc_info for r in caplog.records)
    gone = [r for r in caplog.records if "went away" in r.getMessage()]
    assert [r.levelno for r in gone] == [logging.INFO, logging.INFO]  # one line per client
