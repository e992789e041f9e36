-- runhook's store on Postgres: the same tables as the embedded store, in
-- Postgres's types (uuid, timestamptz, bigint), with the change sequence
-- made safe for concurrent writers.
--
-- JSON fields are kept as text, exactly as received: jsonb would reorder
-- keys and drop duplicates of what the SDK sent, and nothing queries them
-- in SQL (filters run in runhook).
--
-- The change sequence is the pair (change_xid, seq): the writing
-- transaction's id, then a sequence value. A reader reads only below the
-- oldest transaction still running (pg_snapshot_xmin), so a transaction
-- that took a lower value but commits later is never passed over.

CREATE TABLE meta (
    key   text PRIMARY KEY,
    value text NOT NULL
);

CREATE SEQUENCE change_seq;

CREATE TABLE sessions (
    id          uuid PRIMARY KEY,
    name        text NOT NULL UNIQUE,
    description text,
    extra       text,
    start_time  timestamptz NOT NULL
);

CREATE TABLE runs (
    id                   uuid PRIMARY KEY,
    session_id           uuid NOT NULL REFERENCES sessions (id),
    trace_id             uuid NOT NULL,
    parent_run_id        uuid,
    dotted_order         text NOT NULL,
    name                 text NOT NULL,
    run_type             text NOT NULL,
    start_time           timestamptz NOT NULL,
    end_time             timestamptz,
    error                text,
    inputs               text,
    outputs              text,
    extra                text,
    events               text,
    serialized           text,
    tags                 text NOT NULL DEFAULT '[]',
    reference_example_id uuid,
    prompt_tokens        bigint,
    completion_tokens    bigint,
    total_tokens         bigint,
    prompt_cost          text,
    completion_cost      text,
    total_cost           text,
    first_token_time     timestamptz,
    thread_id            text,
    change_xid           bigint NOT NULL,
    seq                  bigint NOT NULL,
    inserted_at          timestamptz NOT NULL,
    modified_at          timestamptz NOT NULL
);
CREATE INDEX runs_by_session_time ON runs (session_id, start_time DESC, id DESC);
CREATE INDEX runs_by_time ON runs (start_time DESC, id DESC);
CREATE INDEX runs_by_trace ON runs (trace_id);
CREATE INDEX runs_by_parent ON runs (parent_run_id);
-- A rule's window: its project's runs in change order.
CREATE INDEX runs_by_change ON runs (session_id, change_xid, seq);

CREATE TABLE feedback (
    id              uuid PRIMARY KEY,
    run_id          uuid,
    trace_id        uuid,
    session_id      uuid,
    key             text NOT NULL,
    score           double precision,
    value           text,
    comment         text,
    correction      text,
    feedback_source text NOT NULL,
    extra           text,
    created_at      timestamptz NOT NULL,
    modified_at     timestamptz NOT NULL
);
CREATE INDEX feedback_by_run ON feedback (run_id, created_at, id);
CREATE INDEX feedback_by_key ON feedback (key);

CREATE TABLE attachments (
    run_id uuid NOT NULL,
    name   text NOT NULL,
    mime   text NOT NULL,
    data   bytea NOT NULL,
    PRIMARY KEY (run_id, name)
);

CREATE TABLE rules (
    id          uuid PRIMARY KEY,
    spec        text NOT NULL,
    created_at  timestamptz NOT NULL,
    updated_at  timestamptz NOT NULL,
    -- The change-sequence position when the rule was created.
    created_xid bigint NOT NULL,
    created_seq bigint NOT NULL,
    -- The position this rule has processed up to.
    wm_xid      bigint NOT NULL,
    wm_seq      bigint NOT NULL,
    -- End of the last window (start of the next).
    window_end  timestamptz NOT NULL
);

CREATE TABLE rule_runs (
    rule_id      uuid NOT NULL,
    run_id       uuid NOT NULL,
    run_name     text NOT NULL,
    run_type     text NOT NULL,
    session_id   uuid NOT NULL,
    thread_id    text,
    window_start timestamptz NOT NULL,
    window_end   timestamptz NOT NULL,
    applied_at   timestamptz NOT NULL,
    webhooks     text,
    evaluators   text,
    PRIMARY KEY (rule_id, run_id)
);
CREATE INDEX rule_runs_by_time ON rule_runs (rule_id, applied_at DESC);

CREATE TABLE rule_cycles (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    rule_id      uuid NOT NULL,
    window_start timestamptz NOT NULL,
    window_end   timestamptz NOT NULL,
    candidates   bigint NOT NULL,
    actioned     bigint NOT NULL,
    error        text
);
CREATE INDEX rule_cycles_by_rule ON rule_cycles (rule_id, id DESC);

-- What a delivery sends, written once (URL, header values and secret sealed).
CREATE TABLE outbox (
    id             uuid PRIMARY KEY,
    rule_id        uuid NOT NULL,
    webhook_id     uuid,
    url            text NOT NULL,
    headers        text NOT NULL,
    body           text NOT NULL,
    run_ids        text NOT NULL,
    signing_secret text,
    created_at     timestamptz NOT NULL
);

-- Where a delivery stands, updated by every claim and record.
CREATE TABLE delivery_state (
    id              uuid PRIMARY KEY REFERENCES outbox (id) ON DELETE CASCADE,
    rule_id         uuid NOT NULL,
    -- A hash of the target's origin (per-endpoint concurrency), never the URL.
    endpoint        text NOT NULL,
    status          text NOT NULL,
    attempts        integer NOT NULL,
    next_attempt_at timestamptz NOT NULL,
    created_at      timestamptz NOT NULL,
    last_error      text,
    finished_at     timestamptz,
    claim_token     uuid,
    claimed_at      timestamptz,
    claimed_until   timestamptz
);
CREATE INDEX delivery_due ON delivery_state (next_attempt_at, id) WHERE status = 'pending';
CREATE INDEX delivery_pending_age ON delivery_state (created_at) WHERE status = 'pending';
CREATE INDEX delivery_by_rule ON delivery_state (rule_id, created_at DESC);
CREATE INDEX delivery_by_time ON delivery_state (created_at DESC);

CREATE TABLE delivery_attempts (
    delivery_id uuid NOT NULL,
    attempt     integer NOT NULL,
    started_at  timestamptz NOT NULL,
    duration_ms bigint NOT NULL,
    class       text NOT NULL,
    status_code integer,
    error       text,
    PRIMARY KEY (delivery_id, attempt)
);
