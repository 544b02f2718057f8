-- The carry-in of a suffix recompute (docs/incremental.md): the lots still
-- open at a pool's cut that the sells from the cut can reach, read here, per
-- pool, before fifo._allocation_rows (sql/030) matches the suffix.
--
-- Issue 16: inside the matching query these reads were planned for a cut
-- the planner could not see (a lateral parameter, guessed as a third of the
-- pool): the quantity sold from the cut ran as a sequential scan of a
-- 1M-trade pool, and the walk over the open lots read and sorted all 100k of
-- them to find the first covering one. Here every statement is planned with
-- the real cut (plan_cache_mode = force_custom_plan, the cut a plain
-- variable), and the open lots are read in index order in pages that grow
-- fourfold (LIMIT 64, 256, ...) until one covers what the suffix sells: what
-- is read is bounded by what the suffix sells, whatever the statistics say.

-- fifo._carry_in(version, symbol, account, from_time): for a suffix
-- recompute of the pool from from_time ('-infinity': a full recompute, no
-- carry-in), the open lots carried in, in matching order, each as a
-- fifo.leg whose coord is the carried quantity up to and including it (its
-- remainder: a lot partly consumed before the cut carries size - used, and
-- its lot_offset is size - (coord - previous coord)); `covered` is the last
-- coord (0: none). Every later open lot starts at or after what the suffix
-- sells, so it cannot change an allocation (docs/engine.md). Reads only.
CREATE OR REPLACE FUNCTION fifo._carry_in(
    p_version integer,
    p_symbol text,
    p_account text,
    p_from timestamptz,
    OUT covered numeric,
    OUT lots fifo.leg[])
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
SET plan_cache_mode = force_custom_plan   -- every statement planned with this pool's cut
SET jit = off
AS $$
DECLARE
    v_sold numeric;
    v_sell_time timestamptz;
    v_sell_id text;
    v_lot_time timestamptz := '-infinity';
    v_lot_id text := '';
    v_used numeric := 0;
    v_limit integer := 64;
    v_read integer;
    v_last numeric;
BEGIN
    covered := 0;
    lots := '{}';
    IF p_from IS NULL OR p_from = '-infinity' THEN
        RETURN;
    END IF;

    -- what the sells from the cut sell: the carried lots need cover no more. None: no
    -- allocation from the cut can take a carried lot (they are all sells' rows)
    SELECT coalesce(sum(t.size), 0) INTO v_sold
    FROM fifo.trades t
    WHERE t.symbol = p_symbol AND t.account = p_account AND t.order_time >= p_from AND t.side = 'sell';
    IF v_sold = 0 THEN
        RETURN;
    END IF;

    -- where the open lots start: the newest lot that an allocation before the cut consumed,
    -- and how much of it. Every read of allocations here is of this pool and version: an
    -- order_id names a trade, not a lot of this pool (a buy moved to another symbol or
    -- account, or deleted and its id re-used elsewhere, still has rows in the pool it left
    -- until that pool is recomputed). First the last sell before the cut that took a lot
    -- (the per-pool index, backwards), then the newest lot among its rows.
    -- These three lookups are an ordered index scan with LIMIT 1 and equalities: one plan
    -- fits every cut, so they keep one generic plan per session instead of being planned
    -- per pool (issue 16: planning them was ~0.6 ms a pool, 100 appended pools a run);
    -- the function's SET clause restores the setting when it returns.
    PERFORM pg_catalog.set_config('plan_cache_mode', 'force_generic_plan', true);
    SELECT a.sell_time, a.sell_trade_id INTO v_sell_time, v_sell_id
    FROM fifo.allocations a
    WHERE a.version = p_version
      AND a.symbol = p_symbol
      AND a.account = p_account
      AND a.sell_time < p_from
      AND a.buy_trade_id IS NOT NULL
    ORDER BY a.sell_time DESC, a.sell_trade_id COLLATE "C" DESC
    LIMIT 1;
    IF FOUND THEN
        SELECT a.buy_time, a.buy_trade_id INTO v_lot_time, v_lot_id
        FROM fifo.allocations a
        WHERE a.version = p_version
          AND a.symbol = p_symbol
          AND a.account = p_account
          AND a.sell_time = v_sell_time
          AND a.sell_trade_id COLLATE "C" = v_sell_id COLLATE "C"
          AND a.buy_trade_id IS NOT NULL
        ORDER BY a.buy_time DESC, a.buy_trade_id COLLATE "C" DESC
        LIMIT 1;
        SELECT coalesce(sum(u.allocated_size), 0) INTO v_used
        FROM fifo.allocations u
        WHERE u.buy_trade_id = v_lot_id
          AND u.version = p_version
          AND u.symbol = p_symbol
          AND u.account = p_account
          AND u.sell_time < p_from;
    END IF;
    PERFORM pg_catalog.set_config('plan_cache_mode', 'force_custom_plan', true);

    -- the open lots in matching order, a page at a time (the pool's index, in order, so a
    -- page reads only its rows): the lots that start before v_sold are carried. Done when
    -- the last of them covers v_sold, or when the page was not full (every open lot read:
    -- all are carried). A bigger page reads the smaller one's lots again: at most a third
    -- more than the last page.
    LOOP
        SELECT coalesce(array_agg(ROW(x.coord, x.order_id, x.price, x.total_fees, x.size, x.order_time)::fifo.leg
                                  ORDER BY x.coord) FILTER (WHERE x.coord - (x.size - x.lot_offset) < v_sold), '{}'),
               count(*),
               max(x.coord) FILTER (WHERE x.coord - (x.size - x.lot_offset) < v_sold)
        INTO lots, v_read, v_last
        FROM (
            SELECT p.*, sum(p.size - p.lot_offset) OVER (ORDER BY p.order_time, p.order_id COLLATE "C"
                                                        ROWS UNBOUNDED PRECEDING) AS coord
            FROM (
                SELECT t.order_time, t.order_id, t.size, t.price, t.total_fees, r.lot_offset
                FROM fifo.trades t
                CROSS JOIN LATERAL (
                    SELECT CASE WHEN t.order_id = v_lot_id THEN v_used ELSE 0::numeric END AS lot_offset) r
                WHERE t.symbol = p_symbol
                  AND t.account = p_account
                  AND t.side = 'buy'
                  AND (t.order_time, t.side, t.order_id COLLATE "C") >= (v_lot_time, 'buy', v_lot_id COLLATE "C")
                  AND t.order_time < p_from
                  AND t.size > r.lot_offset
                ORDER BY t.order_time, t.side, t.order_id COLLATE "C"
                LIMIT v_limit
            ) p
        ) x;
        EXIT WHEN v_read < v_limit OR v_last >= v_sold;
        v_limit := v_limit * 4;
    END LOOP;
    covered := coalesce(v_last, 0);
END;
$$;
