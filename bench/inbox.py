"""Inbox benchmark: what one person may answer, with many requests pending.

Workload: ``--mine`` pending requests one person (``U0ME``) may answer (half naming them,
half naming a user group they are in) spread among ``--others`` pending requests for
``--people`` other people, on one SQLite file (or ``--db`` a PostgreSQL URL). Then, each
repeated ``--repeat`` times (median and max reported, in ms):

* ``index_page_ms``: ``Engine.list_interrupts(actor=..., limit=40)`` (the Home tab's
  page) on the responder index;
* ``index_count_ms``: ``Engine.count_interrupts(actor=...)`` (its "and N more");
* ``home_build_ms``: building the whole Home view (``HomeTab.build``: page, count, the
  person's own runs, recently decided, rendering) and its block count against Slack's 100;
* ``scan_page_ms`` / ``scan_all_ms``: the same list the old way, through an authorizer
  without ``groups_of`` (pages of every pending interrupt, filtered in Python), for a
  40-item page and for everything;
* with ``--anyone N``, N more pending requests open to anyone (no responders), which
  every person's page and count include;
* ``decided_page_ms``: ``Engine.list_decided(actor=..., limit=10)`` (the Home tab's
  "recently decided") after ``--decided`` earlier requests to the person (half directly,
  half through the group) were approved by them.

On SQLite it also prints the query plan of the index read (``index_plan``), which names
the ``responders_pending`` index. Prints one JSON line.

Usage: ``.venv/bin/python bench/inbox.py [--mine 1000] [--others 10000] [--anyone 0]
[--decided 0] [--db PATH|URL]``.
"""

from __future__ import annotations

import os
import sys

if sys.path and os.path.abspath(sys.path[0]) == os.path.dirname(os.path.abspath(__file__)):
    sys.path.pop(0)  # see bench/engine.py

import argparse
import asyncio
import json
import statistics
import tempfile
import time
from collections.abc import Awaitable, Callable
from typing import Any

from pydantic import BaseModel

from bot.settings import Settings
from bot.slack.authorization import UsergroupAuthorizer
from bot.slack.home import HomeTab
from bot.slack.refs import RefSigner
from engine import Engine, Interrupt, RunStatus, StepContext, Workflow, open_store, step

ME = "U0ME"
TEAM = "S0TEAM"


class Ask(BaseModel):
    """Who to ask."""

    who: str


class Shown(BaseModel):
    """What the approver sees."""

    who: str


class Approval(BaseModel):
    """Approve or reject."""

    approved: bool


@step(title="Approve")
async def approve(req: Ask, ctx: StepContext[Shown, Approval]) -> Approval:
    """Wait for an approval from ``req.who`` (from anyone if it is empty)."""
    return await ctx.suspend(Shown(who=req.who), responders=[req.who] if req.who else [])


ASK = Workflow("ask", input=Ask, output=Approval).then(approve)


class Directory:
    """An authorizer knowing that ME is in TEAM (with ``groups_of``: the index path)."""

    async def __call__(self, interrupt: Interrupt, actor: str) -> bool:
        return actor == ME and TEAM in interrupt.responders

    async def groups_of(self, actor: str, responders: list[str]) -> list[str]:
        return [TEAM] if actor == ME and TEAM in responders else []


class OldDirectory:
    """The same answers without ``groups_of``: listings scan every pending interrupt."""

    async def __call__(self, interrupt: Interrupt, actor: str) -> bool:
        return actor == ME and TEAM in interrupt.responders


class NoSlack:
    """Just enough of a Web API client for building (not publishing) a Home view."""

    async def auth_test(self) -> dict[str, str]:
        return {"url": "https://bench.slack.com/"}


async def timed(fn: Callable[[], Awaitable[Any]], repeat: int) -> tuple[float, float, Any]:
    """(median ms, max ms, last result) of ``repeat`` calls."""
    times, result = [], None
    for _ in range(repeat):
        started = time.perf_counter()
        result = await fn()
        times.append((time.perf_counter() - started) * 1000)
    return round(statistics.median(times), 2), round(max(times), 2), result


def workload(mine: int, others: int, people: int) -> list[str]:
    """Whom each request asks: ``mine`` for ME (half directly, half through TEAM) spread
    evenly among ``others`` for ``people`` other approvers, so a scan finds mine late."""
    total = max(1, mine + others)
    keyed = [((n + 0.5) * total / max(1, mine), ME if n % 2 else TEAM) for n in range(mine)]
    keyed += [(float(n), f"U{n % people:07d}") for n in range(others)]
    return [who for _, who in sorted(keyed, key=lambda k: k[0])]


async def populate(engine: Engine, whos: list[str]) -> None:
    for chunk in range(0, len(whos), 500):
        await asyncio.gather(
            *(engine.start(ASK, {"who": w}, requester="U0REQ") for w in whos[chunk : chunk + 500])
        )
    while (await engine.count_runs()).get(RunStatus.SUSPENDED.value, 0) < len(whos):
        await asyncio.sleep(0.2)


async def decide_earlier(engine: Engine, count: int) -> None:
    """``count`` requests to ME (half through TEAM), each approved by ME."""
    whos = [ME if n % 2 else TEAM for n in range(count)]
    await populate(engine, whos)
    waiting = await engine.list_interrupts(limit=count + 10)
    for chunk in range(0, len(waiting), 500):
        await asyncio.gather(
            *(
                engine.resume(i.run_id, i.id, {"approved": True}, actor=ME)
                for i in waiting[chunk : chunk + 500]
            )
        )
    while (await engine.count_runs()).get(RunStatus.COMPLETED.value, 0) < count:
        await asyncio.sleep(0.2)


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--mine", type=int, default=1000)
    parser.add_argument("--others", type=int, default=10000)
    parser.add_argument("--people", type=int, default=500, help="distinct other approvers")
    parser.add_argument("--anyone", type=int, default=0, help="requests open to anyone")
    parser.add_argument("--decided", type=int, default=0, help="earlier requests decided")
    parser.add_argument("--repeat", type=int, default=20)
    parser.add_argument("--db", default=None)
    args = parser.parse_args()
    db = args.db or os.path.join(tempfile.mkdtemp(prefix="signoff-inbox-"), "bench.db")

    started = time.perf_counter()
    async with Engine(open_store(db), workflows=[ASK], authorizer=Directory()) as engine:
        if args.decided:
            await decide_earlier(engine, args.decided)
        await populate(engine, workload(args.mine, args.others, args.people) + [""] * args.anyone)
    populate_s = round(time.perf_counter() - started, 1)

    engine = Engine(open_store(db), workflows=[ASK], authorizer=Directory())
    await engine.open_readonly()
    old = Engine(open_store(db), workflows=[ASK], authorizer=OldDirectory())
    await old.open_readonly()
    try:
        settings = Settings(_env_file=None)  # type: ignore[call-arg]
        home = HomeTab(
            engine,
            NoSlack(),  # type: ignore[arg-type]
            RefSigner("bench-secret"),
            settings,
            UsergroupAuthorizer(NoSlack()),  # type: ignore[arg-type]
        )
        page_ms, page_max, page = await timed(
            lambda: engine.list_interrupts(actor=ME, limit=40), args.repeat
        )
        count_ms, count_max, count = await timed(
            lambda: engine.count_interrupts(actor=ME), args.repeat
        )
        build_ms, build_max, view = await timed(lambda: home.build(ME), args.repeat)
        blocks = view.to_dict()["blocks"]  # validates Slack's limits (1..100 blocks)
        scan_page_ms, scan_page_max, scanned = await timed(
            lambda: old.list_interrupts(actor=ME, limit=40), max(3, args.repeat // 4)
        )
        scan_all_ms, scan_all_max, everything = await timed(
            lambda: old.list_interrupts(actor=ME, limit=-1), max(3, args.repeat // 4)
        )
        decided_ms, decided_max, decided = await timed(
            lambda: engine.list_decided(actor=ME, groups=[TEAM], kind="input", limit=10),
            args.repeat,
        )
        plan = await index_plan(engine)
    finally:
        await engine.close()
        await old.close()

    print(
        json.dumps(
            {
                "mine": args.mine,
                "others": args.others,
                "people": args.people,
                "populate_s": populate_s,
                "index_page_ms": page_ms,
                "index_page_max_ms": page_max,
                "index_count_ms": count_ms,
                "index_count_max_ms": count_max,
                "home_build_ms": build_ms,
                "home_build_max_ms": build_max,
                "home_blocks": len(blocks),
                "home_says": blocks[0]["text"]["text"],
                "home_more": next((str(b) for b in blocks if "more" in str(b)), None) is not None,
                "scan_page_ms": scan_page_ms,
                "scan_all_ms": scan_all_ms,
                "scan_all_max_ms": scan_all_max,
                "anyone": args.anyone,
                "decided": args.decided,
                "decided_page_ms": decided_ms,
                "decided_page_max_ms": decided_max,
                "decided_found": len(decided),
                "same_answer": [i.id for i in page] == [i.id for i in scanned]
                and count == len(everything),
                "index_plan": plan,
                "backend": "postgres" if db.startswith("postgres") else "sqlite",
                "python": ".".join(map(str, sys.version_info[:3])),
            }
        )
    )


async def index_plan(engine: Engine) -> str | None:
    """SQLite's query plan of the answerable-page read (None on PostgreSQL)."""
    store: Any = engine.store
    if not hasattr(store, "_read"):
        return None

    def op(conn: Any) -> str:
        rows = conn.execute(
            "EXPLAIN QUERY PLAN SELECT run_id, interrupt_id, MIN(created_at) AS c "
            "FROM interrupt_responders WHERE pending = 1 AND responder IN (?, ?, '*') "
            "AND NOT (requester IS ? AND allow_requester = 0) AND kind = 'input' "
            "GROUP BY run_id, interrupt_id ORDER BY c LIMIT 40",
            (ME, TEAM, ME),
        ).fetchall()
        return "; ".join(str(r[-1]) for r in rows)

    try:
        return str(await store._read(op))
    except Exception:  # PostgreSQL store: no _read of a sqlite3 connection
        return None


if __name__ == "__main__":
    asyncio.run(main())
