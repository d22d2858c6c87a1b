"""The responder index of the SQLite store: who may answer which interrupt, indexed.

``interrupt_responders`` (migration 0004) holds one row per (interrupt, responder), with
``'*'`` for an interrupt open to anyone. ``write.write_steps`` writes the rows with the
interrupt (from the spec it has in hand); an insert trigger writes them for an interrupt
inserted without them (migration 0006: an older instance during a rolling upgrade), and
another marks them decided when the interrupt is resolved, so every path that resolves
an interrupt keeps the index right without knowing about it. Code that changes an
interrupt's responders later (escalation) calls ``index_responders`` in the same
transaction.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence

from engine.models import Interrupt
from engine.store.rows import ANYONE, by_creation, first_distinct, newest_first
from engine.store.sqlite.ops import interrupts


def index_responders(
    conn: sqlite3.Connection, run_id: str, interrupt_id: str, responders: Sequence[str]
) -> None:
    """Make the index list exactly ``responders`` for the interrupt (``'*'`` if empty).

    Run it inside the transaction that changes the interrupt's responders (escalation),
    after the interrupt row exists. The requester, kind, status and times are copied from
    the interrupt and its run.
    """
    conn.execute(
        "DELETE FROM interrupt_responders WHERE run_id=? AND interrupt_id=?",
        (run_id, interrupt_id),
    )
    conn.executemany(
        "INSERT OR IGNORE INTO interrupt_responders (run_id, interrupt_id, responder, kind, "
        "pending, requester, allow_requester, created_at, resolved_at) "
        "SELECT i.run_id, i.id, ?, i.kind, i.status = 'pending', r.requester, "
        "COALESCE(json_extract(i.spec_json, '$.allow_requester'), 0), i.created_at, "
        "i.resolved_at FROM interrupts i JOIN runs r ON r.id = i.run_id "
        "WHERE i.run_id=? AND i.id=?",
        [(who, run_id, interrupt_id) for who in (list(responders) or [ANYONE])],
    )


def _filters(actor: str | None, kind: str | None) -> tuple[str, list[str]]:
    """The conditions besides the responder: not ``actor``'s own request unless allowed,
    and ``kind``."""
    where, args = "", []
    if actor is not None:
        where += " AND NOT (requester IS ? AND allow_requester = 0)"
        args.append(actor)
    if kind is not None:
        where += " AND kind = ?"
        args.append(kind)
    return where, args


def answerable(
    conn: sqlite3.Connection,
    responders: Sequence[str],
    actor: str | None,
    kind: str | None,
    limit: int,
    newest: bool,
    counted: bool = True,
) -> tuple[list[Interrupt], int]:
    """Pending interrupts listing any of ``responders`` (include ``'*'`` for open ones),
    without ``actor``'s own requests unless allowed; a page and the total count (-1
    unless ``counted``)."""
    order = "DESC" if newest else "ASC"
    # The page: one range of the responders_pending index per responder, at most `limit`
    # rows each, merged (an interrupt naming the person and a group of theirs once), so
    # it costs the page, not everything open to them ('*' among it). The count reads all.
    extra, extra_args = _filters(actor, kind)
    page = (
        f"SELECT run_id, interrupt_id, created_at FROM interrupt_responders "
        f"WHERE pending = 1 AND responder = ?{extra} "
        f"ORDER BY created_at {order}, interrupt_id {order} LIMIT ?"
    )
    rows: list[tuple[str, str, float]] = []
    if limit != 0:
        for who in dict.fromkeys(responders):
            rows += conn.execute(page, (who, *extra_args, limit)).fetchall()
    keys = first_distinct(rows, limit, key=by_creation, reverse=newest)
    if not counted:
        return _load(conn, keys), -1
    marks = ",".join("?" for _ in responders)
    total = conn.execute(
        f"SELECT COUNT(*) FROM (SELECT DISTINCT run_id, interrupt_id FROM interrupt_responders "
        f"WHERE pending = 1 AND responder IN ({marks}){extra})",
        (*responders, *extra_args),
    ).fetchone()[0]
    return _load(conn, keys), int(total)


def decided(
    conn: sqlite3.Connection, responders: Sequence[str], kind: str | None, limit: int
) -> list[Interrupt]:
    """Resolved interrupts that listed any of ``responders``, most recently decided first.

    One range of the ``responders_decided_newest`` index per responder, at most ``limit``
    rows each (migration 0008): the cost follows ``limit``, not how much the responders
    (``'*'`` among them) decided over time.
    """
    extra, extra_args = _filters(None, kind)
    sql = (
        "SELECT run_id, interrupt_id, resolved_at FROM interrupt_responders "
        f"WHERE responder = ? AND pending = 0{extra} ORDER BY resolved_at DESC LIMIT ?"
    )
    rows: list[tuple[str, str, float | None]] = []
    for who in dict.fromkeys(responders):
        rows += conn.execute(sql, (who, *extra_args, limit)).fetchall()
    return _load(conn, first_distinct(rows, limit, key=newest_first))


def pending_responders(conn: sqlite3.Connection) -> list[str]:
    """The distinct responders of pending interrupts (without ``'*'``).

    A skip scan of the ``responders_pending`` index: one seek per distinct responder, not
    one row per (interrupt, responder)."""
    rows = conn.execute(
        "WITH RECURSIVE d(r) AS ("
        " SELECT (SELECT MIN(responder) FROM interrupt_responders"
        "  WHERE responder > ? AND pending = 1)"
        " UNION ALL"
        " SELECT (SELECT MIN(responder) FROM interrupt_responders"
        "  WHERE responder > d.r AND pending = 1) FROM d WHERE d.r IS NOT NULL)"
        "SELECT r FROM d WHERE r IS NOT NULL AND r <> ?",
        ("", ANYONE),
    ).fetchall()
    return [str(row[0]) for row in rows]


def _load(
    conn: sqlite3.Connection, keys: Sequence[tuple[str, str, float | None]]
) -> list[Interrupt]:
    """The interrupts of ``keys`` in that order: one primary-key lookup each (a row-value
    ``IN (VALUES ...)`` would make SQLite scan the interrupts instead)."""
    found: list[Interrupt] = []
    for run_id, interrupt_id, _ in keys:
        found += interrupts(conn, "i.run_id = ? AND i.id = ?", (run_id, interrupt_id))
    return found
