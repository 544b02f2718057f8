-- Change capture of the asset (tax) view: what compute_fifo_assets_incremental()
-- (sql/420) consumes, and what verify_fifo() reports as staleness.
--
-- Statement-level triggers on the trades source (the table fifo.trades maps:
-- trade_records, or an adopted bot's), fifo.prices and fifo.transfers note
-- that the source changed, into fifo.asset_changes (migration 0018). They note
-- nothing until the asset view has been computed once (a row in
-- fifo.asset_runs): a bot whose owner never uses the asset view pays one index
-- probe per statement. The rows say only which table changed and since when:
-- an incremental run finds the changed pools itself, by comparing the legs,
-- price points and transfers with those of the last run (sql/420), so the
-- queue needs no detail and stays small: a transaction keeps one row per
-- source table of its own (later statements merge into it, a row lock on its
-- own row only), and at its commit folds the other committed rows of that
-- source into it (SKIP LOCKED: never waiting for a writer or for a running
-- computation, which holds the rows it consumes). So the queue holds about one
-- row per source table, plus one per writer committing at the same instant.
-- The triggers run as the owner (SECURITY DEFINER): a bot with nothing but
-- INSERT/UPDATE/DELETE on trade_records has no right on fifo.asset_changes.

-- fifo._note_asset_change(source): record that `source` (trades | prices |
-- transfers) changed in this transaction, once the asset view is in use.
CREATE OR REPLACE FUNCTION fifo._note_asset_change(p_source text)
RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM fifo.asset_runs) THEN
        RETURN;   -- never computed: the first run is a full one anyway
    END IF;
    UPDATE fifo.asset_changes c
    SET statements = c.statements + 1
    WHERE c.source = p_source AND c.xact = pg_current_xact_id();
    IF NOT FOUND THEN
        INSERT INTO fifo.asset_changes (source) VALUES (p_source);
    END IF;
    -- wakes `fifo-db worker` (LISTEN fifo_db_changes) at commit while one has claimed the database
    IF EXISTS (SELECT 1 FROM fifo.workers w WHERE w.pid IS NOT NULL) THEN
        PERFORM pg_catalog.pg_notify('fifo_db_changes', '');
    END IF;
END;
$$;

-- the trigger functions: one per shape of statement, no arguments; the source
-- is the table's (fifo.prices, fifo.transfers) or else the trades
CREATE OR REPLACE FUNCTION fifo._asset_capture_new()
RETURNS trigger
LANGUAGE plpgsql
SECURITY DEFINER   -- writers record their changes without rights on fifo.asset_changes
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF EXISTS (SELECT 1 FROM new_rows) THEN
        PERFORM fifo._note_asset_change(CASE WHEN TG_TABLE_SCHEMA = 'fifo' THEN TG_TABLE_NAME ELSE 'trades' END);
    END IF;
    RETURN NULL;
END;
$$;

CREATE OR REPLACE FUNCTION fifo._asset_capture_old()
RETURNS trigger
LANGUAGE plpgsql
SECURITY DEFINER   -- writers record their changes without rights on fifo.asset_changes
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF EXISTS (SELECT 1 FROM old_rows) THEN
        PERFORM fifo._note_asset_change(CASE WHEN TG_TABLE_SCHEMA = 'fifo' THEN TG_TABLE_NAME ELSE 'trades' END);
    END IF;
    RETURN NULL;
END;
$$;

CREATE OR REPLACE FUNCTION fifo._asset_capture_truncate()
RETURNS trigger
LANGUAGE plpgsql
SECURITY DEFINER   -- writers record their changes without rights on fifo.asset_changes
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    PERFORM fifo._note_asset_change(CASE WHEN TG_TABLE_SCHEMA = 'fifo' THEN TG_TABLE_NAME ELSE 'trades' END);
    RETURN NULL;
END;
$$;

-- fifo._coalesce_asset_changes(): the deferred trigger on fifo.asset_changes
-- (fires at the writer's commit, once per source row the transaction added):
-- fold the other committed rows of the source into this one. Rows locked by a
-- running computation or by another committing writer are skipped; an
-- isolation level above READ COMMITTED (whose snapshot would not see the
-- others' rows) folds nothing. Never fails the writer's commit.
CREATE OR REPLACE FUNCTION fifo._coalesce_asset_changes()
RETURNS trigger
LANGUAGE plpgsql
SECURITY DEFINER   -- fires at the writer's commit: a bot has no right on fifo.*
SET search_path = pg_catalog, pg_temp
SET lock_timeout = '2s'
AS $$
BEGIN
    IF current_setting('transaction_isolation') <> 'read committed' THEN
        RETURN NULL;
    END IF;
    BEGIN
        WITH gone AS (
            DELETE FROM fifo.asset_changes c
            WHERE c.id IN (SELECT x.id FROM fifo.asset_changes x
                           WHERE x.source = NEW.source AND x.id <> NEW.id
                           FOR UPDATE SKIP LOCKED)
            RETURNING c.statements, c.changed_at
        )
        UPDATE fifo.asset_changes c
        SET statements = c.statements + g.statements, changed_at = least(c.changed_at, g.changed_at)
        FROM (SELECT sum(gone.statements) AS statements, min(gone.changed_at) AS changed_at FROM gone) g
        WHERE c.id = NEW.id AND g.statements IS NOT NULL;
    EXCEPTION WHEN lock_not_available OR deadlock_detected OR serialization_failure THEN
        NULL;   -- the rows stay as they are; the next writer folds them
    END;
    RETURN NULL;
END;
$$;

DROP TRIGGER IF EXISTS fifo_coalesce_asset_changes ON fifo.asset_changes;
CREATE CONSTRAINT TRIGGER fifo_coalesce_asset_changes
    AFTER INSERT ON fifo.asset_changes
    DEFERRABLE INITIALLY DEFERRED
    FOR EACH ROW EXECUTE FUNCTION fifo._coalesce_asset_changes();

-- fifo._create_asset_capture(): the capture triggers on the trades source
-- table, fifo.prices and fifo.transfers. Re-run by every install (and so by
-- an adoption, which re-applies sql/ with the new source).
CREATE OR REPLACE FUNCTION fifo._create_asset_capture()
RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_table text;
BEGIN
    FOREACH v_table IN ARRAY ARRAY[(fifo._trades_mapping(fifo._setting('trades_source'))).source_table,
                                   'fifo.prices', 'fifo.transfers'] LOOP
        EXECUTE format($t$
            CREATE OR REPLACE TRIGGER fifo_asset_capture_insert
                AFTER INSERT ON %1$s REFERENCING NEW TABLE AS new_rows
                FOR EACH STATEMENT EXECUTE FUNCTION fifo._asset_capture_new();
            CREATE OR REPLACE TRIGGER fifo_asset_capture_update
                AFTER UPDATE ON %1$s REFERENCING NEW TABLE AS new_rows
                FOR EACH STATEMENT EXECUTE FUNCTION fifo._asset_capture_new();
            CREATE OR REPLACE TRIGGER fifo_asset_capture_delete
                AFTER DELETE ON %1$s REFERENCING OLD TABLE AS old_rows
                FOR EACH STATEMENT EXECUTE FUNCTION fifo._asset_capture_old();
            CREATE OR REPLACE TRIGGER fifo_asset_capture_truncate
                AFTER TRUNCATE ON %1$s
                FOR EACH STATEMENT EXECUTE FUNCTION fifo._asset_capture_truncate();$t$, v_table);
    END LOOP;
END;
$$;

SELECT fifo._create_asset_capture();

-- fifo._asset_staleness(): whether the asset view lags its inputs: never
-- computed, changes captured since its last run (per source table, the
-- earliest), or settings changed since. verify_fifo() reports it; one row,
-- stale = false when current.
CREATE OR REPLACE FUNCTION fifo._asset_staleness(OUT computed boolean, OUT stale boolean, OUT detail text)
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_last fifo.asset_runs;
    v_changes text;
BEGIN
    SELECT * INTO v_last FROM fifo.asset_runs r WHERE r.finished_at IS NOT NULL ORDER BY r.run_id DESC LIMIT 1;
    computed := v_last.run_id IS NOT NULL;
    IF NOT computed THEN
        stale := false;
        detail := 'the asset view has not been computed';
        RETURN;
    END IF;
    SELECT string_agg(format('%s (%s statement(s) since %s)', x.source, x.statements, x.changed_at), ', '
                      ORDER BY x.source)
    INTO v_changes
    FROM (SELECT c.source, sum(c.statements) AS statements, min(c.changed_at) AS changed_at
          FROM fifo.asset_changes c GROUP BY c.source) x;
    stale := v_changes IS NOT NULL OR v_last.settings IS DISTINCT FROM fifo._asset_settings();
    detail := CASE WHEN v_changes IS NOT NULL
                   THEN format('changed since the last asset run (%s): %s', v_last.finished_at, v_changes)
                   WHEN stale THEN format('settings changed since the last asset run (%s): %s, now %s',
                                          v_last.finished_at, coalesce(v_last.settings, 'unknown'),
                                          fifo._asset_settings()) END;
END;
$$;

-- fifo._verify_assets(): verify_fifo()'s findings about the asset view, one row
-- each (check_name, asset, wallet, id, detail), none when it is clean or was
-- never computed:
--   asset_stale          changes or other settings since its last run
--   asset_disposal       a disposal (trade leg, transfer out, transfer fee) whose
--                        allocation rows (pieces of lots plus the unmatched part)
--                        do not add up to its quantity, or rows of no disposal
--   asset_lot            a lot that gave more than its quantity, or a row taking
--                        from a lot that is not there
--   asset_transfer       a transfer whose pieces arriving in the destination do not
--                        add up to what left the source (its matched rows), or that
--                        did not arrive as lots there
-- Checked against the inputs as the last run saw them (its legs and transfer
-- inputs): while the view is stale, the staleness is the finding. Set-based:
-- group-bys and hash joins on the ids.
CREATE OR REPLACE FUNCTION fifo._verify_assets()
RETURNS TABLE (check_name text, symbol text, account text, trade_id text, detail text)
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
    WITH last AS (
        SELECT r.* FROM fifo.asset_runs r WHERE r.finished_at IS NOT NULL ORDER BY r.run_id DESC LIMIT 1
    ),
    disp AS (
        -- the disposals the last run matched
        SELECT g.wallet, g.asset, g.leg_id AS id, g.quantity
        FROM fifo.asset_legs g
        WHERE g.direction = 'dispose'
        UNION ALL
        SELECT t.from_account, t.asset, t.transfer_id || ':out', t.quantity
        FROM fifo.asset_transfer_inputs t, last
        WHERE fifo._asset_moves(last.pooling, t.at) AND NOT (t.asset = ANY (fifo._report_currencies()))
        UNION ALL
        SELECT CASE WHEN fifo._asset_moves(last.pooling, t.at) THEN t.from_account ELSE '*' END, t.asset, t.transfer_id || ':fee',
               t.fee
        FROM fifo.asset_transfer_inputs t, last
        WHERE t.fee > 0 AND NOT (t.asset = ANY (fifo._report_currencies()))
    ),
    taken AS (
        SELECT a.wallet, a.asset, a.disposal_id AS id, sum(a.quantity) AS quantity, count(*) AS rows
        FROM fifo.asset_allocations a
        GROUP BY a.wallet, a.asset, a.disposal_id
    ),
    used AS (
        SELECT a.wallet, a.asset, a.lot_id, sum(a.quantity) AS quantity
        FROM fifo.asset_allocations a
        WHERE a.lot_id IS NOT NULL
        GROUP BY a.wallet, a.asset, a.lot_id
    ),
    moved AS (
        SELECT t.transfer_id, t.from_account, t.to_account, t.asset, coalesce(o.quantity, 0) AS left_source,
               coalesce(p.quantity, 0) AS pieces, coalesce(l.quantity, 0) AS arrived
        FROM fifo.asset_transfer_inputs t
        CROSS JOIN last
        LEFT JOIN (SELECT a.ref_id, a.wallet, a.asset, sum(a.quantity) AS quantity
                   FROM fifo.asset_allocations a
                   WHERE a.kind = 'transfer' AND NOT a.unmatched
                   GROUP BY a.ref_id, a.wallet, a.asset) o
          ON o.ref_id = t.transfer_id AND o.wallet = t.from_account AND o.asset = t.asset
        LEFT JOIN (SELECT x.transfer_id, sum(x.quantity) AS quantity
                   FROM fifo.asset_pieces x GROUP BY x.transfer_id) p
          ON p.transfer_id = t.transfer_id
        LEFT JOIN (SELECT x.arrival_seq, x.wallet, x.asset, sum(x.quantity) AS quantity
                   FROM fifo.asset_lots x WHERE x.arrival_phase = 1
                   GROUP BY x.arrival_seq, x.wallet, x.asset) l
          ON l.arrival_seq = t.transfer_id AND l.wallet = t.to_account AND l.asset = t.asset
        WHERE fifo._asset_moves(last.pooling, t.at) AND NOT (t.asset = ANY (fifo._report_currencies()))
    )
    SELECT 'asset_stale', NULL::text, NULL::text, NULL::text, s.detail || '; run compute_fifo_assets_incremental()'
    FROM fifo._asset_staleness() s
    WHERE s.stale
    UNION ALL
    SELECT 'asset_disposal', coalesce(d.asset, t.asset), coalesce(d.wallet, t.wallet), coalesce(d.id, t.id),
           CASE WHEN t.id IS NULL THEN format('disposal of %s has no allocation rows', d.quantity)
                WHEN d.id IS NULL THEN format('%s allocation row(s) of %s belong to no disposal', t.rows, t.quantity)
                ELSE format('allocation rows add up to %s, the disposal is %s', t.quantity, d.quantity) END
    FROM disp d
    FULL JOIN taken t ON t.wallet = d.wallet AND t.asset = d.asset AND t.id = d.id
    WHERE EXISTS (SELECT 1 FROM last) AND (d.quantity IS DISTINCT FROM t.quantity)
    UNION ALL
    SELECT 'asset_lot', u.asset, u.wallet, u.lot_id,
           CASE WHEN l.lot_id IS NULL THEN format('%s taken from a lot that is not there', u.quantity)
                ELSE format('%s taken from a lot of %s', u.quantity, l.quantity) END
    FROM used u
    LEFT JOIN fifo.asset_lots l ON l.wallet = u.wallet AND l.asset = u.asset AND l.lot_id = u.lot_id
    WHERE l.lot_id IS NULL OR u.quantity > l.quantity
    UNION ALL
    SELECT 'asset_transfer', m.asset, m.from_account, m.transfer_id,
           format('%s left %s, pieces of %s were carried and %s arrived in %s', m.left_source, m.from_account,
                  m.pieces, m.arrived, m.to_account)
    FROM moved m
    WHERE m.pieces <> m.left_source OR m.arrived <> m.pieces
$$;
