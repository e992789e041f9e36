-- Annotation queues and the runs in them, in the order added.
CREATE TABLE annotation_queues (
    id                  TEXT PRIMARY KEY,
    name                TEXT NOT NULL,
    description         TEXT,
    rubric_instructions TEXT,
    created_at          TEXT NOT NULL,
    updated_at          TEXT NOT NULL
);

CREATE TABLE queue_runs (
    queue_id           TEXT NOT NULL,
    run_id             TEXT NOT NULL,
    added_at           TEXT NOT NULL,
    last_reviewed_time TEXT,
    done               INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (queue_id, run_id)
);
CREATE INDEX queue_runs_in_order ON queue_runs (queue_id, done, added_at, run_id);

-- The annotation-queue action's outcome per (rule, run).
ALTER TABLE rule_runs ADD COLUMN add_to_annotation_queue TEXT;
