-- Advisory locks. A pool (symbol, account) is locked with the two-key form
-- (namespace, hash of the pool); every per-pool run also holds the global
-- key in shared mode, and a forced full recompute holds it exclusively, so
-- it never needs one lock per pool. Hash collisions only serialize two
-- unrelated pools; they never let two runs touch one pool at once.

-- fifo._pool_key(symbol, account): the advisory lock key of a pool.
CREATE OR REPLACE FUNCTION fifo._pool_key(p_symbol text, p_account text)
RETURNS integer
LANGUAGE sql IMMUTABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $$ SELECT hashtext(p_symbol || E'\x1f' || p_account) $$;

-- fifo._lock_pools(symbols[], accounts[], wait): lock the pools in key
-- order (no deadlock between runs) and return the index of each pool locked.
-- With wait = false a pool held by another run is skipped, not waited for.
CREATE OR REPLACE FUNCTION fifo._lock_pools(p_symbols text[], p_accounts text[], p_wait boolean)
RETURNS SETOF integer
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    c_ns constant integer := 1718185569;   -- 'fifo'
    v_idx integer;
    v_key integer;
BEGIN
    IF p_wait THEN
        PERFORM pg_advisory_xact_lock_shared(c_ns + 1, 0);
    ELSIF NOT pg_try_advisory_xact_lock_shared(c_ns + 1, 0) THEN
        RETURN;   -- a forced full recompute is running: it covers every pool
    END IF;
    -- one lock call per pool is inherent to per-pool locking; the loop does
    -- no per-trade work
    FOR v_idx, v_key IN
        SELECT i, fifo._pool_key(p_symbols[i], p_accounts[i])
        FROM generate_subscripts(p_symbols, 1) AS i
        ORDER BY 2, 1
    LOOP
        IF p_wait THEN
            PERFORM pg_advisory_xact_lock(c_ns, v_key);
            RETURN NEXT v_idx;
        ELSIF pg_try_advisory_xact_lock(c_ns, v_key) THEN
            RETURN NEXT v_idx;
        END IF;
    END LOOP;
END;
$$;

-- fifo._lock_all(): the exclusive global lock of a forced full recompute.
CREATE OR REPLACE FUNCTION fifo._lock_all()
RETURNS void
LANGUAGE sql
SET search_path = pg_catalog, pg_temp
AS $$ SELECT pg_advisory_xact_lock(1718185569 + 1, 0) $$;
