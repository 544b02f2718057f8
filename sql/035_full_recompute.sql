-- The partitions of fifo.allocations (one per version, migration 0008) and
-- the fresh-table path of a forced full recompute: fifo._run (mode 'all')
-- has fifo._match write a version's allocations into a fresh table with no
-- index, then fifo._swap_partition builds the indexes once and swaps the
-- table in for the version's partition. Index insertion was a third of a full
-- recompute's work, the old rows' DELETE another share, and the old rows'
-- space comes back at once instead of bloating the table night after night.

-- fifo._version_partition(version [, wait]): the partition holding `version`,
-- created (empty, then attached: SHARE UPDATE EXCLUSIVE on fifo.allocations,
-- which readers and writers never wait for) when missing. Install adds the
-- current version's. While another transaction is adding it, waits, or with
-- wait = false returns NULL.
CREATE OR REPLACE FUNCTION fifo._version_partition(p_version integer, p_wait boolean DEFAULT true)
RETURNS regclass
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_part regclass;
    v_name text := 'allocations_v' || p_version;
BEGIN
    SELECT i.inhrelid::regclass INTO v_part
    FROM pg_inherits i
    JOIN pg_class c ON c.oid = i.inhrelid
    WHERE i.inhparent = 'fifo.allocations'::regclass
      AND pg_get_expr(c.relpartbound, c.oid) = format('FOR VALUES IN (%s)', p_version);
    IF v_part IS NOT NULL THEN
        RETURN v_part;
    END IF;
    -- two first runs of a new version: the second waits here, then finds the first's
    IF p_wait THEN
        PERFORM pg_advisory_xact_lock(1718185569 + 4, p_version);
    ELSIF NOT pg_try_advisory_xact_lock(1718185569 + 4, p_version) THEN
        RETURN NULL;
    END IF;
    SELECT i.inhrelid::regclass INTO v_part
    FROM pg_inherits i
    JOIN pg_class c ON c.oid = i.inhrelid
    WHERE i.inhparent = 'fifo.allocations'::regclass
      AND pg_get_expr(c.relpartbound, c.oid) = format('FOR VALUES IN (%s)', p_version);
    IF v_part IS NULL THEN
        v_part := fifo._fresh_allocations(p_version, v_name);
        EXECUTE format('ALTER TABLE fifo.allocations ATTACH PARTITION %s FOR VALUES IN (%s)', v_part, p_version);
        EXECUTE format('ALTER TABLE %s DROP CONSTRAINT %I', v_part, 'holds_version_' || p_version);
    END IF;
    RETURN v_part;
END;
$$;

-- fifo._fresh_allocations(version, name): a new, empty table fifo.<name>
-- shaped like fifo.allocations (columns, defaults, CHECK constraints; ids
-- drawn from fifo.allocations' identity), holding only
-- `version` (a CHECK that lets ATTACH PARTITION skip its scan), no index.
CREATE OR REPLACE FUNCTION fifo._fresh_allocations(p_version integer, p_name text)
RETURNS regclass
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_table regclass;
BEGIN
    EXECUTE format('CREATE TABLE fifo.%I (LIKE fifo.allocations INCLUDING DEFAULTS INCLUDING CONSTRAINTS '
                   'INCLUDING STORAGE INCLUDING COMPRESSION)', p_name);
    v_table := format('fifo.%I', p_name)::regclass;
    EXECUTE format('ALTER TABLE %s ALTER COLUMN id SET DEFAULT nextval(%L), '
                   'ADD CONSTRAINT %I CHECK (version = %s)',
                   v_table, pg_get_serial_sequence('fifo.allocations', 'id'),
                   'holds_version_' || p_version, p_version);
    RETURN v_table;
END;
$$;

-- fifo._index_statements(table): the CREATE INDEX statements that give
-- `table` the indexes of fifo.allocations, defined alike, so that ATTACH
-- PARTITION adopts them instead of building its own. The primary key's comes
-- as a unique index named <table>_pkey (CREATE INDEX runs beside other index
-- builds; ALTER TABLE ADD PRIMARY KEY would lock them out):
-- fifo._swap_partition makes it the key. Largest first.
CREATE OR REPLACE FUNCTION fifo._index_statements(p_table regclass)
RETURNS SETOF text
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT CASE WHEN k.oid IS NOT NULL
                THEN format('CREATE UNIQUE INDEX %I ON %s %s',
                            (SELECT c.relname FROM pg_class c WHERE c.oid = p_table) || '_pkey', p_table,
                            substring(pg_get_constraintdef(k.oid) FROM '\(.*\)'))
                ELSE regexp_replace(pg_get_indexdef(i.indexrelid), '^CREATE (UNIQUE )?INDEX \S+ ON ONLY \S+ ',
                                    format('CREATE \1INDEX ON %s ', p_table))
           END
    FROM pg_index i
    LEFT JOIN pg_constraint k ON k.conindid = i.indexrelid AND k.conrelid = i.indrelid
    WHERE i.indrelid = 'fifo.allocations'::regclass
    ORDER BY i.indnatts DESC, i.indexrelid
$$;

-- fifo._analyze(table): statistics of a partition just written in bulk, for
-- the columns the engine and readers look up by (version too: the planner
-- does not know that a partition holds one version, and without statistics
-- takes version = n for a selective condition). The index builds set the row
-- count. The whole table's took twice as long (1M trades: 0.30 s vs 0.15 s);
-- autovacuum does the rest later.
CREATE OR REPLACE FUNCTION fifo._analyze(p_table regclass)
RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    EXECUTE format('ANALYZE %s (version, symbol, account, sell_time, sell_trade_id, buy_trade_id)', p_table);
END;
$$;

-- (fifo._swap_partition had no `indexed` argument before)
DROP FUNCTION IF EXISTS fifo._swap_partition(integer, regclass, text[], text[]);
DROP FUNCTION IF EXISTS fifo._in_sessions(text[], text[], integer[], integer[]);
DROP FUNCTION IF EXISTS fifo._match_in_sessions(integer, integer, uuid, text[], text[], timestamptz[], regclass, integer);

-- fifo._swap_partition(version, fresh, keep_symbols[], keep_accounts[], indexed):
-- puts the allocations written into `fresh` in place of the version's. With
-- no pool to keep (the usual case) it builds fifo.allocations' indexes on
-- `fresh`, one pass each (unless `indexed`: fifo._build_in_sessions did), and
-- swaps it in for the version's partition, which is dropped: readers see the
-- old rows until the caller commits, then the new ones, and wait only for the
-- swap itself (ACCESS EXCLUSIVE on fifo.allocations from here to the caller's
-- commit; the run record is all that follows). If other sessions keep the
-- table in use for about a second, the rows are copied in place instead, as
-- they are when pools failed and keep their previous allocations (the keep
-- arrays): a DELETE and an INSERT through the indexes, the way an incremental
-- run writes, slower and never blocking anyone. Returns whether it swapped.
CREATE OR REPLACE FUNCTION fifo._swap_partition(
    p_version integer,
    p_fresh regclass,
    p_keep_symbols text[] DEFAULT '{}',
    p_keep_accounts text[] DEFAULT '{}',
    p_indexed boolean DEFAULT false)
RETURNS boolean
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_old regclass := fifo._version_partition(p_version);
    v_index text;
    v_try integer;
    v_lock_timeout text := pg_catalog.current_setting('lock_timeout');
    v_columns text := 'id, version, batch_id, account, symbol, sell_trade_id, buy_trade_id, allocated_size, '
                      'buy_price, sell_price, buy_fees, sell_fees, cost_basis, sale_proceeds, pnl_amount, '
                      'buy_time, sell_time, unmatched, computed_at';
BEGIN
    IF coalesce(cardinality(p_keep_symbols), 0) = 0 THEN
        IF NOT p_indexed THEN
            FOR v_index IN SELECT * FROM fifo._index_statements(p_fresh) LOOP
                EXECUTE v_index;
            END LOOP;
        END IF;
        EXECUTE format('ALTER TABLE %s ADD PRIMARY KEY USING INDEX %I', p_fresh,
                       (SELECT c.relname FROM pg_class c WHERE c.oid = p_fresh) || '_pkey');
        PERFORM fifo._analyze(p_fresh);
        -- the lock is taken with NOWAIT, retried for about a second: waiting in the lock queue
        -- would hold up every reader behind this run, and a session that read allocations
        -- and then waits for this run's lock would deadlock with it. Except when only
        -- autovacuum holds a partition (it vacuums the table the last forced run wrote, which
        -- can take longer than the retries): then the run waits, and PostgreSQL cancels the
        -- autovacuum after deadlock_timeout. Falling back to the copy in place would double
        -- the table (measured: 279 MB -> 561 MB over 10 nightly runs). The wait is bounded
        -- (3 x deadlock_timeout): a manual VACUUM, which nobody cancels, ends in the fallback.
        FOR v_try IN 1 .. 20 LOOP
            BEGIN
                IF v_try > 1 AND NOT EXISTS (
                    SELECT 1
                    FROM pg_catalog.pg_locks l
                    LEFT JOIN pg_catalog.pg_stat_activity s ON s.pid = l.pid
                    WHERE l.relation IN (SELECT t.relid FROM pg_catalog.pg_partition_tree('fifo.allocations') t)
                      AND l.granted
                      AND l.pid <> pg_catalog.pg_backend_pid()
                      -- autovacuum holds SHARE UPDATE EXCLUSIVE; a role without pg_read_all_stats
                      -- sees no backend_type of other sessions, so an unknown one counts as it
                      AND NOT (l.mode = 'ShareUpdateExclusiveLock'
                               AND coalesce(s.backend_type, 'autovacuum worker') = 'autovacuum worker')) THEN
                    PERFORM pg_catalog.set_config('lock_timeout',
                        (pg_catalog.date_part('epoch', pg_catalog.current_setting('deadlock_timeout')::interval)
                         * 3000)::bigint::text, true);
                    EXECUTE format('LOCK TABLE fifo.allocations, %s IN ACCESS EXCLUSIVE MODE', v_old);
                    PERFORM pg_catalog.set_config('lock_timeout', v_lock_timeout, true);
                ELSE
                    EXECUTE format('LOCK TABLE fifo.allocations, %s IN ACCESS EXCLUSIVE MODE NOWAIT', v_old);
                END IF;
                EXECUTE format('ALTER TABLE fifo.allocations DETACH PARTITION %s', v_old);
                EXECUTE format('ALTER TABLE fifo.allocations ATTACH PARTITION %s FOR VALUES IN (%s)',
                               p_fresh, p_version);
                EXECUTE format('DROP TABLE %s', v_old);
                EXECUTE format('ALTER TABLE %s RENAME TO %I', p_fresh, 'allocations_v' || p_version);
                EXECUTE format('ALTER TABLE %s DROP CONSTRAINT %I', p_fresh, 'holds_version_' || p_version);
                RETURN true;
            EXCEPTION WHEN lock_not_available OR deadlock_detected THEN
                PERFORM pg_catalog.set_config('lock_timeout', v_lock_timeout, true);
                PERFORM pg_sleep(0.05);
            END;
        END LOOP;
        RAISE NOTICE 'fifo-db: another session holds fifo.allocations; version % is replaced in place instead of swapped',
            p_version;
    END IF;
    DELETE FROM fifo.allocations a
    WHERE a.version = p_version
      AND NOT EXISTS (SELECT 1 FROM unnest(p_keep_symbols, p_keep_accounts) AS k(symbol, account)
                      WHERE k.symbol = a.symbol AND k.account = a.account);
    EXECUTE format('INSERT INTO fifo.allocations (%s) OVERRIDING SYSTEM VALUE SELECT %s FROM %s',
                   v_columns, v_columns, p_fresh);
    EXECUTE format('DROP TABLE %s', p_fresh);
    RETURN false;
END;
$$;

-- The second core. A forced full recompute of many pools can compute them in
-- several sessions at once (pools are independent), through dblink: the
-- fresh table is created and committed by one session, each session writes
-- chunks of pools into it and commits, and the run's own transaction then
-- builds the indexes and swaps the table in, as in one session. Readers see
-- nothing before the swap (the fresh table is no partition yet), so
-- compute_fifo_all stays atomic; if the run fails, the fresh table is left
-- behind and the next forced run drops it. Used only when it is safe and
-- worth it: the dblink extension is installed (in any schema; a superuser's
-- `CREATE EXTENSION dblink`, install does not do it), the caller's
-- transaction had written nothing before (the sessions could not see it) and
-- reads committed data, and there are more than 200 pools.
-- `SET fifo.full_recompute_sessions = 1` keeps a run in one session
-- (default 2).

-- fifo._sessions_for(pools): how many sessions a forced full recompute of
-- `pools` pools may use, called before the run has written anything; 1 when
-- dblink is missing, the transaction has written already or reads a snapshot
-- older than its statements, or the run is small.
CREATE OR REPLACE FUNCTION fifo._sessions_for(p_pools integer)
RETURNS integer
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT CASE
        WHEN p_pools <= 200
          OR NOT EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'dblink')
          OR pg_current_xact_id_if_assigned() IS NOT NULL
          OR current_setting('transaction_isolation') <> 'read committed'
        THEN 1
        ELSE greatest(1, least(8, coalesce(nullif(current_setting('fifo.full_recompute_sessions', true), ''), '2')::integer))
    END
$$;

-- fifo._self_conninfo(): a libpq connection string to this database as the
-- current user (inside compute_fifo_all: fifo-db's owner), over the server's
-- first Unix socket directory, else localhost. Values quoted the libpq way.
CREATE OR REPLACE FUNCTION fifo._self_conninfo()
RETURNS text
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT string_agg(c.k || '=''' || replace(replace(c.v, '\', '\\'), '''', '\''') || '''', ' ')
    FROM (VALUES ('dbname', current_database()::text),
                 ('user', current_user::text),
                 ('port', current_setting('port')),
                 ('host', coalesce(nullif(btrim(split_part(current_setting('unix_socket_directories'), ',', 1)), ''),
                                   'localhost')),
                 ('application_name', 'fifo-db forced full recompute')) AS c(k, v)
$$;

-- fifo._dblink_call(sql, name [, arg]): runs `sql` (a format string whose %I
-- is dblink's schema, fifo or the user's own) with $1 = name, $2 = arg, and
-- returns its one text value.
CREATE OR REPLACE FUNCTION fifo._dblink_call(p_sql text, p_name text, p_arg text DEFAULT NULL)
RETURNS text
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_out text;
BEGIN
    EXECUTE format(p_sql, (SELECT e.extnamespace::regnamespace::text FROM pg_extension e WHERE e.extname = 'dblink'))
    INTO v_out USING p_name, p_arg;
    RETURN v_out;
END;
$$;

-- fifo._in_sessions(names[], statements[], pools[]): runs the statements in
-- the open dblink connections `names`, each in a transaction of its own, on
-- whichever connection is free: first those with pools[i] > 0 (chunks of
-- that many pools, reported as progress like fifo._run's), then, once every
-- chunk is done, the others (pools[i] = 0). Each statement returns one text
-- value (a command's status will do); the values come back in statement
-- order. Raises on the first failure.
CREATE OR REPLACE FUNCTION fifo._in_sessions(p_names text[], p_statements text[], p_pools integer[])
RETURNS text[]
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_schema text := (SELECT e.extnamespace::regnamespace::text FROM pg_extension e WHERE e.extname = 'dblink');
    v_n integer := cardinality(p_statements);
    v_out text[] := array_fill(NULL::text, ARRAY[v_n]);
    v_running integer[] := array_fill(0, ARRAY[cardinality(p_names)]);   -- the statement out on each
    v_next_chunk integer := 1;
    v_next_other integer := 1;
    v_chunks_out integer := 0;   -- chunks sent, not yet done
    v_total integer := (SELECT coalesce(sum(p), 0) FROM unnest(p_pools) p);
    v_done integer := 0;
    v_left integer := v_n;
    v_busy integer;
    v_value text;
    i integer;
    s integer;
BEGIN
    WHILE v_left > 0 LOOP
        FOR i IN 1 .. cardinality(p_names) LOOP
            s := v_running[i];
            IF s > 0 THEN
                EXECUTE format('SELECT %I.dblink_is_busy($1)', v_schema) INTO v_busy USING p_names[i];
                IF v_busy = 0 THEN
                    EXECUTE format('SELECT r.x FROM %I.dblink_get_result($1) AS r(x text)', v_schema)
                        INTO v_value USING p_names[i];
                    v_out[s] := v_value;
                    -- the empty result that frees the connection
                    EXECUTE format('SELECT count(*) FROM %I.dblink_get_result($1) AS r(x text)', v_schema)
                        USING p_names[i];
                    v_running[i] := 0;
                    v_left := v_left - 1;
                    IF p_pools[s] > 0 THEN
                        v_chunks_out := v_chunks_out - 1;
                        v_done := v_done + p_pools[s];
                        RAISE NOTICE 'fifo-db progress: % of % pools', v_done, v_total;
                    END IF;
                END IF;
            END IF;
            IF v_running[i] = 0 THEN
                WHILE v_next_chunk <= v_n AND p_pools[v_next_chunk] = 0 LOOP
                    v_next_chunk := v_next_chunk + 1;
                END LOOP;
                WHILE v_next_other <= v_n AND p_pools[v_next_other] > 0 LOOP
                    v_next_other := v_next_other + 1;
                END LOOP;
                s := NULL;
                IF v_next_chunk <= v_n THEN
                    s := v_next_chunk;
                    v_next_chunk := v_next_chunk + 1;
                    v_chunks_out := v_chunks_out + 1;
                ELSIF v_chunks_out = 0 AND v_next_other <= v_n THEN
                    s := v_next_other;
                    v_next_other := v_next_other + 1;
                END IF;
                IF s IS NOT NULL THEN
                    EXECUTE format('SELECT %I.dblink_send_query($1, $2)', v_schema) USING p_names[i], p_statements[s];
                    v_running[i] := s;
                END IF;
            END IF;
        END LOOP;
        PERFORM pg_sleep(0.002);
    END LOOP;
    RETURN v_out;
END;
$$;

-- fifo._build_in_sessions(sessions, version, batch, symbols[], accounts[],
-- from_times[], into, chunk): fills the committed fresh table `into` with
-- fifo._match over the pools, `chunk` pools at a time, in `sessions` sessions
-- of their own at once (each chunk committed as it is written; pool_state is
-- the caller's to write), then builds fifo.allocations' indexes on it the same
-- way, an index per session at a time (each build in one process: the
-- server's parallel workers would only compete for the same cores). The
-- sessions commit asynchronously (synchronous_commit off): what they write
-- counts only once the run's own commit, which flushes the log past theirs,
-- has succeeded. Returns
-- the counts as fifo._match does. Raises on the first failure (the caller then
-- computes in one session instead).
CREATE OR REPLACE FUNCTION fifo._build_in_sessions(
    p_sessions integer,
    p_version integer,
    p_batch_id uuid,
    p_symbols text[],
    p_accounts text[],
    p_from timestamptz[],
    p_into regclass,
    p_chunk integer,
    OUT buys bigint,
    OUT sells bigint,
    OUT allocations bigint,
    OUT unmatched bigint,
    OUT total_pnl numeric,
    OUT pnl_by_currency jsonb)
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_n integer := coalesce(cardinality(p_symbols), 0);
    v_names text[] := ARRAY(SELECT format('fifo_%s_%s', left(replace(p_batch_id::text, '-', ''), 12), i)
                            FROM generate_series(1, p_sessions) i);
    v_statements text[];
    v_pools integer[];
    v_out text[];
    v_err text;
    i integer;
BEGIN
    buys := 0; sells := 0; allocations := 0; unmatched := 0; total_pnl := 0; pnl_by_currency := '{}';
    -- each chunk answers "pools,buys,sells,allocations,unmatched,total_pnl|pnl_by_currency"
    SELECT array_agg(format('SELECT concat_ws('','', m.pools, m.buys, m.sells, m.allocations, m.unmatched, '
                            'm.total_pnl) || ''|'' || m.pnl_by_currency::text '
                            'FROM fifo._match(%s, %L, %L, %L, %L, %L, false) m', p_version, p_batch_id,
                            p_symbols[lo:hi], p_accounts[lo:hi], p_from[lo:hi], p_into) ORDER BY lo),
           array_agg(hi - lo + 1 ORDER BY lo)
    INTO v_statements, v_pools
    FROM (SELECT lo, least(lo + p_chunk - 1, v_n) AS hi FROM generate_series(1, v_n, p_chunk) lo) c;
    v_statements := coalesce(v_statements, '{}') || ARRAY(SELECT * FROM fifo._index_statements(p_into));
    v_pools := coalesce(v_pools, '{}') || array_fill(0, ARRAY[cardinality(v_statements) - coalesce(cardinality(v_pools), 0)]);
    BEGIN
        FOR i IN 1 .. p_sessions LOOP
            PERFORM fifo._dblink_call('SELECT %I.dblink_connect($1, $2)', v_names[i],
                                      fifo._self_conninfo()
                                      || ' options=''-c max_parallel_maintenance_workers=0 -c synchronous_commit=off''');
        END LOOP;
        v_out := fifo._in_sessions(v_names, v_statements, v_pools);
    EXCEPTION WHEN OTHERS THEN
        GET STACKED DIAGNOSTICS v_err = MESSAGE_TEXT;
        PERFORM fifo._dblink_disconnect(v_names);
        RAISE EXCEPTION 'computing in % sessions failed: %', p_sessions, v_err;
    END;
    PERFORM fifo._dblink_disconnect(v_names);
    FOR i IN 1 .. cardinality(v_out) LOOP
        CONTINUE WHEN v_pools[i] = 0;
        buys := buys + split_part(v_out[i], ',', 2)::bigint;
        sells := sells + split_part(v_out[i], ',', 3)::bigint;
        allocations := allocations + split_part(v_out[i], ',', 4)::bigint;
        unmatched := unmatched + split_part(v_out[i], ',', 5)::bigint;
        total_pnl := total_pnl + split_part(split_part(v_out[i], '|', 1), ',', 6)::numeric;
        pnl_by_currency := fifo._add_pnl_by_currency(pnl_by_currency, split_part(v_out[i], '|', 2)::jsonb);
    END LOOP;
END;
$$;

-- fifo._dblink_disconnect(names[]): closes those of the named dblink
-- connections that are open.
CREATE OR REPLACE FUNCTION fifo._dblink_disconnect(p_names text[])
RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_name text;
BEGIN
    FOREACH v_name IN ARRAY p_names LOOP
        IF fifo._dblink_call('SELECT ($1 = ANY (%I.dblink_get_connections()))::text', v_name) = 'true' THEN
            PERFORM fifo._dblink_call('SELECT %I.dblink_disconnect($1)', v_name);
        END IF;
    END LOOP;
END;
$$;

-- fifo._fresh_allocations_committed(version, name): fifo._fresh_allocations
-- in a transaction of its own (through dblink), so that other sessions can
-- write into the table. Stale ones, left by runs that failed, are dropped
-- first.
CREATE OR REPLACE FUNCTION fifo._fresh_allocations_committed(p_version integer, p_name text)
RETURNS regclass
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_conn text := format('fifo_fresh_%s', pg_backend_pid());
BEGIN
    PERFORM fifo._drop_stale_fresh_tables();
    PERFORM fifo._dblink_call('SELECT %I.dblink_connect($1, $2)', v_conn, fifo._self_conninfo());
    BEGIN
        PERFORM fifo._dblink_call('SELECT t.x FROM %I.dblink($1, $2) AS t(x text)', v_conn,
                                  format('SELECT fifo._fresh_allocations(%s, %L)::text', p_version, p_name));
    EXCEPTION WHEN OTHERS THEN
        PERFORM fifo._dblink_disconnect(ARRAY[v_conn]);
        RAISE;
    END;
    PERFORM fifo._dblink_disconnect(ARRAY[v_conn]);
    RETURN format('fifo.%I', p_name)::regclass;
END;
$$;

-- fifo._drop_stale_fresh_tables(): drops the fresh tables of forced runs that
-- failed after their sessions had committed them (tables named
-- allocations_v<version>_<batch> that are no partition). Called under a
-- forced run's exclusive lock, so no other run is filling one.
CREATE OR REPLACE FUNCTION fifo._drop_stale_fresh_tables()
RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_table regclass;
BEGIN
    FOR v_table IN
        SELECT c.oid::regclass FROM pg_class c
        WHERE c.relnamespace = 'fifo'::regnamespace AND c.relkind = 'r' AND NOT c.relispartition
          AND c.relname ~ '^allocations_v[0-9]+_[0-9a-f]{12}$'
    LOOP
        EXECUTE format('DROP TABLE %s', v_table);
    END LOOP;
END;
$$;

-- the current version's partition, so that its first run adds nothing
SELECT fifo._version_partition(fifo._current_version());
