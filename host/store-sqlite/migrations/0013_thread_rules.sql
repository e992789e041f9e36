-- Runs a thread rule holds until their thread has been idle long enough
-- (by the runs' own times); released when the thread is acted on.
CREATE TABLE rule_thread_runs (
    rule_id   TEXT NOT NULL,
    run_id    TEXT NOT NULL,
    thread_id TEXT NOT NULL,
    activity  TEXT NOT NULL,
    PRIMARY KEY (rule_id, run_id)
);
CREATE INDEX rule_thread_runs_by_thread ON rule_thread_runs (rule_id, thread_id, activity);
