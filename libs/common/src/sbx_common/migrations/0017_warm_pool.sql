-- Written by: api. How many ready sandboxes of each environment version the orchestrator keeps
-- waiting for the owner's creates (versions stay immutable: older rows get 0, no pool).
ALTER TABLE environment_versions
    ADD COLUMN warm_pool integer NOT NULL DEFAULT 0 CHECK (warm_pool BETWEEN 0 AND 20);

-- Written by: orchestrator (fills and drains), api (claims: deletes the row and inserts the sandbox
-- of the same id in one transaction). One row per pooled container `sbx-<id>`: `id` is the sandbox
-- id reserved for it, so a claimed container needs no rename and its labels stay true.
CREATE TABLE warm_pool_slots (
    id                  uuid PRIMARY KEY,
    owner_id            uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    environment_id      uuid NOT NULL REFERENCES environments (id) ON DELETE CASCADE,
    environment_version integer NOT NULL,
    cpu                 double precision NOT NULL,
    memory_mib          integer NOT NULL,
    ready               boolean NOT NULL DEFAULT false,
    created_at          timestamptz NOT NULL DEFAULT clock_timestamp()
);
CREATE INDEX warm_pool_slots_version ON warm_pool_slots (environment_id, environment_version) WHERE ready;
CREATE INDEX warm_pool_slots_owner ON warm_pool_slots (owner_id);
