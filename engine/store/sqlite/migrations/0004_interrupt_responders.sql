-- Schema version 5: who may answer each interrupt, one row per responder, so "what may
-- this person answer now" (a Slack Home tab, /signoff pending, a web inbox) is an index
-- range scan rather than a pass over every pending interrupt. '*' stands for "anyone"
-- (an interrupt without responders). Rows are written by triggers in the same
-- transaction as the interrupt, and marked decided (pending = 0) when it is resolved,
-- so they also answer "recently decided". The escalation code keeps them right through
-- engine.store.sqlite.responders.index_responders when it adds responders later.
CREATE TABLE interrupt_responders (
    run_id          TEXT NOT NULL,
    interrupt_id    TEXT NOT NULL,
    responder       TEXT NOT NULL,
    kind            TEXT NOT NULL,
    pending         INTEGER NOT NULL,
    requester       TEXT,
    allow_requester INTEGER NOT NULL,
    created_at      REAL NOT NULL,
    resolved_at     REAL,
    PRIMARY KEY (run_id, interrupt_id, responder)
) WITHOUT ROWID;
CREATE INDEX responders_pending ON interrupt_responders (responder, pending, created_at);
CREATE INDEX responders_decided ON interrupt_responders (responder, resolved_at) WHERE pending = 0;

CREATE TRIGGER interrupt_responders_on_insert AFTER INSERT ON interrupts
BEGIN
    INSERT OR IGNORE INTO interrupt_responders (run_id, interrupt_id, responder, kind, pending,
        requester, allow_requester, created_at, resolved_at)
    SELECT NEW.run_id, NEW.id, r.value, NEW.kind, NEW.status = 'pending',
        (SELECT requester FROM runs WHERE id = NEW.run_id),
        COALESCE(json_extract(NEW.spec_json, '$.allow_requester'), 0),
        NEW.created_at, NEW.resolved_at
    FROM json_each(NEW.spec_json, '$.responders') AS r;
    INSERT OR IGNORE INTO interrupt_responders (run_id, interrupt_id, responder, kind, pending,
        requester, allow_requester, created_at, resolved_at)
    SELECT NEW.run_id, NEW.id, '*', NEW.kind, NEW.status = 'pending',
        (SELECT requester FROM runs WHERE id = NEW.run_id),
        COALESCE(json_extract(NEW.spec_json, '$.allow_requester'), 0),
        NEW.created_at, NEW.resolved_at
    WHERE COALESCE(json_array_length(NEW.spec_json, '$.responders'), 0) = 0;
END;

CREATE TRIGGER interrupt_responders_on_resolve AFTER UPDATE OF status ON interrupts
WHEN NEW.status <> 'pending' AND OLD.status = 'pending'
BEGIN
    UPDATE interrupt_responders SET pending = 0, resolved_at = NEW.resolved_at
    WHERE run_id = NEW.run_id AND interrupt_id = NEW.id;
END;

-- Backfill from the interrupts already stored.
INSERT OR IGNORE INTO interrupt_responders (run_id, interrupt_id, responder, kind, pending,
    requester, allow_requester, created_at, resolved_at)
SELECT i.run_id, i.id, r.value, i.kind, i.status = 'pending', ru.requester,
    COALESCE(json_extract(i.spec_json, '$.allow_requester'), 0), i.created_at, i.resolved_at
FROM interrupts i JOIN runs ru ON ru.id = i.run_id, json_each(i.spec_json, '$.responders') AS r;
INSERT OR IGNORE INTO interrupt_responders (run_id, interrupt_id, responder, kind, pending,
    requester, allow_requester, created_at, resolved_at)
SELECT i.run_id, i.id, '*', i.kind, i.status = 'pending', ru.requester,
    COALESCE(json_extract(i.spec_json, '$.allow_requester'), 0), i.created_at, i.resolved_at
FROM interrupts i JOIN runs ru ON ru.id = i.run_id
WHERE COALESCE(json_array_length(i.spec_json, '$.responders'), 0) = 0;

-- Snoozes ("remind me in 1h" for one person) are timers of kind 'snooze' naming who asked.
ALTER TABLE timers ADD COLUMN actor TEXT;

-- Adapters' per-person preferences (e.g. the Slack bot's digest on/off): a small
-- key-value store, one JSON value per (actor, key).
CREATE TABLE preferences (
    actor      TEXT NOT NULL,
    key        TEXT NOT NULL,
    value_json TEXT NOT NULL,
    updated_at REAL NOT NULL,
    PRIMARY KEY (actor, key)
) WITHOUT ROWID;
