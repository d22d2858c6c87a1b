"""``signoff serve --workers 2`` as real processes: one port, two workers, restarts, SIGTERM."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import subprocess
import time
from pathlib import Path

import aiohttp
import pytest

from bot.settings import Settings
from bot.workers import default_workers
from tests.bot.test_serve import SIGNOFF, serve_env


def start_workers(db: str, cwd: Path, workers: int = 2) -> subprocess.Popen[bytes]:
    """``signoff serve --workers N`` with its output in ``cwd/serve.log`` (``output``), so
    a failed check can show it, and no pipe left unread while a test polls can fill up.

    On port 0: the parent picks the port and holds it for the workers' lifetime
    (``bot.workers``), so no client connection can take it between a worker's exit and
    its restart (``port_of`` reads it).
    """
    env = serve_env(db, 0, grace=1)
    with open(cwd / "serve.log", "wb") as log:
        return subprocess.Popen(
            [str(SIGNOFF), "serve", "--workers", str(workers)],
            cwd=cwd, env=env, stdout=log, stderr=subprocess.STDOUT,
        )  # fmt: skip


def output(cwd: Path) -> bytes:
    """What the processes started by ``start_workers`` in ``cwd`` printed so far."""
    return (cwd / "serve.log").read_bytes()


async def port_of(cwd: Path, timeout: float = 30) -> int:
    """The port the parent started in ``cwd`` chose, from its first log line."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = re.search(rb"starting \d+ workers on port (\d+)", output(cwd))
        if found:
            return int(found.group(1))
        await asyncio.sleep(0.05)
    raise AssertionError(f"the workers did not start:\n{output(cwd)[-4000:]!r}")


async def workers_seen(base: str, want: int, timeout: float = 60) -> set[str]:
    """Worker ids answering /healthz (a new connection each time) until ``want`` are seen."""
    seen: set[str] = set()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and len(seen) < want:
        connector = aiohttp.TCPConnector(force_close=True)
        async with aiohttp.ClientSession(connector=connector) as http:
            for _ in range(20):
                try:
                    async with http.get(f"{base}/healthz") as resp:
                        if resp.status == 200:
                            seen.add(str((await resp.json())["worker"]))
                except aiohttp.ClientConnectionError:
                    pass
        await asyncio.sleep(0.2)
    return seen


def alive(pid: int) -> bool:
    """Running (a zombie waiting for init to reap it is not)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return False
    return "\nState:\tZ" not in status


def children_of(pid: int) -> list[int]:
    path = Path(f"/proc/{pid}/task/{pid}/children")
    return [int(p) for p in path.read_text().split()] if path.exists() else []


@pytest.mark.timeout(180)
async def test_two_workers_share_one_port_restart_and_stop_on_sigterm(tmp_path: Path) -> None:
    proc = start_workers(str(tmp_path / "w.db"), tmp_path)
    try:
        base = f"http://127.0.0.1:{await port_of(tmp_path)}"
        first = await workers_seen(base, 2)
        pids = children_of(proc.pid)
        assert len(first) == 2, (first, output(tmp_path)[-4000:])
        assert len(pids) == 2

        os.kill(pids[0], signal.SIGKILL)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            now = children_of(proc.pid)
            if len(now) == 2 and pids[0] not in now:
                break
            await asyncio.sleep(0.2)
        after = await workers_seen(base, 2, timeout=60)
        assert children_of(proc.pid) != pids and len(children_of(proc.pid)) == 2
        assert len(after) == 2 and after != first  # the restarted worker has a new id

        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=60)
        out = output(tmp_path)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, out.decode(errors="replace")
    assert b"all workers stopped" in out
    assert not any(alive(pid) for pid in pids)


def test_the_default_is_one_worker() -> None:
    assert default_workers(Settings(SIGNOFF_DATABASE_URL="sqlite:///x.db")) == 1
    assert default_workers(Settings(SIGNOFF_DATABASE_URL="postgresql://h/db")) == 1


@pytest.mark.timeout(120)
async def test_workers_stop_when_the_parent_is_killed(tmp_path: Path) -> None:
    proc = start_workers(str(tmp_path / "w.db"), tmp_path)
    try:
        seen = await workers_seen(f"http://127.0.0.1:{await port_of(tmp_path)}", 2)
        assert len(seen) == 2, (seen, output(tmp_path)[-4000:])
        pids = children_of(proc.pid)
        proc.kill()
        proc.wait()
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and any(alive(p) for p in pids):
            await asyncio.sleep(0.2)
        assert not any(alive(p) for p in pids)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
