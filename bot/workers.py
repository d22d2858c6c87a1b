"""``signoff serve --workers N``: a parent that runs N worker processes on one port.

Each worker is a full ``signoff serve`` (``python -m bot.cli serve``) with its own engine on
the same database; the multi-instance design (leases, outbox claims, idempotent Slack
delivery) already makes that safe. They share the port with ``SO_REUSEPORT``, so the kernel
spreads connections over them. The parent only supervises:

* each worker gets ``SIGNOFF_WORKER_INDEX`` (0..N-1), ``SIGNOFF_WORKERS=N`` (Slack pacing
  divides the workspace budgets by it) and the port (a port of 0 is chosen once, here);
* only worker 0 connects Socket Mode (one connection owner);
* a worker that exits while the parent runs is restarted (after 1 s, doubling to 30 s if it
  keeps dying young);
* SIGTERM or SIGINT to the parent is passed on to every worker, which shut down gracefully;
  what is still running after ``shutdown_grace`` + 10 s is killed.
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass

from bot.settings import Settings

__all__ = ["default_workers", "supervise"]

log = logging.getLogger("signoff.workers")

RESTART_DELAY, MAX_RESTART_DELAY, HEALTHY_AFTER = 1.0, 30.0, 10.0


def default_workers(settings: Settings) -> int:
    """1: several workers are opt-in (``--workers``, ``SIGNOFF_WORKERS``).

    Measured (``bench/workers.py``, ``bench/slack.py``, ``bench/engine.py``;
    docs/deploy.md): on SQLite 2 workers took 21-49% more API writes than 1 on 2 CPUs and
    acked bursts of 200 clicks sooner (ack p99 median 86 against 105 ms), but resumed 15%
    fewer runs a second; on PostgreSQL on the same 2 CPUs, 12% fewer writes. Still 1 by
    default: with several workers the ``signoff serve`` pid is a supervisor, which changes
    what process managers and scripts that signal or measure that pid see.
    """
    del settings
    return 1


@dataclass
class _Worker:
    index: int
    proc: subprocess.Popen[bytes] | None = None
    started: float = 0.0
    delay: float = RESTART_DELAY
    due: float = 0.0  # when to (re)start it


def _reserve_port(host: str, port: int) -> tuple[socket.socket | None, int]:
    """With port 0, pick one now (held by a bound, not listening, SO_REUSEPORT socket)."""
    if port:
        return None, port
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    holder = socket.socket(family, socket.SOCK_STREAM)
    holder.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    holder.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    holder.bind((host, 0))
    return holder, int(holder.getsockname()[1])


def supervise(settings: Settings, workers: int) -> int:
    """Run ``workers`` worker processes until SIGTERM/SIGINT; return the exit status."""
    holder, port = _reserve_port(settings.host, settings.port)
    stopping = False

    def stop(signum: int, frame: object) -> None:
        nonlocal stopping
        stopping = True

    previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGTERM, signal.SIGINT)}
    pool = [_Worker(i) for i in range(workers)]
    log.info("starting %d workers on port %d", workers, port)
    try:
        while not stopping:
            now = time.monotonic()
            for worker in pool:
                if worker.proc is not None and worker.proc.poll() is not None:
                    code = worker.proc.returncode
                    young = now - worker.started < HEALTHY_AFTER
                    worker.delay = (
                        min(MAX_RESTART_DELAY, worker.delay * 2) if young else RESTART_DELAY
                    )
                    worker.due = now + worker.delay
                    log.warning("worker %d (pid %d) exited with %s; restarting in %.0fs",
                                worker.index, worker.proc.pid, code, worker.delay)  # fmt: skip
                    worker.proc = None
                if worker.proc is None and now >= worker.due:
                    worker.proc = _spawn(worker.index, workers, port)
                    worker.started = now
                    log.info("worker %d started (pid %d)", worker.index, worker.proc.pid)
            time.sleep(0.1)
        log.info("stopping %d workers", workers)
        return _stop_all(pool, settings.shutdown_grace + 10)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        if holder is not None:
            holder.close()


def _spawn(index: int, workers: int, port: int) -> subprocess.Popen[bytes]:
    env = dict(os.environ)
    env.update(
        SIGNOFF_WORKER_INDEX=str(index), SIGNOFF_WORKERS=str(workers), SIGNOFF_PORT=str(port)
    )
    return subprocess.Popen(
        [sys.executable, "-m", "bot.cli", "serve"], env=env, preexec_fn=_die_with_parent
    )


def _die_with_parent() -> None:
    """In the worker, before exec: SIGTERM when the parent dies (even by SIGKILL), so no
    worker is left serving the port without a supervisor (Linux; elsewhere a no-op)."""
    with contextlib.suppress(Exception):
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def _stop_all(pool: list[_Worker], grace: float) -> int:
    running = [w.proc for w in pool if w.proc is not None and w.proc.poll() is None]
    for proc in running:
        proc.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + grace
    for proc in running:
        try:
            proc.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            log.error("worker pid %d did not stop in time: killed", proc.pid)
            proc.kill()
            proc.wait()
    log.info("all workers stopped")
    return 0
