"""``signoff serve`` as a real process: it serves, and shuts down gracefully on SIGTERM."""

from __future__ import annotations

import asyncio
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import aiohttp
import pytest

from engine import Engine, RunStatus, open_store
from tests.bot.web.service import AUTH, TOKEN
from tests.bot.web.workflows import WORKFLOWS
from tests.support.service import ROOT, inherited_env

SIGNOFF = Path(sys.executable).with_name("signoff")


def free_port() -> int:
    """A port nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def serve_env(db: str, port: int, grace: float, **values: str) -> dict[str, str]:
    """The environment of ``signoff serve`` on ``db`` at 127.0.0.1:port, without Slack."""
    return inherited_env(
        PYTHONPATH=str(ROOT),
        SIGNOFF_DATABASE_URL=db,
        SIGNOFF_WORKFLOWS="tests.bot.web.workflows",
        SIGNOFF_PORT=str(port),
        SIGNOFF_API_TOKEN=TOKEN,
        SIGNOFF_SHUTDOWN_GRACE=str(grace),
        SIGNOFF_POLL_INTERVAL="0.1",
        **values,
    )


def start_server(db: str, port: int, grace: float, cwd: Path) -> subprocess.Popen[bytes]:
    """``signoff serve`` on 127.0.0.1:port without Slack."""
    env = serve_env(db, port, grace, SIGNOFF_LEASE_SECONDS="2", SIGNOFF_TEST_SLOW_SECONDS="1.0")
    return subprocess.Popen(
        [str(SIGNOFF), "serve"], cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )


async def wait_healthy(
    http: aiohttp.ClientSession, base: str, proc: subprocess.Popen[bytes]
) -> None:
    """Poll /healthz until the server answers."""
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        assert proc.poll() is None, proc.stdout.read() if proc.stdout else ""
        try:
            async with http.get(f"{base}/healthz") as resp:
                if resp.status == 200:
                    return
        except aiohttp.ClientConnectionError:
            pass
        await asyncio.sleep(0.1)
    raise AssertionError("signoff serve did not become healthy")


@pytest.mark.parametrize("grace", [5.0, 0.0], ids=["finishes-in-grace", "recovered-next-time"])
@pytest.mark.timeout(60)
async def test_sigterm_with_a_run_in_flight(tmp_path: Path, grace: float) -> None:
    db = str(tmp_path / "serve.db")
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    proc = start_server(db, port, grace, tmp_path)
    log = ""
    try:
        async with aiohttp.ClientSession() as http:
            await wait_healthy(http, base, proc)
            body = {"workflow": "slow", "input": {"item": "x"}}
            async with http.post(f"{base}/api/runs", json=body, headers=AUTH) as resp:
                assert resp.status == 202, await resp.text()
                run_id = (await resp.json())["run_id"]
            # The step started with the run (history records it only when it commits),
            # so a moment later it is in flight: stop the server in the middle of it.
            await asyncio.sleep(0.3)
            async with http.get(f"{base}/api/runs/{run_id}", headers=AUTH) as resp:
                assert (await resp.json())["status"] == "running"
        proc.send_signal(signal.SIGTERM)
        output = await asyncio.to_thread(proc.communicate, timeout=20)
        log = output[0].decode(errors="replace")
        assert proc.returncode == 0, log
        assert "shutting down" in log and "stopped" in log
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()

    # The next process (here: an engine in the test) finds the run finished, or recovers it.
    engine = Engine(open_store(db), workflows=WORKFLOWS, poll_interval=0.05, lease=2.0)
    async with engine:
        before = await engine.store.get_run(run_id)
        assert before is not None
        if grace > 0:
            assert before.status is RunStatus.COMPLETED  # finished within the grace period
        else:
            assert before.status is RunStatus.RUNNING, log  # cut short: left for recovery
        run = await engine.wait(run_id, until={RunStatus.COMPLETED}, timeout=15)
    assert run.output == {"item": "x", "approved": True, "by": None, "paid": 0}
