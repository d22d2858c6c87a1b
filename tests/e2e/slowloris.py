"""Slow clients, run as their own process: ``python -m tests.e2e.slowloris HOST PORT SECONDS``.

Opens ``HEADER_DRIBBLERS`` connections that send a request head one byte at a time and
``BODY_DRIBBLERS`` that send a complete head declaring a 1 MB body, then the body one byte
at a time. Each reconnects shortly after the server cuts it, until SECONDS have passed.
Prints ``{"header": [...], "body": [...]}``: how long each connection lived, in seconds.
Run apart from the test, so its busy event loop does not delay the test's measurements.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import sys
import time

HEADER_DRIBBLERS = 160
BODY_DRIBBLERS = 160
DRIP_EVERY = 0.4  # seconds between two bytes
RECONNECT_AFTER = 0.25  # seconds (plus up to as much again, at random) after a cut
HEADER = b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: "
BODY = (
    b"POST /hooks/order HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
    b"Content-Length: 1000000\r\n\r\n{"
)


async def dribble(host: str, port: int, head: bytes, lives: list[float], stop: float) -> None:
    """Send ``head``, then a byte per ``DRIP_EVERY`` until cut; reconnect until ``stop``."""
    while time.monotonic() < stop:
        try:
            reader, writer = await asyncio.open_connection(host, port)
        except OSError:
            await asyncio.sleep(RECONNECT_AFTER)
            continue
        opened = time.monotonic()
        try:
            writer.write(head)
            while time.monotonic() < stop + 5:
                await writer.drain()
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(DRIP_EVERY):
                        if await reader.read(1024) == b"":
                            break  # cut (an answer, if any, was read before the close)
                writer.write(b"x")
        except OSError:
            pass
        lives.append(time.monotonic() - opened)
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()
        await asyncio.sleep(RECONNECT_AFTER * (1 + random.random()))


async def attack(host: str, port: int, seconds: float) -> dict[str, list[float]]:
    """Run every dribbler for ``seconds``; how long their connections lived."""
    stop = time.monotonic() + seconds
    header: list[float] = []
    body: list[float] = []
    tasks = [dribble(host, port, HEADER, header, stop) for _ in range(HEADER_DRIBBLERS)]
    tasks += [dribble(host, port, BODY, body, stop) for _ in range(BODY_DRIBBLERS)]
    await asyncio.gather(*tasks)
    return {"header": header, "body": body}


if __name__ == "__main__":
    random.seed(9)
    result = asyncio.run(attack(sys.argv[1], int(sys.argv[2]), float(sys.argv[3])))
    print(json.dumps(result))
