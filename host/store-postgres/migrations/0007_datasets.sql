-- Datasets and their examples (LangSmith's datasets API). JSON as text,
-- as everywhere in this store; an example's splits as ",a,b," so "in
-- split a" is one LIKE.
CREATE TABLE datasets (
    id             uuid PRIMARY KEY,
    name           text NOT NULL UNIQUE,
    description    text,
    data_type      text NOT NULL,
    inputs_schema  text,
    outputs_schema text,
    metadata       text,
    created_at     timestamptz NOT NULL,
    modified_at    timestamptz NOT NULL
);

CREATE TABLE examples (
    id            uuid PRIMARY KEY,
    dataset_id    uuid NOT NULL REFERENCES datasets (id) ON DELETE CASCADE,
    inputs        text NOT NULL,
    outputs       text,
    metadata      text,
    splits        text NOT NULL,
    source_run_id uuid,
    created_at    timestamptz NOT NULL,
    modified_at   timestamptz NOT NULL
);
-- Listing a dataset's examples in the order they were added.
CREATE INDEX examples_by_dataset ON examples (dataset_id, created_at, id);
