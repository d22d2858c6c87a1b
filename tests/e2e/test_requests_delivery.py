"""Delivery under failure: a create retried after a dropped connection, and callbacks to a
receiver that is down, on a real ``signoff serve`` with the fake Slack."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from typing import Any

from aiohttp import web
from aiohttp.test_utils import TestServer

from bot.client import AsyncClient
from bot.slack import action_ids
from tests.e2e.requests_server import TOKEN, Receiver, RequestsServer, api
from tests.support.polling import eventually


class DroppingProxy:
    """A TCP proxy on 127.0.0.1 that forwards the first request to the server, reads the
    server's answer, and then drops the connection instead of passing the answer on:
    the client cannot tell whether its request was made."""

    def __init__(self, upstream: str) -> None:
        host, port = upstream.removeprefix("http://").split(":")
        self.upstream = (host, int(port))
        self.to_drop = 1
        self.connections = 0
        self.dropped = 0
        self.server: asyncio.Server | None = None

    @property
    def url(self) -> str:
        assert self.server is not None
        port = self.server.sockets[0].getsockname()[1]
        return f"http://127.0.0.1:{port}"

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        up_reader, up_writer = await asyncio.open_connection(*self.upstream)
        drop = self.to_drop > 0
        self.to_drop -= 1 if drop else 0
        try:
            if drop:
                await _pipe_once(reader, up_writer)
                await up_reader.read(65536)  # the server has answered: the request was made
                self.dropped += 1
                writer.transport.abort()  # ... and the answer never reaches the client
                return
            await asyncio.gather(_pipe(reader, up_writer), _pipe(up_reader, writer))
        finally:
            up_writer.close()
            with contextlib.suppress(Exception):
                writer.close()


async def _pipe_once(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    # One HTTP request: headers, then Content-Length bytes of body.
    head = await reader.readuntil(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n"):
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value.strip())
    body = await reader.readexactly(length) if length else b""
    writer.write(head + body)
    await writer.drain()


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    with contextlib.suppress(ConnectionError, asyncio.IncompleteReadError):
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    with contextlib.suppress(Exception):
        writer.close()


@contextlib.asynccontextmanager
async def dropping_proxy(upstream: str) -> AsyncIterator[DroppingProxy]:
    proxy = DroppingProxy(upstream)
    proxy.server = await asyncio.start_server(proxy.handle, "127.0.0.1", 0)
    try:
        yield proxy
    finally:
        proxy.server.close()


async def test_a_create_retried_after_a_dropped_connection_makes_one_request(
    requests_server: Any,
) -> None:
    server: RequestsServer = await requests_server()
    async with dropping_proxy(server.url) as proxy, AsyncClient(proxy.url, TOKEN) as client:
        created = await client.request("Pay invoice 77", fields={"amount": 1200})
    assert proxy.dropped == 1 and proxy.connections >= 2  # the first answer was lost
    _, listed = await api("GET", f"{server.url}/api/requests")
    assert [r["id"] for r in listed["requests"]] == [created.id]  # exactly one request
    await server.message_for(created.id)
    await asyncio.sleep(0.5)
    assert len([m for m in server.posts() if "Pay invoice 77" in str(m.blocks)]) == 1


async def _other_receiver() -> tuple[Receiver, TestServer]:
    found = Receiver()
    app = web.Application()
    app.router.add_post("/hook", found.handle)
    test_server = TestServer(app, host="127.0.0.1", port=None)
    await test_server.start_server()
    found.url = str(test_server.make_url("/hook"))
    return found, test_server


async def test_a_failing_callback_receiver_gets_it_once_it_recovers_and_delays_nothing(
    requests_server: Any, receiver: Receiver
) -> None:
    server: RequestsServer = await requests_server()
    receiver.fail = 3  # down for the first three deliveries
    url = f"{server.url}/api/requests"
    body = {"title": "Ship it", "callback_url": receiver.url}
    _, first = await api("POST", url, json=body)
    message = await server.message_for(first["id"])
    clicked = time.monotonic()
    assert await server.click(message, action_ids.APPROVE, user="U0ALICE") == 200
    _, decided = await api("GET", f"{url}/{first['id']}?wait=20")
    assert decided["status"] == "approved" and time.monotonic() - clicked < 3
    await eventually(lambda: receiver.refused >= 1, timeout=10, what="the first failure")

    # While that callback waits for its retry, other requests go on unhindered.
    healthy, healthy_server = await _other_receiver()
    try:
        _, second = await api("POST", url, json={"title": "Also", "callback_url": healthy.url})
        second_message = await server.message_for(second["id"])
        assert await server.click(second_message, action_ids.APPROVE, user="U0BOB") == 200
        await eventually(lambda: healthy.received, timeout=5, what="the healthy callback")
        assert receiver.received == []  # the failing receiver is still being retried
    finally:
        await healthy_server.close()

    # 1 s, 2 s, 4 s of backoff: the fourth attempt succeeds.
    await eventually(lambda: receiver.received, timeout=20, what="the retried callback")

    async def recorded() -> Any:  # the receiver's 200 is recorded just after it answers
        _, view = await api("GET", f"{url}/{first['id']}")
        return view if view["callback"]["state"] == "delivered" else None

    view = await eventually(recorded, what="the delivery recorded")
    assert receiver.refused == 3 and len(receiver.received) == 1  # delivered once, no retry
    assert view["callback"]["attempts"] == 4
    assert view["status"] == "approved" and view["decided_at"] == decided["decided_at"]
