"""What listing requests by status costs when most requests were decided long ago.

Creates ``--pending`` requests that stay waiting, then ``--decided`` newer ones that are
approved (through ``bot.requests.service.RequestService`` on an engine over a fresh SQLite
file, or ``--db``), then times one page (``limit=10``) of ``GET /api/requests`` as the
service builds it, for each of: the pending ones, the approved ones, and any status. One
JSON line; each ``*_ms`` is the median of 3 reads of that page (wall time, then CPU)::

    .venv/bin/python bench/request_list.py [--decided 20000] [--pending 5] [--db URL]
"""

from __future__ import annotations

import os
import sys

_HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(_HERE)
if sys.path and os.path.abspath(sys.path[0] or os.curdir) == _HERE:
    sys.path.pop(0)  # bench/engine.py would shadow the engine package
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

import argparse  # noqa: E402
import asyncio  # noqa: E402
import json  # noqa: E402
import statistics  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from typing import Any  # noqa: E402

from bot.client.models import CreateRequest, RequestsQuery  # noqa: E402
from bot.requests.service import RequestService  # noqa: E402
from bot.requests.workflow import INTERRUPT_ID, request_workflow  # noqa: E402
from engine import Engine, RunStatus, open_store  # noqa: E402

WAVE = 1000  # requests created (or decided) at once


async def create(service: RequestService, engine: Engine, count: int, label: str) -> list[str]:
    """``count`` requests, each parked on its question."""
    ids: list[str] = []
    for lo in range(0, count, WAVE):
        made = await asyncio.gather(
            *(
                service.create(CreateRequest(title=f"{label} {n}"), client="bench")
                for n in range(lo, min(count, lo + WAVE))
            )
        )
        ids += [m.id for m in made]
    for request_id in ids:
        await engine.wait(request_id, timeout=60)
    return ids


async def timed_page(service: RequestService, **query: Any) -> tuple[float, float, int]:
    """Median wall and CPU milliseconds of 3 reads of the page, and its length."""
    walls, cpus, found = [], [], 0
    for _ in range(3):
        wall, cpu = time.perf_counter(), time.process_time()
        page = await service.list_page(RequestsQuery(limit=10, **query))
        walls.append(time.perf_counter() - wall)
        cpus.append(time.process_time() - cpu)
        found = len(page.requests)
    return statistics.median(walls) * 1000, statistics.median(cpus) * 1000, found


async def main(decided: int, pending: int, db: str) -> dict[str, Any]:
    """Build the requests, then time the pages."""
    engine = Engine(open_store(db), workflows=[request_workflow], poll_interval=30.0)
    await engine.start_background()
    try:
        service = RequestService(engine)
        await create(service, engine, pending, "waits")
        answered = await create(service, engine, decided, "decided")
        for lo in range(0, len(answered), WAVE):
            await asyncio.gather(
                *(
                    engine.resume(r, INTERRUPT_ID, {"approved": True}, actor="U0BENCH")
                    for r in answered[lo : lo + WAVE]
                )
            )
        for request_id in answered:
            await engine.wait(request_id, until={RunStatus.COMPLETED}, timeout=60)
        out: dict[str, Any] = {"decided": decided, "pending": pending}
        pages: dict[str, dict[str, Any]] = {
            "pending": {"status": "pending"},
            "approved": {"status": "approved"},
            "any": {},
        }
        for name, query in pages.items():
            wall, cpu, found = await timed_page(service, **query)
            out[f"{name}_page_ms"] = round(wall, 1)
            out[f"{name}_page_cpu_ms"] = round(cpu, 1)
            out[f"{name}_found"] = found
        return out
    finally:
        await engine.close(grace=1.0)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--decided", type=int, default=20_000, help="approved requests")
    parser.add_argument("--pending", type=int, default=5, help="older requests left waiting")
    parser.add_argument("--db", help="a store URL (default: a fresh SQLite file)")
    args = parser.parse_args()
    path = os.path.join(tempfile.mkdtemp(prefix="request-list-"), "r.db")
    print(json.dumps(asyncio.run(main(args.decided, args.pending, args.db or path))))
