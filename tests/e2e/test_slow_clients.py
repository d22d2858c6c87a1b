"""Slow clients cannot starve ``signoff serve`` of connections (a real process, 256 fds).

More slow connections than the server has file descriptors (``tests/e2e/slowloris.py``,
its own process), kept up for several seconds, some dribbling their headers and some their
body, while a health checker opens a fresh connection every 20 ms: ``/healthz`` stays fast,
every slow connection is cut within its deadline, and the log says so in a few lines.
"""

from __future__ import annotations

import asyncio
import json
import statistics
import sys
import time
from pathlib import Path

from tests.bot.web.service import SECRET, TOKEN
from tests.e2e import slowloris
from tests.support.service import ROOT, ServiceProcess, inherited_env

OPEN_FILES = 256  # the server's RLIMIT_NOFILE: its connection cap is 256 - 64 = 192
HEADER_TIMEOUT = 1.0
BODY_TIMEOUT = 2.0
ATTACK_SECONDS = 6.0
GRACE = 0.5  # a cut may come this much after its deadline (timer, loop and network lag)


async def probe(host: str, port: int) -> float:
    """Seconds for one GET /healthz on a fresh connection (inf if it failed)."""
    started = time.monotonic()
    writer = None
    try:
        async with asyncio.timeout(5):
            reader, writer = await asyncio.open_connection(host, port)
            writer.write(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            answer = await reader.read()
    except (TimeoutError, OSError):
        return float("inf")
    finally:
        if writer is not None:
            writer.close()
    return time.monotonic() - started if answer.startswith(b"HTTP/1.1 200") else float("inf")


async def test_healthz_stays_fast_while_more_slow_clients_than_fds_are_cut_on_time(
    tmp_path: Path,
) -> None:
    env = inherited_env(
        SIGNOFF_DATABASE_URL=f"sqlite:///{tmp_path / 'slow.db'}",
        SIGNOFF_WORKFLOWS="tests.bot.web.workflows",
        SIGNOFF_API_TOKEN=TOKEN,
        SIGNOFF_WEBHOOK_SECRET=SECRET,
        SIGNOFF_HEADER_TIMEOUT=str(HEADER_TIMEOUT),
        SIGNOFF_BODY_TIMEOUT=str(BODY_TIMEOUT),
        SIGNOFF_KEEPALIVE_TIMEOUT="2",
    )
    service = await ServiceProcess.start(env, open_files=OPEN_FILES)
    host, port = service.url.removeprefix("http://").split(":")
    startup_lines = len(service.log)
    try:
        attacker = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "tests.e2e.slowloris", host, port, str(ATTACK_SECONDS),
            cwd=ROOT, stdout=asyncio.subprocess.PIPE,
        )  # fmt: skip
        await asyncio.sleep(1.0)  # let the attack reach the cap
        latencies = []
        stop = time.monotonic() + ATTACK_SECONDS - 1.5
        while time.monotonic() < stop:
            latencies.append(await probe(host, int(port)))
            await asyncio.sleep(0.02)
        out, _ = await asyncio.wait_for(attacker.communicate(), 30)
    finally:
        code = await service.stop()
    lives = json.loads(out)

    latencies.sort()
    p99 = latencies[int(len(latencies) * 0.99) - 1]
    # What the attack made the server say: its refusal loggers (start-up and shutdown lines
    # of other parts, such as the console's sign-in link, are not about the attack).
    attack_log = [line for line in service.log[startup_lines:] if "signoff.refused" in line]
    print(
        f"\nhealthz: {len(latencies)} probes, median {statistics.median(latencies) * 1000:.1f} ms,"
        f" p99 {p99 * 1000:.1f} ms, max {latencies[-1] * 1000:.1f} ms;"
        f" slow connections cut: {len(lives['header'])} header dribblers"
        f" (longest {max(lives['header']):.2f} s), {len(lives['body'])} body dribblers"
        f" (longest {max(lives['body']):.2f} s); {len(attack_log)} log lines:"
    )
    print("\n".join(attack_log))
    assert code == 0, service.text()
    assert len(latencies) >= 100
    assert p99 <= 0.100, latencies[-10:]
    assert len(lives["header"]) >= slowloris.HEADER_DRIBBLERS
    assert len(lives["body"]) >= slowloris.BODY_DRIBBLERS
    assert max(lives["header"]) <= HEADER_TIMEOUT + GRACE
    assert max(lives["body"]) <= BODY_TIMEOUT + GRACE
    log = service.text()
    assert "Traceback" not in log and "out of system resource" not in log, log
    assert 1 <= len(attack_log) <= 8, "\n".join(attack_log)  # no flood: a handful of lines
