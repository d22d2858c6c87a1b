"""The responder index of the PostgreSQL store: who may answer which interrupt, indexed.

``interrupt_responders`` (migration 0004) holds one row per (interrupt, responder), with
``'*'`` for an interrupt open to anyone. Triggers write the rows with the interrupt and
mark them decided when it is resolved, so every path that opens or resolves an interrupt
keeps the index right without knowing about it. Code that changes an interrupt's
responders later (escalation) calls ``index_responders`` in the same transaction.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from engine.models import Interrupt
from engine.store.postgres.ops import Conn, interrupts
from engine.store.rows import ANYONE, by_creation, first_distinct, newest_first


async def index_responders(
    conn: Conn, run_id: str, interrupt_id: str, responders: Sequence[str]
) -> None:
    """Make the index list exactly ``responders`` for the interrupt (``'*'`` if empty).

    Run it inside the transaction that changes the interrupt's responders (escalation),
    after the interrupt row exists. The requester, kind, status and times are copied from
    the interrupt and its run.
    """
    await conn.execute(
        "DELETE FROM interrupt_responders WHERE run_id=$1 AND interrupt_id=$2",
        run_id,
        interrupt_id,
    )
    await conn.execute(
        "INSERT INTO interrupt_responders (run_id, interrupt_id, responder, kind, pending, "
        "requester, allow_requester, created_at, resolved_at) "
        "SELECT i.run_id, i.id, w, i.kind, i.status = 'pending', r.requester, "
        "COALESCE((i.spec_json::jsonb ->> 'allow_requester')::boolean, false), "
        "i.created_at, i.resolved_at FROM interrupts i JOIN runs r ON r.id = i.run_id, "
        "unnest($3::text[]) AS w WHERE i.run_id=$1 AND i.id=$2 ON CONFLICT DO NOTHING",
        run_id,
        interrupt_id,
        list(dict.fromkeys(responders)) or [ANYONE],
    )


def _match(responders: Sequence[str], actor: str | None, kind: str | None) -> tuple[str, list[Any]]:
    return _where("responder = ANY($1::text[])", [list(responders)], actor, kind)


def _where(
    responder: str, args: list[Any], actor: str | None, kind: str | None
) -> tuple[str, list[Any]]:
    """``responder`` (a condition on ``args``' first value) and the other conditions: not
    ``actor``'s own request unless allowed, and ``kind``."""
    where = responder
    if actor is not None:
        args.append(actor)
        where += f" AND NOT (requester IS NOT DISTINCT FROM ${len(args)} AND NOT allow_requester)"
    if kind is not None:
        args.append(kind)
        where += f" AND kind = ${len(args)}"
    return where, args


async def answerable(
    conn: Conn,
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
    one, one_args = _where("responder = $1", [None], actor, kind)
    page = (
        f"SELECT run_id, interrupt_id, created_at FROM interrupt_responders "
        f"WHERE pending AND {one} "
        f"ORDER BY created_at {order}, interrupt_id {order} LIMIT ${len(one_args) + 1}"
    )
    rows: list[Any] = []
    if limit != 0:
        for who in dict.fromkeys(responders):
            rows += await conn.fetch(page, who, *one_args[1:], None if limit < 0 else limit)
    keys = first_distinct(rows, limit, key=by_creation, reverse=newest)
    if not counted:
        return await _load(conn, keys), -1
    where, args = _match(responders, actor, kind)
    total = await conn.fetchval(
        f"SELECT COUNT(*) FROM (SELECT DISTINCT run_id, interrupt_id FROM interrupt_responders "
        f"WHERE pending AND {where}) x",
        *args,
    )
    return await _load(conn, keys), int(total)


async def decided(
    conn: Conn, responders: Sequence[str], kind: str | None, limit: int
) -> list[Interrupt]:
    """Resolved interrupts that listed any of ``responders``, most recently decided first.

    One range of the ``responders_decided_newest`` index per responder, at most ``limit``
    rows each (migration 0007): the cost follows ``limit``, not how much the responders
    (``'*'`` among them) decided over time.
    """
    # `responder = $1`, not `_match`'s `= ANY(...)`: the index then yields the rows in
    # order, and LIMIT stops the read.
    one, one_args = _where("responder = $1 AND NOT pending", [None], None, kind)
    sql = (
        "SELECT run_id, interrupt_id, resolved_at FROM interrupt_responders "
        f"WHERE {one} "
        f"ORDER BY resolved_at DESC NULLS LAST LIMIT ${len(one_args) + 1}"
    )
    rows: list[Any] = []
    for who in dict.fromkeys(responders):
        rows += await conn.fetch(sql, who, *one_args[1:], None if limit < 0 else limit)
    return await _load(conn, first_distinct(rows, limit, key=newest_first))


async def pending_responders(conn: Conn) -> list[str]:
    """The distinct responders of pending interrupts (without ``'*'``).

    A skip scan of the ``responders_pending`` index: one seek per distinct responder, not
    one row per (interrupt, responder)."""
    rows = await conn.fetch(
        "WITH RECURSIVE d(r) AS ("
        " SELECT (SELECT MIN(responder) FROM interrupt_responders"
        "  WHERE responder > $1 AND pending)"
        " UNION ALL"
        " SELECT (SELECT MIN(responder) FROM interrupt_responders"
        "  WHERE responder > d.r AND pending) FROM d WHERE d.r IS NOT NULL)"
        "SELECT r FROM d WHERE r IS NOT NULL AND r <> $2",
        "",
        ANYONE,
    )
    return [str(row[0]) for row in rows]


async def _load(conn: Conn, keys: Sequence[Any]) -> list[Interrupt]:
    if not keys:
        return []
    found = await interrupts(
        conn,
        "(i.run_id, i.id) IN (SELECT * FROM unnest($1::text[], $2::text[]))",
        ([k[0] for k in keys], [k[1] for k in keys]),
    )
    by_key = {(i.run_id, i.id): i for i in found}
    return [by_key[(k[0], k[1])] for k in keys if (k[0], k[1]) in by_key]
