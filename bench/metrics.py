"""What one Prometheus scrape of ``/metrics`` costs with many requests waiting.

Parks ``--runs`` runs of ``bench/engine.py``'s approval workflow (each waits on one
request) on a fresh SQLite file (or ``--db``), then refreshes the metrics' gauges
(``bot.web.metrics.Metrics.refresh``: what every scrape does before it answers) three
times, timing each. A ticker on the event loop meanwhile measures the longest stretch the
loop could not run anything else (what a Slack click arriving during the scrape would
wait). One JSON line::

    .venv/bin/python bench/metrics.py [--runs 100000] [--db URL]

``refresh_ms`` and ``refresh_cpu_ms`` are the medians of the three refreshes;
``rss_growth_mb`` is the process's RSS growth over them (the first one included), and
``max_loop_gap_ms`` the longest gap between two ticks of a 1 ms ticker during them.
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

import psutil  # noqa: E402

from bench.engine import hold, workflow  # noqa: E402
from bot.web.metrics import Metrics  # noqa: E402
from engine import Engine, open_store  # noqa: E402


async def ticker(gaps: list[float]) -> None:
    """Tick every millisecond; record the gaps between ticks (cancel to stop)."""
    last = time.perf_counter()
    while True:
        await asyncio.sleep(0.001)
        now = time.perf_counter()
        gaps.append(now - last)
        last = now


async def main(runs: int, db: str) -> dict[str, Any]:
    """Park ``runs`` runs, then time three refreshes of the metrics' gauges."""
    async with Engine(open_store(db), workflows=[workflow], poll_interval=0.5) as engine:
        await hold(engine, runs)
        metrics = Metrics(engine)
        proc = psutil.Process()
        rss_before = proc.memory_info().rss
        walls, cpus, gaps = [], [], []
        for _ in range(3):
            tick = asyncio.get_running_loop().create_task(ticker(gaps))
            await asyncio.sleep(0.01)  # the ticker is running before the refresh starts
            wall, cpu = time.perf_counter(), time.process_time()
            await metrics.refresh()
            walls.append(time.perf_counter() - wall)
            cpus.append(time.process_time() - cpu)
            tick.cancel()
        pending = sum(n for (_, _), n in metrics.snapshot.pending.items())
        return {
            "runs": runs,
            "pending_counted": pending,
            "refresh_ms": round(statistics.median(walls) * 1000, 1),
            "refresh_cpu_ms": round(statistics.median(cpus) * 1000, 1),
            "rss_growth_mb": round((proc.memory_info().rss - rss_before) / 2**20, 1),
            "max_loop_gap_ms": round(max(gaps) * 1000, 1),
            "python": sys.version.split()[0],
        }


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--runs", type=int, default=100_000, help="runs parked first")
    parser.add_argument("--db", help="a store URL (default: a fresh SQLite file)")
    args = parser.parse_args()
    db = args.db or "sqlite:///" + os.path.join(tempfile.mkdtemp(prefix="metrics-"), "m.db")
    print(json.dumps(asyncio.run(main(args.runs, db))))
