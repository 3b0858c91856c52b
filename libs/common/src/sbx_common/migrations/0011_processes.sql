-- Written by: orchestrator. Background processes started in sandboxes (the API reads them).
CREATE TABLE sandbox_processes (
    id              uuid PRIMARY KEY,
    sandbox_id      uuid NOT NULL,
    owner_id        uuid NOT NULL,
    command         jsonb NOT NULL,           -- argv
    tty             boolean NOT NULL DEFAULT false,
    pid             integer,                  -- inside the sandbox
    status          text NOT NULL DEFAULT 'running',  -- running | exited | killed
    exit_code       integer,
    signal          text,
    timed_out       boolean NOT NULL DEFAULT false,
    last_seq        bigint NOT NULL DEFAULT 0,  -- newest output chunk stored
    trimmed_through bigint NOT NULL DEFAULT 0,  -- output up to this seq was dropped (kept: newest bytes)
    output_bytes    bigint NOT NULL DEFAULT 0,  -- bytes of the output kept
    started_at      timestamptz NOT NULL DEFAULT now(),
    ended_at        timestamptz
);
CREATE INDEX sandbox_processes_by_sandbox ON sandbox_processes (sandbox_id, started_at DESC);
CREATE INDEX sandbox_processes_running ON sandbox_processes (owner_id) WHERE status = 'running';

-- Written by: orchestrator. Each process's output chunks, numbered per process without gaps;
-- the newest SBX_PROCESS_OUTPUT_KEEP_BYTES (at least 16 MiB) per process are kept.
CREATE TABLE sandbox_process_output (
    process_id uuid NOT NULL,
    seq        bigint NOT NULL,
    stream     text NOT NULL,                -- stdout | stderr | pty
    data       bytea NOT NULL,
    ts         timestamptz NOT NULL,
    PRIMARY KEY (process_id, seq)
);
