-- Alert rules: the definition (secrets sealed), and the state its
-- evaluations leave (JSON), versioned so one evaluation commits over it.
CREATE TABLE alerts (
    id         TEXT PRIMARY KEY,
    spec       TEXT NOT NULL,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    state      TEXT NOT NULL,
    version    INTEGER NOT NULL DEFAULT 0
);
