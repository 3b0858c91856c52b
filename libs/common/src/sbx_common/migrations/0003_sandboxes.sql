-- Written by: api. What the user asked for (the desired state) and the last command it sent.
-- The API also acts as the outbox: a command recorded here but never applied by the
-- orchestrator is re-published by the reaper's repair loop.
CREATE TABLE sandboxes (
    id                  uuid PRIMARY KEY,
    owner_id            uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    environment_id      uuid NOT NULL REFERENCES environments (id),
    environment_version integer NOT NULL,
    name                text NOT NULL,
    env                 jsonb NOT NULL DEFAULT '{}'::jsonb,  -- environment env merged with overrides
    metadata            jsonb NOT NULL DEFAULT '{}'::jsonb,
    ttl_seconds         integer NOT NULL,
    created_at          timestamptz NOT NULL DEFAULT now(),
    expires_at          timestamptz NOT NULL,
    last_command_id     uuid NOT NULL,
    last_command_verb   text NOT NULL,  -- create | start | stop | restart | destroy
    last_command_at     timestamptz NOT NULL DEFAULT now(),
    replicated_from     uuid
);
CREATE INDEX sandboxes_owner ON sandboxes (owner_id, created_at DESC, id DESC);
CREATE INDEX sandboxes_expires ON sandboxes (expires_at);
CREATE INDEX sandboxes_env ON sandboxes (environment_id);

-- Written by: orchestrator. What really is (the observed state of the container).
CREATE TABLE sandbox_runtime (
    sandbox_id      uuid PRIMARY KEY REFERENCES sandboxes (id) ON DELETE CASCADE,
    status          text NOT NULL,
    status_reason   text,
    container_id    text,
    endpoints       jsonb NOT NULL DEFAULT '[]'::jsonb,  -- [{"containerPort", "hostPort", "url"}]
    started_at      timestamptz,
    stopped_at      timestamptz,
    destroyed_at    timestamptz,
    exit_code       integer,
    -- The id of the last API command the orchestrator took up (see sandbox_view).
    last_command_id uuid,
    updated_at      timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX sandbox_runtime_status ON sandbox_runtime (status);

-- Read model: the status a user sees. Terminal runtime statuses always win; otherwise, while
-- the orchestrator has not yet taken up the API's latest command, the sandbox shows the
-- transitional status that command leads to; otherwise the observed status.
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
    r.updated_at AS runtime_updated_at
FROM sandboxes s
LEFT JOIN sandbox_runtime r ON r.sandbox_id = s.id;

-- Written by: api. Remembered answers to lifecycle calls that carried an Idempotency-Key.
CREATE TABLE idempotency_keys (
    user_id       uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    key           text NOT NULL,
    request_hash  text NOT NULL,
    status_code   integer NOT NULL,
    response_body jsonb NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (user_id, key)
);
