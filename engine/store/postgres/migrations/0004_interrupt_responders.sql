-- Schema version 5: who may answer each interrupt, one row per responder, so "what may
-- this person answer now" (a Slack Home tab, /signoff pending, a web inbox) is an index
-- range scan rather than a pass over every pending interrupt. '*' stands for "anyone"
-- (an interrupt without responders). Rows are written by triggers in the same
-- transaction as the interrupt, and marked decided (pending = false) when it is resolved,
-- so they also answer "recently decided". The escalation code keeps them right through
-- engine.store.postgres.responders.index_responders when it adds responders later.
CREATE TABLE interrupt_responders (
    run_id          TEXT COLLATE "C" NOT NULL,
    interrupt_id    TEXT COLLATE "C" NOT NULL,
    responder       TEXT COLLATE "C" NOT NULL,
    kind            TEXT NOT NULL,
    pending         BOOLEAN NOT NULL,
    requester       TEXT,
    allow_requester BOOLEAN NOT NULL,
    created_at      DOUBLE PRECISION NOT NULL,
    resolved_at     DOUBLE PRECISION,
    PRIMARY KEY (run_id, interrupt_id, responder)
);
CREATE INDEX responders_pending ON interrupt_responders (responder, pending, created_at);
CREATE INDEX responders_decided ON interrupt_responders (responder, resolved_at) WHERE NOT pending;

CREATE FUNCTION signoff_index_responders() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    who TEXT[] := ARRAY(SELECT jsonb_array_elements_text(
        COALESCE(NEW.spec_json::jsonb -> 'responders', '[]'::jsonb)));
BEGIN
    IF cardinality(who) = 0 THEN
        who := ARRAY['*'];
    END IF;
    INSERT INTO interrupt_responders (run_id, interrupt_id, responder, kind, pending,
        requester, allow_requester, created_at, resolved_at)
    SELECT NEW.run_id, NEW.id, w, NEW.kind, NEW.status = 'pending',
        (SELECT requester FROM runs WHERE id = NEW.run_id),
        COALESCE((NEW.spec_json::jsonb ->> 'allow_requester')::boolean, false),
        NEW.created_at, NEW.resolved_at
    FROM unnest(who) AS w
    ON CONFLICT DO NOTHING;
    RETURN NULL;
END $$;

CREATE TRIGGER interrupt_responders_on_insert AFTER INSERT ON interrupts
    FOR EACH ROW EXECUTE FUNCTION signoff_index_responders();

CREATE FUNCTION signoff_resolve_responders() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE interrupt_responders SET pending = false, resolved_at = NEW.resolved_at
    WHERE run_id = NEW.run_id AND interrupt_id = NEW.id;
    RETURN NULL;
END $$;

CREATE TRIGGER interrupt_responders_on_resolve AFTER UPDATE OF status ON interrupts
    FOR EACH ROW WHEN (NEW.status <> 'pending' AND OLD.status = 'pending')
    EXECUTE FUNCTION signoff_resolve_responders();

-- Backfill from the interrupts already stored.
INSERT INTO interrupt_responders (run_id, interrupt_id, responder, kind, pending,
    requester, allow_requester, created_at, resolved_at)
SELECT i.run_id, i.id, w.responder, i.kind, i.status = 'pending', ru.requester,
    COALESCE((i.spec_json::jsonb ->> 'allow_requester')::boolean, false),
    i.created_at, i.resolved_at
FROM interrupts i JOIN runs ru ON ru.id = i.run_id
CROSS JOIN LATERAL (
    SELECT jsonb_array_elements_text(i.spec_json::jsonb -> 'responders') AS responder
    UNION ALL
    SELECT '*' WHERE jsonb_array_length(COALESCE(i.spec_json::jsonb -> 'responders', '[]')) = 0
) w
ON CONFLICT DO NOTHING;

-- Snoozes ("remind me in 1h" for one person) are timers of kind 'snooze' naming who asked.
ALTER TABLE timers ADD COLUMN actor TEXT;

-- Adapters' per-person preferences (e.g. the Slack bot's digest on/off): a small
-- key-value store, one JSON value per (actor, key).
CREATE TABLE preferences (
    actor      TEXT COLLATE "C" NOT NULL,
    key        TEXT COLLATE "C" NOT NULL,
    value_json TEXT NOT NULL,
    updated_at DOUBLE PRECISION NOT NULL,
    PRIMARY KEY (actor, key)
);
