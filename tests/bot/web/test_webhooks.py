"""Signed webhook triggers: signatures, replay window, idempotency, every error status."""

from __future__ import annotations

import io
import json
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from bot.web.webhooks import sign, verify
from engine import RunStatus
from tests.bot.web.service import SECRET, Service, running_service, signed


@pytest.fixture
def db(tmp_path: Path) -> str:
    """A fresh database file."""
    return str(tmp_path / "hooks.db")


async def nothing_created(svc: Service) -> None:
    """Assert that no run exists."""
    assert await svc.engine.list_runs() == []


def test_verify_accepts_rotated_signatures_and_rejects_tampering() -> None:
    now = time.time()
    good = sign("new-secret", int(now), b"{}")
    old = sign("old-secret", int(now), b"{}")
    assert verify("new-secret", str(int(now)), f"{old}, {good}", b"{}", now=now) is None
    assert verify("new-secret", str(int(now)), good, b"{ }", now=now) == "signature does not match"
    assert "Unix seconds" in (verify("s", "soon", good, b"{}", now=now) or "")


async def test_good_signature_starts_a_run(db: str) -> None:
    async with running_service(db) as svc:
        body, headers = signed({"item": "laptop", "qty": 2})
        resp = await svc.client.post("/hooks/order", data=body, headers=headers)
        assert resp.status == 202
        got = await resp.json()
        assert got["status"] in ("running", "suspended")
        assert got["links"]["run"] == f"/api/runs/{got['run_id']}"
        run = await svc.engine.wait(got["run_id"], timeout=10)
        assert run.status is RunStatus.SUSPENDED
        assert run.input == {"item": "laptop", "qty": 2}


@pytest.mark.parametrize(
    ("case", "expected"),
    [
        ("bad", "signature does not match"),
        ("stale", "seconds off"),
        ("future", "seconds off"),
        ("missing", "missing"),
        ("other-secret", "signature does not match"),
    ],
)
async def test_bad_stale_or_missing_signature_is_401_and_creates_nothing(
    db: str, case: str, expected: str
) -> None:
    async with running_service(db) as svc:
        now = int(time.time())
        body, headers = signed({"item": "x"})
        if case == "bad":
            headers["X-Signoff-Signature"] = "v1=" + "0" * 64
        elif case == "stale":
            body, headers = signed({"item": "x"}, timestamp=now - 301)
        elif case == "future":
            body, headers = signed({"item": "x"}, timestamp=now + 301)
        elif case == "missing":
            del headers["X-Signoff-Signature"]
        else:
            body, headers = signed({"item": "x"}, secret="not-the-secret")
        resp = await svc.client.post("/hooks/order", data=body, headers=headers)
        assert resp.status == 401
        assert expected in (await resp.json())["message"]
        await nothing_created(svc)


async def test_idempotency_key_returns_the_same_run_per_workflow(db: str) -> None:
    async with running_service(db) as svc:
        body, headers = signed({"item": "laptop"})
        headers["Idempotency-Key"] = "order-42"
        first = await (await svc.client.post("/hooks/order", data=body, headers=headers)).json()
        again = await svc.client.post("/hooks/order", data=body, headers=headers)
        assert again.status == 202
        assert (await again.json())["run_id"] == first["run_id"]
        # The same key on another workflow is another run: keys are scoped per workflow.
        other = await (await svc.client.post("/hooks/slow", data=body, headers=headers)).json()
        assert other["run_id"] != first["run_id"]
        # Reusing the key with another body is refused, not answered with the old run.
        body2, headers2 = signed({"item": "phone"})
        headers2["Idempotency-Key"] = "order-42"
        clash = await svc.client.post("/hooks/order", data=body2, headers=headers2)
        assert clash.status == 422
        assert (await clash.json())["error"] == "idempotency_key_reused"
        assert len(await svc.engine.list_runs()) == 2


async def test_invalid_input_is_400_with_field_errors(db: str) -> None:
    async with running_service(db) as svc:
        body, headers = signed({"item": "", "qty": 1000})
        resp = await svc.client.post("/hooks/order", data=body, headers=headers)
        assert resp.status == 400
        got = await resp.json()
        assert got["error"] == "invalid_input"
        assert set(got["errors"]) == {"item", "qty"}
        body, headers = signed(None, raw=b"{not json")
        resp = await svc.client.post("/hooks/order", data=body, headers=headers)
        assert resp.status == 400
        assert (await resp.json())["error"] == "invalid_json"
        await nothing_created(svc)


async def test_unknown_workflow_is_404(db: str) -> None:
    async with running_service(db) as svc:
        body, headers = signed({"item": "x"})
        resp = await svc.client.post("/hooks/nope", data=body, headers=headers)
        assert resp.status == 404
        assert (await resp.json())["error"] == "unknown_workflow"
        await nothing_created(svc)


async def test_body_over_one_mebibyte_is_413(db: str) -> None:
    async with running_service(db) as svc:
        big = json.dumps({"item": "x", "pad": "a" * (1024 * 1024)}).encode()
        body, headers = signed(None, raw=big)
        # BytesIO: aiohttp warns about (and the loop would block on) raw bytes this large.
        resp = await svc.client.post("/hooks/order", data=io.BytesIO(body), headers=headers)
        assert resp.status == 413

        async def chunks() -> AsyncIterator[
            bytes
        ]:  # no Content-Length: the limit must hold while streaming
            for _ in range(20):
                yield b"a" * 65536

        headers.pop("Content-Length", None)
        resp = await svc.client.post("/hooks/order", data=chunks(), headers=headers)
        assert resp.status == 413
        await nothing_created(svc)


async def test_body_that_is_not_json_is_415(db: str) -> None:
    async with running_service(db) as svc:
        body, headers = signed({"item": "x"})
        headers["Content-Type"] = "text/plain"
        resp = await svc.client.post("/hooks/order", data=body, headers=headers)
        assert resp.status == 415
        await nothing_created(svc)


async def test_without_secrets_webhooks_are_disabled(db: str) -> None:
    async with running_service(db, SIGNOFF_WEBHOOK_SECRET=None) as svc:
        svc.settings.webhook_secret = None
        body, headers = signed({"item": "x"})
        resp = await svc.client.post("/hooks/order", data=body, headers=headers)
        assert resp.status == 503
        assert "SIGNOFF_WEBHOOK_SECRET" in (await resp.json())["message"]
        await nothing_created(svc)


async def test_per_workflow_secret_wins_over_the_shared_one(db: str) -> None:
    secrets = {"order": "order-only-secret"}
    async with running_service(db, SIGNOFF_WEBHOOK_SECRETS=secrets) as svc:
        body, headers = signed({"item": "x"})  # the shared secret
        assert (await svc.client.post("/hooks/order", data=body, headers=headers)).status == 401
        body, headers = signed({"item": "x"}, secret="order-only-secret")
        assert (await svc.client.post("/hooks/order", data=body, headers=headers)).status == 202
        body, headers = signed({"item": "x"}, secret=SECRET)  # slow has no own secret
        assert (await svc.client.post("/hooks/slow", data=body, headers=headers)).status == 202


async def test_signed_event_resumes_a_waiting_run(db: str) -> None:
    async with running_service(db) as svc:
        body, headers = signed({"item": "invoice"})
        started = await svc.client.post("/hooks/billing", data=body, headers=headers)
        run_id = (await started.json())["run_id"]
        await svc.engine.wait(run_id, timeout=10)
        url = f"/hooks/billing/runs/{run_id}/events/payment"

        body, headers = signed({"amount": -5})
        bad = await svc.client.post(url, data=body, headers=headers)
        assert bad.status == 400
        assert "amount" in (await bad.json())["errors"]

        body, headers = signed({"amount": 7})
        wrong_workflow = f"/hooks/order/runs/{run_id}/events/payment"
        assert (await svc.client.post(wrong_workflow, data=body, headers=headers)).status == 404
        unknown = f"/hooks/billing/runs/{run_id}/events/refund"
        assert (await svc.client.post(unknown, data=body, headers=headers)).status == 404

        ok = await svc.client.post(url, data=body, headers=headers)
        assert ok.status == 202
        assert (await ok.json())["status"] == "resolved"
        run = await svc.engine.wait(run_id, timeout=10)
        assert run.status is RunStatus.COMPLETED
        assert run.output["paid"] == 7

        again = await svc.client.post(url, data=body, headers=headers)
        assert again.status == 409
        assert (await again.json())["error"] == "already_resolved"
