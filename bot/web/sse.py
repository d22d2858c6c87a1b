"""Follow a run's history live as Server-Sent Events.

Each history entry is sent once, as soon as it is committed, as::

    id: 42
    event: step_completed
    data: {"id": 42, "run_id": "...", "at": "...", "type": "step_completed", "data": {...}}

and the stream ends with an ``end`` event once the run is finished. Between entries a
stream waits in ``Engine.wait_for_history``, which sees runs driven by other processes
too, and looks at the store once per interval for every waiter of the process; woken,
the stream reads its run's new entries (``engine.events(after_id)``). A client that
reconnects with ``Last-Event-ID`` continues where it stopped.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import Iterator

from aiohttp import web

from engine import Engine, RunNotFound

__all__ = [
    "CLOSING",
    "KEEPALIVE",
    "MAX_EVENT_ID",
    "cut_short",
    "install_streams",
    "last_event_id",
    "stream_events",
]

CLOSING = web.AppKey("signoff.closing", asyncio.Event)
"""Set when the server shuts down, so open streams and long polls end instead of holding
it up."""


@contextlib.contextmanager
def cut_short(scope: asyncio.Timeout, closing: asyncio.Event | None) -> Iterator[None]:
    """While inside, ``closing`` being set (the server shuts down) expires ``scope`` at
    once: what it awaits is cancelled and it raises TimeoutError. A no-op for None.

    A callback on the event rather than a task racing the wait: the wait stays in the
    caller's task, where a commit wakes it without a hop between tasks (under load, each
    hop is a turn of a busy event loop)."""
    if closing is None:
        yield
        return
    inside = True

    def expire(_: object) -> None:
        if inside:  # a scope that was left can no longer be rescheduled
            scope.reschedule(-1)

    stop = asyncio.ensure_future(closing.wait())
    stop.add_done_callback(expire)
    try:
        yield
    finally:
        inside = False
        stop.cancel()


KEEPALIVE = 15.0  # seconds between comment lines that keep proxies from closing the stream
MAX_EVENT_ID = 2**62  # the bound of ?after= too: far below SQLite's and PostgreSQL's int64
_MAX_DIGITS = len(str(MAX_EVENT_ID))


def last_event_id(value: str | None) -> int | None:
    """The ``Last-Event-ID`` header as an event id (None if absent or empty).

    Raises:
        ValueError: it is not ASCII digits (``²`` and ``٣`` are digits to ``str.isdigit``)
            or is above ``MAX_EVENT_ID``.
    """
    if not value:
        return None
    if not (value.isascii() and value.isdigit() and len(value) <= _MAX_DIGITS):
        raise ValueError("Last-Event-ID must be an event id: ASCII digits")
    event_id = int(value)
    if event_id > MAX_EVENT_ID:
        raise ValueError(f"Last-Event-ID must be at most {MAX_EVENT_ID}")
    return event_id


def _frame(event_id: int | None, name: str, data: str) -> bytes:
    head = f"id: {event_id}\n" if event_id is not None else ""
    return f"{head}event: {name}\ndata: {data}\n\n".encode()


def install_streams(app: web.Application) -> None:
    """Give ``app`` its ``CLOSING`` event, set on shutdown; a second call changes nothing."""
    if CLOSING in app:
        return
    closing = app[CLOSING] = asyncio.Event()

    async def end_streams(_: web.Application) -> None:
        closing.set()

    app.on_shutdown.append(end_streams)


async def stream_events(
    request: web.Request, engine: Engine, run_id: str, *, after: int = 0
) -> web.StreamResponse:
    """Send the run's history after ``after`` and everything new until the run ends.

    Needs ``install_streams`` on the application. Raises RunNotFound before anything is
    sent if the run does not exist.
    """
    closing = request.config_dict[CLOSING]
    if await engine.find_run(run_id) is None:
        raise RunNotFound(run_id)
    response = web.StreamResponse(
        headers={
            "Content-Type": "text/event-stream",
            "Cache-Control": "no-cache",
            "X-Accel-Buffering": "no",  # nginx: do not buffer the stream
        }
    )
    await response.prepare(request)
    last_sent = time.monotonic()
    try:
        while True:
            # Read the status before the events: a finished run committed its last
            # events with its status, so nothing can be missed after this read.
            run = await engine.find_run(run_id)
            for event in await engine.events(run_id, after_id=after):
                await response.write(_frame(event.id, event.type.value, event.model_dump_json()))
                after = event.id
                last_sent = time.monotonic()
            if run is None or run.status.terminal:
                status = run.status.value if run is not None else "deleted"
                await response.write(_frame(None, "end", json.dumps({"status": status})))
                break
            if time.monotonic() - last_sent >= KEEPALIVE:
                await response.write(b": keep-alive\n\n")
                last_sent = time.monotonic()
            # Until something newer is committed, it is time for a keep-alive, or the
            # server shuts down.
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(KEEPALIVE - (time.monotonic() - last_sent)) as scope:
                    with cut_short(scope, closing):
                        await engine.wait_for_history(run_id, after_id=after)
            if closing.is_set():
                await response.write(_frame(None, "end", json.dumps({"status": "server_closing"})))
                break
    except ConnectionResetError:
        return response  # the client went away: nothing more to send
    with contextlib.suppress(ConnectionResetError):
        await response.write_eof()
    return response
