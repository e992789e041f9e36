-- Uploaded plugins (see the store contract's `plugins`): components by the
-- SHA-256 of their bytes, and which rules use each, so that a plugin in
-- use cannot be deleted and a rule cannot name one that is not stored.

CREATE TABLE plugins (
    digest       TEXT PRIMARY KEY,
    name         TEXT NOT NULL,
    size         INTEGER NOT NULL,
    capabilities TEXT NOT NULL,
    bytes        BLOB NOT NULL,
    created_at   TEXT NOT NULL
);

CREATE TABLE rule_plugins (
    rule_id TEXT NOT NULL REFERENCES rules (id) ON DELETE CASCADE,
    digest  TEXT NOT NULL REFERENCES plugins (digest),
    PRIMARY KEY (rule_id, digest)
);

CREATE INDEX rule_plugins_by_digest ON rule_plugins (digest);
