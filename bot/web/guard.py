"""Slow and excess clients: deadlines on every phase of a connection, and a connection cap.

aiohttp's server has no header or body timeout: a client sending one header byte every few
seconds (or a declared 1 MB body, one byte at a time) holds a connection and a file
descriptor for as long as it likes, and enough of them exhaust the process's descriptors
(``accept()`` then fails in a loop and nothing is served). ``GuardedSite`` serves the app
through ``GuardedRequestHandler``, which gives each phase of a connection a deadline:

============  ==============================================  ==========================
phase         what the client owes                            limit
============  ==============================================  ==========================
headers       the request line and headers, complete          ``header_timeout``, from
                                                              connecting or from the
                                                              first byte of a request
body          the whole body (read by ``read_body``)          ``body_timeout`` (408)
handling      nothing: the server is working                  none
idle          a new request on a kept-alive connection        ``keepalive_timeout``
============  ==============================================  ==========================

and ``ConnectionGuard`` caps open connections at ``max_connections``, derived from the
open-file limit with room to spare, so ``accept()`` never runs out of descriptors. At the
cap, the connection that has waited longest in a phase where the *client* owes something
(headers, body, or idle) is closed to make room: slow clients cannot lock out a health
check or a Slack click. Only when every connection is being handled is the newcomer turned
away, with a 503.
"""

from __future__ import annotations

import asyncio
import logging
import resource
import socket
from collections import Counter, OrderedDict
from dataclasses import dataclass
from typing import Any

from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError
from aiohttp.web_protocol import RequestHandler, RequestPayloadError
from aiohttp.web_request import BaseRequest
from aiohttp.web_server import Server

from bot.logs import REFUSED_LOGGER
from bot.settings import Settings

__all__ = [
    "ConnectionGuard",
    "GuardedRequestHandler",
    "GuardedSite",
    "Limits",
    "connection_cap",
]

log = logging.getLogger(REFUSED_LOGGER + ".connections")

# Seconds aiohttp goes on reading (and discarding) a body its handler did not read, so the
# client sees the response before the close. A slow client would hold the connection for
# all of it, so keep it short.
LINGERING_TIME = 1.0
_UNLIMITED_FILES = 65536  # what RLIM_INFINITY is taken as
LISTEN_QUEUE = 1024  # connections the kernel queues before accept() (capped by somaxconn)
_REFUSAL = (
    b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/plain\r\n"
    b"Content-Length: 28\r\nConnection: close\r\n\r\ntoo many connections: retry\n"
)


def _open_file_limit() -> int:
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    return _UNLIMITED_FILES if soft == resource.RLIM_INFINITY else soft


def connection_cap(open_files: int | None = None) -> int:
    """Connections to allow with ``open_files`` descriptors (default: RLIMIT_NOFILE's soft
    limit): a quarter of them, at least 64, stay for the database, the Slack client's
    connections, log files and connections accepted but not yet closed."""
    files = _open_file_limit() if open_files is None else open_files
    return max(1, files - max(64, files // 4))


@dataclass(frozen=True)
class Limits:
    """The deadlines and the cap (see the module docstring)."""

    header_timeout: float
    body_timeout: float
    keepalive_timeout: float
    max_connections: int

    @classmethod
    def from_settings(cls, settings: Settings) -> Limits:
        """The limits configured by ``SIGNOFF_*_TIMEOUT`` and ``SIGNOFF_MAX_CONNECTIONS``."""
        return cls(
            header_timeout=settings.header_timeout,
            body_timeout=settings.body_timeout,
            keepalive_timeout=settings.keepalive_timeout,
            max_connections=settings.max_connections or connection_cap(),
        )

    def accept_batch(self) -> int:
        """How many connections asyncio may accept in one go (its ``backlog`` argument).

        A connection evicted to make room frees its descriptor only a couple of loop
        iterations later, so two or three batches must fit in what the cap leaves free
        beside the database and the rest: an eighth of it (8 for 256 files).
        """
        spare = _open_file_limit() - self.max_connections
        return max(4, min(128, spare // 8))


class ConnectionGuard:
    """Counts open connections, knows which ones wait on their client, and enforces the cap.

    ``cut`` counts what was closed and why (``header_timeout``, ``idle``, ``evicted``,
    ``refused``); tests and logs read it.
    """

    def __init__(self, limits: Limits) -> None:
        self.limits = limits
        self.cut: Counter[str] = Counter()
        self._open: set[GuardedRequestHandler] = set()
        # Connections whose client owes something, oldest wait first: who is evicted.
        self._waiting: OrderedDict[GuardedRequestHandler, None] = OrderedDict()

    @property
    def open_connections(self) -> int:
        """Connections admitted and not yet closed."""
        return len(self._open)

    def admit(self, handler: GuardedRequestHandler) -> bool:
        """Make room for ``handler`` (evicting the longest waiter) or refuse it (False)."""
        if len(self._open) >= self.limits.max_connections:
            if not self._waiting:
                self.cut["refused"] += 1
                log.warning(
                    "connection limit (%d) reached with every connection busy: "
                    "refusing new connections with 503",
                    self.limits.max_connections,
                )
                return False
            victim, _ = self._waiting.popitem(last=False)
            self.cut["evicted"] += 1
            log.warning(
                "connection limit (%d) reached: closing the connections that waited longest "
                "for their clients",
                self.limits.max_connections,
            )
            self.release(victim)
            victim.force_close()
        self._open.add(handler)
        return True

    def waits(self, handler: GuardedRequestHandler) -> None:
        """``handler``'s client owes the next move: it may be evicted, oldest first."""
        if handler in self._open:
            self._waiting[handler] = None
            self._waiting.move_to_end(handler)

    def busy(self, handler: GuardedRequestHandler) -> None:
        """The server is working on ``handler``'s request: never evicted."""
        self._waiting.pop(handler, None)

    def release(self, handler: GuardedRequestHandler) -> None:
        """``handler`` closed."""
        self._open.discard(handler)
        self._waiting.pop(handler, None)


class GuardedRequestHandler(RequestHandler):
    """aiohttp's connection protocol with a deadline per phase and a place under the cap."""

    def __init__(self, manager: Server, *, guard: ConnectionGuard, **kwargs: Any) -> None:
        super().__init__(
            manager,
            keepalive_timeout=guard.limits.keepalive_timeout,
            lingering_time=LINGERING_TIME,
            **kwargs,
        )
        self._guard = guard
        self._phase = "headers"
        self._deadline: asyncio.TimerHandle | None = None
        self._admitted = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        """Admit the connection under the cap (or answer 503 and close), then start the
        header deadline."""
        self._admitted = self._guard.admit(self)
        if not self._admitted:
            assert isinstance(transport, asyncio.Transport)
            transport.write(_REFUSAL)
            transport.close()
            return
        super().connection_made(transport)
        self._enter("headers", self._guard.limits.header_timeout)

    def connection_lost(self, exc: BaseException | None) -> None:
        """Forget the connection."""
        if not self._admitted:
            return
        self._disarm()
        self._guard.release(self)
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        """Parse as aiohttp does; a complete request head ends the header phase, and the
        first byte after an idle spell starts one."""
        parsed = self._request_count
        super().data_received(data)
        if self._request_count > parsed:
            self._enter("handling", None)
        elif self._phase == "idle" and data:
            self._enter("headers", self._guard.limits.header_timeout)

    def reading_body(self, reading: bool) -> None:
        """Called by ``read_body``: the client owes its body (evictable), or no longer."""
        if self.transport is not None:
            self._enter("body" if reading else "handling", None)

    async def finish_response(
        self, request: BaseRequest, resp: web.StreamResponse, start_time: float | None
    ) -> tuple[web.StreamResponse, bool]:
        """Send the response; the connection is then idle until its next request (unless
        a pipelined one is already waiting to be handled)."""
        try:
            return await super().finish_response(request, resp, start_time)
        finally:
            if resp.status == 408:
                # Too slow sending its body: close now rather than linger over the rest.
                self.force_close()
            if self.transport is not None:
                if self._messages:
                    self._enter("handling", None)
                else:
                    self._enter("idle", self._guard.limits.keepalive_timeout)

    def log_exception(self, *args: Any, **kwargs: Any) -> None:
        """A malformed request or body is one INFO line, not an ERROR with a traceback:
        anyone can send one. Anything else stays an ERROR."""
        exc = kwargs.get("exc_info")
        if isinstance(exc, HttpProcessingError) and exc.code < 500:
            log.info("answered %d to a malformed HTTP request: %.200s", exc.code, exc.message)
            return
        if isinstance(exc, RequestPayloadError):
            # Raised while aiohttp discards a body nobody read (a broken chunk, bad gzip).
            log.info("closed a connection whose request body was malformed: %.200s", exc)
            return
        super().log_exception(*args, **kwargs)

    def _enter(self, phase: str, timeout: float | None) -> None:
        self._phase = phase
        self._disarm()
        if phase == "handling":
            self._guard.busy(self)
            return
        self._guard.waits(self)
        if timeout is not None:
            self._deadline = self._loop.call_later(timeout, self._expire, phase)

    def _disarm(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _expire(self, phase: str) -> None:
        self._deadline = None
        if self._phase != phase:
            return
        reason = "header_timeout" if phase == "headers" else phase
        self._guard.cut[reason] += 1
        if phase == "headers":
            log.info(
                "closed a connection that sent no complete request head in %gs",
                self._guard.limits.header_timeout,
            )
        self.force_close()


class GuardedSite(web.TCPSite):
    """``web.TCPSite`` serving through ``GuardedRequestHandler`` under ``guard``'s cap.

    Args:
        runner: a set-up ``web.AppRunner``.
        host: address to listen on.
        port: port to listen on (0: any free port).
        guard: the cap and deadlines.
    """

    def __init__(
        self,
        runner: web.AppRunner,
        host: str,
        port: int,
        *,
        guard: ConnectionGuard,
        reuse_port: bool = False,
    ) -> None:
        super().__init__(runner, host, port, backlog=guard.limits.accept_batch())
        self.guard = guard
        self.reuse_port = reuse_port  # several worker processes share the port

    async def start(self) -> None:
        """Listen, making each connection's protocol a ``GuardedRequestHandler``."""
        await web.BaseSite.start(self)  # registers the site with its runner
        server = self._runner.server
        assert server is not None
        loop = asyncio.get_running_loop()

        def protocol() -> GuardedRequestHandler:
            return GuardedRequestHandler(server, guard=self.guard, loop=loop)

        self._server = await loop.create_server(
            protocol,
            self._host,
            self._port,
            backlog=self._backlog,
            reuse_address=True,
            reuse_port=self.reuse_port or None,
        )
        for listening in self._server.sockets:
            # asyncio used the small accept batch as the kernel's queue of connections
            # waiting to be accepted too; a longer queue costs no descriptor and keeps a
            # burst of connections (health checks among them) from being dropped.
            with socket.fromfd(listening.fileno(), listening.family, listening.type) as dup:
                dup.listen(LISTEN_QUEUE)
        if self._server.sockets:
            self._bound_port = self._server.sockets[0].getsockname()[1]
