-- fifo._symbol_accounts(symbol, version): the accounts of the symbol's pools, sorted:
-- the accounts with trades, with a state, or with rows of the version (a pool that lost
-- its trades and its state still has rows to remove); NULL when there are none. The
-- trades and the rows are read one account at a time, skipping from one to the next
-- through the (symbol, account, ...) indexes: reading every trade and row of the symbol
-- to find its accounts was 0.45 ms of a compute_fifo of 1,000 trades (issue 16).
-- One generic plan per session: every read is an index probe whatever the symbol, and
-- planning the statement on each of a session's first five calls (custom plans) was
-- about 0.8 ms of each (issue 16, fourth session).
CREATE OR REPLACE FUNCTION fifo._symbol_accounts(p_symbol text, p_version integer)
RETURNS text[]
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
SET plan_cache_mode = force_generic_plan
AS $$
DECLARE
    v_accounts text[];
BEGIN
    WITH RECURSIVE traded(account) AS (
        SELECT min(t.account) FROM fifo.trades t WHERE t.symbol = p_symbol
        UNION ALL
        SELECT (SELECT min(t.account) FROM fifo.trades t WHERE t.symbol = p_symbol AND t.account > d.account)
        FROM traded d WHERE d.account IS NOT NULL
    ),
    kept(account) AS (
        SELECT min(a.account) FROM fifo.allocations a WHERE a.version = p_version AND a.symbol = p_symbol
        UNION ALL
        SELECT (SELECT min(a.account) FROM fifo.allocations a
                WHERE a.version = p_version AND a.symbol = p_symbol AND a.account > k.account)
        FROM kept k WHERE k.account IS NOT NULL
    )
    SELECT array_agg(pools.account ORDER BY pools.account) INTO v_accounts
    FROM (SELECT d.account FROM traded d
          UNION
          SELECT ps.account FROM fifo.pool_state ps
          WHERE ps.version = p_version AND ps.symbol = p_symbol
          UNION
          SELECT k.account FROM kept k) pools
    WHERE pools.account IS NOT NULL;
    RETURN v_accounts;
END;
$$;

-- compute_fifo(symbol [, version]): recompute every pool (account) of one
-- symbol in full, atomically, and return the run. Waits for any other run
-- on those pools, at most the setting lock_timeout: then the run computes
-- nothing and is returned (and recorded) as failed, naming the holder
-- (sql/040). Raises P0002 when the symbol has neither trades nor
-- allocations.
CREATE OR REPLACE FUNCTION public.compute_fifo(p_symbol text, p_version integer DEFAULT NULL)
RETURNS public.fifo_runs
LANGUAGE plpgsql
SECURITY DEFINER   -- a reader recomputes P&L without any right to write it (sql/045, sql/120)
SET search_path = pg_catalog, pg_temp
SET lock_timeout = '30s'   -- every wait bounded (sql/040); the caller's value is back on return
AS $$
DECLARE
    v_version integer := fifo._entry_version(p_version);
    v_accounts text[];
    v_started timestamptz := clock_timestamp();
    v_err text;
    v_hint text;
BEGIN
    PERFORM fifo._bound_waits();
    PERFORM fifo._require_text('symbol', p_symbol);
    BEGIN
        -- shared with other per-pool runs, first: a forced run in progress holds every pool
        -- (and fifo.allocations, which the pool list reads)
        PERFORM fifo._lock_shared();
        -- the symbol's pools (fifo._symbol_accounts, above)
        v_accounts := fifo._symbol_accounts(p_symbol, v_version);
    EXCEPTION WHEN lock_not_available THEN
        GET STACKED DIAGNOSTICS v_err = MESSAGE_TEXT, v_hint = PG_EXCEPTION_HINT;
        RETURN fifo._lock_failed_run('symbol', v_version, ARRAY[p_symbol], 0, v_started,
                                     fifo._lock_failure(v_err, v_hint));
    END;
    IF v_accounts IS NULL THEN
        RAISE EXCEPTION 'no trades for symbol "%"', fifo._shown(p_symbol)
            USING ERRCODE = 'P0002',
                  HINT = 'Symbols are case-sensitive; SELECT DISTINCT symbol FROM trade_records lists them.';
    END IF;
    RETURN fifo._run('symbol', v_version,
                     array_fill(p_symbol, ARRAY[cardinality(v_accounts)]), v_accounts,
                     array_fill('-infinity'::timestamptz, ARRAY[cardinality(v_accounts)]), true);
END;
$$;
COMMENT ON FUNCTION public.compute_fifo(text, integer) IS
    'Recompute the FIFO allocations of every pool of one symbol (full, atomic); returns the fifo_runs row.';

-- compute_fifo_all([force [, version]]): force = true recomputes every pool
-- in full under the exclusive global lock; force = false brings every pool
-- current: pools with pending changes from their earliest change, pools
-- never computed for the version in full. Every wait is bounded by the
-- setting lock_timeout, as for compute_fifo.
CREATE OR REPLACE FUNCTION public.compute_fifo_all(p_force boolean DEFAULT false, p_version integer DEFAULT NULL)
RETURNS public.fifo_runs
LANGUAGE plpgsql
SECURITY DEFINER   -- the operator's full recompute writes allocations it may not write itself
SET search_path = pg_catalog, pg_temp
SET lock_timeout = '30s'   -- every wait bounded (sql/040); the caller's value is back on return
AS $$
DECLARE
    v_version integer := fifo._entry_version(p_version);
    v_syms text[];
    v_accs text[];
    v_from timestamptz[];
    v_started timestamptz := clock_timestamp();
    v_err text;
    v_hint text;
BEGIN
    PERFORM fifo._bound_waits();
    IF p_force IS NULL THEN
        RAISE EXCEPTION 'force must be true or false, got NULL' USING ERRCODE = '22004',
            HINT = 'compute_fifo_all(true) recomputes every pool; compute_fifo_all(false) brings them current.';
    END IF;
    -- the locks first (a forced run's exclusive one, so the pool list cannot go stale;
    -- else the shared one); a wait that runs out is recorded as a failed run naming the holders
    BEGIN
        IF p_force THEN
            PERFORM fifo._lock_all();
        ELSE
            PERFORM fifo._lock_shared();
        END IF;
        WITH pools AS (
            SELECT sp.symbol, sp.account FROM fifo._source_pools() sp   -- in parallel (sql/035)
            UNION
            SELECT ps.symbol, ps.account FROM fifo.pool_state ps WHERE ps.version = v_version
            UNION
            SELECT pc.symbol, pc.account FROM fifo.pool_changes pc WHERE pc.processed_at IS NULL
            UNION   -- a pool that lost its trades (and its state) still has rows to remove; a
                    -- forced run replaces the version's rows wholesale (sql/035), so it skips the scan
            SELECT DISTINCT a.symbol, a.account FROM fifo.allocations a WHERE a.version = v_version AND NOT p_force
        )
        SELECT array_agg(p.symbol), array_agg(p.account),
               array_agg(CASE WHEN p_force THEN '-infinity'::timestamptz END)
        INTO v_syms, v_accs, v_from
        FROM pools p
        LEFT JOIN fifo.pool_state ps
               ON ps.version = v_version AND ps.symbol = p.symbol AND ps.account = p.account
        WHERE p_force
           OR ps.version IS NULL
           OR ps.stale_from IS NOT NULL
           OR EXISTS (SELECT 1 FROM fifo.pool_changes pc
                      WHERE pc.processed_at IS NULL AND pc.symbol = p.symbol AND pc.account = p.account);
    EXCEPTION WHEN lock_not_available THEN
        GET STACKED DIAGNOSTICS v_err = MESSAGE_TEXT, v_hint = PG_EXCEPTION_HINT;
        RETURN fifo._lock_failed_run(CASE WHEN p_force THEN 'all' ELSE 'incremental' END, v_version, '{}', 0,
                                     v_started, fifo._lock_failure(v_err, v_hint));
    END;
    RETURN fifo._run(CASE WHEN p_force THEN 'all' ELSE 'incremental' END, v_version,
                     coalesce(v_syms, '{}'), coalesce(v_accs, '{}'), coalesce(v_from, '{}'), true);
END;
$$;
COMMENT ON FUNCTION public.compute_fifo_all(boolean, integer) IS
    'Bring every pool current (force: recompute every pool in full); returns the fifo_runs row.';
