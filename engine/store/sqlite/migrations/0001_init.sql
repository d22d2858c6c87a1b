-- Signoff schema, version 1. Times are Unix seconds (REAL), JSON is stored as TEXT.
CREATE TABLE runs (
    id              TEXT PRIMARY KEY,
    workflow        TEXT NOT NULL,
    version         TEXT NOT NULL,
    status          TEXT NOT NULL,
    input_json      TEXT NOT NULL,
    output_json     TEXT,
    error_json      TEXT,
    requester       TEXT,
    idempotency_key TEXT UNIQUE,
    owner           TEXT,
    lease_until     REAL,
    wake_seq        INTEGER NOT NULL DEFAULT 0,
    created_at      REAL NOT NULL,
    updated_at      REAL NOT NULL
);
CREATE INDEX runs_by_status ON runs (status, created_at);
CREATE INDEX runs_by_workflow ON runs (workflow, status, created_at);
CREATE INDEX runs_by_owner ON runs (owner) WHERE owner IS NOT NULL;

CREATE TABLE steps (
    run_id      TEXT NOT NULL,
    path        TEXT NOT NULL,
    name        TEXT NOT NULL,
    status      TEXT NOT NULL,
    output_json TEXT,
    error_json  TEXT,
    attempts    INTEGER NOT NULL,
    started_at  REAL NOT NULL,
    finished_at REAL NOT NULL,
    PRIMARY KEY (run_id, path)
) WITHOUT ROWID;

CREATE TABLE interrupts (
    run_id      TEXT NOT NULL,
    id          TEXT NOT NULL,
    path        TEXT NOT NULL,
    step        TEXT NOT NULL,
    kind        TEXT NOT NULL,
    status      TEXT NOT NULL,
    spec_json   TEXT NOT NULL,
    expires_at  REAL,
    created_at  REAL NOT NULL,
    resolved_at REAL,
    resolved_by TEXT,
    data_json   TEXT,
    refs_json   TEXT NOT NULL DEFAULT '{}',
    PRIMARY KEY (run_id, id)
) WITHOUT ROWID;
CREATE INDEX interrupts_pending ON interrupts (status, created_at);

CREATE TABLE responses (
    run_id       TEXT NOT NULL,
    interrupt_id TEXT NOT NULL,
    actor        TEXT NOT NULL,
    data_json    TEXT NOT NULL,
    approved     INTEGER,
    at           REAL NOT NULL,
    PRIMARY KEY (run_id, interrupt_id, actor)
) WITHOUT ROWID;

CREATE TABLE events (
    id     INTEGER PRIMARY KEY,
    run_id TEXT NOT NULL,
    at     REAL NOT NULL,
    type   TEXT NOT NULL,
    data   TEXT NOT NULL
);
CREATE INDEX events_by_run ON events (run_id, id);

CREATE TABLE timers (
    id           INTEGER PRIMARY KEY,
    run_id       TEXT NOT NULL,
    interrupt_id TEXT NOT NULL,
    kind         TEXT NOT NULL,
    due_at       REAL NOT NULL,
    claimed_by   TEXT,
    claim_until  REAL
);
CREATE INDEX timers_by_due ON timers (due_at);
CREATE INDEX timers_by_interrupt ON timers (run_id, interrupt_id);

CREATE TABLE outbox (
    id            INTEGER PRIMARY KEY,
    run_id        TEXT NOT NULL,
    interrupt_id  TEXT,
    topic         TEXT NOT NULL,
    data          TEXT NOT NULL,
    created_at    REAL NOT NULL,
    next_at       REAL NOT NULL,
    attempts      INTEGER NOT NULL DEFAULT 0,
    done_handlers TEXT NOT NULL DEFAULT '[]',
    last_error    TEXT,
    claimed_by    TEXT,
    claim_until   REAL,
    done_at       REAL
);
CREATE INDEX outbox_undone ON outbox (id) WHERE done_at IS NULL;
CREATE INDEX outbox_undone_by_run ON outbox (run_id, id) WHERE done_at IS NULL;

CREATE TABLE workers (
    id           TEXT PRIMARY KEY,
    host         TEXT NOT NULL,
    pid          INTEGER NOT NULL,
    heartbeat_at REAL NOT NULL
);
