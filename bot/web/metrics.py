"""``GET /healthz`` and ``GET /metrics`` (Prometheus text format).

Metrics:
    ``signoff_runs{status}``: runs in the database by status (gauge).
    ``signoff_pending_interrupts{workflow,kind}``: interrupts waiting (gauge).
    ``signoff_outbox_backlog``: notifications not delivered yet (gauge).
    ``signoff_resume_latency_seconds{workflow,outcome}``: time from a request for input
    to its resolution (approved, rejected, resolved, expired), i.e. how long people take
    to answer (histogram).
    ``signoff_requests_undelivered_total{reason}``: requests for input an adapter could
    not show anyone (``no_destination``, ``channel_not_found``...), from the
    ``interrupt.undelivered`` outbox topic (counter).

The gauges are read from the database on each scrape, so every instance reports the
same totals. The histogram is fed by an outbox subscription (``interrupt.resolved``),
so it counts the resolutions this instance delivered; delivery is at least once, so a
crash between handling and recording can count one resolution twice. The undelivered
counter is fed the same way.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Iterator

from aiohttp import web
from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4, generate_latest
from prometheus_client.registry import Collector

from bot.outbox_reads import delivery_reads
from bot.settings import Settings
from bot.web.models import Health
from bot.web.openapi import Operation, add_operations
from bot.web.problems import json_response
from engine import (
    Engine,
    InterruptKind,
    InterruptNotFound,
    InterruptStatus,
    OutboxMessage,
    RunNotFound,
    RunStatus,
)

__all__ = ["HEALTH_TIMEOUT", "METRICS", "Metrics", "install_metrics"]

log = logging.getLogger("signoff.metrics")

HEALTH_TIMEOUT = 2.0  # seconds; a database slower than this is reported unavailable
SUBSCRIPTION = "signoff.metrics"

# People answer in seconds to days: buckets from 1 s to a week.
LATENCY_BUCKETS = (
    1,
    5,
    15,
    30,
    60,
    300,
    900,
    1800,
    3600,
    4 * 3600,
    12 * 3600,
    86400,
    3 * 86400,
    7 * 86400,
)


class _Snapshot(Collector):
    """Gauges read from the database just before each scrape."""

    def __init__(self) -> None:
        self.runs: dict[str, int] = {}
        self.pending: dict[tuple[str, str], int] = {}
        self.backlog = 0

    def collect(self) -> Iterator[Metric]:
        """The gauges from the last refresh."""
        runs = GaugeMetricFamily("signoff_runs", "Runs by status", labels=["status"])
        for status in RunStatus:  # every status, so a drop to zero is visible
            runs.add_metric([status.value], self.runs.get(status.value, 0))
        yield runs
        pending = GaugeMetricFamily(
            "signoff_pending_interrupts", "Interrupts waiting", labels=["workflow", "kind"]
        )
        for (workflow, kind), n in sorted(self.pending.items()):
            pending.add_metric([workflow, kind], n)
        yield pending
        yield GaugeMetricFamily(
            "signoff_outbox_backlog", "Notifications not delivered yet", value=self.backlog
        )


class Metrics:
    """The Prometheus registry of one web app, and how to refresh it.

    A registry per app (not prometheus-client's global one) so several apps, e.g. in
    tests, never share or clash on metrics.
    """

    def __init__(self, engine: Engine, *, slack: bool = False) -> None:
        self.engine = engine
        self.slack = slack
        self.registry = CollectorRegistry()
        self.snapshot = _Snapshot()
        self.registry.register(self.snapshot)
        self.resume_latency = Histogram(
            "signoff_resume_latency_seconds",
            "Time from a request for input to its resolution",
            ["workflow", "outcome"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.undelivered = Counter(
            "signoff_requests_undelivered",
            "Requests for input nobody could be shown, by reason",
            ["reason"],
            registry=self.registry,
        )

    async def refresh(self) -> None:
        """Read the gauges' values from the database."""
        self.snapshot.runs = await self.engine.count_runs()
        # Counted in the database: loading every waiting request to count it cost 2.4 s
        # of CPU and 370 MB per scrape with 100,000 waiting (bench/metrics.py).
        self.snapshot.pending = {
            (workflow, kind): n
            for workflow, kinds in (await self.engine.count_pending_interrupts()).items()
            for kind, n in kinds.items()
        }
        self.snapshot.backlog = await self.engine.outbox_backlog()

    async def on_resolved(self, message: OutboxMessage) -> None:
        """Outbox handler: observe how long a resolved request for input waited."""
        if message.interrupt_id is None or message.data.get("status") == "cancelled":
            return  # a cancelled run is nobody's answer
        try:
            # Kind, times and a resolved status do not change: the notifier's read will do.
            interrupt = await delivery_reads(self.engine).settled(message)
        except (RunNotFound, InterruptNotFound):
            return
        if interrupt.kind is not InterruptKind.INPUT or interrupt.status is InterruptStatus.PENDING:
            return
        end = interrupt.resolved_at or message.created_at
        waited = max(0.0, (end - interrupt.created_at).total_seconds())
        self.resume_latency.labels(interrupt.workflow, interrupt.status.value).observe(waited)

    async def on_undelivered(self, message: OutboxMessage) -> None:
        """Outbox handler: count a request for input nobody could be shown."""
        self.undelivered.labels(str(message.data.get("reason") or "unknown")).inc()

    async def serve_metrics(self, request: web.Request) -> web.StreamResponse:
        """``GET /metrics``: Prometheus text exposition."""
        try:
            await self.refresh()
        except Exception as exc:
            log.warning("metrics scrape failed: %s", exc)
            return web.Response(status=503, text=f"database unavailable: {type(exc).__name__}\n")
        body = generate_latest(self.registry)
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_PLAIN_0_0_4})

    async def serve_health(self, request: web.Request) -> web.StreamResponse:
        """``GET /healthz``: 200 if the database answers a cheap query, else 503."""
        worker, slack = self.engine.worker_id, self.slack
        try:
            async with asyncio.timeout(HEALTH_TIMEOUT):
                await self.engine.ping()
        except Exception as exc:
            log.warning("health check failed: %s", exc)
            detail = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
            health = Health(status="unavailable", database=detail, worker=worker, slack=slack)
            return json_response(health, status=503)
        return json_response(Health(status="ok", database="ok", worker=worker, slack=slack))


METRICS = web.AppKey("signoff.metrics", Metrics)
"""The app's ``Metrics``: other installers register their own metrics on its registry."""


def install_metrics(app: web.Application, engine: Engine, settings: Settings) -> None:
    """Add ``/healthz`` and ``/metrics`` and subscribe the latency histogram to the engine."""
    metrics = Metrics(engine, slack=settings.slack_enabled)
    app[METRICS] = metrics
    try:
        engine.subscribe(metrics.on_resolved, topics=["interrupt.resolved"], name=SUBSCRIPTION)
    except ValueError:
        # Another app on the same engine subscribed already; this one still serves gauges.
        log.debug("engine already has a %s subscription", SUBSCRIPTION)
    with contextlib.suppress(ValueError):  # as above
        engine.subscribe(
            metrics.on_undelivered,
            topics=["interrupt.undelivered"],
            name=SUBSCRIPTION + ".undelivered",
        )
    add_operations(
        app,
        [
            Operation(
                "GET",
                "/healthz",
                "health",
                "Health: is the database reachable",
                metrics.serve_health,
                Health,
                errors=(503,),
                secured=False,
                tag="operations",
            ),
            Operation(
                "GET",
                "/metrics",
                "metrics",
                "Prometheus metrics",
                metrics.serve_metrics,
                media_type="text/plain",
                secured=False,
                tag="operations",
                extra_responses={503: "The database is unavailable"},
            ),
        ],
    )
