-- Written by: api
CREATE TABLE users (
    id            uuid PRIMARY KEY,
    email         text NOT NULL,
    password_hash text NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX users_email_lower ON users (lower(email));

-- Written by: api
CREATE TABLE api_keys (
    id           uuid PRIMARY KEY,
    user_id      uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    name         text NOT NULL,
    key_prefix   text NOT NULL,
    key_hash     text NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    last_used_at timestamptz,
    revoked_at   timestamptz
);
CREATE INDEX api_keys_prefix ON api_keys (key_prefix);
CREATE INDEX api_keys_user ON api_keys (user_id, created_at);

-- Written by: api
CREATE TABLE audit_events (
    id          bigserial PRIMARY KEY,
    user_id     uuid,
    action      text NOT NULL,
    target_type text,
    target_id   text,
    outcome     text NOT NULL,
    trace_id    text,
    details     jsonb NOT NULL DEFAULT '{}'::jsonb,
    occurred_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX audit_events_user ON audit_events (user_id, id DESC);
