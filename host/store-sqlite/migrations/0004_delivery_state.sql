-- Delivery state leaves the outbox for a narrow table of its own.
--
-- `outbox` now holds what a delivery sends (URL, headers, body, secret),
-- written once and never updated; `delivery_state` holds where it stands
-- (status, attempts, due time), updated after every attempt. Before this,
-- each attempt's record rewrote the outbox row with its body (a page of
-- WAL per delivery), which made the single SQLite writer the ceiling of
-- the delivery worker.
--
-- Both new tables are WITHOUT ROWID: their primary key is the only b-tree
-- a row lives in, so inserting an attempt or updating a state touches one
-- tree, not a table and its key index.

CREATE TABLE delivery_state (
    id              TEXT PRIMARY KEY,
    rule_id         TEXT NOT NULL,
    -- A hash of the target's origin (per-endpoint concurrency), never the URL.
    endpoint        TEXT NOT NULL,
    status          TEXT NOT NULL,
    attempts        INTEGER NOT NULL,
    next_attempt_at TEXT NOT NULL,
    created_at      TEXT NOT NULL,
    last_error      TEXT,
    finished_at     TEXT
) WITHOUT ROWID;

INSERT INTO delivery_state (id, rule_id, endpoint, status, attempts, next_attempt_at, created_at, last_error, finished_at)
    SELECT id, rule_id, endpoint, status, attempts, next_attempt_at, created_at, last_error, finished_at FROM outbox;

-- The worker's due query, in its keyset order; covering, so busy endpoints
-- are skipped without reading rows. Only pending deliveries are in it.
CREATE INDEX delivery_due ON delivery_state (next_attempt_at, id, endpoint) WHERE status = 'pending';
-- Outbox depth and age (metrics) from the pending deliveries alone.
CREATE INDEX delivery_pending_age ON delivery_state (created_at) WHERE status = 'pending';
-- Listing, newest first, all or by rule.
CREATE INDEX delivery_by_rule ON delivery_state (rule_id, created_at DESC);
CREATE INDEX delivery_by_time ON delivery_state (created_at DESC);

DROP INDEX outbox_due;
DROP INDEX outbox_pending_age;
DROP INDEX outbox_by_rule;
DROP INDEX outbox_by_time;
ALTER TABLE outbox DROP COLUMN status;
ALTER TABLE outbox DROP COLUMN attempts;
ALTER TABLE outbox DROP COLUMN next_attempt_at;
ALTER TABLE outbox DROP COLUMN last_error;
ALTER TABLE outbox DROP COLUMN finished_at;
ALTER TABLE outbox DROP COLUMN endpoint;

CREATE TABLE delivery_attempts_new (
    delivery_id TEXT NOT NULL,
    attempt     INTEGER NOT NULL,
    started_at  TEXT NOT NULL,
    duration_ms INTEGER NOT NULL,
    class       TEXT NOT NULL,
    status_code INTEGER,
    error       TEXT,
    PRIMARY KEY (delivery_id, attempt)
) WITHOUT ROWID;
INSERT INTO delivery_attempts_new SELECT delivery_id, attempt, started_at, duration_ms, class, status_code, error
    FROM delivery_attempts;
DROP TABLE delivery_attempts;
ALTER TABLE delivery_attempts_new RENAME TO delivery_attempts;
