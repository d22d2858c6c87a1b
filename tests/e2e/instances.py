"""Several real ``signoff serve`` processes on one database, as a test fixture sees them.

Each ``Instance`` is a subprocess with its own port and its own Slack bot token (so the
fake Slack can tell which process made a call) that claims a host name of its own. The
engine spots a dead worker on its *own* host at once by its pid; giving each process
another host name makes takeover after ``kill -9`` go through the lease path, as it
must between machines behind a load balancer.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import aiohttp

from bot.slack import action_ids
from bot.slack.refs import Ref, RefSigner
from bot.web.webhooks import SIGNATURE_HEADER, TIMESTAMP_HEADER, sign
from tests.fakes.signing import block_actions_payload, interactive_body, signed_request

ROOT = Path(__file__).resolve().parents[2]
LISTENING = "listening on http://"
# Runs `signoff serve` after making socket.gethostname() answer the first argument.
BOOTSTRAP = (
    "import socket, sys\n"
    "host = sys.argv.pop(1)\n"
    "socket.gethostname = lambda: host\n"
    "from bot.cli import main\n"
    "sys.exit(main(['serve']))\n"
)
_SENT_ERRORS = (aiohttp.ClientError, OSError, asyncio.TimeoutError)


class Instance:
    """One ``signoff serve`` process."""

    def __init__(self, index: int, proc: asyncio.subprocess.Process, token: str) -> None:
        self.index = index
        self.proc = proc
        self.token = token
        self.host = host_name(index)
        self.url = ""
        self.log: list[str] = []
        self.killed_at: float | None = None
        self._drain: asyncio.Task[None] | None = None

    @classmethod
    async def start(cls, index: int, env: Mapping[str, str], token: str) -> Instance:
        """Start instance ``index`` and wait until it says where it listens."""
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-c", BOOTSTRAP, host_name(index), cwd=ROOT,
            env={**env, "SLACK_BOT_TOKEN": token}, stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        instance = cls(index, proc, token)
        try:
            instance.url = await asyncio.wait_for(instance._wait_listening(), 60)
        except (TimeoutError, EOFError) as exc:
            proc.kill()
            await proc.wait()
            raise AssertionError(f"instance {index} did not start:\n{instance.output()}") from exc
        instance._drain = asyncio.create_task(instance._read_rest())
        return instance

    @property
    def alive(self) -> bool:
        """Not killed by the test (and not exited)."""
        return self.killed_at is None and self.proc.returncode is None

    async def _wait_listening(self) -> str:
        assert self.proc.stderr is not None
        while True:
            line = (await self.proc.stderr.readline()).decode(errors="replace")
            if not line:
                raise EOFError("stderr closed")
            self.log.append(line.rstrip())
            if LISTENING in line:
                return "http://" + line.split(LISTENING, 1)[1].split()[0]

    async def _read_rest(self) -> None:
        # Keep reading so the child never blocks on a full pipe.
        assert self.proc.stderr is not None
        async for line in self.proc.stderr:
            self.log.append(line.decode(errors="replace").rstrip())

    def output(self) -> str:
        """What the process logged (for failure messages)."""
        return "\n".join(self.log[-200:])

    async def kill(self) -> None:
        """SIGKILL and reap: no shutdown code runs, as in a crash."""
        self.killed_at = time.monotonic()
        self.proc.send_signal(signal.SIGKILL)
        assert await self.proc.wait() == -signal.SIGKILL
        await self._finish()

    async def stop(self) -> None:
        """SIGTERM (graceful shutdown), SIGKILL if it hangs."""
        if self.proc.returncode is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(self.proc.wait(), 20)
            except TimeoutError:
                self.proc.kill()
                await self.proc.wait()
        await self._finish()

    async def _finish(self) -> None:
        if self._drain is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._drain, 5)


def host_name(index: int) -> str:
    """The host name instance ``index`` claims."""
    return f"signoff-host-{index}"


class Sender:
    """Sends what other systems and Slack send, to whichever instance is asked."""

    def __init__(
        self, http: aiohttp.ClientSession, *, webhook_secret: str, slack_secret: str
    ) -> None:
        self.http = http
        self.webhook_secret = webhook_secret
        self.slack_secret = slack_secret
        self.signer = RefSigner(slack_secret)

    async def start_run(
        self, instances: list[Instance], first: int, workflow: str, data: Any, key: str
    ) -> str:
        """Start a run by signed webhook at ``instances[first]``; on a connection failure
        (a killed instance) send the same request, same ``Idempotency-Key``, to the next
        live one, as a sender's retry would."""
        body = json.dumps(data).encode()
        for attempt in range(len(instances) * 2):
            target = instances[(first + attempt) % len(instances)]
            if not target.alive:
                continue
            stamp = int(time.time())
            headers = {
                "Content-Type": "application/json",
                TIMESTAMP_HEADER: str(stamp),
                SIGNATURE_HEADER: sign(self.webhook_secret, stamp, body),
                "Idempotency-Key": key,
            }
            try:
                async with self.http.post(
                    f"{target.url}/hooks/{workflow}", data=body, headers=headers
                ) as response:
                    text = await response.text()
                    assert response.status == 202, (response.status, text)
                    return str(json.loads(text)["run_id"])
            except _SENT_ERRORS:
                continue
        raise AssertionError(f"no live instance accepted webhook {key}")

    def approve_click(self, message: Mapping[str, Any], user: str, channel: str) -> str:
        """The signed-body-to-be of a click on the message's Approve button."""
        payload = block_actions_payload(
            message=message, action_id=action_ids.APPROVE, channel_id=channel, user_id=user
        )
        return interactive_body(payload)

    async def click(self, target: Instance, body: str) -> bool:
        """POST a click to ``target``'s /slack/events; False if it never got an answer."""
        request = signed_request(body, secret=self.slack_secret)
        try:
            async with self.http.post(
                f"{target.url}/slack/events", data=request.body, headers=request.headers
            ) as response:
                await response.read()
                assert response.status == 200, response.status
                return True
        except _SENT_ERRORS:
            return False

    def ref_of(self, message: Mapping[str, Any]) -> Ref:
        """The interrupt a posted request message is about (from its Approve button)."""
        payload = block_actions_payload(message=message, action_id=action_ids.APPROVE)
        return self.signer.verify(str(payload["actions"][0]["value"]))
