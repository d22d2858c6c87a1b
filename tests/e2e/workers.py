"""Real worker processes for the crash and race tests, and what they left behind.

``workers`` (import ``workers_fixture``) spawns ``tests.e2e.worker_proc`` processes on
one SQLite file, kills them with SIGKILL, and reads the step log they append to.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest

from engine import RunDetail, open_store

ROOT = Path(__file__).resolve().parents[2]


class Workers:
    """Worker processes sharing one database file and one work directory."""

    def __init__(self, work: Path) -> None:
        self.work = work
        self.db: Path | str = work / "signoff.db"  # or a postgresql:// URL
        self.procs: list[asyncio.subprocess.Process] = []

    async def spawn(self, *args: str) -> asyncio.subprocess.Process:
        """Start ``python -m tests.e2e.worker_proc`` with these extra arguments."""
        n = len(self.procs)
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        with open(self.work / f"worker-{n}.out", "wb") as out:
            proc = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "tests.e2e.worker_proc",
                "--db",
                str(self.db),
                "--dir",
                str(self.work),
                *args,
                cwd=ROOT,
                env=env,
                stdout=out,
                stderr=asyncio.subprocess.STDOUT,
            )
        self.procs.append(proc)
        return proc

    async def kill(self, proc: asyncio.subprocess.Process) -> None:
        """SIGKILL the process and reap it (a zombie's pid would still look alive)."""
        proc.send_signal(signal.SIGKILL)
        assert await proc.wait() == -signal.SIGKILL

    async def finish(self, proc: asyncio.subprocess.Process, timeout: float = 20.0) -> None:
        """Wait for the process to exit by itself, successfully."""
        try:
            code = await asyncio.wait_for(proc.wait(), timeout)
        except TimeoutError:
            await self.kill(proc)
            raise AssertionError(f"worker did not finish in {timeout}s:\n{self.output()}") from None
        assert code == 0, f"worker exited with {code}:\n{self.output()}"

    def output(self) -> str:
        """Everything the workers printed (for failure messages)."""
        return "\n".join(p.read_text() for p in sorted(self.work.glob("worker-*.out")))

    def open_gate(self, step: str) -> None:
        """Let steps held at ``step`` go on."""
        (self.work / f"open-{step}").touch()

    def lines(self, name: str = "steps.log") -> list[list[str]]:
        """The lines of a log in the work directory, split into fields."""
        path = self.work / name
        if not path.exists():
            return []
        return [line.split() for line in path.read_text().splitlines() if line.strip()]

    def count(self, step: str, phase: str, run_id: str | None = None) -> int:
        """How often ``step`` logged ``phase`` (for one run, or for all)."""
        return sum(
            1 for f in self.lines() if f[:2] == [step, phase] and (run_id is None or f[2] == run_id)
        )

    def tally(self) -> Counter[tuple[str, str, str]]:
        """(step, phase, run) -> count, for every step log line."""
        return Counter((f[0], f[1], f[2]) for f in self.lines())

    def started(self) -> list[str]:
        """Runs whose start a worker saw committed (complete ids only)."""
        return [f[0] for f in self.lines("started.log") if len(f[0]) == 32]

    async def until(
        self, check: Callable[[], bool | Awaitable[bool]], timeout: float = 15.0
    ) -> None:
        """Wait until ``check()`` holds; fail with the workers' output otherwise."""
        deadline = time.monotonic() + timeout
        while not await _value(check()):
            if time.monotonic() > deadline:
                raise AssertionError(f"condition not met in {timeout}s:\n{self.output()}")
            for proc in self.procs:
                if proc.returncode not in (None, -signal.SIGKILL, 0):
                    raise AssertionError(f"a worker died:\n{self.output()}")
            await asyncio.sleep(0.02)

    async def runs(self) -> dict[str, RunDetail]:
        """Every run in the database with its details, read without an engine."""
        store = open_store(str(self.db))
        await store.open()
        try:
            found = await store.list_runs(status=None, workflow=None, limit=10_000, offset=0)
            details = {}
            for run in found:
                detail = await store.get_detail(run.id)
                assert detail is not None
                details[run.id] = detail
            return details
        finally:
            await store.close()

    async def stop_all(self) -> None:
        """Kill whatever still runs."""
        for proc in self.procs:
            if proc.returncode is None:
                proc.send_signal(signal.SIGKILL)
                await proc.wait()


async def _value(result: bool | Awaitable[bool]) -> bool:
    return await result if isinstance(result, Awaitable) else result


@pytest.fixture(name="workers")
async def workers_fixture(tmp_path: Path) -> AsyncIterator[Workers]:
    """Spawn worker processes on a fresh database; any left are killed at the end."""
    workers = Workers(tmp_path)
    try:
        yield workers
    finally:
        await workers.stop_all()
