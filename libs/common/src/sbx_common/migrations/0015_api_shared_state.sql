-- Written by: api. What every API worker process (SBX_API_WORKERS) and every API instance must
-- see alike, so a limit holds whichever process answers.

-- Rate limits: a moving window per (limit, identity), kept as at most 101 sub-windows of a
-- hundredth of the period each: `slots` (sub-window numbers: the end of each, in units of the
-- sub-window's width) and `counts` (hits in each). A hit is stamped with the end of its
-- sub-window, so it counts a little longer than exactly one period, never shorter: no window of
-- one period ever holds more than the limit. `expires` (epoch seconds): when every hit has left
-- the window; a row past it means a whole budget, so rows can be pruned at any time.
-- UNLOGGED: updates write no WAL, so a hit costs no disk flush; after a database crash the table
-- comes back empty, which only gives everyone their whole budget back.
CREATE UNLOGGED TABLE rate_limits (
    bucket   text NOT NULL,
    identity text NOT NULL,
    slots    bigint[] NOT NULL DEFAULT '{}',
    counts   integer[] NOT NULL DEFAULT '{}',
    total    integer NOT NULL DEFAULT 0,  -- the sum of `counts`
    expires  double precision NOT NULL DEFAULT 0,
    PRIMARY KEY (bucket, identity)
);
CREATE INDEX rate_limits_expires ON rate_limits (expires);

-- One hit against `p_limit` per `p_period` seconds, atomic under the row's lock (every API
-- process calls it, on the database's one clock). Returns whether it was accepted, the hits now
-- in the window, and the seconds until the oldest and the newest of them leave it. STRICT: with
-- a NULL argument it is not run at all and returns no row (a query can make its hit conditional).
CREATE FUNCTION rate_limit_hit(p_bucket text, p_identity text, p_limit integer, p_period double precision)
RETURNS TABLE (accepted boolean, used bigint, oldest_leaves double precision, newest_leaves double precision)
LANGUAGE plpgsql STRICT AS $$
DECLARE
    width double precision := p_period / 100;
    now_s double precision := extract(epoch FROM clock_timestamp());
    slot  bigint := ceil(now_s / width);
    s     bigint[];
    c     integer[];
    n     integer;
BEGIN
    -- The common case in one statement, holding the row's lock the least time: a hit in the
    -- sub-window of the previous one, nothing leaving the window yet, budget left.
    UPDATE rate_limits r SET counts[cardinality(r.counts)] = r.counts[cardinality(r.counts)] + 1,
            total = r.total + 1
        WHERE r.bucket = p_bucket AND r.identity = p_identity AND r.total < p_limit
          AND r.slots[cardinality(r.slots)] = slot AND r.slots[1] * width + p_period > now_s
        RETURNING r.total, r.slots[1] * width + p_period - now_s,
            r.slots[cardinality(r.slots)] * width + p_period - now_s
        INTO used, oldest_leaves, newest_leaves;
    IF FOUND THEN
        accepted := true;
        RETURN NEXT;
        RETURN;
    END IF;
    SELECT r.slots, r.counts INTO s, c FROM rate_limits r
        WHERE r.bucket = p_bucket AND r.identity = p_identity FOR UPDATE;
    IF NOT FOUND THEN
        INSERT INTO rate_limits (bucket, identity) VALUES (p_bucket, p_identity) ON CONFLICT DO NOTHING;
        SELECT r.slots, r.counts INTO s, c FROM rate_limits r
            WHERE r.bucket = p_bucket AND r.identity = p_identity FOR UPDATE;
    END IF;
    SELECT coalesce(array_agg(x.s ORDER BY x.s), '{}'), coalesce(array_agg(x.c ORDER BY x.s), '{}')
        INTO s, c FROM unnest(s, c) AS x (s, c) WHERE x.s * width + p_period > now_s;
    used := coalesce((SELECT sum(x) FROM unnest(c) AS x), 0);
    accepted := used < p_limit;
    IF accepted THEN
        n := cardinality(s);
        IF n > 0 AND s[n] = slot THEN
            c[n] := c[n] + 1;
        ELSE
            s := s || slot;
            c := c || 1;
        END IF;
        used := used + 1;
    END IF;
    n := cardinality(s);
    UPDATE rate_limits r SET slots = s, counts = c, total = used,
        expires = CASE WHEN n > 0 THEN s[n] * width + p_period ELSE 0 END
        WHERE r.bucket = p_bucket AND r.identity = p_identity;
    oldest_leaves := CASE WHEN n > 0 THEN s[1] * width + p_period - now_s ELSE 0 END;
    newest_leaves := CASE WHEN n > 0 THEN s[n] * width + p_period - now_s ELSE 0 END;
    RETURN NEXT;
END
$$;

-- The API processes alive now: each renews `seen_at` every few seconds. Units held by a process
-- that stopped renewing (it crashed: its sockets and execs died with it) no longer count.
CREATE TABLE api_processes (
    id         uuid PRIMARY KEY,
    started_at timestamptz NOT NULL DEFAULT now(),
    seen_at    timestamptz NOT NULL DEFAULT now()
);

-- One row per unit a user holds open (an exec under way, a terminal, an event or log stream),
-- held by the API process serving it: the per-user caps count these rows.
CREATE TABLE usage_holds (
    id         uuid PRIMARY KEY,
    process_id uuid NOT NULL REFERENCES api_processes (id) ON DELETE CASCADE,
    kind       text NOT NULL,
    user_id    uuid NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX usage_holds_user ON usage_holds (user_id, kind);
