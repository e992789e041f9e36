-- Datasets and their examples (LangSmith's datasets API). JSON as text;
-- an example's splits as ",a,b," so "in split a" is one LIKE.
CREATE TABLE datasets (
    id             TEXT PRIMARY KEY,
    name           TEXT NOT NULL UNIQUE,
    description    TEXT,
    data_type      TEXT NOT NULL,
    inputs_schema  TEXT,
    outputs_schema TEXT,
    metadata       TEXT,
    created_at     TEXT NOT NULL,
    modified_at    TEXT NOT NULL
);

CREATE TABLE examples (
    id            TEXT PRIMARY KEY,
    dataset_id    TEXT NOT NULL REFERENCES datasets (id) ON DELETE CASCADE,
    inputs        TEXT NOT NULL,
    outputs       TEXT,
    metadata      TEXT,
    splits        TEXT NOT NULL,
    source_run_id TEXT,
    created_at    TEXT NOT NULL,
    modified_at   TEXT NOT NULL
);
-- Listing a dataset's examples in the order they were added.
CREATE INDEX examples_by_dataset ON examples (dataset_id, created_at, id);
