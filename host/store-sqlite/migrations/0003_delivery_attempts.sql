-- Delivery operations: every attempt kept, per-endpoint concurrency, listing
-- by rule. URLs, headers and signing secrets in `outbox` and `rules.spec`
-- are sealed by the store (enc:v1:...); `endpoint` is a hash of the
-- target's origin, never the URL.

ALTER TABLE outbox ADD COLUMN endpoint TEXT NOT NULL DEFAULT '';
CREATE INDEX outbox_by_rule ON outbox (rule_id, created_at DESC);
CREATE INDEX outbox_by_time ON outbox (created_at DESC);
-- The worker's query skips busy endpoints without reading rows (bodies are
-- large); the outbox depth and age (metrics) come from an index alone.
DROP INDEX outbox_due;
CREATE INDEX outbox_due ON outbox (status, next_attempt_at, endpoint);
CREATE INDEX outbox_pending_age ON outbox (status, created_at);

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
