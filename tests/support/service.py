"""A real ``signoff serve`` process for end-to-end tests and benches, killed like a crash.

``ServiceProcess.start(env)`` runs ``python -m bot`` (the service's real entry point) and
waits until it says where it listens; ``kill()`` sends SIGKILL, so no shutdown code runs.
``service_env`` builds the environment pointing it at a ``FakeSlack`` and a SQLite file;
``Client`` sends what Slack (signed clicks), other systems (signed webhooks) and API users
send, over real HTTP on 127.0.0.1.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import resource
import signal
import sys
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import quote

import aiohttp

from bot.slack import action_ids
from bot.web.webhooks import SIGNATURE_HEADER, TIMESTAMP_HEADER, sign
from tests.fakes.signing import block_actions_payload, interactive_body, signed_request

__all__ = [
    "API_TOKEN",
    "SENT_ERRORS",
    "WEBHOOK_SECRET",
    "Client",
    "ServiceProcess",
    "inherited_env",
    "service_env",
]

ROOT = Path(__file__).resolve().parents[2]
LISTENING = re.compile(r"listening on (http://127\.0\.0\.1:\d+)")
WEBHOOK_SECRET = "e2e-webhook-secret-0123456789"
API_TOKEN = "e2e-api-token-0123456789"
# What a sender sees when the service died under its request.
SENT_ERRORS = (aiohttp.ClientError, OSError, asyncio.TimeoutError)


def inherited_env(**values: str) -> dict[str, str]:
    """This process's environment without proxies and without SIGNOFF_/SLACK_ variables,
    plus ``values``: what every service under test starts from, so a developer's own
    settings never leak into a test."""
    env = {
        k: v
        for k, v in os.environ.items()
        if "proxy" not in k.lower() and not k.startswith(("SIGNOFF_", "SLACK_"))
    }
    env.update({"PYTHONUNBUFFERED": "1", "SIGNOFF_HOST": "127.0.0.1", "SIGNOFF_PORT": "0"})
    env.update(values)
    return env


def service_env(
    *, api_url: str, token: str, secret: str, db: Path | str, **extra: str | None
) -> dict[str, str]:
    """The environment of a service talking to the fake Slack at ``api_url``.

    ``db`` is a SQLite file (or a database URL). ``extra`` uses the variable names
    (``SIGNOFF_DEFAULT_CHANNEL="C0…"``) and wins; ``None`` removes a default.
    """
    env = inherited_env(
        SLACK_BOT_TOKEN=token,
        SLACK_SIGNING_SECRET=secret,
        SLACK_API_URL=api_url,
        SIGNOFF_DATABASE_URL=db if isinstance(db, str) and "://" in db else f"sqlite:///{db}",
        SIGNOFF_WORKFLOWS="tests.e2e.wf_approvals",
        SIGNOFF_WEBHOOK_SECRET=WEBHOOK_SECRET,
        SIGNOFF_API_TOKEN=API_TOKEN,
        SIGNOFF_POLL_INTERVAL="0.1",
        SIGNOFF_SLACK_PACING_TIME_SCALE="0.001",  # the fake enforces no Slack limits here
        SIGNOFF_LEASE_SECONDS="2",
        SIGNOFF_SHUTDOWN_GRACE="1",
    )
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH")) if p)
    for key, value in extra.items():
        if value is None:
            env.pop(key, None)
        else:
            env[key] = value
    return env


def _limit_files(count: int) -> Callable[[], None]:
    def apply() -> None:  # runs in the child, between fork and exec
        resource.setrlimit(resource.RLIMIT_NOFILE, (count, count))

    return apply


class ServiceProcess:
    """One ``python -m bot`` process."""

    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self.proc = proc
        self.url = ""
        self.log: list[str] = []
        self._drain: asyncio.Task[None] | None = None

    @classmethod
    async def start(
        cls, env: Mapping[str, str], *, timeout: float = 30.0, open_files: int | None = None
    ) -> ServiceProcess:
        """Start the service and wait until it listens; ``open_files`` lowers its open-file
        limit (``resource.setrlimit`` in the child, before it execs)."""
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "bot", cwd=ROOT, env=dict(env),
            stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE,
            preexec_fn=_limit_files(open_files) if open_files else None,
        )  # fmt: skip
        service = cls(proc)
        try:
            service.url = await asyncio.wait_for(service._wait_listening(), timeout)
        except (TimeoutError, EOFError) as exc:
            proc.kill()
            await proc.wait()
            raise AssertionError(f"the service did not start:\n{service.output()}") from exc
        service._drain = asyncio.create_task(service._read_rest())
        return service

    async def _wait_listening(self) -> str:
        assert self.proc.stderr is not None
        while True:
            line = (await self.proc.stderr.readline()).decode(errors="replace")
            if not line:
                raise EOFError("stderr closed")
            self.log.append(line.rstrip())
            found = LISTENING.search(line)
            if found:
                return found.group(1)

    async def _read_rest(self) -> None:
        # Keep reading so the child never blocks on a full pipe.
        assert self.proc.stderr is not None
        async for line in self.proc.stderr:
            self.log.append(line.decode(errors="replace").rstrip())

    def output(self, lines: int = 200) -> str:
        """What the process logged (for failure messages)."""
        return "\n".join(self.log[-lines:])

    @property
    def alive(self) -> bool:
        """Still running."""
        return self.proc.returncode is None

    def text(self) -> str:
        """The whole log so far, one string."""
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

    async def kill(self) -> None:
        """SIGKILL and reap: no shutdown code runs, as in a crash."""
        if self.proc.returncode is None:
            self.proc.send_signal(signal.SIGKILL)
        await self.proc.wait()
        if self._drain is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._drain, 5)


class Client:
    """Slack, a webhook sender and an API user, all talking to one service over HTTP.

    Every method returns the HTTP status, or None when the service never answered (it was
    killed under the request): only a status means the request was acknowledged.
    """

    def __init__(self, http: aiohttp.ClientSession, *, slack_secret: str) -> None:
        self.http = http
        self.slack_secret = slack_secret

    async def click(
        self, url: str, message: Mapping[str, Any], channel: str, user: str
    ) -> int | None:
        """Click Approve on ``message`` (as Slack returns it) as ``user``."""
        payload = block_actions_payload(
            message=message, action_id=action_ids.APPROVE, channel_id=channel, user_id=user
        )
        request = signed_request(interactive_body(payload), secret=self.slack_secret)
        return await self._post(f"{url}/slack/events", request.body, request.headers)

    async def webhook(self, url: str, workflow: str, data: Any, key: str) -> int | None:
        """Start a run with a signed webhook and an ``Idempotency-Key``."""
        body = json.dumps(data).encode()
        stamp = int(time.time())
        headers = {
            "Content-Type": "application/json",
            TIMESTAMP_HEADER: str(stamp),
            SIGNATURE_HEADER: sign(WEBHOOK_SECRET, stamp, body),
            "Idempotency-Key": key,
        }
        return await self._post(f"{url}/hooks/{workflow}", body, headers)

    async def resume(
        self, url: str, run_id: str, interrupt_id: str, data: Any, actor: str
    ) -> int | None:
        """Answer an interrupt through the REST API."""
        body = json.dumps({"data": data, "actor": actor}).encode()
        headers = {"Content-Type": "application/json", "Authorization": f"Bearer {API_TOKEN}"}
        # Interrupt ids hold characters a path must escape ("0:approve#0").
        path = (
            f"/api/runs/{quote(run_id, safe='')}/interrupts/{quote(interrupt_id, safe='')}/resume"
        )
        return await self._post(url + path, body, headers)

    async def _post(self, url: str, body: bytes | str, headers: Mapping[str, str]) -> int | None:
        try:
            async with self.http.post(url, data=body, headers=dict(headers)) as response:
                await response.read()
                return response.status
        except SENT_ERRORS:
            return None
