-- Automation rules, their per-(rule, run) log, cycle history, and the
-- webhook outbox written in the same transaction as a rule's watermark.

CREATE TABLE rules (
    id          TEXT PRIMARY KEY,
    spec        TEXT NOT NULL,
    created_at  TEXT NOT NULL,
    updated_at  TEXT NOT NULL,
    created_seq INTEGER NOT NULL,
    -- The change sequence this rule has processed up to.
    watermark   INTEGER NOT NULL,
    -- End of the last window (start of the next).
    window_end  TEXT NOT NULL
);

CREATE TABLE rule_runs (
    rule_id      TEXT NOT NULL,
    run_id       TEXT NOT NULL,
    run_name     TEXT NOT NULL,
    run_type     TEXT NOT NULL,
    session_id   TEXT NOT NULL,
    thread_id    TEXT,
    window_start TEXT NOT NULL,
    window_end   TEXT NOT NULL,
    applied_at   TEXT NOT NULL,
    webhooks     TEXT,
    evaluators   TEXT,
    PRIMARY KEY (rule_id, run_id)
);
CREATE INDEX rule_runs_by_time ON rule_runs (rule_id, applied_at DESC);

CREATE TABLE rule_cycles (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    rule_id      TEXT NOT NULL,
    window_start TEXT NOT NULL,
    window_end   TEXT NOT NULL,
    candidates   INTEGER NOT NULL,
    actioned     INTEGER NOT NULL,
    error        TEXT
);
CREATE INDEX rule_cycles_by_rule ON rule_cycles (rule_id, id DESC);

CREATE TABLE outbox (
    id              TEXT PRIMARY KEY,
    rule_id         TEXT NOT NULL,
    url             TEXT NOT NULL,
    headers         TEXT NOT NULL,
    body            TEXT NOT NULL,
    run_ids         TEXT NOT NULL,
    signing_secret  TEXT,
    created_at      TEXT NOT NULL,
    status          TEXT NOT NULL,
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at TEXT NOT NULL,
    last_error      TEXT,
    finished_at     TEXT
);
CREATE INDEX outbox_due ON outbox (status, next_attempt_at);
