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
-- current version's. While another transaction is adding it, waits (as long
-- as the caller's lock_timeout), or with wait = false returns NULL.
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
    -- two first runs of a new version: the second waits here (bounded by the run's
    -- lock_timeout), then finds the first's. SHARE UPDATE EXCLUSIVE on the parent conflicts
    -- with itself (and ATTACH PARTITION takes it anyway), not with readers or writers; only
    -- fifo-db's owner may take it.
    IF p_wait THEN
        LOCK TABLE fifo.allocations IN SHARE UPDATE EXCLUSIVE MODE;
    ELSE
        BEGIN
            LOCK TABLE fifo.allocations IN SHARE UPDATE EXCLUSIVE MODE NOWAIT;
        EXCEPTION WHEN lock_not_available THEN
            RETURN NULL;
        END;
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

-- fifo._fresh_version_clauses(version): the ALTER TABLE clauses that make a
-- table shaped like fifo.allocations a fresh table for `version`: ids drawn
-- from fifo.allocations' identity, and a CHECK holding only `version` (which
-- lets ATTACH PARTITION skip its scan; fifo._swap_partition drops it after).
-- Both ways of making a fresh table use them.
CREATE OR REPLACE FUNCTION fifo._fresh_version_clauses(p_version integer)
RETURNS text
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT format('ALTER COLUMN id SET DEFAULT nextval(%L), ADD CONSTRAINT %I CHECK (version = %s)',
                  pg_get_serial_sequence('fifo.allocations', 'id'), 'holds_version_' || p_version, p_version)
$$;

-- fifo._fresh_allocations(version, name): a new, empty table fifo.<name>
-- shaped like fifo.allocations (columns, defaults, CHECK constraints), made
-- fresh for `version` (fifo._fresh_version_clauses), no index.
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
    EXECUTE format('ALTER TABLE %s %s', v_table, fifo._fresh_version_clauses(p_version));
    RETURN v_table;
END;
$$;

-- fifo._reserve_allocation_ids(count): the first of `count` consecutive ids
-- taken at once from fifo.allocations' identity (the rows then get the first
-- id + 0, 1, 2, ...), instead of one nextval per row (1M trades: 0.3 s of the
-- session's CPU, while the parallel workers wait for it); NULL when they
-- cannot be (count 0: unknown; a sequence not counting by 1, without room, or
-- that the role may not read and set): then every row takes nextval. The ids
-- start past the sequence's last value, which is past every id handed out,
-- those other sessions hold in their caches included (the identity caches
-- 100), and the sequence is set after them. Race-free: only fifo-db's owner
-- may take ids from the sequence, fifo-db takes them only in runs, which hold
-- fifo.run_locks 'all' (sql/040), and the forced run that calls this holds it
-- FOR UPDATE: nobody takes an id between reading the last value and setting
-- it. Ids need not be dense (nothing orders or counts by them); those of rows
-- a failed run rolls back are not reused.
CREATE OR REPLACE FUNCTION fifo._reserve_allocation_ids(p_count bigint)
RETURNS bigint
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_seq regclass := pg_catalog.pg_get_serial_sequence('fifo.allocations', 'id')::regclass;
    v_last bigint;
    v_first bigint;
BEGIN
    IF p_count > 0 AND pg_catalog.has_sequence_privilege(v_seq, 'SELECT')
       AND pg_catalog.has_sequence_privilege(v_seq, 'UPDATE') THEN
        -- the last id handed out (read from the sequence itself: unlike pg_sequence_last_value,
        -- never NULL for a sequence in use); before the first, the one before the start
        EXECUTE format('SELECT CASE WHEN q.is_called THEN q.last_value ELSE q.last_value - 1 END FROM %s q', v_seq)
        INTO v_last;
        SELECT pg_catalog.setval(s.seqrelid, v_last + p_count) - (p_count - 1)
        INTO v_first
        FROM pg_catalog.pg_sequence s
        WHERE s.seqrelid = v_seq AND s.seqincrement = 1 AND s.seqmax - p_count >= v_last;
    END IF;
    RETURN v_first;
END;
$$;

-- fifo._fill_fresh(version, batch, symbols[], accounts[], from_times[], into, trades):
-- writes the allocation rows of the pools (fifo._allocation_rows) into the
-- fresh table `into` (fifo._fresh_allocations) and returns how many. fifo._match
-- calls it for a forced run's chunks when the run cannot write them all in one
-- statement (fifo._fresh_allocations_matched). A pool's allocation rows are at
-- most its trades (one per point of its axis, sql/030), so `trades` (the pools'
-- buys and sells) ids are reserved at once (fifo._reserve_allocation_ids); a row
-- beyond the reservation (a bound that no longer holds, or none reserved) takes
-- nextval, so ids stay unique whatever the count.
CREATE OR REPLACE FUNCTION fifo._fill_fresh(
    p_version integer,
    p_batch_id uuid,
    p_symbols text[],
    p_accounts text[],
    p_from timestamptz[],
    p_into regclass,
    p_trades bigint)
RETURNS bigint
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_pools integer := coalesce(cardinality(p_symbols), 0);
    v_seq regclass := pg_catalog.pg_get_serial_sequence('fifo.allocations', 'id')::regclass;
    v_first bigint := fifo._reserve_allocation_ids(p_trades);
    v_reserved bigint := CASE WHEN v_first IS NULL THEN 0 ELSE p_trades END;
    v_rows bigint;
BEGIN
    EXECUTE format($q$
        INSERT INTO %s (
            id, version, batch_id, account, symbol, sell_trade_id, buy_trade_id,
            allocated_size, buy_price, sell_price, buy_fees, sell_fees,
            cost_basis, sale_proceeds, pnl_amount, buy_time, sell_time, unmatched)
        SELECT CASE WHEN r.n <= $6 THEN $7 + (r.n - 1) ELSE pg_catalog.nextval($8) END,
               $1, $2, r.account, r.symbol, r.sell_trade_id, r.buy_trade_id,
               r.allocated_size, r.buy_price, r.sell_price, r.buy_fees, r.sell_fees,
               r.cost_basis, r.sale_proceeds, r.pnl_amount, r.buy_time, r.sell_time, r.buy_trade_id IS NULL
        FROM %s WITH ORDINALITY AS r(account, symbol, sell_trade_id, buy_trade_id, allocated_size,
                                     buy_price, sell_price, buy_fees, sell_fees, cost_basis,
                                     sale_proceeds, pnl_amount, buy_time, sell_time, n)$q$, p_into,
        -- whole pools, several of them, enough trades to repay starting parallel workers
        -- (a few ms): split over the cores (fifo._allocation_rows_split, sql/030)
        CASE WHEN v_pools >= 4 AND p_trades >= 20000 AND NOT '-infinity' < ANY (p_from)
             THEN 'fifo._allocation_rows_split($1, $3, $4)'
             ELSE 'fifo._allocation_rows($1, $3, $4, $5)' END)
    USING p_version, p_batch_id, p_symbols, p_accounts, p_from, v_reserved, v_first, v_seq;
    GET DIAGNOSTICS v_rows = ROW_COUNT;
    RETURN v_rows;
END;
$$;

-- fifo._fresh_allocations_matched(version, name, batch, symbols[], accounts[], trades):
-- a forced run's fresh table fifo.<name>, shaped as fifo._fresh_allocations
-- makes one (fifo.allocations' columns, defaults, NOT NULLs and CHECKs, the
-- version's CHECK, no index), created holding every allocation row of the
-- pools, whole pools, stamped with `batch`: one CREATE TABLE AS, then one
-- ALTER TABLE adding the constraints (one scan of the table validates them
-- all). NULL, and nothing created, when the ids cannot be reserved at once
-- (fifo._reserve_allocation_ids: `trades` of them, the pools' buys and sells,
-- a bound on their rows): the run then writes in chunks. Why: PostgreSQL 15
-- never runs a plain INSERT in parallel, so the chunks (fifo._fill_fresh) have
-- the parallel workers match a chunk while the session only gathers, then the
-- session writes it while the workers wait. CREATE TABLE AS may read a
-- parallel plan: here the session writes rows (with a bulk-insert state) while
-- the workers match, a Parallel Append of calls of fifo._allocation_rows over
-- eighths of the pool list, each call matching its pools exactly as alone, the
-- same rows. 1M trades over 1,000 pools on 2 cores, quiet, medians of 4
-- alternated: table, rows and index builds 8.25 s against 10.06 s in chunks.
-- The workers run with this session's role, settings and snapshot and end with
-- the statement (docs/security.md). One statement: an error fails it whole, and
-- the caller writes in chunks instead, which leave out only the failing pools.
CREATE OR REPLACE FUNCTION fifo._fresh_allocations_matched(
    p_version integer,
    p_name text,
    p_batch_id uuid,
    p_symbols text[],
    p_accounts text[],
    p_trades bigint)
RETURNS regclass
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
-- the session writes while the workers match (a SET clause: restored on return)
SET parallel_leader_participation = off
SET jit = off   -- the calls' cost estimate would trigger JIT compilation of the statement
AS $$
DECLARE
    n integer := coalesce(cardinality(p_symbols), 0);
    v_parts integer := least(8, n);
    v_first bigint;
    v_rows bigint;
    v_calls text;
    v_alter text;
    v_table regclass;
BEGIN
    IF n = 0 THEN
        RETURN NULL;
    END IF;
    v_first := fifo._reserve_allocation_ids(p_trades);
    IF v_first IS NULL THEN
        RETURN NULL;
    END IF;
    SELECT string_agg(format('SELECT * FROM fifo._allocation_rows($1, $3[%1$s:%2$s], $4[%1$s:%2$s], $5[%1$s:%2$s])',
                             b.lo, b.hi), ' UNION ALL ' ORDER BY b.lo)
    INTO v_calls
    FROM (SELECT k * n / v_parts + 1 AS lo, (k + 1) * n / v_parts AS hi
          FROM generate_series(0, v_parts - 1) AS k) b;
    EXECUTE format($q$
        CREATE TABLE fifo.%I AS
        SELECT $6 + (pg_catalog.row_number() OVER () - 1) AS id, $1 AS version, $2 AS batch_id,
               r.account, r.symbol, r.sell_trade_id, r.buy_trade_id, r.allocated_size, r.buy_price,
               r.sell_price, r.buy_fees, r.sell_fees, r.cost_basis, r.sale_proceeds, r.pnl_amount,
               r.buy_time, r.sell_time, r.buy_trade_id IS NULL AS unmatched, pg_catalog.now() AS computed_at
        FROM (%s) r$q$, p_name, v_calls)
    USING p_version, p_batch_id, p_symbols, p_accounts,
          array_fill('-infinity'::timestamptz, ARRAY[n]), v_first;
    GET DIAGNOSTICS v_rows = ROW_COUNT;
    v_table := format('fifo.%I', p_name)::regclass;
    IF v_rows > p_trades THEN
        RAISE EXCEPTION 'the forced run wrote % allocation rows for % trades', v_rows, p_trades
            USING ERRCODE = 'XX000', HINT = 'A pool has at most one allocation row per trade: report this.';
    END IF;
    -- what fifo._fresh_allocations gets from LIKE fifo.allocations: the NOT NULLs, the
    -- defaults and the CHECKs; then what makes it fresh for the version (the same clauses)
    SELECT string_agg(x.clause, ', ' ORDER BY x.o, x.clause) || ', ' || fifo._fresh_version_clauses(p_version)
    INTO v_alter
    FROM (SELECT 1 AS o, format('ALTER COLUMN %I SET NOT NULL', a.attname) AS clause
          FROM pg_attribute a
          WHERE a.attrelid = 'fifo.allocations'::regclass AND a.attnum > 0 AND NOT a.attisdropped AND a.attnotnull
          UNION ALL
          SELECT 2, format('ALTER COLUMN %I SET DEFAULT %s', a.attname, pg_get_expr(d.adbin, d.adrelid))
          FROM pg_attrdef d
          JOIN pg_attribute a ON a.attrelid = d.adrelid AND a.attnum = d.adnum
          WHERE d.adrelid = 'fifo.allocations'::regclass AND NOT a.attisdropped
          UNION ALL
          -- validated, NOT VALID ones too: LIKE copies them, and an INSERT checks every row
          -- against them, as this ALTER does
          SELECT 3, format('ADD CONSTRAINT %I %s', c.conname,
                           regexp_replace(pg_get_constraintdef(c.oid), ' NOT VALID$', ''))
          FROM pg_constraint c
          WHERE c.conrelid = 'fifo.allocations'::regclass AND c.contype = 'c') x;
    EXECUTE format('ALTER TABLE %s %s', v_table, v_alter);
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

-- fifo._source_pools(): every pool (symbol, account) of the trades source, for
-- compute_fifo_all's pool list. RETURN QUERY, not part of the caller's SELECT
-- INTO, so that PostgreSQL may read the trades in parallel workers (1M trades:
-- 0.21-0.28 s against 0.32-0.57 s in one process; fifo._count_pools says why).
CREATE OR REPLACE FUNCTION fifo._source_pools()
RETURNS TABLE (symbol text, account text)
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    RETURN QUERY SELECT DISTINCT t.symbol, t.account FROM fifo.trades t;
END;
$$;

-- fifo._count_pools(symbols[], accounts[]): the buys and the sells of each
-- pool (arrays in the order of the pools given) and whether any of their
-- trades is one the trades source cannot give as a valid fill (`problem`).
-- A forced run counts every pool once, here, instead of once per chunk in
-- fifo._match: one statement over the whole trades source, which
-- PostgreSQL's parallel query may split over parallel workers (1M trades:
-- 0.65 s per-chunk, serial). With a problem row, the run leaves the counting
-- to fifo._match, which fails only the pools concerned.
CREATE OR REPLACE FUNCTION fifo._count_pools(p_symbols text[], p_accounts text[])
RETURNS TABLE (buys bigint[], sells bigint[], problem boolean)
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    -- RETURN QUERY, not SELECT INTO: PostgreSQL runs a statement asked for a limited
    -- number of rows (SELECT INTO asks for one) without parallel workers
    RETURN QUERY
    SELECT coalesce(array_agg(coalesce(n.b, 0) ORDER BY c.i), '{}'),
           coalesce(array_agg(coalesce(n.s, 0) ORDER BY c.i), '{}'),
           coalesce(bool_or(n.p), false)
    FROM unnest(p_symbols, p_accounts) WITH ORDINALITY AS c(symbol, account, i)
    LEFT JOIN (SELECT t.symbol, t.account, count(*) FILTER (WHERE t.side = 'buy') AS b,
                      count(*) FILTER (WHERE t.side = 'sell') AS s, bool_or(t.problem IS NOT NULL) AS p
               FROM fifo.trades t
               GROUP BY t.symbol, t.account) n
           ON n.symbol = c.symbol AND n.account = c.account;
END;
$$;

-- fifo._fresh_totals(table): what a run reports of the allocations written
-- into a fresh table: rows, unmatched rows, total P&L, and each symbol's P&L
-- (symbols[], pnls[], for fifo._pnl_by_currency): the figures fifo._match
-- returns for the rows it writes into fifo.allocations. One statement over the
-- whole table after the last chunk, which PostgreSQL's parallel query may
-- split over parallel workers (1M trades: 0.2-0.4 s, against 0.9 s of
-- RETURNING in the chunks' INSERTs). Numeric sums are exact, so the totals are
-- the same digits as the chunks' totals added up.
CREATE OR REPLACE FUNCTION fifo._fresh_totals(p_table regclass)
RETURNS TABLE (allocations bigint, unmatched bigint, total_pnl numeric, symbols text[], pnls numeric[])
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    -- RETURN QUERY: parallel workers may run it (fifo._count_pools says why not SELECT
    -- INTO); fifo._pnl_by_currency (parallel unsafe) is left to the caller
    RETURN QUERY EXECUTE format($q$
        SELECT coalesce(sum(g.n), 0)::bigint, coalesce(sum(g.u), 0)::bigint, coalesce(sum(g.pnl), 0),
               array_agg(g.symbol), array_agg(g.pnl)
        FROM (SELECT a.symbol, count(*) AS n, count(*) FILTER (WHERE a.unmatched) AS u,
                     sum(a.pnl_amount) AS pnl
              FROM %s a GROUP BY a.symbol) g$q$, p_table);
END;
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

-- The two-session path of older versions is gone: it opened dblink
-- connections as the owner from SECURITY DEFINER code, and a cancelled
-- statement left them open in the caller's session (issue 14). No fifo-db
-- code opens a connection. Upgrades drop its functions (installing twice
-- drops nothing).
DROP FUNCTION IF EXISTS fifo._swap_partition(integer, regclass, text[], text[], boolean);
DROP FUNCTION IF EXISTS fifo._in_sessions(text[], text[], integer[], integer[]);
DROP FUNCTION IF EXISTS fifo._in_sessions(text[], text[], integer[]);
DROP FUNCTION IF EXISTS fifo._match_in_sessions(integer, integer, uuid, text[], text[], timestamptz[], regclass, integer);
DROP FUNCTION IF EXISTS fifo._build_in_sessions(integer, integer, uuid, text[], text[], timestamptz[], regclass, integer);
DROP FUNCTION IF EXISTS fifo._sessions_for(integer);
DROP FUNCTION IF EXISTS fifo._self_conninfo();
DROP FUNCTION IF EXISTS fifo._dblink_call(text, text, text);
DROP FUNCTION IF EXISTS fifo._dblink_disconnect(text[]);
DROP FUNCTION IF EXISTS fifo._fresh_allocations_committed(integer, text);

-- fifo._swap_partition(version, fresh, keep_symbols[], keep_accounts[]):
-- puts the allocations written into `fresh` in place of the version's. With
-- no pool to keep (the usual case) it builds fifo.allocations' indexes on
-- `fresh`, one pass each, and swaps it in for the version's partition, which
-- is dropped: readers see the old rows until the caller commits, then the
-- new ones, and wait only for the swap itself (ACCESS EXCLUSIVE on
-- fifo.allocations from here to the caller's commit; the run record is all
-- that follows). If other sessions keep the table in use for about a second
-- (a SHARE UPDATE EXCLUSIVE holder: at most 3 x deadlock_timeout in all),
-- the rows are copied in place instead, as they are when pools failed and
-- keep their previous allocations (the keep arrays): a DELETE and an INSERT
-- through the indexes, the way an incremental run writes, slower and never
-- blocking anyone. Returns whether it swapped.
CREATE OR REPLACE FUNCTION fifo._swap_partition(
    p_version integer,
    p_fresh regclass,
    p_keep_symbols text[] DEFAULT '{}',
    p_keep_accounts text[] DEFAULT '{}')
RETURNS boolean
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
-- the index builds sort in memory (1M trades: the largest index's sort is about 100 MB;
-- at the default 64MB it spilled to disk, 30% slower). A SET clause: restored when the
-- function returns, nothing outlives the call.
SET maintenance_work_mem = '256MB'
AS $$
DECLARE
    v_old regclass := fifo._version_partition(p_version);
    v_index text;
    v_try integer := 0;
    v_deadline timestamptz;
    v_left_ms bigint;
    v_lock_timeout text := pg_catalog.current_setting('lock_timeout');
    v_columns text := 'id, version, batch_id, account, symbol, sell_trade_id, buy_trade_id, allocated_size, '
                      'buy_price, sell_price, buy_fees, sell_fees, cost_basis, sale_proceeds, pnl_amount, '
                      'buy_time, sell_time, unmatched, computed_at';
BEGIN
    IF coalesce(cardinality(p_keep_symbols), 0) = 0 THEN
        FOR v_index IN SELECT * FROM fifo._index_statements(p_fresh) LOOP
            EXECUTE v_index;
        END LOOP;
        EXECUTE format('ALTER TABLE %s ADD PRIMARY KEY USING INDEX %I', p_fresh,
                       (SELECT c.relname FROM pg_class c WHERE c.oid = p_fresh) || '_pkey');
        PERFORM fifo._analyze(p_fresh);
        -- the lock is taken with NOWAIT, retried for about a second (20 tries): waiting in
        -- the lock queue would hold up every reader behind this run, and a session that read
        -- allocations and then waits for this run's lock would deadlock with it. Except when
        -- only autovacuum holds a partition (it vacuums the table the last forced run wrote,
        -- which can take longer than the retries): then the run waits, and PostgreSQL cancels
        -- the autovacuum after deadlock_timeout. Falling back to the copy in place would double
        -- the table (measured: 279 MB -> 561 MB over 10 nightly runs). All tries together end
        -- at 3 x deadlock_timeout from the first, wall clock (a manual VACUUM, which nobody
        -- cancels, or a session the owner cannot tell from autovacuum, used to make each of
        -- 19 tries wait that long: 59 s); then the rows are copied in place.
        v_deadline := clock_timestamp()
                      + 3 * pg_catalog.current_setting('deadlock_timeout')::interval;
        LOOP
            v_try := v_try + 1;
            v_left_ms := floor(extract(epoch FROM v_deadline - clock_timestamp()) * 1000);
            EXIT WHEN v_try > 20 OR v_left_ms < 1;
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
                    PERFORM pg_catalog.set_config('lock_timeout', v_left_ms::text, true);
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
                PERFORM pg_sleep(least(0.05, greatest(0, extract(epoch FROM v_deadline - clock_timestamp()))));
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

-- fifo._drop_stale_fresh_tables(): drops the fresh tables that forced runs
-- of older versions left behind when they failed after their second session
-- had committed them (tables named allocations_v<version>_<batch> that are no
-- partition). A run now creates its fresh table in its own transaction, so a
-- run that fails leaves none, and no other session can see one being filled.
-- Called by install and by every forced run.
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

-- the current version's partition, so that its first run adds nothing;
-- and no leftover of an older version's failed forced run
SELECT fifo._version_partition(fifo._current_version());
SELECT fifo._drop_stale_fresh_tables();
