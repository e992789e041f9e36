-- Leases (see the store contract's `leases`): which replica runs each
-- rule's cycles, fenced by an epoch every take bumps; replicas'
-- heartbeats; singletons for work done once across the cluster. Times are
-- the database's own (now()), so replicas' clocks never decide who holds what.

ALTER TABLE rules ADD COLUMN lease_owner text;
ALTER TABLE rules ADD COLUMN lease_epoch bigint NOT NULL DEFAULT 0;
ALTER TABLE rules ADD COLUMN lease_until timestamptz;

CREATE TABLE replicas (
    id          text PRIMARY KEY,
    alive_until timestamptz NOT NULL
);

CREATE TABLE singletons (
    name  text PRIMARY KEY,
    owner text NOT NULL,
    until timestamptz NOT NULL
);
