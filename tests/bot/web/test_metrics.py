"""``/healthz`` and ``/metrics`` over HTTP."""

from __future__ import annotations

import asyncio
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from tests.bot.web.service import Service, running_service


async def scrape(svc: Service) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """``/metrics`` as {(sample name, sorted labels): value}."""
    resp = await svc.client.get("/metrics")
    assert resp.status == 200
    assert resp.headers["Content-Type"].startswith("text/plain")
    samples = {}
    for family in text_string_to_metric_families(await resp.text()):
        for s in family.samples:
            samples[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return samples


async def test_healthz_checks_the_database(tmp_path: Path) -> None:
    async with running_service(str(tmp_path / "h.db")) as svc:
        resp = await svc.client.get("/healthz")
        assert resp.status == 200
        body = await resp.json()
        assert body["status"] == "ok" and body["worker"] == svc.engine.worker_id
        assert body["slack"] is False

        async def broken(run_id: str) -> None:
            raise OSError("disk I/O error")

        svc.engine.store.get_run = broken  # type: ignore[method-assign]
        resp = await svc.client.get("/healthz")
        assert resp.status == 503
        assert (await resp.json())["database"] == "OSError: disk I/O error"


async def test_metrics_report_runs_pending_backlog_and_resume_latency(tmp_path: Path) -> None:
    async with running_service(str(tmp_path / "m.db")) as svc:
        engine = svc.engine
        ids = [await engine.start("order", {"item": f"i{n}"}, requester="carol") for n in range(3)]
        for run_id in ids:
            await engine.wait(run_id, timeout=10)
        (first,) = await engine.list_interrupts(run_id=ids[0])
        await engine.resume(ids[0], first.id, {"approved": True}, actor="alice")
        await engine.wait(ids[0], timeout=10)

        latency = (
            "signoff_resume_latency_seconds_count",
            (("outcome", "approved"), ("workflow", "order")),
        )
        for _ in range(100):  # the histogram is fed by outbox delivery, just after commit
            samples = await scrape(svc)
            if samples.get(latency) == 1.0:
                break
            await asyncio.sleep(0.05)
        assert samples[latency] == 1.0
        assert samples[("signoff_runs", (("status", "suspended"),))] == 2.0
        assert samples[("signoff_runs", (("status", "completed"),))] == 1.0
        assert samples[("signoff_runs", (("status", "failed"),))] == 0.0
        pending = ("signoff_pending_interrupts", (("kind", "input"), ("workflow", "order")))
        assert samples[pending] == 2.0
        assert ("signoff_outbox_backlog", ()) in samples
