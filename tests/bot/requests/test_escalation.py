"""A request's escalation ladder: declared in the body, carried out by the engine."""

from __future__ import annotations

from pathlib import Path

from bot.web.requests import install_requests
from tests.bot.web.service import AUTH, INSTALLERS, running_service


async def test_a_request_declares_its_escalation_ladder_and_bad_steps_are_refused(
    tmp_path: Path,
) -> None:
    db = str(tmp_path / "requests.db")
    async with running_service(db, installers=[*INSTALLERS, install_requests]) as svc:
        body = {
            "title": "Deploy billing 2.4.1",
            "responders": ["U0ALICE"],
            "expires_in": 86400,
            "reminders": [3600],
            "escalate": [
                {"after": 4 * 3600, "add_responders": ["U0BOSS"], "channel": "C0ESC"},
                {"after": 2 * 3600, "channel": "C0SRE"},
            ],
        }
        created = await svc.client.post("/api/requests", json=body, headers=AUTH)
        assert created.status in (200, 201, 202), await created.text()
        request_id = (await created.json())["id"]
        await svc.engine.wait(request_id, timeout=10)
        (pending,) = await svc.engine.list_interrupts(run_id=request_id)
        assert [(e.after, e.add_responders, e.channel) for e in pending.escalations] == [
            (2 * 3600, [], "C0SRE"),
            (4 * 3600, ["U0BOSS"], "C0ESC"),
        ]
        assert pending.responders == ["U0ALICE"]  # the boss may answer only once it fires

        useless = {"title": "x", "escalate": [{"after": 60}]}
        refused = await svc.client.post("/api/requests", json=useless, headers=AUTH)
        assert refused.status == 422  # the request API answers body errors with 422
        assert "escalate" in str((await refused.json()).get("errors"))
        assert len(await svc.engine.list_runs()) == 1
