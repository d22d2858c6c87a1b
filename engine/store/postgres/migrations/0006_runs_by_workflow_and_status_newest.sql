-- Keyset paging of one workflow's runs in one status (newest first: created_at DESC,
-- id ASC), e.g. the request API's pending requests (the request workflow's running and
-- parked runs) or the console's runs filtered by workflow and status. runs_by_workflow
-- (workflow, status, created_at) could not give that order without a sort, so the
-- planner read runs_by_workflow_newest (workflow, created_at DESC, id) and checked each
-- row's status: every run the workflow ever had, to find the few that wait (listing 5
-- pending requests among 20,000 decided ones read 20,000 rows). This index gives the
-- order directly and still covers count_runs_by_workflow (its workflow, status prefix),
-- so it replaces runs_by_workflow: each run still writes one entry here.
CREATE INDEX runs_by_workflow_status_newest ON runs (workflow, status, created_at DESC, id);
DROP INDEX runs_by_workflow;
