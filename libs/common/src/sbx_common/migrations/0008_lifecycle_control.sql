-- Pause, resume and TTL control.

-- Written by: api. What happens when `expires_at` passes: destroy (status `expired`), stop or
-- pause (status `stopped` / `paused` with reason "ttl").
ALTER TABLE sandboxes ADD COLUMN on_expire text NOT NULL DEFAULT 'destroy';

-- Written by: orchestrator. The `expires_at` a TTL stop or pause was carried out for: that
-- expiry is spent (the sandbox shows no `expiresAt`) until the API records a new one (PATCH).
ALTER TABLE sandbox_runtime ADD COLUMN ttl_applied_for timestamptz;

-- The read model of 0003 with the pause and resume verbs, and `active_expires_at`: the
-- `expires_at` still to be enforced (NULL once a TTL stop or pause spent it).
DROP VIEW sandbox_view;
CREATE VIEW sandbox_view AS
SELECT
    s.*,
    CASE
        WHEN r.status IN ('destroyed', 'expired') THEN r.status
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
        WHEN r.status IN ('destroyed', 'expired') OR r.last_command_id IS NOT DISTINCT FROM s.last_command_id
            THEN r.status_reason
    END AS status_reason,
    r.container_id,
    COALESCE(r.endpoints, '[]'::jsonb) AS endpoints,
    r.started_at,
    r.stopped_at,
    r.destroyed_at,
    r.exit_code,
    r.last_command_id AS applied_command_id,
    r.updated_at AS runtime_updated_at,
    CASE WHEN r.ttl_applied_for IS NOT DISTINCT FROM s.expires_at THEN NULL ELSE s.expires_at END
        AS active_expires_at
FROM sandboxes s
LEFT JOIN sandbox_runtime r ON r.sandbox_id = s.id;
