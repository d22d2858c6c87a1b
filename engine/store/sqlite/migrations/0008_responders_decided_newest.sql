-- "Recently decided" (the Slack Home tab, the console) for a person: the interrupts they,
-- their groups or anyone ('*') could answer, most recently decided first. Grouping every
-- decided row of those responders by interrupt and sorting read all of them: a Home tab
-- built after 20,000 decisions open to anyone read 20,000 rows to show 10. With this
-- index each responder's decided rows come newest first, so the store reads at most the
-- page's size from each (engine.store.sqlite.responders.decided). It costs a resolve one
-- index entry per responder row of the interrupt (migration 0005 dropped an index on
-- (responder, resolved_at) when the query could not use it this way).
CREATE INDEX responders_decided_newest ON interrupt_responders (responder, resolved_at DESC)
    WHERE pending = 0;
