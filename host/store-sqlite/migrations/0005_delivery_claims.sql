-- Deliveries are claimed for each attempt (see the store contract's claim
-- rules in runhook-store): a claim is a token with an expiry, taken just
-- before an attempt's first request and cleared by the attempt's record.
-- A claim that expires without a record is an attempt cut short (the
-- process stopped during it): the next claim lists it as interrupted.

ALTER TABLE delivery_state ADD COLUMN claim_token TEXT;
ALTER TABLE delivery_state ADD COLUMN claimed_at TEXT;
ALTER TABLE delivery_state ADD COLUMN claimed_until TEXT;

-- The worker's due query skips live claims by reading the row itself: the
-- claim columns stay out of the `delivery_due` index, so taking and clearing
-- a claim rewrites one row, not an index entry as well.

-- Which of its rule's webhooks a delivery goes to (a stable id in the
-- rule's spec), so a redelivery follows the webhook when its URL changes.
-- Deliveries queued before have none: they follow the rule's only webhook,
-- or the one with the URL they were sent to.
ALTER TABLE outbox ADD COLUMN webhook_id TEXT;
