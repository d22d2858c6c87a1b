"""A real ``signoff serve`` (``python -m bot``) subprocess with its log captured, for e2e tests.

``ServeProcess.start(env, open_files=256)`` runs it under a lowered open-file limit when
asked (``resource.setrlimit`` in the child before it execs), waits until it says where it
listens, and keeps reading its stderr so the whole log can be asserted on afterwards.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import resource
import sys
from collections.abc import Callable, Mapping
from pathlib import Path

__all__ = ["ROOT", "ServeProcess", "clean_env"]

ROOT = Path(__file__).resolve().parents[2]
_LISTENING = re.compile(r"listening on (http://127\.0\.0\.1:\d+)")


def clean_env(**values: str) -> dict[str, str]:
    """The environment without proxies and without SIGNOFF_/SLACK_ variables, plus ``values``."""
    env = {
        k: v
        for k, v in os.environ.items()
        if "proxy" not in k.lower() and not k.startswith(("SIGNOFF_", "SLACK_"))
    }
    env.update(PYTHONUNBUFFERED="1", SIGNOFF_HOST="127.0.0.1", SIGNOFF_PORT="0", **values)
    return env


def _limit_files(count: int) -> Callable[[], None]:
    def apply() -> None:  # runs in the child, between fork and exec
        resource.setrlimit(resource.RLIMIT_NOFILE, (count, count))

    return apply


class ServeProcess:
    """One ``python -m bot`` process; ``log`` holds every line it wrote to stderr."""

    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self.proc = proc
        self.url = ""
        self.log: list[str] = []
        self._drain: asyncio.Task[None] | None = None

    @classmethod
    async def start(cls, env: Mapping[str, str], *, open_files: int | None = None) -> ServeProcess:
        """Start the service and wait (30 s at most) until it listens."""
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "bot", cwd=ROOT, env=dict(env),
            stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE,
            preexec_fn=_limit_files(open_files) if open_files else None,
        )  # fmt: skip
        service = cls(proc)
        try:
            service.url = await asyncio.wait_for(service._wait_listening(), 30)
        except (TimeoutError, EOFError) as exc:
            await service.stop()
            raise AssertionError(f"the service did not start:\n{service.text()}") from exc
        service._drain = asyncio.create_task(service._read_rest())
        return service

    async def _wait_listening(self) -> str:
        assert self.proc.stderr is not None
        while True:
            line = (await self.proc.stderr.readline()).decode(errors="replace")
            if not line:
                raise EOFError("stderr closed")
            self.log.append(line.rstrip())
            found = _LISTENING.search(line)
            if found:
                return found.group(1)

    async def _read_rest(self) -> None:
        # Keep reading so the child never blocks on a full pipe.
        assert self.proc.stderr is not None
        async for line in self.proc.stderr:
            self.log.append(line.decode(errors="replace").rstrip())

    def text(self) -> str:
        """The log so far, one string."""
        return "\n".join(self.log)

    async def stop(self) -> int | None:
        """SIGTERM, SIGKILL if it hangs; the exit code (after the log is fully read)."""
        if self.proc.returncode is None:
            self.proc.terminate()
            try:
                await asyncio.wait_for(self.proc.wait(), 20)
            except TimeoutError:
                self.proc.kill()
                await self.proc.wait()
        if self._drain is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._drain, 5)
        return self.proc.returncode
