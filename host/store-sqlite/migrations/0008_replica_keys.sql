-- The ids of the secret keys each replica holds, current first, as of
-- its last heartbeat: a key rotation proceeds once every replica has the
-- keys it needs.

ALTER TABLE replicas ADD COLUMN key_ids TEXT NOT NULL DEFAULT '';
