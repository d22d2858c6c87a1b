"""Engine benchmark: start, park, resume and finish N approval runs on one database.

Workload (the same one peers were measured with on this machine): input
``{request_id: str, amount: int}``; step A returns ``amount * 2``; the run suspends for
``{approved: bool, comment: str}``; step B records the decision and completes.

Phases: (1) start N runs concurrently until all are suspended -> ``start_per_s``;
(2) RSS growth per suspended run -> ``rss_bytes_per_suspended_run``; (3) resume all N
concurrently until all completed, then verify every output -> ``resume_per_s``;
(4) p50/p99 resume-to-complete latency over 200 sequential resumes. Phases 1 and 3 also
report the process's CPU time (all threads) per run -> ``cpu_us_per_start``,
``cpu_us_per_resume``, and the event loop's thread's part of it -> ``loop_cpu_us_per_start``,
``loop_cpu_us_per_resume``.

Prints one JSON line. Usage: ``python bench/engine.py [--runs N] [--db PATH|URL]``:
a SQLite file (default: a fresh temporary one) or an empty PostgreSQL database, e.g.
``--db 'postgresql://user@host/db?search_path=bench'`` (a fresh schema is enough).

``--workers 1,2,4``: phases 1 and 3 with that many worker processes on one database
(SQLite file or PostgreSQL), one JSON line per count; see bench/engine_fleet.py.
"""

from __future__ import annotations

import os
import sys

# This file is named like the package it measures; running it as a script puts bench/
# first on sys.path, which would make `import engine` import this file again.
if sys.path and os.path.abspath(sys.path[0]) == os.path.dirname(os.path.abspath(__file__)):
    sys.path.pop(0)

import argparse
import asyncio
import gc
import json
import statistics
import tempfile
import time

import psutil
from pydantic import BaseModel

from engine import Engine, RunStatus, StepContext, Workflow, open_store, step


class BenchInput(BaseModel):
    request_id: str
    amount: int


class Doubled(BaseModel):
    request_id: str
    amount: int


class Decision(BaseModel):
    approved: bool
    comment: str


class BenchOutput(BaseModel):
    request_id: str
    amount: int
    approved: bool
    comment: str


@step
async def step_a(inp: BenchInput) -> Doubled:
    return Doubled(request_id=inp.request_id, amount=inp.amount * 2)


@step(resume_to="output")
async def approval(d: Doubled, ctx: StepContext[Doubled, Decision]) -> Decision:
    return await ctx.suspend(d)


@step
async def step_b(decision: Decision, ctx: StepContext) -> BenchOutput:
    doubled = Doubled.model_validate(ctx.output_of("step_a"))
    return BenchOutput(
        request_id=doubled.request_id,
        amount=doubled.amount,
        approved=decision.approved,
        comment=decision.comment,
    )


workflow = (
    Workflow("bench", version=1, input=BenchInput, output=BenchOutput)
    .then(step_a)
    .then(approval)
    .then(step_b)
)


async def wait_count(engine: Engine, status: RunStatus, n: int, timeout: float = 600) -> None:
    """Poll the store (cheap COUNT) until ``n`` runs have ``status``."""
    deadline = time.monotonic() + timeout
    while True:
        counts = await engine.store.count_runs()
        if counts.get(status.value, 0) >= n:
            return
        if time.monotonic() > deadline:
            raise TimeoutError(f"only {counts} after {timeout}s")
        await asyncio.sleep(0.005)


def cpu_seconds(proc: psutil.Process) -> float:
    """User plus system CPU time of all of the process's threads so far."""
    t = proc.cpu_times()
    return t.user + t.system


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


async def hold(engine: Engine, count: int, wave: int = 1000) -> float:
    """RSS growth (bytes) from parking ``count`` more runs, started ``wave`` at a time.

    Runs accumulate like this in a real service; starting them all at once would measure
    the allocator's high-water mark of that burst instead of what parked runs hold.
    """
    proc = psutil.Process()
    gc.collect()
    before = proc.memory_info().rss
    base = (await engine.store.count_runs()).get(RunStatus.SUSPENDED.value, 0)
    for lo in range(0, count, wave):
        n = min(wave, count - lo)
        await asyncio.gather(
            *(engine.start("bench", {"request_id": f"h{lo + i}", "amount": i}) for i in range(n))
        )
        await wait_count(engine, RunStatus.SUSPENDED, base + lo + n)
    gc.collect()
    return float(proc.memory_info().rss - before)


async def hold_only(db: str, hold_runs: int) -> dict[str, object]:
    """Only park ``hold_runs`` runs (a wave at a time) in a fresh engine; report RSS growth."""
    async with Engine(open_store(db), workflows=[workflow], poll_interval=0.5) as engine:
        warm = await engine.start("bench", {"request_id": "warm", "amount": 1})
        await engine.wait(warm)
        held = await hold(engine, hold_runs)
    return {
        "hold_runs": hold_runs,
        "hold_rss_growth_mb": round(held / 2**20, 1),
        "hold_rss_bytes_per_suspended_run": round(held / hold_runs, 1),
        "python": sys.version.split()[0],
    }


async def main(runs: int, db: str, latency_runs: int, hold_runs: int = 0) -> dict[str, object]:
    proc = psutil.Process()
    engine = Engine(open_store(db), workflows=[workflow], poll_interval=0.5)
    async with engine:
        if await engine.store.count_runs():  # the phases count runs by status
            raise SystemExit(f"{db} is not empty: give the benchmark a fresh database")
        # Warm up code paths and caches so phase 2 measures per-run growth only.
        warm = await engine.start("bench", {"request_id": "warm", "amount": 1})
        await engine.wait(warm)
        (w,) = await engine.list_interrupts(run_id=warm)
        await engine.resume(warm, w.id, {"approved": True, "comment": ""}, actor="bench")
        await engine.wait(warm, until={RunStatus.COMPLETED})
        gc.collect()
        rss_before = proc.memory_info().rss

        # Phase 1: start N concurrently until all are suspended (in two halves, so that
        # phase 2 can tell fixed growth, such as SQLite's bounded page cache, from growth
        # per run).
        half = runs // 2
        ids: list[str] = []
        start_s = 0.0
        start_cpu = 0.0
        start_loop_cpu = 0.0
        rss_mid = rss_before
        for lo, hi in ((0, half), (half, runs)):
            t0, c0, l0 = time.perf_counter(), cpu_seconds(proc), time.thread_time()
            ids += await asyncio.gather(
                *(
                    engine.start("bench", {"request_id": f"r{i}", "amount": i})
                    for i in range(lo, hi)
                )
            )
            await wait_count(engine, RunStatus.SUSPENDED, hi)
            start_s += time.perf_counter() - t0
            start_cpu += cpu_seconds(proc) - c0
            start_loop_cpu += time.thread_time() - l0
            if lo == 0:
                gc.collect()
                rss_mid = proc.memory_info().rss

        # Phase 2: memory held per suspended run.
        await asyncio.sleep(0.2)
        gc.collect()
        rss_after = proc.memory_info().rss

        # Phase 3: resume all concurrently until all completed.
        pending = await engine.list_interrupts(limit=runs + 10)
        by_run = {i.run_id: i.id for i in pending}
        t0, c0, l0 = time.perf_counter(), cpu_seconds(proc), time.thread_time()
        await asyncio.gather(
            *(
                engine.resume(rid, by_run[rid], {"approved": True, "comment": rid}, actor="u")
                for rid in ids
            )
        )
        await wait_count(engine, RunStatus.COMPLETED, runs + 1)
        resume_s = time.perf_counter() - t0
        resume_cpu = cpu_seconds(proc) - c0
        resume_loop_cpu = time.thread_time() - l0
        correct = 0
        for k, rid in enumerate(ids):
            run = (await engine.get_run(rid)).run
            out = run.output or {}
            if (
                run.status is RunStatus.COMPLETED
                and out.get("amount") == 2 * k
                and out.get("request_id") == f"r{k}"
                and out.get("approved") is True
                and out.get("comment") == rid
            ):
                correct += 1

        # Phase 4: resume-to-complete latency, one at a time.
        lat_ids = [
            await engine.start("bench", {"request_id": f"l{i}", "amount": i})
            for i in range(latency_runs)
        ]
        await wait_count(engine, RunStatus.SUSPENDED, latency_runs)
        lat_pending = {
            i.run_id: i.id for i in await engine.list_interrupts(limit=latency_runs + 10)
        }
        latencies = []
        for rid in lat_ids:
            t = time.perf_counter()
            await engine.resume(
                rid, lat_pending[rid], {"approved": False, "comment": ""}, actor="u"
            )
            await engine.wait(rid, until={RunStatus.COMPLETED}, timeout=30)
            latencies.append((time.perf_counter() - t) * 1000)

        # Phase 5 (optional): what many parked runs hold, parked a wave at a time.
        held = await hold(engine, hold_runs) if hold_runs else None

    extra: dict[str, object] = {}
    if held is not None:
        extra = {
            "hold_runs": hold_runs,
            "hold_rss_growth_mb": round(held / 2**20, 1),
            "hold_rss_bytes_per_suspended_run": round(held / hold_runs, 1),
        }
    return {
        "runs": runs,
        "start_per_s": round(runs / start_s, 1),
        "rss_bytes_per_suspended_run": round((rss_after - rss_before) / runs, 1),
        "rss_bytes_per_additional_run": round((rss_after - rss_mid) / (runs - half), 1),
        "rss_growth_mb": round((rss_after - rss_before) / 2**20, 1),
        "resume_per_s": round(runs / resume_s, 1),
        # CPU of every thread of the process (the loop's and SQLite's connection
        # threads) per run in phases 1 and 3: steadier than rates on a busy machine.
        "cpu_us_per_start": round(start_cpu / runs * 1e6, 1),
        "cpu_us_per_resume": round(resume_cpu / runs * 1e6, 1),
        # The event loop's thread's part of those (the rest: SQLite's connection
        # threads). With SQLite, wall time per run is about their sum, not the larger
        # part: the threads take turns on the GIL (bench/gil_convoy.py).
        "loop_cpu_us_per_start": round(start_loop_cpu / runs * 1e6, 1),
        "loop_cpu_us_per_resume": round(resume_loop_cpu / runs * 1e6, 1),
        "outputs_correct": correct == runs,
        "resume_latency_p50_ms": round(statistics.median(latencies), 3),
        "resume_latency_p99_ms": round(pct(latencies, 0.99), 3),
        "backend": "postgresql" if db.startswith(("postgresql:", "postgres:")) else "sqlite",
        # The SQLite durability level actually in force (None for PostgreSQL).
        "synchronous": str(getattr(engine.store, "synchronous", "")).lower() or None,
        "python": sys.version.split()[0],
        **extra,
    }


def cli() -> None:
    """Parse arguments, run, print one JSON line (one per worker count with --workers)."""
    parser = argparse.ArgumentParser(description="Signoff engine benchmark")
    parser.add_argument("--runs", type=int, default=2000)
    parser.add_argument("--latency-runs", type=int, default=200)
    parser.add_argument(
        "--hold-runs",
        type=int,
        default=0,
        help="afterwards, park this many more runs (1,000 at a time) and report RSS growth",
    )
    parser.add_argument(
        "--hold-only",
        action="store_true",
        help="skip the phases; in a fresh process park --hold-runs (default 100,000) runs",
    )
    parser.add_argument(
        "--db",
        default=None,
        help="SQLite file or empty postgresql:// database (default: a fresh SQLite temp file)",
    )
    parser.add_argument(
        "--workers",
        default=None,
        help="comma-separated process counts, e.g. 1,2,4: several instances on one database",
    )
    parser.add_argument("--worker-index", type=int, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.workers or args.worker_index is not None:
        # bench/ goes last on the path: `engine` is already the package, not this file.
        sys.path.append(os.path.dirname(os.path.abspath(__file__)))
        import engine_fleet

        if args.worker_index is not None:  # one of the processes --workers starts
            asyncio.run(engine_fleet.worker(args.db, args.worker_index, workflow))
        else:
            counts = [int(n) for n in args.workers.split(",")]
            script = os.path.abspath(__file__)
            asyncio.run(engine_fleet.fleet_main(script, args.db, workflow, counts, args.runs))
        return
    db = args.db or os.path.join(tempfile.mkdtemp(prefix="signoff-bench-"), "bench.db")
    if args.hold_only:
        result = asyncio.run(hold_only(db, args.hold_runs or 100_000))
    else:
        result = asyncio.run(main(args.runs, db, args.latency_runs, args.hold_runs))
    print(json.dumps(result))


if __name__ == "__main__":
    cli()
