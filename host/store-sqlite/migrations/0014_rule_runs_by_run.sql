-- The rules that acted on a run (a run's page) in one read.
CREATE INDEX rule_runs_by_run ON rule_runs (run_id);
