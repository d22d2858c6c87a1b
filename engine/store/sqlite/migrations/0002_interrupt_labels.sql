-- Schema version 2: a caller-chosen label on interrupts (ctx.suspend(label=...)),
-- filterable in Engine.list_interrupts(label=...). The label is also in spec_json.
ALTER TABLE interrupts ADD COLUMN label TEXT;
CREATE INDEX interrupts_by_label ON interrupts (label, status, created_at) WHERE label IS NOT NULL;
