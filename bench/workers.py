"""``signoff serve --workers N``: REST throughput with 1 and 2 (or more) workers.

For each backend (SQLite file; PostgreSQL from ``tests.pg`` when its binaries are found) and
each worker count, a fresh database and ``signoff serve --workers N`` without Slack; then
``--runs`` ``POST /api/runs`` (workflow ``order`` of ``tests.bot.web.workflows``: a run that
commits, runs its first step and suspends on a request) from ``--concurrency`` clients on
fresh connections (so the kernel spreads them over the workers). One JSON line each:
runs/s, latency p50/p99, errors.

    python -m bench.workers [--runs 1000] [--concurrency 32] [--workers 1,2]
"""

from __future__ import annotations

import os
import sys

_HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(_HERE)
if sys.path and os.path.abspath(sys.path[0] or os.curdir) == _HERE:
    sys.path.pop(0)
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

import argparse  # noqa: E402
import asyncio  # noqa: E402
import contextlib  # noqa: E402
import json  # noqa: E402
import signal  # noqa: E402
import subprocess  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from collections import Counter  # noqa: E402
from collections.abc import Iterator  # noqa: E402
from pathlib import Path  # noqa: E402

import aiohttp  # noqa: E402

TOKEN = "bench-api-token-0123456789"


def pct(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, int(len(ordered) * q / 100))], 2)


def serve(db: str, port: int, workers: int, cwd: Path) -> subprocess.Popen[bytes]:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("SIGNOFF_", "SLACK_")) and "proxy" not in k.lower()}  # fmt: skip
    env.update(
        PYTHONPATH=ROOT, SIGNOFF_DATABASE_URL=db, SIGNOFF_WORKFLOWS="tests.bot.web.workflows",
        SIGNOFF_HOST="127.0.0.1", SIGNOFF_PORT=str(port), SIGNOFF_API_TOKEN=TOKEN,
        SIGNOFF_LOG_LEVEL="WARNING",
    )  # fmt: skip
    return subprocess.Popen(
        [sys.executable, "-m", "bot.cli", "serve", "--workers", str(workers)],
        cwd=cwd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip


async def ready(base: str, workers: int) -> None:
    seen: set[str] = set()
    deadline = time.monotonic() + 90
    while len(seen) < workers and time.monotonic() < deadline:
        with contextlib.suppress(aiohttp.ClientError):
            async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(force_close=True)) as h:
                async with h.get(f"{base}/healthz") as resp:
                    if resp.status == 200:
                        seen.add(str((await resp.json())["worker"]))
        await asyncio.sleep(0.1)


async def load(base: str, runs: int, concurrency: int) -> dict[str, object]:
    latencies: list[float] = []
    statuses: Counter[int] = Counter()
    todo = iter(range(runs))
    headers = {"Authorization": f"Bearer {TOKEN}"}
    connector = aiohttp.TCPConnector(limit=concurrency, force_close=True)
    async with aiohttp.ClientSession(connector=connector) as http:

        async def client() -> None:
            for n in todo:
                body = {"workflow": "order", "input": {"item": f"item-{n}"}}
                sent = time.monotonic()
                async with http.post(f"{base}/api/runs", json=body, headers=headers) as r:
                    await r.read()
                    statuses[r.status] += 1
                latencies.append((time.monotonic() - sent) * 1000)

        started = time.monotonic()
        await asyncio.gather(*(client() for _ in range(concurrency)))
        elapsed = time.monotonic() - started
    return {
        "runs_per_s": round(runs / elapsed, 1),
        "p50_ms": pct(latencies, 50),
        "p99_ms": pct(latencies, 99),
        "statuses": dict(statuses),
    }


@contextlib.contextmanager
def backends(tmp: Path) -> Iterator[list[tuple[str, object]]]:
    found: list[tuple[str, object]] = [("sqlite", lambda i: f"sqlite:///{tmp / f'w{i}.db'}")]
    server = None
    with contextlib.suppress(Exception):
        from tests.pg import PostgresServer, find_bin_dir

        bin_dir = find_bin_dir()
        if bin_dir is not None:
            server = PostgresServer(bin_dir)
            server.start()
            found.append(("postgres", lambda i: server.fresh_url()))
    try:
        yield found
    finally:
        if server is not None:
            server.stop()


async def main(opts: argparse.Namespace) -> None:
    from tests.bot.test_serve import free_port

    counts = [int(x) for x in opts.workers.split(",")]
    with (
        tempfile.TemporaryDirectory(prefix="signoff-bench-workers-") as tmp,
        backends(Path(tmp)) as found,
    ):
        for name, url in found:
            for i, workers in enumerate(counts):
                port = free_port()
                proc = serve(url(i), port, workers, Path(tmp))  # type: ignore[operator]
                try:
                    base = f"http://127.0.0.1:{port}"
                    await ready(base, workers)
                    await load(base, 50, 8)  # warm-up
                    result = await load(base, opts.runs, opts.concurrency)
                    line = {"backend": name, "workers": workers, "cpus": os.cpu_count(), **result}
                    print(json.dumps(line), flush=True)
                finally:
                    proc.send_signal(signal.SIGTERM)
                    proc.wait(60)


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    p.add_argument("--runs", type=int, default=1000)
    p.add_argument("--concurrency", type=int, default=32)
    p.add_argument("--workers", default="1,2")
    asyncio.run(main(p.parse_args()))
