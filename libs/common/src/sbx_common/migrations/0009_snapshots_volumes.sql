-- Snapshots and volumes. The API writes what the user asked for (`snapshots`, `volumes`, and a
-- sandbox's `snapshot_id`/`volumes`); the orchestrator, the only service that touches Docker and
-- the host, writes what really is (`snapshot_runtime`, `volume_runtime`). One writer per table.

-- Written by: api. A snapshot the user asked for; `deleted_at` once the user deleted it (the
-- orchestrator then removes its image). `hidden`: made by a replicate with `withFilesystem`,
-- never listed nor counted, its image removed once the copy's container exists.
CREATE TABLE snapshots (
    id                  uuid PRIMARY KEY,
    owner_id            uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    sandbox_id          uuid NOT NULL REFERENCES sandboxes (id) ON DELETE CASCADE,
    environment_id      uuid NOT NULL,
    environment_version integer NOT NULL,
    name                text NOT NULL,
    hidden              boolean NOT NULL DEFAULT false,
    command_id          uuid NOT NULL,
    created_at          timestamptz NOT NULL DEFAULT now(),
    deleted_at          timestamptz
);
CREATE INDEX snapshots_owner ON snapshots (owner_id, created_at DESC, id DESC);
CREATE INDEX snapshots_sandbox ON snapshots (sandbox_id);

-- Written by: orchestrator. `creating` | `ready` | `failed` | `deleted` (image removed).
CREATE TABLE snapshot_runtime (
    snapshot_id   uuid PRIMARY KEY REFERENCES snapshots (id) ON DELETE CASCADE,
    status        text NOT NULL,
    status_reason text,
    size_bytes    bigint NOT NULL DEFAULT 0,
    updated_at    timestamptz NOT NULL DEFAULT now()
);

-- Written by: api. A named per-user volume; `deleted_at` once deleted (the orchestrator then
-- unmounts it and removes its filesystem image).
CREATE TABLE volumes (
    id          uuid PRIMARY KEY,
    owner_id    uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    name        text NOT NULL,
    size_mib    integer NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    deleted_at  timestamptz
);
CREATE UNIQUE INDEX volumes_owner_name ON volumes (owner_id, name) WHERE deleted_at IS NULL;
CREATE INDEX volumes_owner ON volumes (owner_id, created_at DESC, id DESC);

-- Written by: orchestrator. `ready` (image made) | `deleted` (unmounted, image removed).
CREATE TABLE volume_runtime (
    volume_id   uuid PRIMARY KEY REFERENCES volumes (id) ON DELETE CASCADE,
    status      text NOT NULL,
    used_bytes  bigint NOT NULL DEFAULT 0,
    updated_at  timestamptz NOT NULL DEFAULT now()
);

-- Written by: api. A sandbox made from a snapshot, and the volumes it mounts
-- ([{"volumeId", "mountPath", "readOnly"}]).
ALTER TABLE sandboxes ADD COLUMN snapshot_id uuid;
ALTER TABLE sandboxes ADD COLUMN volumes jsonb NOT NULL DEFAULT '[]'::jsonb;
CREATE INDEX sandboxes_snapshot ON sandboxes (snapshot_id) WHERE snapshot_id IS NOT NULL;
