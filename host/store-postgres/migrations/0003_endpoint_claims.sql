-- Exact per-endpoint concurrency across replicas. A claim locks its
-- endpoint's row here, so claims for one endpoint are taken one replica at
-- a time, and counts the endpoint's live claims (through the partial
-- index: only deliveries being attempted are in it) before taking more.

CREATE TABLE endpoints (
    endpoint text PRIMARY KEY
);

CREATE INDEX delivery_claimed ON delivery_state (endpoint) WHERE claim_token IS NOT NULL;
