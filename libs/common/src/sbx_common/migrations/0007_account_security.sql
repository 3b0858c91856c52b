-- Written by: api. Account security: revoking JWTs and expiring API keys.

-- Bumped by a password change: a JWT carries the version it was issued under (claim `ver`), and
-- one with an older version is refused. A counter, not a timestamp, so that the token issued
-- right after the change is valid whatever the clock's resolution.
ALTER TABLE users ADD COLUMN token_version integer NOT NULL DEFAULT 0;

-- NULL: the key never expires.
ALTER TABLE api_keys ADD COLUMN expires_at timestamptz;

-- Written by: api. JWTs revoked by a logout, by their `jti`, kept until they would have expired
-- anyway (rows past `expires_at` are pruned on every logout).
CREATE TABLE revoked_tokens (
    jti        text PRIMARY KEY,
    expires_at timestamptz NOT NULL
);
CREATE INDEX revoked_tokens_expiry ON revoked_tokens (expires_at);
