"""PostgreSQL operations behind ``Engine.retry`` and the per-workflow run counts.

Kept apart from the store's hot paths. ``retry_run`` runs in one transaction holding
the run's row lock, like ``cancel_run``.
"""

from __future__ import annotations

from engine.errors import RunNotFound, RunNotRetryable
from engine.store.base import EventWrite, RunState
from engine.store.postgres import ops
from engine.store.postgres.ops import Conn
from engine.store.retrying import refusal


async def retry_run(
    conn: Conn,
    run_id: str,
    owner: str,
    lease_until: float,
    now: float,
    events: list[EventWrite],
) -> RunState:
    """Send a failed run back to running (see ``Store.retry_run``)."""
    row = await ops.run_row(conn, run_id, lock=True)
    if row is None:
        raise RunNotFound(run_id)
    cancelled = await conn.fetchval(
        "SELECT COUNT(*) FROM interrupts WHERE run_id=$1 AND status='cancelled'", run_id
    )
    reason = refusal(row[3], int(cancelled or 0))
    if reason is not None:
        raise RunNotRetryable(run_id, row[3], reason)
    await conn.execute(
        "UPDATE runs SET status='running', output_json=NULL, error_json=NULL, owner=$1, "
        "lease_until=$2, updated_at=$3, wake_seq=wake_seq+1 WHERE id=$4",
        owner,
        lease_until,
        now,
        run_id,
    )
    await conn.execute("DELETE FROM steps WHERE run_id=$1 AND status='failed'", run_id)
    await ops.append(conn, run_id, now, events, [])
    state = await ops.load_state(conn, run_id)
    assert state is not None  # locked above
    return state


async def count_by_workflow(conn: Conn) -> dict[str, dict[str, int]]:
    """Runs per workflow and status (the ``runs_by_workflow_status_newest`` index)."""
    found: dict[str, dict[str, int]] = {}
    for workflow, status, n in await conn.fetch(
        "SELECT workflow, status, COUNT(*) FROM runs GROUP BY workflow, status"
    ):
        found.setdefault(workflow, {})[status] = int(n)
    return found
