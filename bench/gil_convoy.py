"""Why the SQLite store's two threads add up to one core: the GIL convoy, measured.

The SQLite store commits on aiosqlite's connection thread, and Python's ``sqlite3``
releases the GIL around every ``sqlite3_step``, so SQLite's own work could run beside
the event loop on a second core. It does not, because of how CPython hands the GIL
back: after each statement the connection's thread must take the GIL again, and while
the event loop's thread runs Python it keeps the GIL until the switch interval
(``sys.getswitchinterval()``, 5 ms) forces it to drop it. A batch of statements on the
connection's thread then advances one statement per switch, so it finishes only when
the loop runs out of work: the threads take turns instead of overlapping.

This measures one write transaction of ``--rows`` inserts (a table with one index, as
the store's history table) on a second thread, alone and while the main thread runs
pure Python for ``--busy-ms``, for three switch intervals; and the same rows as one
statement (``INSERT ... SELECT ... FROM json_each(?)``), which needs the GIL twice
instead of ``2 x rows`` times. Prints one JSON line per case. Usage::

    .venv/bin/python bench/gil_convoy.py [--rows 200] [--busy-ms 100]
"""

from __future__ import annotations

import argparse
import json
import os
import sqlite3
import sys
import tempfile
import threading
import time
from collections.abc import Callable

Write = Callable[[sqlite3.Connection, list[tuple[str, str]]], None]


def per_row(conn: sqlite3.Connection, rows: list[tuple[str, str]]) -> None:
    """One statement per row (``executemany``), as the store's operations write."""
    conn.executemany("INSERT INTO events (run_id, data) VALUES (?, ?)", rows)


def one_statement(conn: sqlite3.Connection, rows: list[tuple[str, str]]) -> None:
    """Every row in one statement: the GIL is taken back once, not once per row."""
    conn.execute(
        "INSERT INTO events (run_id, data) SELECT value ->> 0, value ->> 1 FROM json_each(?)",
        (json.dumps(rows),),
    )


def transaction(conn: sqlite3.Connection, write: Write, rows: list[tuple[str, str]]) -> float:
    """Seconds to write ``rows`` in one committed transaction."""
    started = time.perf_counter()
    conn.execute("BEGIN IMMEDIATE")
    write(conn, rows)
    conn.execute("COMMIT")
    return time.perf_counter() - started


def busy(ms: float) -> None:
    """Run Python (holding the GIL as an event loop's callbacks do) for ``ms``."""
    end = time.perf_counter() + ms / 1000
    while time.perf_counter() < end:
        sum(range(100))


def beside_busy_loop(
    conn: sqlite3.Connection, write: Write, rows: list[tuple[str, str]], busy_ms: float
) -> float:
    """Seconds the transaction takes on a second thread while this one runs Python."""
    took: list[float] = []
    thread = threading.Thread(target=lambda: took.append(transaction(conn, write, rows)))
    thread.start()
    busy(busy_ms)
    thread.join()
    return took[0]


def main(rows_per_batch: int, busy_ms: float, repeats: int) -> None:
    """Print the median of ``repeats`` transactions for each case."""
    path = os.path.join(tempfile.mkdtemp(prefix="signoff-convoy-"), "convoy.db")
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    conn.execute("CREATE TABLE events (id INTEGER PRIMARY KEY, run_id TEXT, data TEXT)")
    conn.execute("CREATE INDEX events_by_run ON events (run_id, id)")
    default = sys.getswitchinterval()
    writes: dict[str, Write] = {"statement_per_row": per_row, "one_statement": one_statement}
    for name, write in writes.items():
        for interval in (default, 0.001, 0.0002):
            sys.setswitchinterval(interval)
            alone, beside = [], []
            for _ in range(repeats):
                rows = [(os.urandom(16).hex(), "x" * 100) for _ in range(rows_per_batch)]
                alone.append(transaction(conn, write, rows))
                beside.append(beside_busy_loop(conn, write, rows, busy_ms))
            line = {
                "write": name,
                "rows": rows_per_batch,
                "switch_interval_ms": interval * 1000,
                "alone_ms": round(sorted(alone)[repeats // 2] * 1000, 2),
                "beside_busy_loop_ms": round(sorted(beside)[repeats // 2] * 1000, 2),
                "busy_ms": busy_ms,
            }
            print(json.dumps(line), flush=True)
    sys.setswitchinterval(default)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--rows", type=int, default=200)
    parser.add_argument("--busy-ms", type=float, default=100.0)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    main(args.rows, args.busy_ms, args.repeats)
