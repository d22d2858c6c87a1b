-- Keyset paging of runs (newest first: created_at DESC, id ASC) under each filter the
-- console offers, so any page is an index range scan however many runs there are.
CREATE INDEX runs_newest ON runs (created_at DESC, id);
CREATE INDEX runs_by_status_newest ON runs (status, created_at DESC, id);
CREATE INDEX runs_by_workflow_newest ON runs (workflow, created_at DESC, id);
CREATE INDEX runs_by_requester ON runs (requester, created_at DESC, id);
