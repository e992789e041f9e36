-- Leases (see the store contract's `leases`): which replica runs each
-- rule's cycles, fenced by an epoch every take bumps; replicas' heartbeats;
-- singletons for work done once. The embedded store has one process, which
-- holds every lease; the tables keep both stores' behaviour the same.

ALTER TABLE rules ADD COLUMN lease_owner TEXT;
ALTER TABLE rules ADD COLUMN lease_epoch INTEGER NOT NULL DEFAULT 0;
ALTER TABLE rules ADD COLUMN lease_until TEXT;

CREATE TABLE replicas (
    id          TEXT PRIMARY KEY,
    alive_until TEXT NOT NULL
);

CREATE TABLE singletons (
    name  TEXT PRIMARY KEY,
    owner TEXT NOT NULL,
    until TEXT NOT NULL
);
