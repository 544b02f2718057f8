-- Change capture: statement-level triggers with transition tables record,
-- per statement, each pool touched and the earliest order_time affected
-- (old and new positions of updated rows), into fifo.pool_changes.
--
-- The trigger functions are generated from the trades source's mapping
-- (sql/015): the same templates serve fifo-db's trade_records and an
-- adopted bot's table. They are SECURITY DEFINER so that a writer with
-- nothing but INSERT/UPDATE/DELETE on the trades table (a bot) can record
-- its changes without any right on fifo.pool_changes itself; they take no
-- arguments and write only the pools the statement touched. A statement
-- that touched a pool also notifies channel fifo_db_changes (delivered at
-- commit, once per transaction, nothing on rollback) while a `fifo-db
-- worker` has claimed the database: it listens there (sql/120_worker.sql).
-- pg_notify needs no right of the writer.

-- fifo._note_changes(symbols[], accounts[], from_times[]): record that these
-- pools changed from these times on. A transaction keeps one pending row per
-- pool of its own (xact = its id; later statements merge into it, earliest
-- time wins); it locks nothing another transaction holds, so a writer never
-- waits here. At commit, fifo._coalesce_changes folds the pool's other
-- pending rows into that one: so the queue holds one pending row per pool
-- whatever the write rate and however many writers commit at once (plus,
-- while a computation runs, the rows it holds).
CREATE OR REPLACE FUNCTION fifo._note_changes(p_symbols text[], p_accounts text[], p_from timestamptz[])
RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    WITH c AS (
        SELECT x.symbol, x.account, min(coalesce(x.from_time, '-infinity')) AS from_time
        FROM unnest(p_symbols, p_accounts, p_from) AS x(symbol, account, from_time)
        WHERE x.symbol IS NOT NULL AND x.account IS NOT NULL
        GROUP BY 1, 2
    ),
    merged AS (
        UPDATE fifo.pool_changes pc
        SET from_time = least(pc.from_time, c.from_time), changed_at = clock_timestamp()
        FROM c
        WHERE pc.xact = pg_current_xact_id() AND pc.processed_at IS NULL
          AND pc.symbol = c.symbol AND pc.account = c.account
        RETURNING pc.symbol, pc.account
    )
    INSERT INTO fifo.pool_changes (symbol, account, from_time)
    SELECT c.symbol, c.account, c.from_time
    FROM c
    WHERE NOT EXISTS (SELECT 1 FROM merged m WHERE m.symbol = c.symbol AND m.account = c.account);
END;
$$;

-- fifo._coalesce_changes(): the deferred trigger on fifo.pool_changes (fires
-- at commit, once per row the transaction added; the first firing does the
-- work for all of them). For each pool the committing transaction changed,
-- in (symbol, account) order so that no two writers deadlock: hold the pool's
-- slot row (fifo.pool_change_slots), then delete the pool's other pending
-- rows and widen this transaction's row to their earliest from_time. Writers
-- of one pool thus take turns, each for the instant of its commit, and each
-- sees the rows of those before it. Pending rows another transaction holds
-- (a running computation, SKIP LOCKED) are left alone: the run consumes them.
-- A slot held longer than lock_timeout (a transaction that ran SET
-- CONSTRAINTS ALL IMMEDIATE and stayed open), a deadlock, or an isolation
-- level above READ COMMITTED (whose snapshot would not see the others' rows)
-- leaves the rows as they are, never fails the writer's commit: the next
-- writer of the pool folds them.
CREATE OR REPLACE FUNCTION fifo._coalesce_changes()
RETURNS trigger
LANGUAGE plpgsql
SECURITY DEFINER   -- fires at the writer's commit, outside the capture trigger: a bot has no right on fifo.*
SET search_path = pg_catalog, pg_temp
SET lock_timeout = '2s'
AS $$
DECLARE
    v_ids bigint[];
    v_symbols text[];
    v_accounts text[];
BEGIN
    -- the firing of this transaction's first pending row (the lowest id) does the work for all of
    -- them; the others return here, after one probe of pool_changes_xact_idx (until issue 16's fourth
    -- session every firing gathered and sorted all the transaction's rows first: 500 x 500 rows, 0.2 s,
    -- at the commit of an import of 500 pools)
    IF EXISTS (SELECT 1 FROM fifo.pool_changes pc
               WHERE pc.xact = pg_current_xact_id() AND pc.processed_at IS NULL AND pc.id < NEW.id)
       OR NOT EXISTS (SELECT 1 FROM fifo.pool_changes pc
                      WHERE pc.id = NEW.id AND pc.xact = pg_current_xact_id() AND pc.processed_at IS NULL) THEN
        RETURN NULL;
    END IF;
    SELECT array_agg(pc.id ORDER BY pc.id), array_agg(pc.symbol ORDER BY pc.id), array_agg(pc.account ORDER BY pc.id)
    INTO v_ids, v_symbols, v_accounts
    FROM fifo.pool_changes pc
    WHERE pc.xact = pg_current_xact_id() AND pc.processed_at IS NULL;
    IF current_setting('transaction_isolation') <> 'read committed' THEN
        RETURN NULL;
    END IF;
    BEGIN
        -- the pools' slots, in order: the writers before this one have committed once it holds them
        INSERT INTO fifo.pool_change_slots AS s (symbol, account)
        SELECT DISTINCT x.symbol, x.account FROM unnest(v_symbols, v_accounts) AS x(symbol, account)
        ORDER BY 1, 2
        ON CONFLICT (symbol, account) DO UPDATE SET symbol = s.symbol;
        -- a new statement: it sees their rows; fold them into this transaction's
        WITH gone AS (
            DELETE FROM fifo.pool_changes pc
            WHERE pc.id IN (SELECT p.id FROM fifo.pool_changes p
                            JOIN (SELECT DISTINCT x.symbol, x.account
                                  FROM unnest(v_symbols, v_accounts) AS x(symbol, account)) x USING (symbol, account)
                            WHERE p.processed_at IS NULL AND p.id <> ALL (v_ids)
                            FOR UPDATE OF p SKIP LOCKED)
            RETURNING pc.symbol, pc.account, pc.from_time
        )
        UPDATE fifo.pool_changes pc
        SET from_time = g.from_time
        FROM (SELECT g.symbol, g.account, min(g.from_time) AS from_time FROM gone g GROUP BY 1, 2) g
        WHERE pc.id = ANY (v_ids) AND pc.symbol = g.symbol AND pc.account = g.account
          AND g.from_time < pc.from_time;
    EXCEPTION WHEN lock_not_available OR deadlock_detected THEN
        NULL;   -- the rows stay as they are; the next writer of the pool folds them
    END;
    RETURN NULL;
END;
$$;

DROP TRIGGER IF EXISTS fifo_coalesce_changes ON fifo.pool_changes;
CREATE CONSTRAINT TRIGGER fifo_coalesce_changes
    AFTER INSERT ON fifo.pool_changes
    DEFERRABLE INITIALLY DEFERRED
    FOR EACH ROW EXECUTE FUNCTION fifo._coalesce_changes();

-- fifo._fold_consumed_changes(symbols[], accounts[]): keep the consumed
-- change rows of these pools that compute_fifo_since() needs, and few of
-- them. --since T recomputes from the earliest change made at or after T, so
-- what a pool's rows must answer is, for any T, min(from_time) over the rows
-- with changed_at >= T. Two rules keep that answer and bound the rows:
--   * a row is dropped when a later one (changed_at) starts no later
--     (from_time): whenever it is in a window, so is that one;
--   * rows changed in the same second (the last minute), the same minute (the
--     last hour), the same hour (the last day) or the same day (older) fold
--     into one, the newest, widened to their earliest from_time and latest
--     changed_at: a window starting inside that second (minute, ...) then
--     recomputes from the earliest change of it, a little more, never less.
-- So a pool keeps at most about 150 consumed rows, and a window never takes
-- the from_time of a change made long before it: before issue 16 all of a
-- pool's consumed rows folded into one, and a bulk load's row kept the
-- pool's first trade as the cut of every later --since (21.4 s, not ms).
CREATE OR REPLACE FUNCTION fifo._fold_consumed_changes(p_symbols text[], p_accounts text[])
RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_now timestamptz := clock_timestamp();
BEGIN
    WITH pools AS (
        SELECT DISTINCT x.symbol, x.account FROM unnest(p_symbols, p_accounts) AS x(symbol, account)
    ),
    consumed AS (
        SELECT pc.id, pc.symbol, pc.account, pc.from_time, pc.changed_at,
               CASE WHEN pc.changed_at >= v_now - interval '1 minute' THEN date_trunc('second', pc.changed_at, 'UTC')
                    WHEN pc.changed_at >= v_now - interval '1 hour' THEN date_trunc('minute', pc.changed_at, 'UTC')
                    WHEN pc.changed_at >= v_now - interval '1 day' THEN date_trunc('hour', pc.changed_at, 'UTC')
                    ELSE date_trunc('day', pc.changed_at, 'UTC') END AS bucket
        FROM fifo.pool_changes pc JOIN pools USING (symbol, account)
        WHERE pc.processed_at IS NOT NULL
    ),
    merged AS (
        -- one row per bucket: its newest, widened
        SELECT c.id, c.symbol, c.account,
               first_value(c.id) OVER b AS keep_id,
               min(c.from_time) OVER b AS from_time,
               max(c.changed_at) OVER b AS changed_at
        FROM consumed c
        WINDOW b AS (PARTITION BY c.symbol, c.account, c.bucket ORDER BY c.changed_at DESC, c.id DESC
                     ROWS BETWEEN UNBOUNDED PRECEDING AND UNBOUNDED FOLLOWING)
    ),
    keepers AS (
        -- each bucket's row, and the earliest from_time of the later ones
        SELECT m.keep_id, m.from_time, m.changed_at,
               min(m.from_time) OVER (PARTITION BY m.symbol, m.account
                                      ORDER BY m.changed_at DESC, m.keep_id DESC
                                      ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING) AS later_from
        FROM merged m
        WHERE m.id = m.keep_id
    ),
    kept AS (
        -- the bucket rows that no later row makes redundant
        SELECT k.keep_id, k.from_time, k.changed_at
        FROM keepers k
        WHERE k.later_from IS NULL OR k.from_time < k.later_from
    ),
    gone AS (
        -- every other consumed row, named by the windows above: no join. (As NOT EXISTS
        -- against kept the planner took kept for a few rows and scanned it once per
        -- consumed row: 1,100 x 550 rows, 538 ms after 10 appends to 100 pools in a
        -- minute, issue 16; a NOT IN subplan is scanned per row once it outgrows work_mem.)
        DELETE FROM fifo.pool_changes pc
        WHERE pc.id = ANY (ARRAY(SELECT m.id FROM merged m WHERE m.id <> m.keep_id
                                 UNION ALL
                                 SELECT k.keep_id FROM keepers k
                                 WHERE NOT (k.later_from IS NULL OR k.from_time < k.later_from)))
        RETURNING pc.id
    )
    UPDATE fifo.pool_changes pc
    SET from_time = k.from_time, changed_at = k.changed_at
    FROM kept k
    WHERE pc.id = k.keep_id
      AND (pc.from_time, pc.changed_at) IS DISTINCT FROM (k.from_time, k.changed_at)
      AND EXISTS (SELECT 1 FROM gone);
END;
$$;

-- fifo._change_retention(): how far back compute_fifo_since() can look
-- (setting change_retention, default 7 days).
CREATE OR REPLACE FUNCTION fifo._change_retention()
RETURNS interval
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$ SELECT fifo._setting('change_retention')::interval $$;

-- fifo._prune_changes(): drop consumed change rows older than the
-- retention that compute_fifo_since() can look back (setting
-- change_retention, default 7 days). Called by incremental and full runs.
CREATE OR REPLACE FUNCTION fifo._prune_changes()
RETURNS bigint
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_count bigint;
BEGIN
    -- through the changed_at index: processed_at is never before changed_at
    DELETE FROM fifo.pool_changes pc
    WHERE pc.changed_at < now() - fifo._change_retention() AND pc.processed_at IS NOT NULL;
    GET DIAGNOSTICS v_count = ROW_COUNT;
    RETURN v_count;
END;
$$;

-- fifo._create_capture(): (re)create the capture trigger functions and the
-- triggers on the trades source table for the configured source.
CREATE OR REPLACE FUNCTION fifo._create_capture()
RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $body$
DECLARE
    m record := fifo._trades_mapping(fifo._setting('trades_source'));
    -- the pools of a transition table `rows`, with their earliest time
    c_pools constant text := $t$
        SELECT array_agg(x.symbol), array_agg(x.account), array_agg(x.from_time)
        FROM (SELECT (%1$s)::text AS symbol, (%2$s)::text AS account, min((%3$s)::timestamptz) AS from_time
              FROM %4$s t GROUP BY 1, 2) x$t$;
    c_function constant text := $t$
        CREATE OR REPLACE FUNCTION fifo.%1$I()
        RETURNS trigger
        LANGUAGE plpgsql
        SECURITY DEFINER   -- writers record their changes without rights on fifo.pool_changes
        SET search_path = pg_catalog, pg_temp
        AS $f$
        DECLARE
            v_symbols text[];
            v_accounts text[];
            v_from timestamptz[];
        BEGIN
            %2$s
            INTO v_symbols, v_accounts, v_from;
            PERFORM fifo._note_changes(v_symbols, v_accounts, v_from);
            -- wakes `fifo-db worker` (LISTEN fifo_db_changes) at commit, when one has claimed
            -- this database (sql/120): the NOTIFY's cost at the writer's commit (small; see
            -- docs/worker.md) is paid only then. PostgreSQL folds a transaction's into one
            IF v_symbols IS NOT NULL AND EXISTS (SELECT 1 FROM fifo.workers w WHERE w.pid IS NOT NULL) THEN
                PERFORM pg_catalog.pg_notify('fifo_db_changes', '');
            END IF;
            RETURN NULL;
        END;
        $f$
        $t$;
BEGIN
    EXECUTE format(c_function, '_capture_insert',
                   format(c_pools, m.symbol, m.account, m.order_time, 'new_rows'));
    EXECUTE format(c_function, '_capture_delete',
                   format(c_pools, m.symbol, m.account, m.order_time, 'old_rows'));
    -- an update counts only when a matching input changed; it marks both the
    -- old and the new position (a trade moved to another pool or time)
    EXECUTE format(c_function, '_capture_update', format($t$
        SELECT array_agg(x.symbol), array_agg(x.account), array_agg(x.from_time)
        FROM (SELECT p.symbol, p.account, min(p.order_time) AS from_time
              FROM (SELECT (%1$s)::text AS k, (%2$s)::text AS symbol, (%3$s)::text AS account,
                           (%4$s)::timestamptz AS order_time, %5$s AS inputs FROM old_rows t) o
              FULL JOIN (SELECT (%1$s)::text AS k, (%2$s)::text AS symbol, (%3$s)::text AS account,
                                (%4$s)::timestamptz AS order_time, %5$s AS inputs FROM new_rows t) n
                     ON n.k = o.k
              CROSS JOIN LATERAL (VALUES (o.symbol, o.account, o.order_time),
                                         (n.symbol, n.account, n.order_time)) AS p(symbol, account, order_time)
              WHERE o.inputs IS DISTINCT FROM n.inputs AND p.symbol IS NOT NULL
              GROUP BY 1, 2) x$t$,
        m.order_id, m.symbol, m.account, m.order_time, m.inputs));
    -- a TRUNCATE: every computed pool starts over
    EXECUTE format(c_function, '_capture_truncate', $t$
        SELECT array_agg(ps.symbol), array_agg(ps.account), array_agg('-infinity'::timestamptz)
        FROM (SELECT DISTINCT s.symbol, s.account FROM fifo.pool_state s) ps$t$);

    EXECUTE format($t$
        CREATE OR REPLACE TRIGGER fifo_capture_insert
            AFTER INSERT ON %1$s REFERENCING NEW TABLE AS new_rows
            FOR EACH STATEMENT EXECUTE FUNCTION fifo._capture_insert();
        CREATE OR REPLACE TRIGGER fifo_capture_update
            AFTER UPDATE ON %1$s REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
            FOR EACH STATEMENT EXECUTE FUNCTION fifo._capture_update();
        CREATE OR REPLACE TRIGGER fifo_capture_delete
            AFTER DELETE ON %1$s REFERENCING OLD TABLE AS old_rows
            FOR EACH STATEMENT EXECUTE FUNCTION fifo._capture_delete();
        CREATE OR REPLACE TRIGGER fifo_capture_truncate
            AFTER TRUNCATE ON %1$s
            FOR EACH STATEMENT EXECUTE FUNCTION fifo._capture_truncate();$t$, m.source_table);
END;
$body$;

SELECT fifo._create_capture();
