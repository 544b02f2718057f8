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
-- shaped like fifo.allocations (columns, defaults, generated column, CHECK
-- constraints; ids drawn from fifo.allocations' identity), holding only
-- `version` (a CHECK that lets ATTACH PARTITION skip its scan), no index.
CREATE OR REPLACE FUNCTION fifo._fresh_allocations(p_version integer, p_name text)
RETURNS regclass
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_table regclass;
BEGIN
    EXECUTE format('CREATE TABLE fifo.%I (LIKE fifo.allocations INCLUDING DEFAULTS INCLUDING GENERATED '
                   'INCLUDING CONSTRAINTS INCLUDING STORAGE INCLUDING COMPRESSION)', p_name);
    v_table := format('fifo.%I', p_name)::regclass;
    EXECUTE format('ALTER TABLE %s ALTER COLUMN id SET DEFAULT nextval(%L), '
                   'ADD CONSTRAINT %I CHECK (version = %s)',
                   v_table, pg_get_serial_sequence('fifo.allocations', 'id'),
                   'holds_version_' || p_version, p_version);
    RETURN v_table;
END;
$$;

-- fifo._swap_partition(version, fresh, keep_symbols[], keep_accounts[]):
-- puts the allocations written into `fresh` in place of the version's. With
-- no pool to keep (the usual case) it builds fifo.allocations' indexes on
-- `fresh` (one pass each, parallel where the server allows) and swaps it in
-- for the version's partition, which is dropped: readers see the old rows
-- until the caller commits, then the new ones, and wait only for the swap
-- itself (ACCESS EXCLUSIVE on fifo.allocations from here to the caller's
-- commit; the run record is all that follows). If other sessions keep the
-- table in use for about a second, the rows are copied in place instead, as
-- they are when pools failed and keep their previous allocations (the keep
-- arrays): a DELETE and an INSERT through the indexes, the way an incremental
-- run writes, slower and never blocking anyone. Returns whether it swapped.
CREATE OR REPLACE FUNCTION fifo._swap_partition(
    p_version integer,
    p_fresh regclass,
    p_keep_symbols text[] DEFAULT '{}',
    p_keep_accounts text[] DEFAULT '{}')
RETURNS boolean
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_old regclass := fifo._version_partition(p_version);
    v_index record;
    v_try integer;
    v_columns text := 'id, version, batch_id, account, symbol, sell_trade_id, buy_trade_id, allocated_size, '
                      'buy_price, sell_price, buy_fees, sell_fees, cost_basis, sale_proceeds, pnl_amount, '
                      'buy_time, sell_time, computed_at';
BEGIN
    IF coalesce(cardinality(p_keep_symbols), 0) = 0 THEN
        -- the parent's indexes, defined alike so that ATTACH adopts them instead of building its own
        FOR v_index IN
            SELECT pg_get_indexdef(i.indexrelid) AS def, pg_get_constraintdef(k.oid) AS con
            FROM pg_index i
            LEFT JOIN pg_constraint k ON k.conindid = i.indexrelid AND k.conrelid = i.indrelid
            WHERE i.indrelid = 'fifo.allocations'::regclass
            ORDER BY i.indisprimary DESC, i.indexrelid
        LOOP
            IF v_index.con IS NOT NULL THEN
                EXECUTE format('ALTER TABLE %s ADD %s', p_fresh, v_index.con);
            ELSE
                EXECUTE regexp_replace(v_index.def, '^CREATE (UNIQUE )?INDEX \S+ ON ONLY \S+ ',
                                       format('CREATE \1INDEX ON %s ', p_fresh));
            END IF;
        END LOOP;
        -- the index builds set the row count; statistics for the columns the engine and readers
        -- look up by (version too: the planner does not know that a partition holds one); the
        -- whole table's took twice as long (1M trades: 0.15 s vs 0.30 s), autovacuum does the rest
        EXECUTE format('ANALYZE %s (version, symbol, account, sell_time, sell_trade_id, buy_trade_id)', p_fresh);
        -- the lock is taken with NOWAIT, retried for about a second: waiting in the lock queue
        -- would hold up every reader behind this run, and a session that read allocations
        -- and then waits for this run's lock would deadlock with it
        FOR v_try IN 1 .. 20 LOOP
            BEGIN
                EXECUTE format('LOCK TABLE fifo.allocations, %s IN ACCESS EXCLUSIVE MODE NOWAIT', v_old);
                EXECUTE format('ALTER TABLE fifo.allocations DETACH PARTITION %s', v_old);
                EXECUTE format('ALTER TABLE fifo.allocations ATTACH PARTITION %s FOR VALUES IN (%s)',
                               p_fresh, p_version);
                EXECUTE format('DROP TABLE %s', v_old);
                EXECUTE format('ALTER TABLE %s RENAME TO %I', p_fresh, 'allocations_v' || p_version);
                EXECUTE format('ALTER TABLE %s DROP CONSTRAINT %I', p_fresh, 'holds_version_' || p_version);
                RETURN true;
            EXCEPTION WHEN lock_not_available THEN
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

-- the current version's partition, so that its first run adds nothing
SELECT fifo._version_partition(fifo._current_version());
