"""``bench/engine.py --workers 1,2,4``: the engine benchmark's phases 1 and 3 with several
worker processes on one database, as instances behind a load balancer would run them.

For each worker count, on a fresh database (a new SQLite file, or a new schema inside
the given PostgreSQL database, dropped afterwards):

* N processes each open an engine on the database and warm up (one run end to end);
* start: each starts its share of the runs at once; timed from "go" until the database
  counts every run suspended -> ``start_per_s``;
* resume: the pending interrupts, in creation order, are dealt round-robin to the
  workers, so most land on a worker other than the one that started the run (the
  resume takes the parked run over, as when a load balancer picks any instance); timed
  until every run is completed -> ``resume_per_s``; then every output is checked.

The parent process only hands out work (one JSON command per line on each worker's
stdin, acknowledged on its stdout) and counts runs by status every 5 ms, as the
single-process benchmark does. It prints one JSON line per count, with the throughput
relative to the first count in the list (``*_scaling``).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import sys
import tempfile
import time
import uuid
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlparse, urlunparse

from engine import Engine, RunStatus, Store, Workflow, open_store

Command = dict[str, object]


def is_postgres(db: str) -> bool:
    """Whether ``db`` is a PostgreSQL URL."""
    return db.startswith(("postgresql:", "postgres:"))


async def worker(db: str, index: int, workflow: Workflow) -> None:
    """One worker process: open an engine, then obey the parent's commands on stdin.

    ``{"cmd": "start", "n": N}`` starts N runs; ``{"cmd": "resume", "pairs": [[run_id,
    interrupt_id], ...]}`` approves interrupts (with the run id as comment); anything
    else exits. Each command is acknowledged with ``done`` once its calls returned
    (the runs go on in the background; the parent counts them in the database).
    """
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader(limit=2**26)  # a resume command lists every pair
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    async with Engine(open_store(db), workflows=[workflow], poll_interval=0.5) as engine:
        warm = await engine.start(workflow, {"request_id": f"warm{index}", "amount": 1})
        await engine.wait(warm)
        (w,) = await engine.list_interrupts(run_id=warm)
        await engine.resume(warm, w.id, {"approved": True, "comment": ""}, actor="bench")
        await engine.wait(warm, until={RunStatus.COMPLETED})
        print("ready", flush=True)
        while line := await reader.readline():
            command = json.loads(line)
            if command["cmd"] == "start":
                inputs = ({"request_id": f"w{index}r{k}", "amount": k} for k in range(command["n"]))
                await asyncio.gather(*(engine.start(workflow, i) for i in inputs))
            elif command["cmd"] == "resume":
                answers = (
                    engine.resume(rid, iid, {"approved": True, "comment": rid}, actor="u")
                    for rid, iid in command["pairs"]
                )
                await asyncio.gather(*answers)
            else:
                break
            print("done", flush=True)


class Fleet:
    """The parent's handle on N worker processes (``script --worker-index i``)."""

    def __init__(self, procs: list[asyncio.subprocess.Process]) -> None:
        self.procs = procs

    @classmethod
    async def spawn(cls, script: str, db: str, n: int) -> Fleet:
        """Start ``n`` workers on ``db`` and wait until each has warmed up."""
        procs = [
            await asyncio.create_subprocess_exec(
                sys.executable,
                script,
                "--db",
                db,
                "--worker-index",
                str(i),
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
            )  # fmt: skip
            for i in range(n)
        ]
        fleet = cls(procs)
        await fleet.replies("ready")
        return fleet

    async def send(self, commands: list[Command]) -> None:
        """Send one command to each worker."""
        for proc, command in zip(self.procs, commands, strict=True):
            assert proc.stdin is not None
            proc.stdin.write(json.dumps(command).encode() + b"\n")
            await proc.stdin.drain()

    async def replies(self, expected: str) -> None:
        """Wait for every worker's acknowledgement."""
        for proc in self.procs:
            assert proc.stdout is not None
            line = (await proc.stdout.readline()).decode().strip()
            if line != expected:
                raise RuntimeError(f"a worker answered {line!r} instead of {expected!r}")

    async def close(self) -> None:
        """Tell every worker to exit and wait for it (killed if it does not)."""
        for proc in self.procs:
            if proc.stdin is not None and not proc.stdin.is_closing():
                with contextlib.suppress(OSError):  # a worker that died closed it
                    proc.stdin.write(b'{"cmd": "exit"}\n')
                    proc.stdin.close()
        for proc in self.procs:
            try:
                await asyncio.wait_for(proc.wait(), 30)
            except TimeoutError:
                proc.kill()
                await proc.wait()


def shares(total: int, n: int) -> list[int]:
    """``total`` split into ``n`` near-equal parts."""
    return [total // n + (1 if i < total % n else 0) for i in range(n)]


async def wait_count(store: Store, status: RunStatus, n: int, timeout: float = 600) -> None:
    """Poll the store (cheap COUNT) until ``n`` runs have ``status``."""
    deadline = time.monotonic() + timeout
    while (await store.count_runs()).get(status.value, 0) < n:
        if time.monotonic() > deadline:
            raise TimeoutError(f"fewer than {n} runs {status.value} after {timeout}s")
        await asyncio.sleep(0.005)


async def timed_phase(
    fleet: Fleet, store: Store, commands: list[Command], status: RunStatus, n: int
) -> float:
    """Seconds from sending ``commands`` until ``n`` runs have ``status`` in the database."""
    t0 = time.perf_counter()
    await fleet.send(commands)
    await fleet.replies("done")
    await wait_count(store, status, n)
    return time.perf_counter() - t0


async def fleet_round(
    script: str, db: str, workflow: Workflow, n_workers: int, runs: int
) -> dict[str, object]:
    """Both phases with ``n_workers`` processes on the fresh database ``db``."""
    # The parent only reads the database (a store, not an engine: it drives nothing).
    store = open_store(db)
    await store.open()
    try:
        fleet = await Fleet.spawn(script, db, n_workers)
        try:
            starts: list[Command] = [{"cmd": "start", "n": k} for k in shares(runs, n_workers)]
            start_s = await timed_phase(fleet, store, starts, RunStatus.SUSPENDED, runs)
            pending = await store.list_interrupts(
                status="pending", workflow=workflow.name, run_id=None, limit=runs + 10
            )
            pairs = [[i.run_id, i.id] for i in pending]
            resumes: list[Command] = [
                {"cmd": "resume", "pairs": pairs[k::n_workers]} for k in range(n_workers)
            ]
            done = runs + n_workers  # the workers' warm-up runs are completed too
            resume_s = await timed_phase(fleet, store, resumes, RunStatus.COMPLETED, done)
        finally:
            await fleet.close()
        finished = await store.list_runs(
            status=RunStatus.COMPLETED.value, workflow=None, limit=done + 10, offset=0
        )
    finally:
        await store.close()
    correct = sum(1 for run in finished if _correct(run.id, run.input, run.output))
    return {
        "workers": n_workers,
        "runs": runs,
        "start_per_s": round(runs / start_s, 1),
        "resume_per_s": round(runs / resume_s, 1),
        "outputs_correct": correct == runs,
    }


def _correct(run_id: str, given: Any, output: Any) -> bool:
    request_id = str(given["request_id"])
    if request_id.startswith("warm"):
        return False
    k = int(request_id.split("r", 1)[1])
    wanted = {"request_id": request_id, "amount": 2 * k, "approved": True, "comment": run_id}
    return bool(output == wanted)


async def fresh_db(db: str | None, n_workers: int) -> tuple[str, str | None, dict[str, str]]:
    """A fresh database for one round: its URL, the schema to drop afterwards, and its
    durability setting (to print with the figures)."""
    if db is None or not is_postgres(db):
        folder = os.path.dirname(db) if db else tempfile.mkdtemp(prefix="signoff-bench-")
        name = f"w{n_workers}-{os.path.basename(db) if db else 'bench.db'}"
        path = os.path.join(folder, name)
        if os.path.exists(path):
            raise SystemExit(f"{path} exists: give the benchmark a fresh file name")
        return path, None, {"synchronous": "normal"}
    import asyncpg  # only needed for PostgreSQL

    schema = f"signoff_bench_w{n_workers}_{uuid.uuid4().hex[:8]}"
    parsed = urlparse(db)
    conn = await asyncpg.connect(urlunparse(parsed._replace(query="")))
    try:
        await conn.execute(f"CREATE SCHEMA {schema}")
        durability = {
            name: str(await conn.fetchval(f"SHOW {name}"))
            for name in ("synchronous_commit", "fsync")
        }
    finally:
        await conn.close()
    query = [(k, v) for k, v in parse_qsl(parsed.query) if k != "search_path"]
    url = urlunparse(parsed._replace(query=urlencode([*query, ("search_path", schema)])))
    return url, schema, durability


async def drop_schema(db: str, schema: str) -> None:
    """Drop a round's PostgreSQL schema."""
    import asyncpg

    conn = await asyncpg.connect(urlunparse(urlparse(db)._replace(query="")))
    try:
        await conn.execute(f"DROP SCHEMA {schema} CASCADE")
    finally:
        await conn.close()


async def fleet_main(
    script: str, db: str | None, workflow: Workflow, counts: list[int], runs: int
) -> None:
    """One round per worker count; print one JSON line each, scaled to the first."""
    first: dict[str, object] | None = None
    for n in counts:
        url, schema, durability = await fresh_db(db, n)
        try:
            result = await fleet_round(script, url, workflow, n, runs)
        finally:
            if schema is not None and db is not None:
                await drop_schema(db, schema)
        first = first or result
        for key in ("start", "resume"):
            mine, base = result[f"{key}_per_s"], first[f"{key}_per_s"]
            assert isinstance(mine, float) and isinstance(base, float)
            result[f"{key}_scaling"] = round(mine / base, 2)
        result.update(
            baseline_workers=first["workers"],
            backend="postgresql" if is_postgres(url) else "sqlite",
            **durability,
            cpus=os.cpu_count(),
            python=sys.version.split()[0],
        )
        print(json.dumps(result), flush=True)
