-- Schema version 6: the store writes an interrupt's responder rows itself, just before the
-- interrupt (engine.store.sqlite.write.write_steps), with the values it already has in
-- hand. The insert trigger of migration 0004 parsed the stored spec JSON again
-- (json_each, json_extract) and looked the run's requester up once per row: ~20 us of a
-- start's ~205 us (docs/perf-history.md, "Issue 13, fifth pass"). It now runs only for an
-- interrupt whose rows are not there yet, so an instance of an older version that still
-- relies on it (during a rolling upgrade) keeps the index right; for the rows this
-- version writes, the check is one primary-key probe.
DROP TRIGGER interrupt_responders_on_insert;

CREATE TRIGGER interrupt_responders_on_insert AFTER INSERT ON interrupts
WHEN NOT EXISTS (
    SELECT 1 FROM interrupt_responders WHERE run_id = NEW.run_id AND interrupt_id = NEW.id
)
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
