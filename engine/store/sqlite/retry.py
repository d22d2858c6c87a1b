"""SQLite operations behind ``Engine.retry`` and the per-workflow run counts.

Kept apart from the store's hot paths; each function runs whole on the connection's
thread inside one operation (see ``batching``).
"""

from __future__ import annotations

import sqlite3

from engine.errors import RunNotFound, RunNotRetryable
from engine.store.base import EventWrite, RunState
from engine.store.retrying import refusal
from engine.store.sqlite import ops
from engine.store.sqlite.write import append


def retry_run(
    conn: sqlite3.Connection,
    run_id: str,
    owner: str,
    lease_until: float,
    now: float,
    events: list[EventWrite],
) -> RunState:
    """Send a failed run back to running (see ``Store.retry_run``)."""
    row = ops.run_row(conn, run_id)
    if row is None:
        raise RunNotFound(run_id)
    cancelled = conn.execute(
        "SELECT COUNT(*) FROM interrupts WHERE run_id=? AND status='cancelled'", (run_id,)
    ).fetchone()[0]
    reason = refusal(row[3], int(cancelled))
    if reason is not None:
        raise RunNotRetryable(run_id, row[3], reason)
    conn.execute(
        "UPDATE runs SET status='running', output_json=NULL, error_json=NULL, owner=?, "
        "lease_until=?, updated_at=?, wake_seq=wake_seq+1 WHERE id=? AND status='failed'",
        (owner, lease_until, now, run_id),
    )
    conn.execute("DELETE FROM steps WHERE run_id=? AND status='failed'", (run_id,))
    append(conn, run_id, now, events, [])
    state = ops.load_state(conn, run_id)
    assert state is not None  # read above, in the same transaction
    return state


def count_by_workflow(conn: sqlite3.Connection) -> dict[str, dict[str, int]]:
    """Runs per workflow and status (covered by the ``runs_by_workflow_status_newest`` index)."""
    found: dict[str, dict[str, int]] = {}
    for workflow, status, n in conn.execute(
        "SELECT workflow, status, COUNT(*) FROM runs GROUP BY workflow, status"
    ):
        found.setdefault(workflow, {})[status] = int(n)
    return found
