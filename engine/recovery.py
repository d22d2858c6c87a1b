"""Worker liveness and recovery: heartbeats, spotting dead workers, taking over their runs.

Every worker heartbeats into the ``workers`` table and, with the same write, extends the
lease on the runs it drives. A run whose lease ran out, or whose owner is known to be
dead, is claimed by whichever worker's recovery pass gets to it first; the claim is one
conditional write in the store, so exactly one worker takes it over, and the old owner's
fenced writes fail from then on. A worker is known dead either because its heartbeat is
more than two leases old, or, for workers on this host and in this pid namespace, at
once because its pid is gone (see ``host_identity``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
from collections.abc import Callable

from engine.store.base import RunState, Store, WorkerRow

log = logging.getLogger("signoff.engine")

_CLAIM_BATCH = 200
"""Runs claimed per store call; a pass keeps claiming until a batch comes back short."""


def host_identity() -> str:
    """Where this process's pid means something: the host name, plus on Linux the boot id
    and the pid namespace.

    Workers with the same identity check each other's pids, to spot a dead one at once.
    The host name alone is not enough: containers sharing their host's name (host
    networking) each have a pid namespace of their own, and cloned machines may share a
    name, so a pid missing here may be alive there. Others wait for the lease instead.
    """
    parts = [socket.gethostname()]
    with contextlib.suppress(OSError):
        with open("/proc/sys/kernel/random/boot_id") as boot_id:
            parts.append(boot_id.read().strip())
    with contextlib.suppress(OSError):
        parts.append(os.readlink("/proc/self/ns/pid"))
    return "/".join(parts)


def pid_alive(pid: int) -> bool:
    """True if a process with this pid exists here (even one we may not signal)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class Recovery:
    """Heartbeats this worker and takes over runs that dead or stalled workers left behind.

    Args:
        store: the opened store.
        worker_id: this worker's identity (the owner written on the runs it drives).
        clock: wall-clock seconds (``time.time`` outside tests).
        lease: seconds a worker's ownership of a run lasts without a heartbeat.
        poll_interval: the engine's polling interval; heartbeats run at least this often
            times two, and at least three times per lease.
        spawn: starts driving a claimed run (the state is read by the driver).
    """

    def __init__(
        self,
        store: Store,
        worker_id: str,
        clock: Callable[[], float],
        *,
        lease: float,
        poll_interval: float,
        spawn: Callable[[str, RunState | None], None],
    ) -> None:
        self.store = store
        self.worker_id = worker_id
        self.clock = clock
        self.lease = lease
        self.poll_interval = poll_interval
        self.spawn = spawn
        self.dead: list[str] = []
        """Workers the last pass found dead; timer and outbox claims of theirs are free."""

    async def run(self) -> None:
        """Heartbeat and recover forever (cancel to stop); a failed pass is retried."""
        while True:
            await asyncio.sleep(min(self.lease / 3, self.poll_interval * 2))
            try:
                await self.recover_once()
            except Exception:
                log.exception("heartbeat/recovery pass failed; retrying")

    async def recover_once(self) -> None:
        """Heartbeat, spot dead workers, take over their runs and those with lapsed leases."""
        now = self.clock()
        host = host_identity()
        me = WorkerRow(self.worker_id, host, os.getpid(), now)
        workers = await self.store.heartbeat(me, now + self.lease)
        dead = [
            w.id
            for w in workers
            if w.id != self.worker_id
            and (w.heartbeat_at < now - 2 * self.lease or (w.host == host and not pid_alive(w.pid)))
        ]
        self.dead = dead
        while True:
            claimed = await self.store.claim_runs(
                self.worker_id, now, now + self.lease, dead, _CLAIM_BATCH
            )
            for run_id in claimed:
                log.info("recovering run %s", run_id)
                self.spawn(run_id, None)
            if len(claimed) < _CLAIM_BATCH:
                break
        if dead:
            # Releases their timer and outbox claims too, so those are redone at once.
            await self.store.remove_workers(dead)
