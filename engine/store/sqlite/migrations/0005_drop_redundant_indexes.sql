-- Index audit (issue 13): every index is rewritten by each write that changes its
-- columns, so one that no query needs is pure write cost.
-- * runs_by_status (status, created_at) is a prefix of runs_by_status_newest (status,
--   created_at DESC, id), which serves every query it did (a B-tree is read in either
--   direction): each start, status change and finish updates one index fewer.
-- * responders_decided (responder, resolved_at) WHERE pending = 0 was never chosen:
--   "recently decided" groups by interrupt before it sorts, so it reads all of a
--   person's decided rows either way, and responders_pending (responder, pending, ...)
--   finds exactly those. Each resolve now moves one index entry per responder, not two.
-- runs_by_workflow stays: it covers count_runs_by_workflow (the console's workflow page).
-- tests/engine/store/test_query_plans.py keeps every hot query on an index.
DROP INDEX runs_by_status;
DROP INDEX responders_decided;
