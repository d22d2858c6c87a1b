"""Console benchmark: server time of the inbox and runs pages on a large SQLite database.

Seeds (through the engine's public API, ``engine.start`` in concurrent waves) ``--pending``
runs parked on a request anyone may answer and ``--finished`` one-step runs that complete
at once, spread over three requesters; a seeded database is reused with ``--db`` (seeding
100,000 runs takes about a minute). Then serves the real console (``create_web_app``,
signed in as the operator through a one-time link) and requests each page ``--requests``
times, one at a time:

* ``inbox``: ``/`` (the first 50 of the pending requests, with their forms);
* ``workflows``: ``/workflows`` (each graph with its exact run counts per status, one
  aggregate over the ``runs_by_workflow`` index);
* ``runs``: ``/runs`` (the newest 50);
* ``runs_deep``: ``/runs?before=…`` pages 1-40 deep, following the "Older" links;
* ``runs_filtered``: ``/runs`` by status, by workflow, by requester, and by a date range.

Server time is measured around the handler (a middleware), so it excludes the client.
Prints one JSON line with p50/p95 per page. Usage::

    .venv/bin/python bench/console.py [--pending 10000] [--finished 90000] [--db PATH]
"""

from __future__ import annotations

import os
import sys

# Running this file puts bench/ first on sys.path; keep `import engine` the package.
if sys.path and os.path.abspath(sys.path[0]) == os.path.dirname(os.path.abspath(__file__)):
    sys.path.pop(0)

import argparse
import asyncio
import datetime as dt
import json
import re
import statistics
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import aiohttp
from aiohttp import web
from aiohttp.test_utils import TestServer
from pydantic import BaseModel

from bot import Settings, create_web_app
from bot.web.console import CONSOLE
from engine import Engine, RunStatus, StepContext, Workflow, open_store, step

REQUESTERS = ("U0CAROL", "U0DAVE", "U0ERIN")


class Ask(BaseModel):
    """The input of both workflows."""

    item: str
    amount: int


class Decision(BaseModel):
    """An approval with a comment."""

    approved: bool
    comment: str = ""


@step(title="Approve purchase")
async def approve(req: Ask, ctx: StepContext[Ask, Decision]) -> Ask:
    """Park until someone answers."""
    await ctx.suspend(req)
    return req


@step
async def record(req: Ask) -> Ask:
    """Finish at once."""
    return req


purchase = Workflow("purchase", input=Ask, output=Ask).then(approve)
ledger = Workflow("ledger", input=Ask, output=Ask).then(record)


async def seed(engine: Engine, workflow: str, count: int, wave: int = 2000) -> None:
    """Start ``count`` runs in concurrent waves and wait until each wave settled."""
    for first in range(0, count, wave):
        ids = await asyncio.gather(
            *(
                engine.start(
                    workflow,
                    {"item": f"item-{n}", "amount": n % 1000},
                    requester=REQUESTERS[n % len(REQUESTERS)],
                )
                for n in range(first, min(first + wave, count))
            )
        )
        await asyncio.gather(*(engine.wait(run_id) for run_id in ids))


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(share * (len(ordered) - 1))))]


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pending", type=int, default=10_000)
    parser.add_argument("--finished", type=int, default=90_000)
    parser.add_argument("--requests", type=int, default=40)
    parser.add_argument("--db", default=None, help="SQLite file (reused if already seeded)")
    args = parser.parse_args()
    db = args.db or str(Path(tempfile.mkdtemp()) / "console-bench.db")

    engine = Engine(open_store(db), workflows=[purchase, ledger], poll_interval=1.0)
    settings = Settings(  # type: ignore[call-arg]
        _env_file=None, SIGNOFF_DATABASE_URL=db, SIGNOFF_SESSION_SECRET="bench"
    )
    app = create_web_app(engine, settings)
    timings: dict[str, list[float]] = {}
    label: list[str] = [""]

    @web.middleware
    async def timed(
        request: web.Request, handler: Callable[..., Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        started = time.perf_counter()
        try:
            return await handler(request)
        finally:
            if label[0]:
                timings.setdefault(label[0], []).append((time.perf_counter() - started) * 1000)

    app.middlewares.insert(0, timed)
    await engine.start_background()
    seeded_at = time.perf_counter()
    counts = await engine.count_runs()
    if sum(counts.values()) == 0:
        await seed(engine, "purchase", args.pending)
        await seed(engine, "ledger", args.finished)
    seed_seconds = time.perf_counter() - seeded_at
    counts = await engine.count_runs()

    server = TestServer(app, host="127.0.0.1", port=None)
    await server.start_server()
    base = str(server.make_url("")).rstrip("/")
    token = app[CONSOLE].links.issue()  # type: ignore[union-attr]
    jar = aiohttp.CookieJar(unsafe=True)
    async with aiohttp.ClientSession(cookie_jar=jar) as http:

        async def get(name: str, path: str) -> str:
            label[0] = name
            async with http.get(base + path) as response:
                text = await response.text()
                assert response.status == 200, (path, response.status)
            label[0] = ""
            return text

        await get("", f"/signin/link?token={token}")
        today = dt.datetime.now(dt.UTC).date().isoformat()
        filtered = [
            "/runs?status=completed",
            "/runs?workflow=purchase",
            "/runs?requester=U0DAVE",
            f"/runs?since={today}&until={today}&status=suspended",
        ]
        for _ in range(args.requests):
            page = await get("inbox", "/")
            assert page.count('class="answer"') == 50, "the inbox should show 50 forms"
            page = await get("runs", "/runs")
        deep_path: str | None = "/runs"
        for _ in range(args.requests):
            page = await get("runs_deep" if deep_path != "/runs" else "runs", deep_path or "/runs")
            assert page.count('data-label="Run"') == 50, "every page should hold 50 runs"
            found = re.search(r'<a rel="next" href="([^"]+)"', page)
            deep_path = found.group(1).replace("&amp;", "&") if found else "/runs"
        for n in range(args.requests):
            await get("runs_filtered", filtered[n % len(filtered)])
        for _ in range(args.requests):
            page = await get("workflows", "/workflows")
            assert "1000+" not in page, "workflow counts should be exact"

    # What the inbox costs in the engine alone: list_interrupts(actor=) reads every
    # pending interrupt and filters them in Python before the limit applies.
    engine_ms = []
    for _ in range(5):
        started = time.perf_counter()
        await engine.list_interrupts(actor=settings.operator_name, limit=51)
        engine_ms.append((time.perf_counter() - started) * 1000)
    await server.close()
    await engine.close()
    result: dict[str, object] = {
        "runs": sum(counts.values()),
        "pending": counts.get(RunStatus.SUSPENDED.value, 0),
        "seed_s": round(seed_seconds, 1),
    }
    for name, values in timings.items():
        if name:
            result[f"{name}_p50_ms"] = round(statistics.median(values), 1)
            result[f"{name}_p95_ms"] = round(percentile(values, 0.95), 1)
    result["engine_list_interrupts_actor_p50_ms"] = round(statistics.median(engine_ms), 1)
    result["python"] = sys.version.split()[0]
    print(json.dumps(result))


if __name__ == "__main__":
    asyncio.run(main())
