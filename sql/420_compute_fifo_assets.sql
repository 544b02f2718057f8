-- The asset (tax) view, the entry points: compute_fifo_assets() (everything) and
-- compute_fifo_assets_incremental() (the pools the changes since the last run
-- reach). docs/engine.md ("The asset (tax) view", "Incremental asset runs").

-- fifo._asset_settings(): the settings a run depends on, as one text: a run
-- with other settings than the last one recomputes everything.
CREATE OR REPLACE FUNCTION fifo._asset_settings()
RETURNS text
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
    -- the report time zone fixes the instant of the 2025 transition (sql/415)
    SELECT format('tax_pooling=%s price_window=%s symbol_map=%s currencies=%s timezone=%s', fifo._setting('tax_pooling'),
                  fifo._setting('price_window')::interval, fifo._setting('symbol_map'),
                  array_to_string(fifo._report_currencies(), ','), fifo._report_tz())
$$;

-- fifo._asset_price_rows(map, fiat): the price points: imported (in the filer's
-- currency or an alias), then one per trade of an ASSET-<fiat> pair.
CREATE OR REPLACE FUNCTION fifo._asset_price_rows(p_map text, p_fiat text[])
RETURNS TABLE (asset text, at timestamptz, rank smallint, price numeric, source text)
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT p.asset, p.at, 0::smallint, p.price, p.source
    FROM fifo.prices p
    WHERE p.currency = ANY (p_fiat) AND NOT (p.asset = ANY (p_fiat))
    UNION ALL
    SELECT s.base, t.order_time, 1::smallint, t.price, 'trade ' || t.order_id
    FROM fifo.trades t
    CROSS JOIN LATERAL fifo._split_symbol(t.symbol, p_map) s
    WHERE t.problem IS NULL AND s.quote = ANY (p_fiat) AND NOT (s.base = ANY (p_fiat))
$$;

-- fifo._asset_leg_rows(pooling, window, map, fiat): the legs (docs/engine.md,
-- "Legs"), one statement over the trades, valued from fifo.asset_price_points.
CREATE OR REPLACE FUNCTION fifo._asset_leg_rows(p_pooling text, p_window interval, p_map text, p_fiat text[])
RETURNS SETOF fifo.asset_legs
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT v.order_id || ':' || g.leg, v.order_id, g.leg,
           -- the pool: the account's, or '*' (universal; before 2025 under universal-until-2025: sql/415)
           CASE WHEN fifo._asset_moves(p_pooling, v.at) THEN v.account ELSE '*' END, v.account, g.asset, g.direction,
           g.qty, g.value, v.at, v.symbol,
           CASE WHEN g.value IS NULL THEN
                CASE WHEN g.leg = 'fee' OR (v.val IS NOT NULL AND v.fv IS NULL)
                     THEN format('no %s price in %s within %s before %s', v.fccy, p_fiat[1], p_window, v.at)
                     ELSE format('no %s or %s price in %s within %s before %s', v.quote, v.base, p_fiat[1],
                                 p_window, v.at) END END
    FROM (
        SELECT u.*,
               CASE WHEN u.price = 0 THEN 0 ELSE u.size * u.ub END AS val,
               CASE WHEN u.fee = 0 THEN 0
                    WHEN u.fccy = ANY (p_fiat) THEN u.fee
                    WHEN u.fccy = u.quote THEN u.fee * u.uq
                    WHEN u.fccy = u.base THEN u.fee * u.ub
                    ELSE u.fee * fifo._asset_price(u.fccy, u.at, p_window) END AS fv
        FROM (
            SELECT r.*,
                   coalesce(r.pq, CASE WHEN r.price > 0 THEN fifo._ratio(r.pb, r.price) END) AS uq,   -- one QUOTE unit
                   coalesce(r.price * r.pq, r.pb) AS ub                                   -- one BASE unit
            FROM (
                SELECT t.order_id, t.account, t.symbol, t.side, t.size, t.price, t.total_fees AS fee,
                       t.order_time AS at, s.base, s.quote, coalesce(t.fee_currency, s.quote) AS fccy,
                       CASE WHEN s.quote = ANY (p_fiat) THEN 1 ELSE fifo._asset_price(s.quote, t.order_time, p_window) END AS pq,
                       CASE WHEN s.base = ANY (p_fiat) THEN 1 ELSE fifo._asset_price(s.base, t.order_time, p_window) END AS pb
                FROM fifo.trades t
                CROSS JOIN LATERAL fifo._split_symbol(t.symbol, p_map) s
                WHERE t.problem IS NULL AND s.base IS NOT NULL
            ) r
        ) u
    ) v
    CROSS JOIN LATERAL (VALUES
        -- BASE: a buy acquires it (net of a fee withheld in it), a sell disposes of it (plus such a fee)
        ('base', v.base, CASE WHEN v.side = 'buy' THEN 'acquire' ELSE 'dispose' END,
         CASE WHEN v.fccy = v.base THEN v.size + CASE WHEN v.side = 'buy' THEN -v.fee ELSE v.fee END ELSE v.size END,
         CASE WHEN v.side = 'buy' THEN v.val + CASE WHEN v.fccy = v.base THEN 0 ELSE v.fv END
              ELSE v.val - CASE WHEN v.fccy = v.base THEN 0 ELSE v.fv END END),
        -- QUOTE: a buy disposes of it (plus a fee paid in it), a sell acquires it (net of such a fee)
        ('quote', v.quote, CASE WHEN v.side = 'buy' THEN 'dispose' ELSE 'acquire' END,
         v.size * v.price + CASE WHEN v.fccy = v.quote THEN CASE WHEN v.side = 'buy' THEN v.fee ELSE -v.fee END
                                 ELSE 0 END,
         v.val + CASE WHEN v.fccy = v.quote THEN CASE WHEN v.side = 'buy' THEN v.fv ELSE -v.fv END ELSE 0 END),
        -- a fee in a third coin: a disposal of that coin for services at its value (Treas. Reg. 1.1001-7(b)(1)(ii))
        ('fee', v.fccy, 'dispose', CASE WHEN v.fccy IN (v.base, v.quote) THEN 0 ELSE v.fee END, v.fv)
    ) AS g(leg, asset, direction, qty, value)
    WHERE g.qty > 0 AND NOT (g.asset = ANY (p_fiat))
$$;

-- fifo._asset_compute(full): the run behind both entry points. A full run
-- empties the view's tables first; then both do the same: rewrite the price
-- points and the legs, put in fifo.asset_work_pools every pool whose inputs
-- differ from what the last run used (a leg added, removed or changed, a
-- transfer out or its fee changed, a price point within price_window before a
-- transfer's fee), and settle those pools in rounds (docs/engine.md,
-- "Transfers: rounds over transfer generations"): each round recomputes only
-- the pools in the work set, and the next round's work set is the pools whose
-- transfer pieces in changed. A pool outside the work set keeps its rows: its
-- inputs are those it was computed from. The rounds are bounded by the number
-- of transfers plus one.
CREATE OR REPLACE FUNCTION fifo._asset_compute(p_full boolean)
RETURNS fifo.asset_runs
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
SET work_mem = '256MB'
SET enable_nestloop = off   -- the work set and the CTEs are estimated at a few rows; every join has an equality key
SET jit = off
AS $$
DECLARE
    v_pooling text := fifo._setting('tax_pooling');
    v_window interval := fifo._setting('price_window')::interval;
    v_map text := fifo._setting('symbol_map');
    v_fiat text[] := fifo._report_currencies();
    v_settings text := fifo._asset_settings();
    v_last fifo.asset_runs;
    v_run fifo.asset_runs;
    v_full boolean := p_full;
    v_changes bigint;
    v_max integer;
    v_pools bigint := 0;
    v_rounds integer := 0;
    v_next_w text[];
    v_next_a text[];
    v_new fifo.asset_pieces[];
    v_holder text;
BEGIN
    BEGIN
        -- one run at a time: the tables are rewritten in place
        LOCK TABLE fifo.asset_runs IN EXCLUSIVE MODE;
    EXCEPTION WHEN lock_not_available THEN
        SELECT string_agg(format('pid %s (%s)', a.pid, coalesce(nullif(a.application_name, ''), a.usename)), ', ')
        INTO v_holder
        FROM pg_locks k JOIN pg_stat_activity a ON a.pid = k.pid
        WHERE k.relation = 'fifo.asset_runs'::regclass AND k.granted AND k.pid <> pg_backend_pid();
        RAISE EXCEPTION 'another compute_fifo_assets() holds the asset view: %', coalesce(v_holder, 'a session that ended')
            USING ERRCODE = '55P03', HINT = 'Wait for it to finish and run it again.';
    END;
    SELECT * INTO v_last FROM fifo.asset_runs r WHERE r.finished_at IS NOT NULL ORDER BY r.run_id DESC LIMIT 1;
    -- an incremental run builds on the last run's tables: there must be one, with the same settings
    v_full := v_full OR v_last.run_id IS NULL OR v_last.settings IS DISTINCT FROM v_settings;
    -- the queue: every change committed so far is taken into account by this run
    WITH taken AS (DELETE FROM fifo.asset_changes RETURNING 1)
    SELECT count(*) INTO v_changes FROM taken;
    IF NOT v_full AND v_changes = 0 THEN
        -- nothing changed: the view is current; no run is recorded (run_id NULL)
        v_last.run_id := NULL;
        v_last.kind := 'incremental';
        v_last.pools := 0;
        v_last.changes := 0;
        v_last.rounds := 0;
        RETURN v_last;
    END IF;
    INSERT INTO fifo.asset_runs (pooling, kind, settings, changes)
    VALUES (v_pooling, CASE WHEN v_full THEN 'full' ELSE 'incremental' END, v_settings, v_changes)
    RETURNING * INTO v_run;
    DELETE FROM fifo.asset_work_pools;
    IF v_full THEN
        DELETE FROM fifo.asset_legs;
        DELETE FROM fifo.asset_lots;
        DELETE FROM fifo.asset_pieces;
        DELETE FROM fifo.asset_allocations;
        DELETE FROM fifo.asset_transfer_inputs;
        DELETE FROM fifo.asset_price_points;
    ELSE
        -- a price point added, removed or changed: the transfer fees it may value (within price_window after it)
        INSERT INTO fifo.asset_work_pools (wallet, asset)
        SELECT DISTINCT CASE WHEN fifo._asset_moves(v_pooling, t.at) THEN t.from_account ELSE '*' END, t.asset
        FROM ((SELECT * FROM fifo._asset_price_rows(v_map, v_fiat)
               EXCEPT SELECT p.asset, p.at, p.rank, p.price, p.source FROM fifo.asset_price_points p)
              UNION ALL
              (SELECT p.asset, p.at, p.rank, p.price, p.source FROM fifo.asset_price_points p
               EXCEPT SELECT * FROM fifo._asset_price_rows(v_map, v_fiat))) d
        JOIN fifo.transfers t ON t.asset = d.asset AND t.at >= d.at AND t.at <= d.at + v_window
        WHERE t.fee > 0
        ON CONFLICT DO NOTHING;
        DELETE FROM fifo.asset_price_points;
    END IF;
    INSERT INTO fifo.asset_price_points (asset, at, rank, price, source)
    SELECT * FROM fifo._asset_price_rows(v_map, v_fiat);

    -- legs: the pools of every leg added, removed or changed (a full run: all of them)
    IF v_full THEN
        INSERT INTO fifo.asset_legs SELECT * FROM fifo._asset_leg_rows(v_pooling, v_window, v_map, v_fiat);
        INSERT INTO fifo.asset_work_pools (wallet, asset)
        SELECT DISTINCT g.wallet, g.asset FROM fifo.asset_legs g
        ON CONFLICT DO NOTHING;
    ELSE
        INSERT INTO fifo.asset_work_pools (wallet, asset)
        SELECT DISTINCT d.wallet, d.asset
        FROM ((SELECT * FROM fifo._asset_leg_rows(v_pooling, v_window, v_map, v_fiat)
               EXCEPT SELECT * FROM fifo.asset_legs)
              UNION ALL
              (SELECT * FROM fifo.asset_legs
               EXCEPT SELECT * FROM fifo._asset_leg_rows(v_pooling, v_window, v_map, v_fiat))) d
        ON CONFLICT DO NOTHING;
        DELETE FROM fifo.asset_legs g
        USING fifo.asset_work_pools w
        WHERE g.wallet = w.wallet AND g.asset = w.asset;
        INSERT INTO fifo.asset_legs
        SELECT n.* FROM fifo._asset_leg_rows(v_pooling, v_window, v_map, v_fiat) n
        JOIN fifo.asset_work_pools w ON w.wallet = n.wallet AND w.asset = n.asset;
    END IF;

    -- transfers added, removed or changed: their source pools (the destinations follow from the pieces)
    INSERT INTO fifo.asset_work_pools (wallet, asset)
    SELECT DISTINCT CASE WHEN fifo._asset_moves(v_pooling, d.at) THEN d.from_account ELSE '*' END, d.asset
    FROM ((SELECT t.transfer_id, t.asset, t.from_account, t.to_account, t.quantity, t.fee, t.at FROM fifo.transfers t
           EXCEPT SELECT * FROM fifo.asset_transfer_inputs)
          UNION ALL
          (SELECT * FROM fifo.asset_transfer_inputs
           EXCEPT SELECT t.transfer_id, t.asset, t.from_account, t.to_account, t.quantity, t.fee, t.at
           FROM fifo.transfers t)) d
    ON CONFLICT DO NOTHING;
    DELETE FROM fifo.asset_transfer_inputs;
    INSERT INTO fifo.asset_transfer_inputs (transfer_id, asset, from_account, to_account, quantity, fee, at)
    SELECT t.transfer_id, t.asset, t.from_account, t.to_account, t.quantity, t.fee, t.at FROM fifo.transfers t;

    -- rounds: the work pools, then the pools their transfers' pieces changed
    v_max := (SELECT count(*) FROM fifo.transfers)::integer + 1;
    LOOP
        EXIT WHEN NOT EXISTS (SELECT 1 FROM fifo.asset_work_pools);
        v_rounds := v_rounds + 1;
        IF v_rounds > v_max THEN
            RAISE EXCEPTION 'the asset view did not settle after % rounds (% transfers)', v_max, v_max - 1
                USING ERRCODE = 'F0002', HINT = 'This is a bug in fifo-db: report it with `fifo-db explain`.';
        END IF;
        v_pools := v_pools + (SELECT count(*) FROM fifo.asset_work_pools);
        DELETE FROM fifo.asset_lots l
        USING fifo.asset_work_pools w
        WHERE l.wallet = w.wallet AND l.asset = w.asset;
        INSERT INTO fifo.asset_lots (wallet, asset, lot_id, origin_order, origin_leg, path, acquired_at, quantity,
                                     basis, arrived_at, arrival_phase, arrival_seq)
        SELECT g.wallet, g.asset, g.leg_id, g.order_id, g.leg, '', g.at, g.quantity, g.value, g.at, 0, g.order_id
        FROM fifo.asset_legs g
        JOIN fifo.asset_work_pools w ON w.wallet = g.wallet AND w.asset = g.asset
        WHERE g.direction = 'acquire'
        UNION ALL
        SELECT p.to_wallet, p.asset, p.lot_id, p.origin_order, p.origin_leg, p.path, p.acquired_at, p.quantity,
               p.basis, p.at, 1, p.transfer_id
        FROM fifo.asset_pieces p
        JOIN fifo.asset_work_pools w ON w.wallet = p.to_wallet AND w.asset = p.asset;
        PERFORM fifo._asset_round(v_pooling, v_window, v_fiat);
        -- the pieces the work pools' transfers carry now (n, computed once) against those they carried
        -- (o: the pieces of a transfer out of a work pool, or of one that is gone); the destinations of
        -- the differences are the next round's work, and n replaces o
        -- Under universal-until-2025 the pieces the 2025 allocation gives (sql/415) are in both, every
        -- round: they are recomputed from the universal pools' lots and the holdings as they are now.
        SELECT array_agg(x::fifo.asset_pieces) INTO v_new
        FROM (SELECT np.transfer_id, np.to_wallet, np.asset, np.lot_id, np.origin_order, np.origin_leg, np.path,
                     np.acquired_at, np.quantity, np.basis, np.at
              FROM fifo.asset_new_pieces np
              JOIN fifo.asset_work_pools w ON w.wallet = np.from_wallet AND w.asset = np.asset
              UNION ALL
              SELECT tp.* FROM fifo._asset_transition_pieces(fifo._asset_transition_at()) tp
              WHERE v_pooling = 'universal-until-2025') x;
        WITH n AS MATERIALIZED (
            SELECT * FROM unnest(coalesce(v_new, '{}'::fifo.asset_pieces[]))
        ),
        o AS MATERIALIZED (
            SELECT p.* FROM fifo.asset_pieces p
            WHERE NOT EXISTS (SELECT 1 FROM fifo.transfers t
                              WHERE t.transfer_id = p.transfer_id
                                AND NOT EXISTS (SELECT 1 FROM fifo.asset_work_pools w
                                                WHERE w.wallet = t.from_account AND w.asset = t.asset))
        ),
        d AS (
            SELECT DISTINCT x.to_wallet, x.asset
            FROM ((SELECT * FROM n EXCEPT SELECT * FROM o) UNION ALL (SELECT * FROM o EXCEPT SELECT * FROM n)) x
        )
        SELECT array_agg(d.to_wallet), array_agg(d.asset) INTO v_next_w, v_next_a FROM d;
        IF v_next_w IS NOT NULL THEN
            DELETE FROM fifo.asset_pieces p
            WHERE NOT EXISTS (SELECT 1 FROM fifo.transfers t
                              WHERE t.transfer_id = p.transfer_id
                                AND NOT EXISTS (SELECT 1 FROM fifo.asset_work_pools w
                                                WHERE w.wallet = t.from_account AND w.asset = t.asset));
            INSERT INTO fifo.asset_pieces SELECT * FROM unnest(v_new);
        END IF;
        DELETE FROM fifo.asset_work_pools;
        INSERT INTO fifo.asset_work_pools (wallet, asset)
        SELECT x.wallet, x.asset FROM unnest(v_next_w, v_next_a) AS x(wallet, asset);
    END LOOP;

    UPDATE fifo.asset_runs r
    SET finished_at = clock_timestamp(), rounds = v_rounds, pools = v_pools,
        legs = (SELECT count(*) FROM fifo.asset_legs),
        unpriced = (SELECT count(*) FROM fifo.asset_legs g WHERE g.value IS NULL)
                   + (SELECT count(*) FROM fifo.transfers t
                      WHERE t.fee > 0 AND NOT (t.asset = ANY (v_fiat))
                        AND fifo._asset_price(t.asset, t.at, v_window) IS NULL),
        unmatched = (SELECT count(DISTINCT a.disposal_id) FROM fifo.asset_allocations a WHERE a.unmatched),
        unsplit = (SELECT count(*) FROM fifo.trades t
                   WHERE t.problem IS NULL AND (fifo._split_symbol(t.symbol, v_map)).base IS NULL)
    WHERE r.run_id = v_run.run_id
    RETURNING * INTO v_run;
    -- every report recomputes: keep the last 100 runs, not one row per report forever
    DELETE FROM fifo.asset_runs r WHERE r.run_id <= v_run.run_id - 100;
    RETURN v_run;
END;
$$;

-- compute_fifo_assets(): recompute the whole asset view (legs, lots, allocations).
-- Returns the run's row.
CREATE OR REPLACE FUNCTION public.compute_fifo_assets()
RETURNS fifo.asset_runs
LANGUAGE plpgsql
SECURITY DEFINER   -- an operator recomputes the asset view without any right on fifo-db's tables
SET search_path = pg_catalog, pg_temp
SET lock_timeout = '30s'   -- every wait bounded; the caller's value is back on return
AS $$
BEGIN
    RETURN fifo._asset_compute(true);
END;
$$;
COMMENT ON FUNCTION public.compute_fifo_assets() IS
    'Recompute the asset (tax) view: legs, lots by (wallet, asset), FIFO by acquisition time, transfers.';

-- compute_fifo_assets_incremental([if_computed]): bring the asset view up to
-- date with the changes captured since the last run (fifo.asset_changes): only
-- the pools they reach are recomputed, the result equal to
-- compute_fifo_assets(). With no change it records no run and returns the last
-- one with run_id NULL; with no earlier run, or other settings than the last
-- run's, it is a full run. if_computed = true (what `fifo-db worker` calls):
-- nothing at all, a row of NULLs, while the asset view has never been computed,
-- so a database whose owner does not use it never pays for it.
DROP FUNCTION IF EXISTS public.compute_fifo_assets_incremental();
CREATE OR REPLACE FUNCTION public.compute_fifo_assets_incremental(p_if_computed boolean DEFAULT false)
RETURNS fifo.asset_runs
LANGUAGE plpgsql
SECURITY DEFINER   -- an operator (or the worker) updates the asset view without any right on its tables
SET search_path = pg_catalog, pg_temp
SET lock_timeout = '30s'
AS $$
BEGIN
    IF p_if_computed AND NOT EXISTS (SELECT 1 FROM fifo.asset_runs) THEN
        RETURN NULL;
    END IF;
    RETURN fifo._asset_compute(false);
END;
$$;
COMMENT ON FUNCTION public.compute_fifo_assets_incremental(boolean) IS
    'Bring the asset (tax) view up to date: recompute only the pools the captured changes reach.';
