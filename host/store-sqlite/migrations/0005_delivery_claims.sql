-- Deliveries are claimed for each attempt (see the store contract's claim
-- rules in runhook-store): a claim is a token with an expiry, taken just
-- before an attempt's first request and cleared by the attempt's record.
-- A claim that expires without a record is an attempt cut short (the
-- process stopped during it): the next claim lists it as interrupted.

ALTER TABLE delivery_state ADD COLUMN claim_token TEXT;
ALTER TABLE delivery_state ADD COLUMN claimed_at TEXT;
ALTER TABLE delivery_state ADD COLUMN claimed_until TEXT;

-- The worker's due query skips live claims; the index stays covering.
DROP INDEX delivery_due;
CREATE INDEX delivery_due ON delivery_state (next_attempt_at, id, endpoint, claimed_until) WHERE status = 'pending';
