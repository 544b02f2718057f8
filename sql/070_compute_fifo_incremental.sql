-- compute_fifo_incremental([version]): the pg_cron entry point. Recomputes
-- only pools with pending changes or a stale mark (fifo.pool_state.stale_from,
-- left when another version consumed their changes), each from its earliest
-- changed order_time, and prunes the consumed changes beyond
-- change_retention. Returns quietly (NULL, no run row) when there is nothing
-- to do. Never waits: pools held by another run (an analyst's compute_fifo,
-- an overlapping tick) are skipped, counted in the run, named with their
-- holders in its error, and stay pending; the other pools are computed. Only
-- the tick holding the 'incremental' row (sql/040) prunes the change log.
CREATE OR REPLACE FUNCTION public.compute_fifo_incremental(p_version integer DEFAULT NULL)
RETURNS public.fifo_runs
LANGUAGE plpgsql
SECURITY DEFINER   -- pg_cron and readers bring P&L current without any right to write it
SET search_path = pg_catalog, pg_temp
SET lock_timeout = '30s'   -- every wait bounded (sql/040); the caller's value is back on return
AS $$
DECLARE
    v_version integer := fifo._entry_version(p_version);
    v_syms text[];
    v_accs text[];
BEGIN
    PERFORM fifo._bound_waits();
    IF EXISTS (SELECT 1 FROM fifo.run_locks r WHERE r.name = 'incremental' FOR UPDATE SKIP LOCKED) THEN
        PERFORM fifo._prune_changes();
    END IF;
    SELECT array_agg(symbol), array_agg(account) INTO v_syms, v_accs
    FROM (SELECT pc.symbol, pc.account FROM fifo.pool_changes pc WHERE pc.processed_at IS NULL
          UNION
          SELECT ps.symbol, ps.account FROM fifo.pool_state ps
          WHERE ps.version = v_version AND ps.stale_from IS NOT NULL) todo;
    IF v_syms IS NULL THEN
        RETURN NULL;
    END IF;
    RETURN fifo._run('incremental', v_version, v_syms, v_accs,
                     array_fill(NULL::timestamptz, ARRAY[cardinality(v_syms)]), false);
END;
$$;
COMMENT ON FUNCTION public.compute_fifo_incremental(integer) IS
    'pg_cron entry point: recompute the suffix of every pool with pending changes; NULL when idle.';

-- compute_fifo_since(since [, version]): the seed's --since, done right:
-- every pool with a trade recorded, or any change (update, delete,
-- back-dated insert) captured, at or after `since`, recomputed from the
-- earliest order_time those touched.
CREATE OR REPLACE FUNCTION public.compute_fifo_since(p_since timestamptz, p_version integer DEFAULT NULL)
RETURNS public.fifo_runs
LANGUAGE plpgsql
SECURITY DEFINER   -- a reader brings changed pools current without any right to write P&L
SET search_path = pg_catalog, pg_temp
SET lock_timeout = '30s'   -- every wait bounded (sql/040); the caller's value is back on return
SET plan_cache_mode = force_custom_plan   -- the window planned with its real start (issue 16)
AS $$
DECLARE
    v_version integer := fifo._entry_version(p_version);
    v_syms text[];
    v_accs text[];
    v_from timestamptz[];
BEGIN
    PERFORM fifo._bound_waits();
    IF p_since IS NULL OR NOT isfinite(p_since) THEN
        RAISE EXCEPTION 'since must be a finite time, got %', coalesce(p_since::text, 'NULL')
            USING ERRCODE = '22023', HINT = 'Example: compute_fifo_since(now() - interval ''10 minutes'')';
    END IF;
    IF p_since < now() - fifo._change_retention() THEN
        RAISE EXCEPTION 'since % is further back than the change log keeps (change_retention %)',
                p_since, fifo._change_retention()
            USING ERRCODE = '22023',
                  HINT = 'Use a later time, raise the setting change_retention, or recompute in full: '
                         'compute_fifo_all(true).';
    END IF;
    -- pending changes count whatever their time: they are changes not yet computed
    SELECT array_agg(symbol), array_agg(account), array_agg(from_time)
    INTO v_syms, v_accs, v_from
    FROM (SELECT c.symbol, c.account, min(c.from_time) AS from_time
          FROM (SELECT t.symbol, t.account, t.order_time AS from_time
                FROM fifo.trades t WHERE t.recorded_at >= p_since
                UNION ALL
                SELECT pc.symbol, pc.account, pc.from_time
                FROM fifo.pool_changes pc WHERE pc.changed_at >= p_since OR pc.processed_at IS NULL) c
          GROUP BY c.symbol, c.account) changed;
    RETURN fifo._run('since', v_version,
                     coalesce(v_syms, '{}'), coalesce(v_accs, '{}'), coalesce(v_from, '{}'), true);
END;
$$;
COMMENT ON FUNCTION public.compute_fifo_since(timestamptz, integer) IS
    'Recompute pools with trades recorded or changed since a time (back-dated inserts included).';
