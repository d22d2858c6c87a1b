"""2,100 hostile requests against a real ``signoff serve``: no 5xx, no traceback, no change.

The service runs with Slack (a FakeSlack), webhooks and the API, holding one suspended run
whose interrupt lists a user group among its approvers. Seeded hostile requests
(``tests/e2e/hostile.py``) go at every entry point; afterwards the runs, their interrupts
and their histories read exactly as before, and the service's log has no traceback and
no ERROR line.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import difflib
import io
import json
import random
import time
from pathlib import Path
from typing import Any

import aiohttp

from tests.bot.web.service import SECRET as WEBHOOK_SECRET
from tests.bot.web.service import TOKEN
from tests.e2e.hostile import Hostile, Ids, Raw, Request
from tests.fakes.slack_api import FakeSlack
from tests.support.polling import eventually
from tests.support.service import ServiceProcess, service_env
from tests.support.slack_bot import CHANNEL, SECRET, USERS

SEED = 20261130
REQUESTS = 2100
CONCURRENCY = 16
AUTH = {"Authorization": f"Bearer {TOKEN}"}


async def snapshot(http: aiohttp.ClientSession, url: str) -> dict[str, Any]:
    """Every run with its interrupts and history, as the API shows them."""
    async with http.get(f"{url}/api/runs?limit=500", headers=AUTH) as r:
        runs = (await r.json())["runs"]
    details = {}
    for run in runs:
        async with http.get(f"{url}/api/runs/{run['id']}", headers=AUTH) as r:
            details[run["id"]] = await r.json()
    return {"runs": runs, "details": details}


async def send(http: aiohttp.ClientSession, url: str, request: Request | Raw) -> int:
    """The status of one hostile request (0: the server closed without answering)."""
    if isinstance(request, Raw):
        return await send_raw(url, request.data)
    with contextlib.suppress(aiohttp.ClientError, TimeoutError):
        async with http.request(
            request.method, url + request.path, data=io.BytesIO(request.body),
            headers=request.headers, timeout=aiohttp.ClientTimeout(total=10),
        ) as response:  # fmt: skip
            await response.read()
            return response.status
    return 0


async def send_raw(url: str, data: bytes) -> int:
    """Send bytes over a fresh connection, close our side, read the status line if any."""
    host, port = url.removeprefix("http://").split(":")
    try:
        async with asyncio.timeout(10):
            reader, writer = await asyncio.open_connection(host, int(port))
            writer.write(data)
            with contextlib.suppress(OSError):
                writer.write_eof()
            answer = await reader.read()
            writer.close()
    except (OSError, TimeoutError):
        return 0
    status = answer.split(b" ", 2)[1:2]
    return int(status[0]) if status and status[0].isdigit() else 0


def excerpt(lines: list[str], needle: str) -> str:
    """The log from the first line holding ``needle``, for a failure message."""
    first = next(i for i, line in enumerate(lines) if needle in line)
    return "\n".join(lines[max(0, first - 2) : first + 40])


async def test_hostile_requests_get_no_5xx_no_traceback_and_change_nothing(
    fake_slack: FakeSlack, tmp_path: Path
) -> None:
    for user in USERS:
        fake_slack.add_user(user, name=user.lower())
    env = service_env(
        api_url=fake_slack.api_url,
        token=fake_slack.token,
        secret=SECRET,
        db=tmp_path / "fuzz.db",
        SIGNOFF_DEFAULT_CHANNEL=CHANNEL,
        SIGNOFF_API_TOKEN=TOKEN,
        SIGNOFF_WEBHOOK_SECRET=WEBHOOK_SECRET,
        SIGNOFF_BODY_TIMEOUT="5",
        SIGNOFF_LEASE_SECONDS=None,
        SIGNOFF_SHUTDOWN_GRACE=None,
    )
    service = await ServiceProcess.start(env)
    url = service.url
    statuses: collections.Counter[int] = collections.Counter()
    server_errors: list[tuple[str, int]] = []
    try:
        async with aiohttp.ClientSession() as http:
            policy = {"service": "db", "approvers": ["group:S0PROD", "U0ALICE"], "quorum": 2}
            body = {"workflow": "change", "input": policy, "requester": "U0CAROL"}
            async with http.post(f"{url}/api/runs", json=body, headers=AUTH) as r:
                run_id = (await r.json())["run_id"]
            await eventually(lambda: fake_slack.messages(CHANNEL), timeout=15, what="the post")

            async def settled() -> dict[str, Any] | None:
                first = await snapshot(http, url)
                await asyncio.sleep(0.3)
                return first if first == await snapshot(http, url) else None

            before = await eventually(settled, timeout=15, what="a settled state")
            (pending,) = before["details"][run_id]["pending"]
            hostile = Hostile(random.Random(SEED), Ids(run_id, pending["id"]))
            requests = [hostile.request() for _ in range(REQUESTS)]
            started = time.monotonic()
            gate = asyncio.Semaphore(CONCURRENCY)

            async def one(request: Request | Raw) -> None:
                async with gate:
                    status = await send(http, url, request)
                statuses[status] += 1
                if status >= 500:
                    server_errors.append((request.kind, status))

            await asyncio.gather(*(one(r) for r in requests))
            elapsed = time.monotonic() - started
            after = await snapshot(http, url)
    finally:
        await service.stop()

    log = service.text()
    print(
        f"\n{REQUESTS} hostile requests in {elapsed:.1f} s; statuses {sorted(statuses.items())};"
        f" answers >= 500: {len(server_errors)}"
    )
    assert server_errors == []
    assert "Traceback" not in log, excerpt(service.log, "Traceback")
    errors = [line for line in service.log if " ERROR " in line or " CRITICAL " in line]
    assert errors == [], errors
    was, now = (json.dumps(x, sort_keys=True, indent=1).splitlines() for x in (before, after))
    assert now == was, "\n".join(difflib.unified_diff(was, now, lineterm="", n=1))
    assert sum(statuses.values()) == REQUESTS
