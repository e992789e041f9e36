-- Alert rules: the definition (secrets sealed), and the state its
-- evaluations leave (JSON), versioned so one evaluation commits over it.
CREATE TABLE alerts (
    id         uuid PRIMARY KEY,
    spec       text NOT NULL,
    created_at timestamptz NOT NULL,
    updated_at timestamptz NOT NULL,
    state      text NOT NULL,
    version    bigint NOT NULL DEFAULT 0
);
