-- Written by: api. A user's webhooks: where to POST which events. The secret signs each delivery,
-- so the dispatcher needs its plaintext: it is kept sealed with the secrets master key
-- (AES-256-GCM, bound to the webhook's id), like environment secrets. A deleted webhook keeps its
-- row (`deleted_at`), so its deliveries, written by another service, never lose their parent.
CREATE TABLE webhooks (
    id          uuid PRIMARY KEY,
    owner_id    uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    url         text NOT NULL,
    events      text[] NOT NULL,
    description text,
    key_id      text NOT NULL,
    nonce       bytea NOT NULL,
    ciphertext  bytea NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    deleted_at  timestamptz
);
CREATE INDEX webhooks_owner ON webhooks (owner_id, created_at, id) WHERE deleted_at IS NULL;

-- Written by: webhooks. One row per (webhook, event), recorded before the event is acked on
-- SBX_EVT, so a crash never loses one and a redelivered event never makes a second.
-- `event_id` is the event's position in SBX_EVT (the `id` of the API's event objects).
CREATE TABLE webhook_deliveries (
    id              uuid PRIMARY KEY,
    webhook_id      uuid NOT NULL REFERENCES webhooks (id) ON DELETE CASCADE,
    event_id        text NOT NULL,
    body            bytea NOT NULL,
    status          text NOT NULL CHECK (status IN ('pending', 'retrying', 'delivered', 'failed')),
    attempts        integer NOT NULL DEFAULT 0,
    response_status integer,
    next_attempt_at timestamptz NOT NULL DEFAULT now(),
    last_attempt_at timestamptz,
    created_at      timestamptz NOT NULL DEFAULT now(),
    UNIQUE (webhook_id, event_id)
);
CREATE INDEX webhook_deliveries_due ON webhook_deliveries (next_attempt_at)
    WHERE status IN ('pending', 'retrying');
CREATE INDEX webhook_deliveries_list ON webhook_deliveries (webhook_id, created_at, id);

-- Written by: webhooks. Every attempt of a delivery: when, what came back (or the error class).
CREATE TABLE webhook_delivery_attempts (
    delivery_id     uuid NOT NULL REFERENCES webhook_deliveries (id) ON DELETE CASCADE,
    attempt         integer NOT NULL,
    attempted_at    timestamptz NOT NULL DEFAULT now(),
    response_status integer,
    error           text,
    duration_ms     integer NOT NULL,
    PRIMARY KEY (delivery_id, attempt)
);
