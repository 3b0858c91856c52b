-- Scale-out: every sandbox, snapshot, volume and warm pool slot belongs to one Docker host
-- (docs/scale-out.md, "Hosts and placement"). Rows made before hosts existed belong to `local`,
-- the host a single-host installation runs as (`SBX_HOST_ID`'s default), so an upgrade changes
-- nothing for it.

-- Written by: api (placement at create). The host whose orchestrator runs the sandbox.
ALTER TABLE sandboxes ADD COLUMN host_id text NOT NULL DEFAULT 'local';
CREATE INDEX sandboxes_host ON sandboxes (host_id);

-- Written by: api. A snapshot's image lives on its sandbox's host; a volume's filesystem image
-- on the host of the first sandbox that mounted it (NULL: never mounted, any host may take it).
ALTER TABLE snapshots ADD COLUMN host_id text NOT NULL DEFAULT 'local';
ALTER TABLE volumes ADD COLUMN host_id text;
UPDATE volumes SET host_id = 'local' WHERE id IN (SELECT volume_id FROM volume_runtime);

-- Written by: orchestrator (the host that made the container).
ALTER TABLE warm_pool_slots ADD COLUMN host_id text NOT NULL DEFAULT 'local';

-- Written by: sbx-admin (`sbx-admin hosts drain|undrain`). An operator's word on a host:
-- a draining host gets no new sandboxes. Capacity and liveness are in the KV bucket `sbx_hosts`.
CREATE TABLE hosts (
    host_id    text PRIMARY KEY,
    draining   boolean NOT NULL DEFAULT false,
    updated_at timestamptz NOT NULL DEFAULT now()
);

-- Written by: reaper. Sandboxes of a host whose heartbeat stopped for longer than the grace
-- (`SBX_HOST_GRACE`): the platform gave up on them. They show `failed` with reason `host lost`
-- (or `destroyed` once their owner destroyed them), whatever the lost host's rows still say;
-- when the host comes back, its orchestrator removes their containers.
CREATE TABLE lost_sandboxes (
    sandbox_id uuid PRIMARY KEY REFERENCES sandboxes (id) ON DELETE CASCADE,
    host_id    text NOT NULL,
    lost_at    timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX lost_sandboxes_host ON lost_sandboxes (host_id);

-- The read model of 0008 with `host_id` (in `s.*`) and lost sandboxes.
DROP VIEW sandbox_view;
CREATE VIEW sandbox_view AS
SELECT
    s.*,
    CASE
        WHEN r.status IN ('destroyed', 'expired') THEN r.status
        WHEN l.sandbox_id IS NOT NULL THEN
            CASE WHEN s.last_command_verb = 'destroy' THEN 'destroyed' ELSE 'failed' END
        WHEN r.last_command_id IS DISTINCT FROM s.last_command_id THEN
            CASE s.last_command_verb
                WHEN 'create' THEN 'pending'
                WHEN 'start' THEN 'starting'
                WHEN 'stop' THEN 'stopping'
                WHEN 'restart' THEN 'restarting'
                WHEN 'pause' THEN 'pausing'
                WHEN 'resume' THEN 'resuming'
                WHEN 'destroy' THEN 'destroying'
                ELSE 'pending'
            END
        ELSE r.status
    END AS status,
    CASE
        WHEN r.status IN ('destroyed', 'expired') THEN r.status_reason
        WHEN l.sandbox_id IS NOT NULL THEN 'host lost'
        WHEN r.last_command_id IS NOT DISTINCT FROM s.last_command_id THEN r.status_reason
    END AS status_reason,
    r.container_id,
    COALESCE(r.endpoints, '[]'::jsonb) AS endpoints,
    r.started_at,
    r.stopped_at,
    COALESCE(r.destroyed_at, CASE WHEN l.sandbox_id IS NOT NULL AND s.last_command_verb = 'destroy'
                                  THEN s.last_command_at END) AS destroyed_at,
    r.exit_code,
    r.last_command_id AS applied_command_id,
    r.updated_at AS runtime_updated_at,
    CASE WHEN r.ttl_applied_for IS NOT DISTINCT FROM s.expires_at THEN NULL ELSE s.expires_at END
        AS active_expires_at,
    l.lost_at
FROM sandboxes s
LEFT JOIN sandbox_runtime r ON r.sandbox_id = s.id
LEFT JOIN lost_sandboxes l ON l.sandbox_id = s.id;
