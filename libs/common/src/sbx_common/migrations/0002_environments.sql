-- Written by: api. One row per environment; its versions are immutable rows below.
CREATE TABLE environments (
    id              uuid PRIMARY KEY,
    owner_id        uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    name            text NOT NULL,
    current_version integer NOT NULL DEFAULT 1,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    deleted_at      timestamptz
);
-- Names are unique per user among environments that are not deleted.
CREATE UNIQUE INDEX environments_owner_name ON environments (owner_id, name) WHERE deleted_at IS NULL;

-- Written by: api. Never updated once inserted.
CREATE TABLE environment_versions (
    environment_id uuid NOT NULL REFERENCES environments (id) ON DELETE CASCADE,
    version        integer NOT NULL,
    image          text NOT NULL,
    cpu            double precision NOT NULL,
    memory_mib     integer NOT NULL,
    ports          jsonb NOT NULL DEFAULT '[]'::jsonb,  -- [{"container": 80, "host": 8080?}]
    env            jsonb NOT NULL DEFAULT '{}'::jsonb,
    command        jsonb,                               -- null or ["cmd", "arg"]
    created_at     timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (environment_id, version)
);

-- Written by: api. Values are AES-256-GCM ciphertexts bound to (environment_id, key).
CREATE TABLE environment_secrets (
    environment_id uuid NOT NULL REFERENCES environments (id) ON DELETE CASCADE,
    key            text NOT NULL,
    key_id         text NOT NULL,
    nonce          bytea NOT NULL,
    ciphertext     bytea NOT NULL,
    updated_at     timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (environment_id, key)
);
