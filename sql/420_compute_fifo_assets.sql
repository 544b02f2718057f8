-- The asset (tax) view, the entry point: compute_fifo_assets().

-- compute_fifo_assets(): recompute the whole asset view (legs, lots, allocations).
-- Set-based per round; the rounds are over generations of transfers
-- (docs/engine.md, "Transfers: rounds over transfer generations"), bounded by
-- the number of transfers plus one. Returns the run's row.
CREATE OR REPLACE FUNCTION public.compute_fifo_assets()
RETURNS fifo.asset_runs
LANGUAGE plpgsql
SECURITY DEFINER   -- an operator recomputes the asset view without any right on fifo-db's tables
SET search_path = pg_catalog, pg_temp
SET lock_timeout = '30s'   -- every wait bounded; the caller's value is back on return
AS $$
DECLARE
    v_pooling text := fifo._setting('tax_pooling');
    v_window interval := fifo._setting('price_window')::interval;
    v_map text := fifo._setting('symbol_map');
    v_fiat text[] := fifo._report_currencies();
    v_run fifo.asset_runs;
    v_max integer;
    v_diff bigint;
    v_holder text;
BEGIN
    BEGIN
        -- one run at a time: the tables are rewritten wholesale
        LOCK TABLE fifo.asset_runs IN EXCLUSIVE MODE;
    EXCEPTION WHEN lock_not_available THEN
        SELECT string_agg(format('pid %s (%s)', a.pid, coalesce(nullif(a.application_name, ''), a.usename)), ', ')
        INTO v_holder
        FROM pg_locks k JOIN pg_stat_activity a ON a.pid = k.pid
        WHERE k.relation = 'fifo.asset_runs'::regclass AND k.granted AND k.pid <> pg_backend_pid();
        RAISE EXCEPTION 'another compute_fifo_assets() holds the asset view: %', coalesce(v_holder, 'a session that ended')
            USING ERRCODE = '55P03', HINT = 'Wait for it to finish and run it again.';
    END;
    INSERT INTO fifo.asset_runs (pooling) VALUES (v_pooling) RETURNING * INTO v_run;

    -- price points: imported (in the filer's currency or an alias), then one per trade of an ASSET-<fiat> pair
    DELETE FROM fifo.asset_price_points;
    INSERT INTO fifo.asset_price_points (asset, at, rank, price, source)
    SELECT p.asset, p.at, 0, p.price, p.source
    FROM fifo.prices p
    WHERE p.currency = ANY (v_fiat) AND NOT (p.asset = ANY (v_fiat))
    UNION ALL
    SELECT s.base, t.order_time, 1, t.price, 'trade ' || t.order_id
    FROM fifo.trades t
    CROSS JOIN LATERAL fifo._split_symbol(t.symbol, v_map) s
    WHERE t.problem IS NULL AND s.quote = ANY (v_fiat) AND NOT (s.base = ANY (v_fiat));

    -- legs (docs/engine.md, "Legs"): one statement over the trades
    DELETE FROM fifo.asset_legs;
    INSERT INTO fifo.asset_legs (leg_id, order_id, leg, wallet, account, asset, direction, quantity, value, at,
                                 symbol, unpriced)
    SELECT v.order_id || ':' || g.leg, v.order_id, g.leg,
           -- the pool: the account's, or '*' (universal; before 2025 under universal-until-2025: sql/415)
           CASE WHEN fifo._asset_moves(v_pooling, v.at) THEN v.account ELSE '*' END, v.account, g.asset, g.direction,
           g.qty, g.value, v.at, v.symbol,
           CASE WHEN g.value IS NULL THEN
                CASE WHEN g.leg = 'fee' OR (v.val IS NOT NULL AND v.fv IS NULL)
                     THEN format('no %s price in %s within %s before %s', v.fccy, v_fiat[1], v_window, v.at)
                     ELSE format('no %s or %s price in %s within %s before %s', v.quote, v.base, v_fiat[1],
                                 v_window, v.at) END END
    FROM (
        SELECT u.*,
               CASE WHEN u.price = 0 THEN 0 ELSE u.size * u.ub END AS val,
               CASE WHEN u.fee = 0 THEN 0
                    WHEN u.fccy = ANY (v_fiat) THEN u.fee
                    WHEN u.fccy = u.quote THEN u.fee * u.uq
                    WHEN u.fccy = u.base THEN u.fee * u.ub
                    ELSE u.fee * fifo._asset_price(u.fccy, u.at, v_window) END AS fv
        FROM (
            SELECT r.*,
                   coalesce(r.pq, CASE WHEN r.price > 0 THEN fifo._ratio(r.pb, r.price) END) AS uq,   -- one QUOTE unit
                   coalesce(r.price * r.pq, r.pb) AS ub                                   -- one BASE unit
            FROM (
                SELECT t.order_id, t.account, t.symbol, t.side, t.size, t.price, t.total_fees AS fee,
                       t.order_time AS at, s.base, s.quote, coalesce(t.fee_currency, s.quote) AS fccy,
                       CASE WHEN s.quote = ANY (v_fiat) THEN 1 ELSE fifo._asset_price(s.quote, t.order_time, v_window) END AS pq,
                       CASE WHEN s.base = ANY (v_fiat) THEN 1 ELSE fifo._asset_price(s.base, t.order_time, v_window) END AS pb
                FROM fifo.trades t
                CROSS JOIN LATERAL fifo._split_symbol(t.symbol, v_map) s
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
    WHERE g.qty > 0 AND NOT (g.asset = ANY (v_fiat));

    -- rounds over transfer generations
    v_max := (SELECT count(*) FROM fifo.transfers)::integer + 1;
    DELETE FROM fifo.asset_pieces;
    LOOP
        v_run.rounds := coalesce(v_run.rounds, 0) + 1;
        IF v_run.rounds > v_max THEN
            RAISE EXCEPTION 'the asset view did not settle after % rounds (% transfers)', v_max, v_max - 1
                USING ERRCODE = 'F0002', HINT = 'This is a bug in fifo-db: report it with `fifo-db explain`.';
        END IF;
        DELETE FROM fifo.asset_lots;
        INSERT INTO fifo.asset_lots (wallet, asset, lot_id, origin_order, origin_leg, path, acquired_at, quantity,
                                     basis, arrived_at, arrival_phase, arrival_seq)
        SELECT g.wallet, g.asset, g.leg_id, g.order_id, g.leg, '', g.at, g.quantity, g.value, g.at, 0, g.order_id
        FROM fifo.asset_legs g
        WHERE g.direction = 'acquire'
        UNION ALL
        SELECT p.to_wallet, p.asset, p.lot_id, p.origin_order, p.origin_leg, p.path, p.acquired_at, p.quantity,
               p.basis, p.at, 1, p.transfer_id
        FROM fifo.asset_pieces p;
        PERFORM fifo._asset_round(v_pooling, v_window, v_fiat);
        SELECT count(*) INTO v_diff
        FROM ((SELECT * FROM fifo._asset_next_pieces(v_pooling) EXCEPT SELECT transfer_id, to_wallet, asset, lot_id, origin_order,
                      origin_leg, path, acquired_at, quantity, basis, at FROM fifo.asset_pieces)
              UNION ALL
              (SELECT transfer_id, to_wallet, asset, lot_id, origin_order, origin_leg, path, acquired_at, quantity,
                      basis, at FROM fifo.asset_pieces EXCEPT SELECT * FROM fifo._asset_next_pieces(v_pooling))) x;
        EXIT WHEN v_diff = 0;
        DELETE FROM fifo.asset_pieces;
        INSERT INTO fifo.asset_pieces (transfer_id, to_wallet, asset, lot_id, origin_order, origin_leg, path,
                                       acquired_at, quantity, basis, at)
        SELECT * FROM fifo._asset_next_pieces(v_pooling);   -- transfers' pieces and the 2025 allocation's (sql/415)
    END LOOP;

    UPDATE fifo.asset_runs r
    SET finished_at = clock_timestamp(), rounds = v_run.rounds,
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
COMMENT ON FUNCTION public.compute_fifo_assets() IS
    'Recompute the asset (tax) view: legs, lots by (wallet, asset), FIFO by acquisition time, transfers.';
