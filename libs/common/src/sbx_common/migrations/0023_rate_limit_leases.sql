-- Written by: api. Rate-limit hits taken ahead of use: an API worker whose user sends many
-- requests takes several hits of the shared window at once (a lease) and spends them locally,
-- instead of one row update per request under the row's lock (sbx_api/ratelimit.py).
--
-- `rate_limit_take` grants up to `p_want` hits (fewer when the budget has fewer left; 0 when it
-- is spent) and stamps them `p_ahead` seconds in the future: the API spends a lease's hits within
-- `p_ahead` seconds of asking for it, so every hit is still stamped at or after the moment it is
-- spent and counts at least one whole period. No window of one period ever holds more than the
-- limit, whichever worker spends the hits; what a lease costs is hits counted a little early.
CREATE FUNCTION rate_limit_take(
    p_bucket text, p_identity text, p_limit integer, p_period double precision, p_want integer,
    p_ahead double precision
)
RETURNS TABLE (granted integer, used bigint, oldest_leaves double precision, newest_leaves double precision)
LANGUAGE plpgsql STRICT AS $$
DECLARE
    width double precision := p_period / 100;
    now_s double precision := extract(epoch FROM clock_timestamp());
    slot  bigint := ceil((now_s + greatest(p_ahead, 0)) / width);
    want  integer := greatest(p_want, 1);
    s     bigint[];
    c     integer[];
    n     integer;
BEGIN
    -- The common case in one statement, holding the row's lock the least time: hits stamped in
    -- the sub-window of the previous ones, nothing leaving the window yet, budget for all.
    UPDATE rate_limits r SET counts[cardinality(r.counts)] = r.counts[cardinality(r.counts)] + want,
            total = r.total + want
        WHERE r.bucket = p_bucket AND r.identity = p_identity AND r.total + want <= p_limit
          AND r.slots[cardinality(r.slots)] = slot AND r.slots[1] * width + p_period > now_s
        RETURNING r.total, r.slots[1] * width + p_period - now_s,
            r.slots[cardinality(r.slots)] * width + p_period - now_s
        INTO used, oldest_leaves, newest_leaves;
    IF FOUND THEN
        granted := want;
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
    granted := greatest(0, least(want, p_limit - used))::integer;
    IF granted > 0 THEN
        n := cardinality(s);
        -- A hit stamped later than asked (the newest sub-window is ahead of this one, as when
        -- callers ask with different `p_ahead`) only counts longer: the window stays a bound.
        IF n > 0 AND s[n] >= slot THEN
            c[n] := c[n] + granted;
        ELSE
            s := s || slot;
            c := c || granted;
        END IF;
        used := used + granted;
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

-- One hit now, as before: the same window, through the one function that writes it.
CREATE OR REPLACE FUNCTION rate_limit_hit(p_bucket text, p_identity text, p_limit integer, p_period double precision)
RETURNS TABLE (accepted boolean, used bigint, oldest_leaves double precision, newest_leaves double precision)
LANGUAGE sql STRICT AS $$
    SELECT t.granted > 0, t.used, t.oldest_leaves, t.newest_leaves
    FROM rate_limit_take(p_bucket, p_identity, p_limit, p_period, 1, 0) AS t
$$;
