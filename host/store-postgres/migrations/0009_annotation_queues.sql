-- Annotation queues and the runs in them, in the order added.
CREATE TABLE annotation_queues (
    id                  uuid PRIMARY KEY,
    name                text NOT NULL,
    description         text,
    rubric_instructions text,
    created_at          timestamptz NOT NULL,
    updated_at          timestamptz NOT NULL
);

CREATE TABLE queue_runs (
    queue_id           uuid NOT NULL REFERENCES annotation_queues (id) ON DELETE CASCADE,
    run_id             uuid NOT NULL,
    added_at           timestamptz NOT NULL,
    last_reviewed_time timestamptz,
    done               boolean NOT NULL DEFAULT false,
    PRIMARY KEY (queue_id, run_id)
);
CREATE INDEX queue_runs_in_order ON queue_runs (queue_id, done, added_at, run_id);

-- The annotation-queue action's outcome per (rule, run).
ALTER TABLE rule_runs ADD COLUMN add_to_annotation_queue text;
