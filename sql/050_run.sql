-- fifo._run(mode, version, symbols[], accounts[], from_times[], wait): one
-- computation (batch) over a set of pools, recorded in fifo_runs.
--   from_times[i] '-infinity': full recompute of the pool;
--   a time: recompute the suffix from that time (or more, see below);
--   NULL: only what the pool's pending changes or stale mark ask for.
-- Pending changes (fifo.pool_changes) of the locked pools are folded in: for
-- the current version they are consumed, and every other version computed
-- for those pools is marked stale from the earliest change
-- (fifo.pool_state.stale_from), so a later switch of current_version never
-- shows its old rows as current: reports say 'stale' and the next
-- incremental run recomputes the suffix. For another version pending changes
-- are read, not consumed. A pool never computed for `version` is always
-- recomputed in full.
-- mode 'all' holds the global lock exclusively; other modes lock per pool,
-- waiting (wait = true) or skipping pools held by another run (sql/040). A
-- wait that runs out (the setting lock_timeout) ends the run: it computes
-- nothing, and is recorded as failed with who holds what, and returned. A
-- run that skipped pools says which and who holds them in its error.
-- Failures never vanish: multi-pool modes isolate them (a failing pool keeps
-- its previous allocations, is recorded in the run and queued again); in
-- mode 'symbol' the whole call is rolled back to its previous allocations.
-- Either way the run is returned and recorded in fifo_runs with status
-- 'partial' or 'failed' and the error, and a WARNING says so.
CREATE OR REPLACE FUNCTION fifo._run(
    p_mode text,
    p_version integer,
    p_symbols text[],
    p_accounts text[],
    p_from timestamptz[],
    p_wait boolean)
RETURNS public.fifo_runs
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_run public.fifo_runs;
    v_current boolean := (p_version = fifo._setting('current_version')::integer);   -- fifo._current_version()
    v_isolate boolean := (p_mode <> 'symbol');
    v_n integer := coalesce(cardinality(p_symbols), 0);
    v_locked integer[];
    v_syms text[];
    v_accs text[];
    v_from timestamptz[];
    v_chunk integer;
    v_todo_lo integer[];
    v_todo_hi integer[];
    v_done integer := 0;
    v_lo integer;
    v_hi integer;
    v_i integer;
    v_res record;
    v_err text;
    v_fresh regclass;        -- mode 'all': the fresh table the version is written into, then swapped in
    v_held text;
    v_failed_syms text[] := '{}';
    v_failed_accs text[] := '{}';
    v_taken_syms text[];
    v_taken_accs text[];
    v_counts record;         -- mode 'all': every pool's buys and sells, counted once (sql/035)
    v_precounted boolean := false;
    v_counted bigint[];
    v_name text;             -- mode 'all': the fresh table's
    v_buys bigint;           -- mode 'all': every pool's buys and sells, when counted
    v_sells bigint;
BEGIN
    IF p_version IS NULL OR p_version < 1 THEN
        RAISE EXCEPTION 'version must be a positive integer, got %', coalesce(p_version::text, 'NULL')
            USING ERRCODE = '22023', HINT = 'Versions start at 1; the current one is in fifo.settings.';
    END IF;
    v_run.batch_id := gen_random_uuid();
    v_run.version := p_version;
    v_run.mode := p_mode;
    v_run.started_at := clock_timestamp();
    v_run.buys := 0; v_run.sells := 0; v_run.allocations := 0;
    v_run.unmatched := 0; v_run.total_pnl := 0; v_run.failed_pools := 0; v_run.pnl_by_currency := '{}';

    -- 1. locks, every wait bounded by lock_timeout: one that runs out ends the run here
    BEGIN
        IF p_mode = 'all' THEN
            PERFORM fifo._lock_all();
            v_locked := ARRAY(SELECT generate_series(1, v_n));
        ELSE
            v_locked := ARRAY(SELECT fifo._lock_pools(p_symbols, p_accounts, p_wait));
        END IF;
        IF cardinality(v_locked) > 0 AND fifo._version_partition(p_version, p_wait) IS NULL THEN
            v_locked := '{}';   -- another run is adding this version's partition: busy, like a locked pool
            v_held := 'another run is adding the partition of version ' || p_version;
        END IF;
    EXCEPTION WHEN lock_not_available THEN
        GET STACKED DIAGNOSTICS v_err = MESSAGE_TEXT, v_held = PG_EXCEPTION_HINT;
        RETURN fifo._lock_failed_run(p_mode, p_version, p_symbols, v_n, v_run.started_at,
                                     fifo._lock_failure(v_err, v_held));
    END;
    v_run.skipped_pools := v_n - cardinality(v_locked);
    IF v_run.skipped_pools > 0 AND v_held IS NULL THEN
        SELECT fifo._held_pools(array_agg(p_symbols[s.i] ORDER BY s.i), array_agg(p_accounts[s.i] ORDER BY s.i))
        INTO v_held
        FROM generate_subscripts(p_symbols, 1) AS s(i)
        LEFT JOIN unnest(v_locked) AS l(i) ON l.i = s.i
        WHERE l.i IS NULL;
    END IF;
    IF v_held IS NOT NULL THEN
        v_run.error := format('skipped %s held pool%s, still pending: %s', v_run.skipped_pools,
                              CASE WHEN v_run.skipped_pools = 1 THEN '' ELSE 's' END, v_held);
        RAISE NOTICE 'fifo-db: %', v_run.error;
    END IF;

    -- 2. where each locked pool starts (fifo._pool_plan, below), and the
    --    pending changes the run takes over
    SELECT p.symbols, p.accounts, p.from_times, p.taken_symbols, p.taken_accounts
    INTO v_syms, v_accs, v_from, v_taken_syms, v_taken_accs
    FROM fifo._pool_plan(p_version, v_current, p_symbols, p_accounts, p_from, v_locked) p;

    v_run.pools := cardinality(v_syms);
    v_run.symbols := ARRAY(SELECT DISTINCT s FROM unnest(v_syms) s ORDER BY 1);
    -- only a pool whose changes this run consumed has a new consumed row to fold
    IF v_taken_syms IS NOT NULL THEN
        PERFORM fifo._fold_consumed_changes(v_taken_syms, v_taken_accs);
    END IF;

    -- 3. compute, in chunks so long runs report progress (RAISE NOTICE).
    --    A failing chunk is rolled back as a whole and queued again pool by
    --    pool, so only the failing pools are left out (multi-pool modes).
    v_chunk := CASE WHEN v_run.pools <= 200 THEN greatest(v_run.pools, 1)
                    ELSE ceil(v_run.pools / 20.0)::integer END;
    v_todo_lo := ARRAY(SELECT generate_series(1, v_run.pools, v_chunk));
    v_todo_hi := ARRAY(SELECT least(lo + v_chunk - 1, v_run.pools) FROM unnest(v_todo_lo) lo);
    --    Mode 'all' writes into a fresh table, swapped in once complete
    --    (sql/035). It is created in the run's own transaction: a run that
    --    fails or is cancelled leaves nothing behind. Below the setting
    --    forced_in_place_below it writes in place instead, like a per-pool run
    --    (only the rows that differ, sql/032), and removes the rows of pools
    --    that are no longer in the list (no trades, no state), which the swap
    --    would have left out.
    IF p_mode = 'all' THEN
        PERFORM fifo._drop_stale_fresh_tables();   -- left by a failed run of an older version
        IF fifo._forced_in_place(p_version) THEN
            DELETE FROM fifo.allocations a
            WHERE a.version = p_version
              AND NOT EXISTS (SELECT 1 FROM unnest(v_syms, v_accs) AS p(symbol, account)
                              WHERE p.symbol = a.symbol AND p.account = a.account);
        ELSE
            v_name := format('allocations_v%s_%s', p_version, left(replace(v_run.batch_id::text, '-', ''), 12));
            -- trade_records' own CHECK constraints refuse every row that cannot be matched, so
            -- no row can turn bad while the chunks run; an adopted source is checked per chunk
            IF fifo._setting('trades_source') = 'fifo-db' THEN
                SELECT * INTO v_counts FROM fifo._count_pools(v_syms, v_accs);
                v_precounted := NOT v_counts.problem;
                SELECT sum(x.b), sum(x.s) INTO v_buys, v_sells FROM unnest(v_counts.buys, v_counts.sells) AS x(b, s);
            END IF;
            -- counted pools, enough of them to repay starting parallel workers: every pool in
            -- one statement, the session writing while the workers match (sql/035); if that
            -- fails, in chunks, which leave out only the failing pools
            IF v_precounted AND v_run.pools >= 4 AND v_buys + v_sells >= 20000 THEN
                BEGIN
                    v_fresh := fifo._fresh_allocations_matched(p_version, v_name, v_run.batch_id,
                                                               v_syms, v_accs, v_buys + v_sells);
                EXCEPTION WHEN OTHERS THEN
                    GET STACKED DIAGNOSTICS v_err = MESSAGE_TEXT;
                    RAISE NOTICE 'fifo-db: writing every pool in one statement failed (%); writing in chunks', v_err;
                END;
            END IF;
            IF v_fresh IS NOT NULL THEN
                PERFORM fifo._record_pools(p_version, v_run.batch_id, v_syms, v_accs);
                v_run.buys := v_buys;
                v_run.sells := v_sells;
                v_todo_lo := '{}';   -- nothing left for the chunks
                v_todo_hi := '{}';
                IF v_run.pools > v_chunk THEN
                    RAISE NOTICE 'fifo-db progress: % of % pools', v_run.pools, v_run.pools;
                END IF;
            ELSE
                v_fresh := fifo._fresh_allocations(p_version, v_name);
            END IF;
        END IF;
    END IF;
    v_i := 1;
    WHILE v_i <= cardinality(v_todo_lo) LOOP
        v_lo := v_todo_lo[v_i];
        v_hi := v_todo_hi[v_i];
        BEGIN
            v_counted := NULL;
            IF v_precounted THEN
                SELECT ARRAY[coalesce(sum(b), 0), coalesce(sum(s), 0)]::bigint[] INTO v_counted
                FROM unnest(v_counts.buys[v_lo:v_hi], v_counts.sells[v_lo:v_hi], v_from[v_lo:v_hi]) AS x(b, s, f)
                WHERE x.f = '-infinity';
            END IF;
            SELECT * INTO v_res FROM fifo._match(p_version, v_run.batch_id,
                v_syms[v_lo:v_hi], v_accs[v_lo:v_hi], v_from[v_lo:v_hi], v_fresh, true, v_counted);
            v_run.buys := v_run.buys + v_res.buys;
            v_run.sells := v_run.sells + v_res.sells;
            IF v_fresh IS NULL THEN   -- mode 'all' totals the fresh table after the last chunk
                v_run.allocations := v_run.allocations + v_res.allocations;
                v_run.unmatched := v_run.unmatched + v_res.unmatched;
                v_run.total_pnl := v_run.total_pnl + v_res.total_pnl;
                v_run.pnl_by_currency := fifo._add_pnl_by_currency(v_run.pnl_by_currency, v_res.pnl_by_currency);
            END IF;
            v_done := v_done + (v_hi - v_lo + 1);
            IF v_run.pools > v_chunk THEN
                RAISE NOTICE 'fifo-db progress: % of % pools', v_done, v_run.pools;
            END IF;
        EXCEPTION WHEN OTHERS THEN
            IF NOT v_isolate THEN
                -- one atomic call: every pool keeps its previous allocations
                GET STACKED DIAGNOSTICS v_err = MESSAGE_TEXT;
                v_run.failed_pools := v_run.pools;
                v_run.buys := 0; v_run.sells := 0; v_run.allocations := 0;
                v_run.unmatched := 0; v_run.total_pnl := 0; v_run.pnl_by_currency := '{}';
                v_run.error := concat_ws(E'\n', v_run.error, v_err);
                PERFORM fifo._note_changes(v_syms, v_accs, v_from);   -- what it consumed stays pending
                EXIT;
            ELSIF v_hi > v_lo THEN
                v_todo_lo := v_todo_lo || ARRAY(SELECT generate_series(v_lo, v_hi));
                v_todo_hi := v_todo_hi || ARRAY(SELECT generate_series(v_lo, v_hi));
            ELSE
                GET STACKED DIAGNOSTICS v_err = MESSAGE_TEXT;
                v_run.failed_pools := v_run.failed_pools + 1;
                v_run.error := coalesce(v_run.error || E'\n', '')
                    || format('pool %s/%s: %s', v_syms[v_lo], v_accs[v_lo], v_err);
                PERFORM fifo._note_changes(ARRAY[v_syms[v_lo]], ARRAY[v_accs[v_lo]], ARRAY[v_from[v_lo]]);
                v_failed_syms := v_failed_syms || v_syms[v_lo];
                v_failed_accs := v_failed_accs || v_accs[v_lo];
            END IF;
        END;
        v_i := v_i + 1;
    END LOOP;

    IF v_fresh IS NOT NULL THEN
        SELECT v_run.allocations + t.allocations, v_run.unmatched + t.unmatched, v_run.total_pnl + t.total_pnl,
               fifo._add_pnl_by_currency(v_run.pnl_by_currency, fifo._pnl_by_currency(t.symbols, t.pnls))
        INTO v_run.allocations, v_run.unmatched, v_run.total_pnl, v_run.pnl_by_currency
        FROM fifo._fresh_totals(v_fresh) t;
        -- a failed pool keeps its previous allocations
        PERFORM fifo._swap_partition(p_version, v_fresh, v_failed_syms, v_failed_accs);
    ELSIF v_run.allocations > 50000 THEN
        PERFORM fifo._analyze(fifo._version_partition(p_version));   -- its plans need statistics
    END IF;

    -- 4. the run record (mode 'all' also prunes the change log: it consumed everything)
    IF p_mode = 'all' THEN
        PERFORM fifo._prune_changes();
        -- every pool has its lock row from now on (no other run can be adding one: they
        -- all hold the 'all' row this run holds exclusively)
        INSERT INTO fifo.pool_locks (symbol, account)
        SELECT p.symbol, p.account FROM unnest(v_syms, v_accs) AS p(symbol, account)
        WHERE NOT EXISTS (SELECT 1 FROM fifo.pool_locks l WHERE l.symbol = p.symbol AND l.account = p.account)
        ON CONFLICT DO NOTHING;
    END IF;
    v_run.finished_at := clock_timestamp();
    v_run.duration_ms := round(extract(epoch FROM v_run.finished_at - v_run.started_at) * 1000, 3);
    v_run.status := CASE
        WHEN v_run.failed_pools > 0 AND v_run.failed_pools = v_run.pools THEN 'failed'
        WHEN v_run.failed_pools > 0 THEN 'partial'
        WHEN v_run.pools = 0 AND v_run.skipped_pools > 0 THEN 'skipped'
        ELSE 'ok' END;
    INSERT INTO public.fifo_runs (batch_id, version, mode, symbols, pools, buys, sells, allocations,
                                  unmatched, total_pnl, skipped_pools, failed_pools,
                                  started_at, finished_at, duration_ms, status, error, pnl_by_currency)
    VALUES (v_run.batch_id, v_run.version, v_run.mode, v_run.symbols, v_run.pools, v_run.buys,
            v_run.sells, v_run.allocations, v_run.unmatched, v_run.total_pnl, v_run.skipped_pools,
            v_run.failed_pools, v_run.started_at, v_run.finished_at, v_run.duration_ms,
            v_run.status, v_run.error, v_run.pnl_by_currency)
    RETURNING * INTO v_run;

    IF v_run.failed_pools > 0 THEN
        RAISE WARNING 'fifo-db run % (%): % of % pools failed and kept their previous allocations',
            v_run.run_id, v_run.mode, v_run.failed_pools, v_run.pools
            USING DETAIL = v_run.error,
                  HINT = CASE WHEN v_isolate
                              THEN 'They are queued again; fix the cause and run compute_fifo_incremental().'
                              ELSE 'Fix the cause and run it again.' END;
    END IF;
    RETURN v_run;
END;
$$;

-- fifo._pool_plan(version, current, symbols[], accounts[], from_times[], locked[]):
-- for the pools locked (indexes into the arrays), sorted by (symbol, account), where
-- each starts: its own cut, its pending changes, or -infinity when the version has
-- never been computed for it; a pool with none of these is left out. For the current
-- version it takes over the pools' pending changes (processed_at set; a row a writer
-- is merging into right now is skipped, not waited for, and stays pending) and returns
-- the pools whose changes it took (taken_*), marking the other versions' states stale
-- from there. fifo._run's step 2; the caller holds the pools' locks.
-- Plans: as fifo._lock_pools (sql/040): at most 10 pools (compute_fifo of a symbol, a
-- run of a few pools) use one generic plan per session, with sequential scans off so
-- that it probes the indexes per pool (a generic plan assumes 10 rows for the unnest;
-- with them on, it read all of fifo.pool_state); planning it on each of a session's
-- first five calls was about 0.8 ms of each (issue 16, fourth session). A longer list
-- is planned on every call. Both settings are set back on return (the SET clauses).
CREATE OR REPLACE FUNCTION fifo._pool_plan(
    p_version integer,
    p_current boolean,
    p_symbols text[],
    p_accounts text[],
    p_from timestamptz[],
    p_locked integer[],
    OUT symbols text[],
    OUT accounts text[],
    OUT from_times timestamptz[],
    OUT taken_symbols text[],
    OUT taken_accounts text[])
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
SET plan_cache_mode = force_custom_plan
SET enable_seqscan = on
AS $$
BEGIN
    IF coalesce(cardinality(p_locked), 0) <= 10 THEN
        PERFORM set_config('plan_cache_mode', 'force_generic_plan', true);
        PERFORM set_config('enable_seqscan', 'off', true);
    END IF;
    WITH locked AS (
        SELECT p_symbols[i] AS symbol, p_accounts[i] AS account, p_from[i] AS from_time
        FROM unnest(p_locked) AS i
    ),
    taken AS (
        -- a pending row a writer is merging into right now (fifo._note_changes)
        -- is skipped, not waited for: it stays pending for the next run
        UPDATE fifo.pool_changes pc SET processed_at = clock_timestamp()
        WHERE pc.id IN (SELECT p.id FROM fifo.pool_changes p JOIN locked l USING (symbol, account)
                        WHERE p_current AND p.processed_at IS NULL
                        FOR UPDATE OF p SKIP LOCKED)
        RETURNING pc.symbol, pc.account, pc.from_time
    ),
    pending AS (
        SELECT t.symbol, t.account, min(t.from_time) AS from_time FROM taken t GROUP BY 1, 2
        UNION ALL
        SELECT pc.symbol, pc.account, min(pc.from_time)
        FROM fifo.pool_changes pc JOIN locked l USING (symbol, account)
        WHERE NOT p_current AND pc.processed_at IS NULL
        GROUP BY 1, 2
    ),
    staled AS (
        UPDATE fifo.pool_state ps
        SET stale_from = least(ps.stale_from, t.from_time)
        FROM (SELECT t.symbol, t.account, min(t.from_time) AS from_time FROM taken t GROUP BY 1, 2) t
        WHERE ps.version <> p_version AND ps.symbol = t.symbol AND ps.account = t.account
          AND EXISTS (SELECT 1 FROM taken)   -- a one-time test: no scan of pool_state when nothing was taken
    ),
    plan AS (
        SELECT l.symbol, l.account,
               CASE WHEN ps.version IS NULL THEN '-infinity'::timestamptz
                    ELSE least(l.from_time, pe.from_time, ps.stale_from) END AS from_time
        FROM locked l
        LEFT JOIN pending pe USING (symbol, account)
        LEFT JOIN fifo.pool_state ps
               ON ps.version = p_version AND ps.symbol = l.symbol AND ps.account = l.account
    )
    SELECT coalesce(array_agg(symbol ORDER BY symbol, account), '{}'),
           coalesce(array_agg(account ORDER BY symbol, account), '{}'),
           coalesce(array_agg(from_time ORDER BY symbol, account), '{}'),
           (SELECT array_agg(t.symbol ORDER BY t.symbol, t.account) FROM taken t),
           (SELECT array_agg(t.account ORDER BY t.symbol, t.account) FROM taken t)
    INTO symbols, accounts, from_times, taken_symbols, taken_accounts
    FROM plan
    WHERE from_time IS NOT NULL;
END;
$$;

-- fifo._record_interrupted_run(mode, version, started_at, reason): a run
-- whose session was cut off (terminated, server restart, lost connection)
-- rolled back everything, its own fifo_runs row included, and left its
-- changes pending. The client that started it records it here, from a new
-- session, as a failed run, so the history shows it; returns the run_id.
CREATE OR REPLACE FUNCTION fifo._record_interrupted_run(
    p_mode text, p_version integer, p_started timestamptz, p_reason text)
RETURNS bigint
LANGUAGE sql
SET search_path = pg_catalog, pg_temp
AS $$
    INSERT INTO public.fifo_runs (batch_id, version, mode, started_at, finished_at, duration_ms, status, error)
    VALUES (gen_random_uuid(), coalesce(p_version, fifo._current_version()), p_mode, p_started, clock_timestamp(),
            round(extract(epoch FROM clock_timestamp() - p_started) * 1000, 3), 'failed',
            'interrupted before it finished: ' || coalesce(p_reason, 'the session ended'))
    RETURNING run_id
$$;

-- fifo._forced_in_place(version): whether a forced full recompute of
-- `version` writes in place (only the rows that differ, sql/032) rather than
-- into a fresh table swapped in for the partition (sql/035): when the trades
-- and the version's stored rows are both fewer than the setting
-- forced_in_place_below (0: never). Below it the fresh table's fixed costs
-- (a table, four index builds, ANALYZE, the swap: 29 ms of an 80 ms forced run
-- of the seed's 4,513 trades) outweigh what writing in place costs; the
-- counts read at most that many rows each. docs/benchmarks.md has the figures.
CREATE OR REPLACE FUNCTION fifo._forced_in_place(p_version integer)
RETURNS boolean
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_below bigint := fifo._setting('forced_in_place_below')::bigint;
BEGIN
    IF v_below = 0 THEN
        RETURN false;
    END IF;
    RETURN (SELECT count(*) FROM (SELECT 1 FROM fifo.trades t LIMIT v_below) x) < v_below
       AND (SELECT count(*) FROM (SELECT 1 FROM fifo.allocations a WHERE a.version = p_version LIMIT v_below) x)
           < v_below;
END;
$$;
