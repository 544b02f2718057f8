-- Locks. Exclusion rests on rows of schema fifo that only fifo-db's owner
-- can lock (migration 0010): locking a row needs the UPDATE privilege on its
-- table, which nobody else has, and nobody else has USAGE on schema fifo.
-- No advisory lock: any role may take any advisory key.
--   fifo.run_locks 'all': every per-pool run holds it FOR SHARE, a forced
--     full recompute FOR UPDATE (so it never needs one lock per pool);
--   fifo.run_locks 'incremental': the incremental tick holding it prunes the
--     change log (a forced run holds it too);
--   fifo.pool_locks (symbol, account): a run holds its pools FOR UPDATE.
-- Order, so that runs never deadlock: the run_locks rows by name, then the
-- pools by (symbol, account) in "C" order.
-- Every wait is bounded: the entry points carry `SET lock_timeout` (restored
-- when they return or fail, so nothing stays in the caller's session) and
-- fifo._bound_waits() sets it to the fifo-db setting lock_timeout. A wait
-- that runs out raises 55P03 naming the holders (pid, role, since when), and
-- fifo._run records the run as failed with that text.

-- (the advisory lock key of a pool, gone with the advisory locks)
DROP FUNCTION IF EXISTS fifo._pool_key(text, text);

-- fifo._lock_timeout(): the setting lock_timeout, as an interval.
CREATE OR REPLACE FUNCTION fifo._lock_timeout()
RETURNS interval
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$ SELECT fifo._setting('lock_timeout')::interval $$;

-- fifo._bound_waits(): lock_timeout := the setting, for the rest of the
-- calling function, which must carry its own `SET lock_timeout` clause (the
-- clause restores the caller's value when the function returns or fails).
-- PL/pgSQL, which keeps its plan: a SQL function with a SET clause is planned
-- again on every call, with the SQL function it called (issue 16: every run
-- calls this).
CREATE OR REPLACE FUNCTION fifo._bound_waits()
RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    PERFORM pg_catalog.set_config('lock_timeout',
        greatest(1, round(extract(epoch FROM fifo._setting('lock_timeout')::interval) * 1000))::bigint::text, true);
END;
$$;

-- fifo._describe_sessions(pids[]): 'pid N (role R, STATE, transaction open
-- since T)' for each, '; ' between; NULL for none. What another role's
-- session does and since when is shown only to a superuser or a member of
-- pg_read_all_stats (the owner, whose rights fifo-db runs with); otherwise the
-- text says so.
CREATE OR REPLACE FUNCTION fifo._describe_sessions(p_pids integer[])
RETURNS text
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT pg_catalog.string_agg(pg_catalog.format('pid %s (role %s, %s)', a.pid, coalesce(a.usename::text, '?'),
               CASE WHEN a.xact_start IS NULL AND a.state IS NULL
                    THEN pg_catalog.format('what it does and since when is not visible to role %s, '
                                           'which is not a member of pg_read_all_stats', current_user)
                    ELSE pg_catalog.format('%s, transaction open since %s', coalesce(a.state, '?'),
                                           coalesce(pg_catalog.date_trunc('second', a.xact_start)::text, '?'))
               END), '; ' ORDER BY a.pid)
    FROM pg_catalog.pg_stat_activity a
    WHERE a.pid = ANY (p_pids)
$$;

-- fifo._lock_holders(xmax, table): who holds a row lock of `table`, as one
-- line (fifo._describe_sessions). A transaction that locked the row at its
-- top level is found by its xid (the row's xmax, or the members of a
-- MultiXactId when several sessions hold it FOR SHARE). One that locked it in
-- a subtransaction (a PL/pgSQL block with EXCEPTION, as fifo-db's runs do)
-- shows only its top xid, which is older than the lock's: then the holders
-- are the sessions holding a lock on `table` that wait for nothing and whose
-- xid is no newer than the row's locker ('one of' them when several). With
-- xmax NULL (a row another transaction inserted, not committed yet) the
-- sessions holding a lock on `table`. NULL when nobody is found (the holder
-- has ended since).
CREATE OR REPLACE FUNCTION fifo._lock_holders(p_xmax xid, p_table regclass)
RETURNS text
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_xids bigint[] := '{}';
    v_pids integer[] := '{}';
BEGIN
    IF p_xmax IS NOT NULL AND p_xmax::text <> '0' THEN
        v_xids := ARRAY[p_xmax::text::bigint];
        v_pids := ARRAY(SELECT DISTINCT l.pid FROM pg_catalog.pg_locks l
                        WHERE l.locktype = 'transactionid' AND l.granted AND l.pid <> pg_catalog.pg_backend_pid()
                          AND l.transactionid::text::bigint = ANY (v_xids));
        IF cardinality(v_pids) = 0 THEN
            BEGIN   -- several holders: xmax is a MultiXactId
                v_xids := v_xids || ARRAY(SELECT m.xid::text::bigint
                                          FROM pg_catalog.pg_get_multixact_members(p_xmax) m);
            EXCEPTION WHEN OTHERS THEN
                NULL;   -- not one
            END;
            v_pids := ARRAY(SELECT DISTINCT l.pid FROM pg_catalog.pg_locks l
                            WHERE l.locktype = 'transactionid' AND l.granted
                              AND l.pid <> pg_catalog.pg_backend_pid()
                              AND l.transactionid::text::bigint = ANY (v_xids));
        END IF;
    END IF;
    IF cardinality(v_pids) = 0 THEN
        v_pids := ARRAY(
            SELECT DISTINCT l.pid
            FROM pg_catalog.pg_locks l
            JOIN pg_catalog.pg_stat_activity a ON a.pid = l.pid
            WHERE l.locktype = 'relation' AND l.relation = p_table AND l.granted
              AND l.pid <> pg_catalog.pg_backend_pid()
              AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_locks w WHERE w.pid = l.pid AND NOT w.granted)
              AND (cardinality(v_xids) = 0
                   OR a.backend_xid::text::bigint <= (SELECT max(x) FROM unnest(v_xids) x)));
        IF cardinality(v_pids) > 1 THEN
            RETURN 'one of ' || fifo._describe_sessions(v_pids);
        END IF;
    END IF;
    RETURN fifo._describe_sessions(v_pids);
END;
$$;

-- fifo._lock_hint(): what to do about a lock held too long.
CREATE OR REPLACE FUNCTION fifo._lock_hint()
RETURNS text
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT pg_catalog.format(
        'A session holds a fifo-db lock until its transaction ends: COMMIT or ROLLBACK there, or end it '
        '(SELECT pg_terminate_backend(pid), as a superuser or a member of its role), then run again. '
        'Runs wait at most the fifo-db setting lock_timeout (now %s).', fifo._setting('lock_timeout'))
$$;

-- fifo._lock_shared(): the 'all' row FOR SHARE, as every per-pool run holds
-- it; waits while a forced full recompute runs, at most lock_timeout, then
-- raises 55P03 naming it.
CREATE OR REPLACE FUNCTION fifo._lock_shared()
RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    PERFORM 1 FROM fifo.run_locks r WHERE r.name = 'all' FOR SHARE;
EXCEPTION WHEN lock_not_available THEN
    RAISE EXCEPTION 'a forced full recompute (compute_fifo_all(true)) holds every pool: %; gave up after '
                    'lock_timeout %',
            coalesce(fifo._lock_holders((SELECT r.xmax FROM fifo.run_locks r WHERE r.name = 'all'),
                                        'fifo.run_locks'), 'it has ended since'),
            fifo._setting('lock_timeout')
        USING ERRCODE = '55P03', HINT = fifo._lock_hint();
END;
$$;

-- fifo._lock_failure(message, hint): the text a run that gave up waiting is
-- recorded with: fifo-db's own message and hint (who holds what, what to do),
-- or, for a wait fifo-db did not name (PostgreSQL's bare 'canceling statement
-- due to lock timeout'), the sessions holding a lock on a table of this
-- database in a mode that blocks readers or writers (fifo-db's own tables,
-- or the trades table a bot may have locked).
CREATE OR REPLACE FUNCTION fifo._lock_failure(p_message text, p_hint text)
RETURNS text
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_pids integer[];
BEGIN
    IF p_message IS DISTINCT FROM 'canceling statement due to lock timeout' THEN
        RETURN p_message || '. ' || coalesce(p_hint, '');
    END IF;
    v_pids := ARRAY(SELECT DISTINCT l.pid FROM pg_catalog.pg_locks l
                    WHERE l.locktype = 'relation' AND l.granted
                      AND l.database = (SELECT d.oid FROM pg_catalog.pg_database d
                                        WHERE d.datname = pg_catalog.current_database())
                      AND l.pid <> pg_catalog.pg_backend_pid()
                      AND l.mode IN ('ShareLock', 'ShareRowExclusiveLock', 'ExclusiveLock', 'AccessExclusiveLock'));
    RETURN pg_catalog.format('a table fifo-db reads or writes is locked by another session: %s; gave up after lock_timeout %s. %s',
        coalesce(fifo._describe_sessions(v_pids), 'a session that has ended since'),
        fifo._setting('lock_timeout'), fifo._lock_hint());
END;
$$;

-- fifo._lock_pools(symbols[], accounts[], wait): lock the pools (after the
-- 'all' row, shared) in (symbol, account) order and return the index of each
-- pool locked. With wait = false a pool held by another run is skipped, not
-- waited for, and nothing is returned while a forced full recompute runs.
-- With wait = true a wait that runs out raises 55P03 naming the holders.
-- Plans: a list of at most 10 pools (compute_fifo of a symbol, a run of a few pools)
-- uses one generic plan per session for each statement, with sequential scans off so
-- that it probes fifo.pool_locks' primary key per pool (a generic plan assumes 10 rows
-- for the unnest; with sequential scans on, it read the whole table, which grows with
-- the pools). Planning the INSERT and the SELECT ... FOR UPDATE on each of a session's
-- first five calls (custom plans) was about 1.2 ms of each (issue 16, fourth session).
-- A longer list is planned on every call, with its real length. Both settings are set
-- back on return (the SET clauses).
CREATE OR REPLACE FUNCTION fifo._lock_pools(p_symbols text[], p_accounts text[], p_wait boolean)
RETURNS SETOF integer
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
SET plan_cache_mode = force_custom_plan
SET enable_seqscan = on
AS $$
DECLARE
    v_held text;
    v_held_syms text[];
    v_held_accs text[];
    v_lock_timeout text := pg_catalog.current_setting('lock_timeout');
    i integer;
BEGIN
    IF coalesce(pg_catalog.cardinality(p_symbols), 0) <= 10 THEN
        PERFORM pg_catalog.set_config('plan_cache_mode', 'force_generic_plan', true);
        PERFORM pg_catalog.set_config('enable_seqscan', 'off', true);
    END IF;
    IF p_wait THEN
        PERFORM fifo._lock_shared();
    ELSIF NOT EXISTS (SELECT 1 FROM fifo.run_locks r WHERE r.name = 'all' FOR SHARE SKIP LOCKED) THEN
        RETURN;   -- a forced full recompute is running: it covers every pool
    END IF;

    -- the rows of pools no run has locked before, in lock order (two runs adding the same
    -- new pools: the second waits for the first's commit, like for its lock). Without
    -- waiting: a pool another transaction is adding right now is held, and skipped.
    IF p_wait THEN
        BEGIN
            INSERT INTO fifo.pool_locks (symbol, account)
            SELECT d.symbol, d.account
            FROM (SELECT DISTINCT p.symbol, p.account FROM unnest(p_symbols, p_accounts) AS p(symbol, account)) d
            WHERE NOT EXISTS (SELECT 1 FROM fifo.pool_locks l WHERE l.symbol = d.symbol AND l.account = d.account)
            ORDER BY d.symbol COLLATE "C", d.account COLLATE "C"
            ON CONFLICT DO NOTHING;
        EXCEPTION WHEN lock_not_available THEN
            SELECT pg_catalog.string_agg(pg_catalog.format('%s/%s', d.symbol, d.account), ', '
                                         ORDER BY d.symbol COLLATE "C", d.account COLLATE "C")
            INTO v_held
            FROM (SELECT DISTINCT p.symbol, p.account FROM unnest(p_symbols, p_accounts) AS p(symbol, account)
                  WHERE NOT EXISTS (SELECT 1 FROM fifo.pool_locks l
                                    WHERE l.symbol = p.symbol AND l.account = p.account)
                  LIMIT 5) d;
            RAISE EXCEPTION 'pool % is held by the transaction adding it: %; gave up after lock_timeout %',
                    coalesce(v_held, '?'),
                    coalesce(fifo._lock_holders(NULL, 'fifo.pool_locks'), 'it has ended since'),
                    fifo._setting('lock_timeout')
                USING ERRCODE = '55P03', HINT = fifo._lock_hint();
        END;
    ELSE
        BEGIN
            PERFORM pg_catalog.set_config('lock_timeout', '100', true);
            INSERT INTO fifo.pool_locks (symbol, account)
            SELECT d.symbol, d.account
            FROM (SELECT DISTINCT p.symbol, p.account FROM unnest(p_symbols, p_accounts) AS p(symbol, account)) d
            WHERE NOT EXISTS (SELECT 1 FROM fifo.pool_locks l WHERE l.symbol = d.symbol AND l.account = d.account)
            ORDER BY d.symbol COLLATE "C", d.account COLLATE "C"
            ON CONFLICT DO NOTHING;
            PERFORM pg_catalog.set_config('lock_timeout', v_lock_timeout, true);
        EXCEPTION WHEN lock_not_available THEN
            -- one at a time (the setting went back with the failed block); per pool only
            -- while some new pool is being added by another transaction, which is rare
            FOR i IN SELECT s FROM generate_subscripts(p_symbols, 1) s
                     WHERE NOT EXISTS (SELECT 1 FROM fifo.pool_locks l
                                       WHERE l.symbol = p_symbols[s] AND l.account = p_accounts[s])
            LOOP
                BEGIN
                    PERFORM pg_catalog.set_config('lock_timeout', '100', true);
                    INSERT INTO fifo.pool_locks (symbol, account) VALUES (p_symbols[i], p_accounts[i])
                    ON CONFLICT DO NOTHING;
                    PERFORM pg_catalog.set_config('lock_timeout', v_lock_timeout, true);
                EXCEPTION WHEN lock_not_available THEN
                    NULL;   -- held by the transaction adding it: skipped below
                END;
            END LOOP;
        END;
    END IF;

    IF p_wait THEN
        BEGIN
            RETURN QUERY
            SELECT p.i::integer FROM unnest(p_symbols, p_accounts) WITH ORDINALITY AS p(symbol, account, i)
            JOIN fifo.pool_locks l ON l.symbol = p.symbol AND l.account = p.account
            ORDER BY l.symbol COLLATE "C", l.account COLLATE "C"
            FOR UPDATE OF l;
        EXCEPTION WHEN lock_not_available THEN
            -- which pools are held: those a SKIP LOCKED pass does not get (it locks the free
            -- ones until the error below rolls them back)
            SELECT coalesce(array_agg(p.symbol), '{}'), coalesce(array_agg(p.account), '{}')
            INTO v_held_syms, v_held_accs
            FROM (SELECT DISTINCT q.symbol, q.account FROM unnest(p_symbols, p_accounts) AS q(symbol, account)) p
            WHERE NOT EXISTS (SELECT 1 FROM (SELECT l.symbol, l.account FROM fifo.pool_locks l
                                             JOIN unnest(p_symbols, p_accounts) AS u(symbol, account)
                                               ON l.symbol = u.symbol AND l.account = u.account
                                             FOR UPDATE OF l SKIP LOCKED) f
                              WHERE f.symbol = p.symbol AND f.account = p.account);
            RAISE EXCEPTION '%; gave up after lock_timeout %',
                    coalesce(fifo._held_pools(v_held_syms, v_held_accs, 'is held by'),
                             'a pool of this run was held by a transaction that has ended since'),
                    fifo._setting('lock_timeout')
                USING ERRCODE = '55P03', HINT = fifo._lock_hint();
        END;
    ELSE
        RETURN QUERY
        SELECT p.i::integer FROM unnest(p_symbols, p_accounts) WITH ORDINALITY AS p(symbol, account, i)
        JOIN fifo.pool_locks l ON l.symbol = p.symbol AND l.account = p.account
        ORDER BY l.symbol COLLATE "C", l.account COLLATE "C"
        FOR UPDATE OF l SKIP LOCKED;
    END IF;
END;
$$;

-- fifo._held_pools(symbols[], accounts[] [, verb]): pools another run holds,
-- and who holds them, as one line ('pool S/A held by pid N (...)'; at most 5
-- pools named, the holders looked up for those only).
CREATE OR REPLACE FUNCTION fifo._held_pools(p_symbols text[], p_accounts text[], p_verb text DEFAULT 'held by')
RETURNS text
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM fifo.run_locks r WHERE r.name = 'all' FOR SHARE SKIP LOCKED) THEN
        RETURN 'every pool is held by a forced full recompute: '
               || coalesce(fifo._lock_holders((SELECT r.xmax FROM fifo.run_locks r WHERE r.name = 'all'),
                                              'fifo.run_locks'),
                           'it has ended since');
    END IF;
    RETURN (
        SELECT pg_catalog.string_agg(pg_catalog.format('pool %s/%s %s %s', h.symbol, h.account, p_verb,
                                                       coalesce(fifo._lock_holders(l.xmax, 'fifo.pool_locks'),
                                                                'a transaction that has ended since')),
                                     '; ' ORDER BY h.n)
               || CASE WHEN max(h.total) > 5 THEN pg_catalog.format('; and %s more', max(h.total) - 5) ELSE '' END
        FROM (SELECT p.symbol, p.account,
                     row_number() OVER (ORDER BY p.symbol COLLATE "C", p.account COLLATE "C") AS n,
                     count(*) OVER () AS total
              FROM unnest(p_symbols, p_accounts) AS p(symbol, account)
              ORDER BY p.symbol COLLATE "C", p.account COLLATE "C"
              LIMIT 5) h
        LEFT JOIN fifo.pool_locks l ON l.symbol = h.symbol AND l.account = h.account);
END;
$$;

-- fifo._lock_all(): the exclusive locks of a forced full recompute: the
-- run_locks rows, 'all' then 'incremental'. A wait that runs out raises 55P03
-- naming the holders (the runs in progress).
CREATE OR REPLACE FUNCTION fifo._lock_all()
RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_held text;
BEGIN
    PERFORM 1 FROM fifo.run_locks r ORDER BY r.name COLLATE "C" FOR UPDATE;
EXCEPTION WHEN lock_not_available THEN
    -- every run in progress holds a row of fifo.run_locks: the sessions holding that table
    -- and waiting for nothing
    v_held := fifo._describe_sessions(ARRAY(
        SELECT DISTINCT l.pid FROM pg_catalog.pg_locks l
        WHERE l.locktype = 'relation' AND l.relation = 'fifo.run_locks'::regclass AND l.granted
          AND l.pid <> pg_catalog.pg_backend_pid()
          AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_locks w WHERE w.pid = l.pid AND NOT w.granted)));
    RAISE EXCEPTION 'a forced full recompute waits for every run in progress to end, and these did not: %; '
                    'gave up after lock_timeout %',
            coalesce(v_held, 'a run that has ended since'), fifo._setting('lock_timeout')
        USING ERRCODE = '55P03', HINT = fifo._lock_hint();
END;
$$;

-- fifo._lock_failed_run(mode, version, symbols[], pools, started, error): a
-- run that gave up waiting for a lock computed nothing: recorded in
-- fifo_runs as failed, its pools counted as skipped, with the error (who
-- holds what, what to do), a WARNING saying so, and returned.
CREATE OR REPLACE FUNCTION fifo._lock_failed_run(
    p_mode text, p_version integer, p_symbols text[], p_pools integer, p_started timestamptz, p_error text)
RETURNS public.fifo_runs
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_run public.fifo_runs;
BEGIN
    INSERT INTO public.fifo_runs (batch_id, version, mode, symbols, pools, skipped_pools, started_at, finished_at,
                                  duration_ms, status, error)
    VALUES (gen_random_uuid(), p_version, p_mode,
            coalesce(ARRAY(SELECT DISTINCT s FROM unnest(p_symbols) s ORDER BY 1), '{}'), 0, p_pools,
            p_started, clock_timestamp(),
            round(extract(epoch FROM clock_timestamp() - p_started) * 1000, 3), 'failed', p_error)
    RETURNING * INTO v_run;
    RAISE WARNING 'fifo-db run % (%) computed nothing: %', v_run.run_id, p_mode, p_error;
    RETURN v_run;
END;
$$;
