"""The SQLite store itself: migrations, refusing newer schemas, WAL, durability, group commit."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from collections.abc import AsyncIterator
from importlib import resources
from pathlib import Path

import pytest

from engine import StoreError, open_store
from engine.context import InterruptSpec
from engine.models import InterruptKind
from engine.store.base import EventWrite, LostOwnership, NewRun, StepWrite
from engine.store.sqlite import SQLiteStore, batching

pytestmark = pytest.mark.sqlite_only  # it inspects the database file itself

TABLES = {"runs", "steps", "interrupts", "responses", "events", "timers", "outbox", "workers"}


def latest_migration() -> int:
    """The highest migration number shipped with the engine."""
    folder = resources.files("engine.store.sqlite") / "migrations"
    return max(int(f.name.split("_", 1)[0]) for f in folder.iterdir() if f.name.endswith(".sql"))


def peek(db_path: str, sql: str) -> list[tuple[object, ...]]:
    """Run a query on the file with a separate plain sqlite3 connection."""
    conn = sqlite3.connect(db_path)
    try:
        return conn.execute(sql).fetchall()
    finally:
        conn.close()


def new_run(run_id: str, owner: str = "w1") -> NewRun:
    """A run to create directly in the store."""
    return NewRun(
        id=run_id,
        workflow="wf",
        version="1",
        input_json="{}",
        requester=None,
        idempotency_key=None,
        owner=owner,
        lease_until=2e9,
        now=1.7e9,
        events=[EventWrite("started", {"n": 1})],
        outbox=[],
    )


@pytest.fixture(name="db_path")
def sqlite_file(tmp_path: Path) -> str:
    """A fresh SQLite file (these tests are about SQLite, whatever backends others run on)."""
    return str(tmp_path / "signoff.db")


@pytest.fixture
async def store(db_path: str) -> AsyncIterator[SQLiteStore]:
    """An opened store on the test's database file."""
    s = open_store(db_path)
    await s.open()
    try:
        yield s
    finally:
        await s.close()


async def test_opening_a_new_file_applies_the_migrations(store: SQLiteStore, db_path: str) -> None:
    tables = {
        name for (name,) in peek(db_path, "SELECT name FROM sqlite_master WHERE type='table'")
    }
    assert TABLES <= tables
    assert peek(db_path, "PRAGMA user_version") == [(latest_migration(),)]


async def test_reopening_is_idempotent_and_keeps_the_data(db_path: str) -> None:
    first = open_store(db_path)
    await first.open()
    assert await first.create_run(new_run("r1")) == ("r1", True)
    await first.close()

    for _ in range(2):
        again = open_store(db_path)
        await again.open()
        run = await again.get_run("r1")
        await again.close()
        assert run is not None and run.workflow == "wf"
    assert peek(db_path, "PRAGMA user_version") == [(latest_migration(),)]
    assert peek(db_path, "SELECT COUNT(*) FROM events") == [(1,)]


async def test_a_schema_newer_than_this_code_is_refused(db_path: str) -> None:
    conn = sqlite3.connect(db_path)
    conn.execute("PRAGMA user_version=99")
    conn.close()
    before = set(threading.enumerate())
    newer = open_store(db_path)

    with pytest.raises(StoreError, match="schema version 99 is newer"):
        await newer.open()

    assert peek(db_path, "PRAGMA user_version") == [(99,)]
    assert peek(db_path, "SELECT name FROM sqlite_master WHERE type='table'") == []
    for thread in set(threading.enumerate()) - before:  # its connections were closed again
        thread.join(timeout=2)
        assert not thread.is_alive(), thread
    with pytest.raises(StoreError, match="not open"):
        await newer.get_run("r1")


async def test_a_store_that_is_not_open_says_so(db_path: str) -> None:
    with pytest.raises(StoreError, match="not open"):
        await open_store(db_path).create_run(new_run("r1"))


async def test_the_database_is_in_wal_mode(store: SQLiteStore, db_path: str) -> None:
    await store.create_run(new_run("r1"))

    assert peek(db_path, "PRAGMA journal_mode") == [("wal",)]
    assert Path(db_path + "-wal").exists()


@pytest.mark.parametrize(
    ("url", "level"),
    [
        ("{path}", 1),
        ("sqlite:///{path}", 1),
        ("sqlite:///{path}?synchronous=normal", 1),
        ("sqlite:///{path}?synchronous=full", 2),
        ("sqlite:///{path}?synchronous=FULL", 2),
    ],
)
async def test_synchronous_is_normal_unless_the_url_asks_for_full(
    db_path: str, url: str, level: int
) -> None:
    # db_path is absolute, so the URL reads sqlite:////abs/path as documented.
    s = open_store(url.format(path=db_path))
    await s.open()
    try:
        # synchronous is per connection: check the store's own (reading) connection.
        got = await s._read(lambda conn: conn.execute("PRAGMA synchronous").fetchone()[0])
        written = await s._write(lambda conn: conn.execute("PRAGMA synchronous").fetchone()[0])
    finally:
        await s.close()
    assert got == written == level
    assert s.path == db_path


def test_an_unknown_synchronous_level_is_refused(db_path: str) -> None:
    with pytest.raises(ValueError, match="synchronous"):
        open_store(f"sqlite:///{db_path}?synchronous=off")


@pytest.mark.parametrize("inline", ["1", "0"])
async def test_group_commit_rolls_back_only_the_failing_operation(
    db_path: str, inline: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Inline (the default) or on the connection's thread, one failing operation of a
    batch rolls back alone."""
    batches: list[int] = []
    real_run_batch = batching.run_batch

    def counting(conn: sqlite3.Connection, ops: list[object]) -> object:
        batches.append(len(ops))
        return real_run_batch(conn, ops)  # type: ignore[arg-type]

    monkeypatch.setattr(batching, "run_batch", counting)
    store = open_store(f"sqlite:///{db_path}?inline_writes={inline}")
    assert isinstance(store, SQLiteStore)
    await store.open()
    try:
        await _one_failing_operation(store, batches)
    finally:
        await store.close()


async def _one_failing_operation(store: SQLiteStore, batches: list[int]) -> None:

    def half_done(conn: sqlite3.Connection) -> None:
        conn.execute("INSERT INTO events (run_id, at, type, data) VALUES ('r1', 0, 'half', '{}')")
        raise RuntimeError("fails after writing")

    intruder = StepWrite("0:x", "x", "completed", "1", None, 1, 0.0, 0.0)
    results = await asyncio.gather(
        store.create_run(new_run("r1")),
        store._write(half_done),
        store.commit_steps("r1", "someone-else", [intruder], 1.7e9),
        store.create_run(new_run("r2")),
        return_exceptions=True,
    )

    assert batches == [4]  # one transaction for the four operations
    first, failed, fenced, last = results
    assert first == ("r1", True) and last == ("r2", True)
    assert isinstance(failed, RuntimeError)
    assert isinstance(fenced, LostOwnership)
    assert await store.get_run("r1") is not None and await store.get_run("r2") is not None
    detail = await store.get_detail("r1")
    assert detail is not None
    assert [e.type for e in detail.events] == ["started"]  # the half write is gone
    assert detail.steps == []


async def test_wal_is_checkpointed_in_the_background_not_in_commits(db_path: str) -> None:
    """Commits leave WAL copying to a separate connection, which catches up on its own."""
    store = SQLiteStore(db_path)
    store.checkpoint_interval = 0.05
    await store.open()
    try:
        pages_before = peek(db_path, "PRAGMA page_count")[0][0]
        await asyncio.gather(*(store.create_run(new_run(f"r{i}")) for i in range(300)))
        # The automatic checkpoint threshold is far away, so only the background loop
        # can have moved these pages into the database file.
        assert peek(db_path, "PRAGMA wal_autocheckpoint")[0][0] == 1000  # a fresh conn's
        for _ in range(100):
            await asyncio.sleep(0.05)
            if Path(db_path).stat().st_size > pages_before * 4096:
                break
        assert Path(db_path).stat().st_size > pages_before * 4096
        assert peek(db_path, "SELECT COUNT(*) FROM runs") == [(300,)]
    finally:
        await store.close()


@pytest.mark.parametrize(
    "where",
    [
        "1=1",
        "status='suspended'",
        "workflow='deploy'",
        "requester='U0CAROL'",
        "created_at<1 AND (created_at<1 OR id>'r')",
        "requester='U0CAROL' AND created_at>=1 AND created_at<2",
    ],
)
async def test_run_pages_are_index_scans_in_page_order(tmp_path: Path, where: str) -> None:
    db = str(tmp_path / "plan.db")
    store = open_store(db)
    await store.open()
    await store.close()

    plan = " ".join(
        str(row[-1])
        for row in peek(
            db,
            f"EXPLAIN QUERY PLAN SELECT * FROM runs WHERE {where} "
            "ORDER BY created_at DESC, id LIMIT 50",
        )
    )

    assert "USING INDEX" in plan and "TEMP B-TREE" not in plan, plan


async def test_migration_4_backfills_the_responder_index_of_stored_interrupts(
    db_path: str,
) -> None:
    from engine.store.sqlite.migrate import migrate, migrations

    conn = sqlite3.connect(db_path, isolation_level=None)
    migrate(conn, [m for m in migrations() if m.version <= 3])
    conn.execute(
        "INSERT INTO runs (id, workflow, version, status, input_json, requester, created_at, "
        "updated_at) VALUES ('r1', 'wf', '1', 'suspended', '{}', 'alice', 1, 1)"
    )
    for iid, spec in (("i1", '{"responders": ["bob"]}'), ("i2", '{"responders": []}')):
        conn.execute(
            "INSERT INTO interrupts (run_id, id, path, step, kind, status, spec_json, "
            "created_at) VALUES ('r1', ?, '0', 's', 'input', 'pending', ?, 1)",
            (iid, spec),
        )
    conn.close()

    store = open_store(db_path)
    await store.open()
    try:
        found, total = await store.list_answerable(responders=["bob", "*"], actor="bob", limit=9)
        mine, _ = await store.list_answerable(responders=["alice", "*"], actor="alice", limit=9)
    finally:
        await store.close()
    assert sorted(i.id for i in found) == ["i1", "i2"] and total == 2
    assert mine == []  # alice requested both


RESPONDER_ROWS = (
    "SELECT interrupt_id, responder, kind, pending, requester, allow_requester, created_at, "
    "resolved_at FROM interrupt_responders ORDER BY interrupt_id, responder"
)


async def test_the_store_writes_the_responder_rows_the_insert_trigger_writes(
    tmp_path: Path,
) -> None:
    """Migration 0006: the store writes an interrupt's responder-index rows itself, the
    very rows the insert trigger still writes for an interrupt inserted without them (as
    an older instance does during a rolling upgrade)."""
    new_db, old_db = str(tmp_path / "new.db"), str(tmp_path / "old.db")
    specs = [
        InterruptSpec(id="named", kind=InterruptKind.INPUT, responders=["bob", "@ops", "bob"]),
        InterruptSpec(id="mine-too", kind=InterruptKind.EVENT, allow_requester=True),
    ]
    suspended = StepWrite("0:ask", "ask", "suspended", None, None, 1, 1.7e9, 1.7e9, specs)
    for path in (new_db, old_db):
        store = open_store(path)
        await store.open()
        try:
            run = new_run("r1")
            run.requester = "alice"
            await store.create_run(run)
            if path == new_db:  # without the trigger: every row below is the store's own
                store_conn = store._writes.conn
                assert store_conn is not None
                await store_conn.execute("DROP TRIGGER interrupt_responders_on_insert")
                await store.commit_steps("r1", "w1", [suspended], 1.7e9)
        finally:
            await store.close()
    # The same interrupt rows inserted into the migrated file as an older version does.
    stored = peek(
        new_db, "SELECT run_id, id, path, step, kind, status, spec_json, created_at FROM interrupts"
    )
    conn = sqlite3.connect(old_db, isolation_level=None)
    conn.executemany(
        "INSERT INTO interrupts (run_id, id, path, step, kind, status, spec_json, created_at) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        stored,
    )
    conn.close()

    written = peek(new_db, RESPONDER_ROWS)
    assert written == peek(old_db, RESPONDER_ROWS)
    assert written == [
        ("mine-too", "*", "event", 1, "alice", 1, 1.7e9, None),
        ("named", "@ops", "input", 1, "alice", 0, 1.7e9, None),
        ("named", "bob", "input", 1, "alice", 0, 1.7e9, None),
    ]


async def test_inline_writes_wait_for_another_process_lock_off_the_event_loop(
    db_path: str,
) -> None:
    """With ``?inline_writes=1`` small write batches run on the loop's thread, but a write
    lock held by another process is waited for on the connection's thread: the loop
    keeps running."""
    store = open_store(f"sqlite:///{db_path}?inline_writes=1")
    assert isinstance(store, SQLiteStore)
    await store.open()
    assert store._writes.inline_busy_ms == store.busy_timeout_ms
    other = sqlite3.connect(db_path, isolation_level=None)
    other.execute("BEGIN IMMEDIATE")  # another process holds the write lock
    try:
        write = asyncio.ensure_future(store.create_run(new_run("r1")))
        ticks = 0
        for _ in range(20):  # the loop is not blocked while the write waits
            await asyncio.sleep(0.005)
            ticks += 1
        assert ticks == 20 and not write.done()
    finally:
        other.execute("COMMIT")
        other.close()
    assert await asyncio.wait_for(write, 5) == ("r1", True)
    # Afterwards writes are inline again and never wait on the loop.
    assert await store.create_run(new_run("r2")) == ("r2", True)
    await store.close()


async def test_a_burst_waits_for_another_process_lock_and_only_then_sets_a_busy_timeout(
    db_path: str,
) -> None:
    """A burst runs on the connection's thread. It waits for a write lock another
    process holds, up to ``busy_timeout``; when the lock is free, it begins at once,
    without setting the timeout (each statement there waits for the GIL under a burst)."""
    store = open_store(f"sqlite:///{db_path}")
    assert isinstance(store, SQLiteStore)
    await store.open()
    burst = batching.INLINE_MAX + 1
    statements: list[str] = []
    assert store._writes.conn is not None
    store._writes.conn._conn.set_trace_callback(statements.append)
    try:
        await asyncio.gather(*(store.create_run(new_run(f"free{i}")) for i in range(burst)))
        assert statements[0] == "BEGIN IMMEDIATE"
        assert not [s for s in statements if "busy_timeout" in s]

        statements.clear()
        other = sqlite3.connect(db_path, isolation_level=None)
        other.execute("BEGIN IMMEDIATE")  # another process holds the write lock
        try:
            writes = [store.create_run(new_run(f"held{i}")) for i in range(burst)]
            waiting = asyncio.ensure_future(asyncio.gather(*writes))
            await asyncio.sleep(0.1)
            assert not waiting.done()
        finally:
            other.execute("COMMIT")
            other.close()
        assert await asyncio.wait_for(waiting, 5) == [(f"held{i}", True) for i in range(burst)]
        timeout = f"PRAGMA busy_timeout={store.busy_timeout_ms}"
        assert statements[:3] == ["BEGIN IMMEDIATE", timeout, "BEGIN IMMEDIATE"]
        assert "PRAGMA busy_timeout=0" in statements
        assert (await store.count_runs())["running"] == 2 * burst
    finally:
        await store.close()


@pytest.mark.parametrize("options", ["?inline_writes=0", "?synchronous=full"])
async def test_writes_stay_on_the_connection_thread(db_path: str, options: str) -> None:
    """``?inline_writes=0``: the event loop is never held by a write. With
    ``synchronous=full`` a commit waits for the disk: that wait stays off the loop too."""
    store = open_store(f"sqlite:///{db_path}{options}")
    assert isinstance(store, SQLiteStore)
    await store.open()
    try:
        assert store._writes.inline_busy_ms is None
        assert await store.create_run(new_run("r1")) == ("r1", True)
    finally:
        await store.close()


def test_an_unknown_inline_writes_value_is_refused(db_path: str) -> None:
    with pytest.raises(ValueError, match="inline_writes must be 1 or 0"):
        open_store(f"sqlite:///{db_path}?inline_writes=maybe")


async def test_small_write_batches_run_on_the_loop_and_bursts_on_the_connection_thread(
    db_path: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """By default a batch of a few writes runs on the event loop's thread (no hop); a
    burst of writes runs on the connection's thread, in one transaction, so the loop is
    not held by it."""
    store = open_store(f"sqlite:///{db_path}")
    assert isinstance(store, SQLiteStore)
    await store.open()
    try:
        await _small_inline_burst_threaded(store, monkeypatch)
    finally:
        await store.close()


async def _small_inline_burst_threaded(store: SQLiteStore, monkeypatch: pytest.MonkeyPatch) -> None:
    assert store._writes.inline_busy_ms is not None
    ran: list[tuple[int, bool]] = []  # (operations, on the loop's thread)
    real_run_batch = batching.run_batch
    loop_thread = threading.get_ident()

    def recording(conn: sqlite3.Connection, ops: list[batching.Op]) -> object:
        ran.append((len(ops), threading.get_ident() == loop_thread))
        return real_run_batch(conn, ops)

    monkeypatch.setattr(batching, "run_batch", recording)
    assert await store.create_run(new_run("alone")) == ("alone", True)
    burst = batching.INLINE_MAX + 1
    await asyncio.gather(*(store.create_run(new_run(f"r{i}")) for i in range(burst)))
    assert ran == [(1, True), (burst, False)]
    assert (await store.count_runs())["running"] == burst + 1


async def test_point_reads_run_on_the_loop_and_see_other_connections_commits(
    store: SQLiteStore, db_path: str
) -> None:
    """get_run/get_interrupt/load_state read on the loop's thread (a connection of their own
    that never waits for a lock) and see what any connection committed."""
    assert store._peek is not None
    other = sqlite3.connect(db_path, isolation_level=None)
    try:
        await store.create_run(new_run("r1"))
        other.execute("UPDATE runs SET requester='someone' WHERE id='r1'")
        run = await store.get_run("r1")
        assert run is not None and run.requester == "someone"
        state = await store.load_state("r1")
        assert state is not None and state.run.requester == "someone"
    finally:
        other.close()
    await store.close()
    assert store._peek is None
    await store.open()  # the fixture closes it again
