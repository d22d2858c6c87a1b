"""Creating a request: the 201 shows the request as stored, without reading it back, and
an idempotent retry shows it as it is now."""

from __future__ import annotations

from pathlib import Path

from bot.web.requests import install_requests
from tests.bot.web.service import AUTH, INSTALLERS, running_service
from tests.support.polling import eventually


async def test_the_created_view_is_the_stored_request_and_a_retry_shows_it_now(
    tmp_path: Path,
) -> None:
    db = str(tmp_path / "requests.db")
    async with running_service(db, installers=[*INSTALLERS, install_requests]) as svc:
        body = {"title": "Deploy billing 2.4.1", "fields": {"v": "2.4.1"}, "expires_in": 3600}
        headers = {**AUTH, "Idempotency-Key": "deploy-1"}
        created = await svc.client.post("/api/requests", json=body, headers=headers)
        assert created.status == 201, await created.text()
        view = await created.json()
        assert view["status"] == "pending" and view["expires_at"] is None  # not asked yet

        async def asked() -> dict[str, object] | None:
            got = await (await svc.client.get(f"/api/requests/{view['id']}", headers=AUTH)).json()
            return got if got["expires_at"] is not None else None

        stored = await eventually(asked, what="the request asked")
        assert {**stored, "expires_at": None} == view  # the same request, now with its expiry

        again = await svc.client.post("/api/requests", json=body, headers=headers)
        assert again.status == 201
        assert await again.json() == stored  # a retry reads the request as it is now
