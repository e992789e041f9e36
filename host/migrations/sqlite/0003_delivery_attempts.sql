-- Delivery operations: every attempt kept, per-endpoint concurrency, listing
-- by rule. URLs, headers and signing secrets in `outbox` and `rules.spec`
-- are sealed by the store (enc:v1:...); `endpoint` is a hash of the
-- target's origin, never the URL.

ALTER TABLE outbox ADD COLUMN endpoint TEXT NOT NULL DEFAULT '';
CREATE INDEX outbox_by_rule ON outbox (rule_id, created_at DESC);
CREATE INDEX outbox_by_time ON outbox (created_at DESC);

CREATE TABLE delivery_attempts (
    delivery_id TEXT NOT NULL,
    attempt     INTEGER NOT NULL,
    started_at  TEXT NOT NULL,
    duration_ms INTEGER NOT NULL,
    class       TEXT NOT NULL,
    status_code INTEGER,
    error       TEXT,
    PRIMARY KEY (delivery_id, attempt)
);
