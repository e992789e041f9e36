-- Uploaded plugins (see the store contract's `plugins`): components by the
-- SHA-256 of their bytes, and which rules use each. The foreign key makes
-- the database settle a rule saved while its plugin is deleted: one of the
-- two fails.

CREATE TABLE plugins (
    digest       text PRIMARY KEY,
    name         text NOT NULL,
    size         bigint NOT NULL,
    capabilities text NOT NULL,
    bytes        bytea NOT NULL,
    created_at   timestamptz NOT NULL
);

CREATE TABLE rule_plugins (
    rule_id uuid NOT NULL REFERENCES rules (id) ON DELETE CASCADE,
    digest  text NOT NULL REFERENCES plugins (digest),
    PRIMARY KEY (rule_id, digest)
);

CREATE INDEX rule_plugins_by_digest ON rule_plugins (digest);
