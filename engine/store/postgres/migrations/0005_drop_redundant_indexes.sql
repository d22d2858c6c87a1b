-- Index audit (issue 13): every index is rewritten by each write that changes its
-- columns, and a change to any indexed column rules out a HOT (in-place) update, so an
-- index that no query needs is pure write cost.
-- * runs_by_status (status, created_at) is a prefix of runs_by_status_newest (status,
--   created_at DESC, id), which serves every query it did (a B-tree is read in either
--   direction): each start, status change and finish writes one index entry fewer.
-- * responders_decided (responder, resolved_at) WHERE NOT pending: "recently decided"
--   groups by interrupt before it sorts, so it reads all of a person's decided rows
--   either way, and responders_pending (responder, pending, ...) finds exactly those.
--   Each resolve now writes one index entry per responder row fewer.
-- * outbox_by_claimant (claimed_by) served only the release of a dead worker's outbox
--   claims, which now reads outbox_undone (only undone messages can hold a claim). A
--   claim, a release and a retry's reschedule now change no indexed column: one index
--   entry fewer each, and an in-place (HOT) update wherever the page has room.
-- runs_by_workflow stays: it covers count_runs_by_workflow (the console's workflow page).
-- tests/engine/store/test_query_plans.py keeps every hot query on an index.
DROP INDEX runs_by_status;
DROP INDEX responders_decided;
DROP INDEX outbox_by_claimant;
