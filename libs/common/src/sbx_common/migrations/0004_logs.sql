-- Written by: log-shipper. The newest lines per sandbox (bounded by SBX_LOG_RETENTION_LINES).
CREATE TABLE sandbox_logs (
    sandbox_id uuid NOT NULL,
    seq        bigint NOT NULL,
    stream     text NOT NULL,          -- stdout | stderr
    text       text NOT NULL,
    ts         timestamptz NOT NULL,   -- Docker's timestamp of the line
    PRIMARY KEY (sandbox_id, seq)
);

-- Written by: log-shipper. Where to resume following each container after a restart.
CREATE TABLE log_cursors (
    sandbox_id  uuid PRIMARY KEY,
    last_seq    bigint NOT NULL,
    last_ts     timestamptz,            -- Docker timestamp of the last persisted line
    last_ts_raw text,                   -- the same, with Docker's full nanosecond precision
    updated_at  timestamptz NOT NULL DEFAULT now()
);
