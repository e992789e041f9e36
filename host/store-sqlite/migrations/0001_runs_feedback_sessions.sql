-- Projects (LangSmith "tracing sessions"), runs, feedback, attachments and
-- the store-wide change sequence that rules poll on.

CREATE TABLE counters (
    name  TEXT PRIMARY KEY,
    value INTEGER NOT NULL
);
INSERT INTO counters (name, value) VALUES ('change_seq', 0);

CREATE TABLE meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);

CREATE TABLE sessions (
    id          TEXT PRIMARY KEY,
    name        TEXT NOT NULL UNIQUE,
    description TEXT,
    extra       TEXT,
    start_time  TEXT NOT NULL
);

CREATE TABLE runs (
    id                   TEXT PRIMARY KEY,
    session_id           TEXT NOT NULL REFERENCES sessions (id),
    trace_id             TEXT NOT NULL,
    parent_run_id        TEXT,
    dotted_order         TEXT NOT NULL,
    name                 TEXT NOT NULL,
    run_type             TEXT NOT NULL,
    start_time           TEXT NOT NULL,
    end_time             TEXT,
    error                TEXT,
    inputs               TEXT,
    outputs              TEXT,
    extra                TEXT,
    events               TEXT,
    serialized           TEXT,
    tags                 TEXT NOT NULL DEFAULT '[]',
    reference_example_id TEXT,
    prompt_tokens        INTEGER,
    completion_tokens    INTEGER,
    total_tokens         INTEGER,
    prompt_cost          TEXT,
    completion_cost      TEXT,
    total_cost           TEXT,
    first_token_time     TEXT,
    thread_id            TEXT,
    seq                  INTEGER NOT NULL,
    inserted_at          TEXT NOT NULL,
    modified_at          TEXT NOT NULL
);
CREATE INDEX runs_by_session_time ON runs (session_id, start_time DESC, id DESC);
CREATE INDEX runs_by_time ON runs (start_time DESC, id DESC);
CREATE INDEX runs_by_trace ON runs (trace_id);
CREATE INDEX runs_by_parent ON runs (parent_run_id);
CREATE INDEX runs_by_session_seq ON runs (session_id, seq);

CREATE TABLE feedback (
    id              TEXT PRIMARY KEY,
    run_id          TEXT,
    trace_id        TEXT,
    session_id      TEXT,
    key             TEXT NOT NULL,
    score           REAL,
    value           TEXT,
    comment         TEXT,
    correction      TEXT,
    feedback_source TEXT NOT NULL,
    extra           TEXT,
    created_at      TEXT NOT NULL,
    modified_at     TEXT NOT NULL
);
CREATE INDEX feedback_by_run ON feedback (run_id, created_at, id);
CREATE INDEX feedback_by_key ON feedback (key);

CREATE TABLE attachments (
    run_id TEXT NOT NULL,
    name   TEXT NOT NULL,
    mime   TEXT NOT NULL,
    data   BLOB NOT NULL,
    PRIMARY KEY (run_id, name)
);
