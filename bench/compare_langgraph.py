"""Signoff's engine next to LangGraph 1.2 + AsyncSqliteSaver, same workload, same machine.

The workload of ``bench/engine.py``: input ``{request_id, amount}``; a first node doubles
the amount; a second node waits for a person with ``interrupt()`` and records the answer
``{approved, comment}``. Phases: start N threads concurrently until each one is
interrupted (``start_per_s``), RSS growth per interrupted thread, resume each one
concurrently with ``Command(resume=...)`` and check every final state
(``resume_per_s``, ``outputs_correct``), then resume-to-complete latency over 200 threads
resumed one at a time.

LangGraph runs with ``AsyncSqliteSaver`` on a fresh SQLite file, WAL (its own setup) and
``synchronous=NORMAL`` (Signoff's default, so both survive a killed process and neither
survives power loss), and LangGraph's default ``durability``.

LangGraph is a benchmark-only dependency, kept out of Signoff's environment: install it
in a separate virtualenv and point ``--langgraph-python`` at it::

    python3 -m venv /tmp/lg
    /tmp/lg/bin/pip install 'langgraph==1.2.*' langgraph-checkpoint-sqlite aiosqlite psutil
    .venv/bin/python bench/compare_langgraph.py --langgraph-python /tmp/lg/bin/python

The two benchmarks run one after the other, each in a fresh process (Signoff's with
``bench/engine.py``), alternating ``--rounds`` times. Output: every JSON line as it
comes, then one line with the medians of each side and their ratios (Signoff /
LangGraph for throughput, LangGraph / Signoff for latency and memory).
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from typing import Any

HERE = os.path.dirname(os.path.abspath(__file__))


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


async def langgraph_main(runs: int, latency_runs: int) -> dict[str, Any]:  # pragma: no cover
    """The LangGraph side (runs in the LangGraph virtualenv)."""
    from typing import TypedDict

    import aiosqlite
    import psutil
    from langgraph.checkpoint.sqlite.aio import AsyncSqliteSaver
    from langgraph.graph import END, START, StateGraph
    from langgraph.types import Command, interrupt

    class State(TypedDict, total=False):
        request_id: str
        amount: int
        approved: bool
        comment: str

    def step_a(state: State) -> State:
        return {"amount": state["amount"] * 2}

    def approval(state: State) -> State:
        decision = interrupt({"request_id": state["request_id"], "amount": state["amount"]})
        return {"approved": bool(decision["approved"]), "comment": str(decision["comment"])}

    builder = StateGraph(State)
    builder.add_node("step_a", step_a)
    builder.add_node("approval", approval)
    builder.add_edge(START, "step_a")
    builder.add_edge("step_a", "approval")
    builder.add_edge("approval", END)

    path = os.path.join(tempfile.mkdtemp(prefix="lg-bench-"), "lg.db")
    proc = psutil.Process()
    async with aiosqlite.connect(path) as conn:
        saver = AsyncSqliteSaver(conn)
        await saver.setup()
        await conn.execute("PRAGMA synchronous=NORMAL")
        graph = builder.compile(checkpointer=saver)

        def cfg(tid: str) -> Any:
            return {"configurable": {"thread_id": tid}}

        async def start(tid: str, amount: int) -> None:
            out = await graph.ainvoke({"request_id": tid, "amount": amount}, cfg(tid))
            if "__interrupt__" not in out:
                raise RuntimeError(f"thread {tid} was not interrupted: {out}")

        async def resume(tid: str, approved: bool) -> dict[str, Any]:
            cmd = Command(resume={"approved": approved, "comment": tid})
            return dict(await graph.ainvoke(cmd, cfg(tid)))

        # Warm up code paths and caches.
        await start("warm", 1)
        await resume("warm", True)
        gc.collect()
        rss_before = proc.memory_info().rss

        ids = [f"r{i}" for i in range(runs)]
        t0 = time.perf_counter()
        await asyncio.gather(*(start(tid, i) for i, tid in enumerate(ids)))
        start_s = time.perf_counter() - t0
        await asyncio.sleep(0.2)
        gc.collect()
        rss_after = proc.memory_info().rss

        t0 = time.perf_counter()
        finals = await asyncio.gather(*(resume(tid, True) for tid in ids))
        resume_s = time.perf_counter() - t0
        correct = sum(
            1
            for k, (tid, out) in enumerate(zip(ids, finals, strict=True))
            if out.get("request_id") == tid
            and out.get("amount") == 2 * k
            and out.get("approved") is True
            and out.get("comment") == tid
            and "__interrupt__" not in out
        )

        lat_ids = [f"l{i}" for i in range(latency_runs)]
        for i, tid in enumerate(lat_ids):
            await start(tid, i)
        latencies = []
        for tid in lat_ids:
            t = time.perf_counter()
            out = await resume(tid, False)
            latencies.append((time.perf_counter() - t) * 1000)
            if out.get("approved") is not False:
                raise RuntimeError(f"thread {tid} ended with {out}")

    import importlib.metadata as md

    return {
        "system": "langgraph",
        "runs": runs,
        "start_per_s": round(runs / start_s, 1),
        "rss_bytes_per_suspended_run": round((rss_after - rss_before) / runs, 1),
        "resume_per_s": round(runs / resume_s, 1),
        "outputs_correct": correct == runs,
        "resume_latency_p50_ms": round(statistics.median(latencies), 3),
        "resume_latency_p99_ms": round(pct(latencies, 0.99), 3),
        "backend": "sqlite",
        "synchronous": "normal",
        "langgraph": md.version("langgraph"),
        "langgraph_checkpoint_sqlite": md.version("langgraph-checkpoint-sqlite"),
        # LangGraph's speed here moved 1.6x between two days with the same two versions
        # above: name the rest of what its checkpoints go through.
        "langgraph_checkpoint": md.version("langgraph-checkpoint"),
        "langchain_core": md.version("langchain-core"),
        "aiosqlite": md.version("aiosqlite"),
        "sqlite": sqlite3.sqlite_version,
        "python": sys.version.split()[0],
    }


def run_json(cmd: list[str]) -> dict[str, Any]:
    """Run a benchmark process; its last stdout line is its JSON result."""
    done = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{done.stderr[-3000:]}")
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def compare(args: argparse.Namespace) -> None:
    """Alternate Signoff and LangGraph rounds; print each result, then medians and ratios."""
    signoff_cmd = [
        args.signoff_python,
        os.path.join(HERE, "engine.py"),
        "--runs",
        str(args.runs),
        "--latency-runs",
        str(args.latency_runs),
    ]
    lg_cmd = [
        args.langgraph_python,
        os.path.abspath(__file__),
        "--langgraph-only",
        "--runs",
        str(args.runs),
        "--latency-runs",
        str(args.latency_runs),
    ]
    results: dict[str, list[dict[str, Any]]] = {"signoff": [], "langgraph": []}
    for _ in range(args.rounds):
        for name, cmd in (("signoff", signoff_cmd), ("langgraph", lg_cmd)):
            r = run_json(cmd)
            r.setdefault("system", name)
            results[name].append(r)
            print(json.dumps(r), flush=True)
    keys = (
        "start_per_s",
        "resume_per_s",
        "resume_latency_p50_ms",
        "resume_latency_p99_ms",
        "rss_bytes_per_suspended_run",
    )
    med = {
        name: {k: statistics.median(r[k] for r in rs) for k in keys} for name, rs in results.items()
    }
    s, lg = med["signoff"], med["langgraph"]

    def ratio(a: float, b: float) -> float | None:
        return round(a / b, 1) if b else None

    print(
        json.dumps(
            {
                "rounds": args.rounds,
                "runs": args.runs,
                "signoff_median": s,
                "langgraph_median": lg,
                "start_ratio": ratio(s["start_per_s"], lg["start_per_s"]),
                "resume_ratio": ratio(s["resume_per_s"], lg["resume_per_s"]),
                "p50_ratio": ratio(lg["resume_latency_p50_ms"], s["resume_latency_p50_ms"]),
                "p99_ratio": ratio(lg["resume_latency_p99_ms"], s["resume_latency_p99_ms"]),
                "rss_ratio": ratio(
                    lg["rss_bytes_per_suspended_run"], s["rss_bytes_per_suspended_run"]
                ),
                "outputs_correct": all(r["outputs_correct"] for rs in results.values() for r in rs),
                "cpus": os.cpu_count(),
            }
        )
    )


def cli() -> None:
    """Parse arguments; compare, or (in the LangGraph virtualenv) run LangGraph's side."""
    parser = argparse.ArgumentParser(description="Signoff vs LangGraph on one workload")
    parser.add_argument("--runs", type=int, default=2000)
    parser.add_argument("--latency-runs", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=3, help="alternated rounds (medians)")
    parser.add_argument("--signoff-python", default=sys.executable)
    parser.add_argument("--langgraph-python", default="/tmp/lg/bin/python")
    parser.add_argument("--langgraph-only", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.langgraph_only:
        # Running as a script puts bench/ first on sys.path, where bench/requests.py would
        # shadow the `requests` library LangGraph's dependencies import.
        if sys.path and os.path.abspath(sys.path[0]) == HERE:
            sys.path.pop(0)
        print(json.dumps(asyncio.run(langgraph_main(args.runs, args.latency_runs))))
    else:
        compare(args)


if __name__ == "__main__":
    cli()
