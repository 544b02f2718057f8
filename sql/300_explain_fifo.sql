-- explain_fifo(order_id): how the current version's allocations treat one
-- trade, row by row, the question the seed's bug hunt answered by hand.
--   a SELL: step 0 the sell; then each lot it consumed (oldest first) with
--     quantity, buy price, both fee shares, cost basis, proceeds and P&L,
--     and how much of the lot earlier sells had already taken; then the
--     unmatched part, if any, and why; then the total.
--   a BUY: step 0 the buy; then each sell that consumed it; then what
--     remains open (with the rest of its fee); then the total.
-- Unknown order_id: P0002. Pool not computed in the current version: 55000.
CREATE OR REPLACE FUNCTION public.explain_fifo(p_order_id text)
RETURNS TABLE (
    step integer, kind text, order_id text, order_time timestamptz,
    quantity numeric, price numeric, buy_fees numeric, sell_fees numeric,
    cost_basis numeric, proceeds numeric, pnl_amount numeric, note text)
LANGUAGE plpgsql STABLE
SECURITY DEFINER   -- readers explain a trade without any right on fifo-db's internal tables
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_trade fifo.trades;
    v_version integer := fifo._current_version();
BEGIN
    PERFORM fifo._require_text('order_id', p_order_id);
    SELECT * INTO v_trade FROM fifo.trades t WHERE t.order_id = p_order_id;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'no trade with order_id "%"', fifo._shown(p_order_id)
            USING ERRCODE = 'P0002',
                  HINT = 'order_id is exact and case-sensitive; '
                         'SELECT order_id FROM trade_records WHERE order_id LIKE ''abc%'' finds near matches.';
    END IF;
    IF NOT EXISTS (SELECT 1 FROM fifo.pool_state ps
                   WHERE ps.version = v_version AND ps.symbol = v_trade.symbol
                     AND ps.account = v_trade.account) THEN
        RAISE EXCEPTION 'pool (account "%", symbol "%") of order_id "%" is not computed in version %',
                        fifo._shown(v_trade.account), fifo._shown(v_trade.symbol), fifo._shown(p_order_id), v_version
            USING ERRCODE = '55000',
                  HINT = format('Run SELECT compute_fifo(%L); (or fifo-db compute --symbol %s) first.',
                                fifo._shown(v_trade.symbol), fifo._shown(v_trade.symbol));
    END IF;

    -- every read of allocations below is of the trade's own pool: an order_id
    -- names a trade, and the pool it left (moved, or deleted and its id re-used)
    -- may still hold rows of it until that pool is recomputed
    IF v_trade.side = 'sell' THEN
        RETURN QUERY
        WITH lots AS (
            SELECT a.*, b.size AS lot_size,
                   row_number() OVER (ORDER BY a.buy_time, a.buy_trade_id COLLATE "C")::integer AS n,
                   (SELECT coalesce(sum(e.allocated_size), 0)
                    FROM fifo.allocations e
                    WHERE e.version = v_version AND e.buy_trade_id = a.buy_trade_id
                      AND e.symbol = v_trade.symbol AND e.account = v_trade.account
                      AND (e.sell_time, e.sell_trade_id COLLATE "C")
                          < (v_trade.order_time, v_trade.order_id COLLATE "C")) AS taken_before
            FROM fifo.allocations a
            JOIN fifo.trades b ON b.order_id = a.buy_trade_id
                              AND b.symbol = a.symbol AND b.account = a.account
            WHERE a.version = v_version AND a.sell_trade_id = p_order_id AND NOT a.unmatched
              AND a.symbol = v_trade.symbol AND a.account = v_trade.account
        ),
        gap AS (
            SELECT a.* FROM fifo.allocations a
            WHERE a.version = v_version AND a.sell_trade_id = p_order_id AND a.unmatched
              AND a.symbol = v_trade.symbol AND a.account = v_trade.account
        ),
        parts AS (
        SELECT 0 AS phase, 0 AS n, 'sell' AS kind, v_trade.order_id AS id, v_trade.order_time AS at,
               v_trade.size AS quantity, v_trade.price AS price, NULL::numeric AS buy_fees,
               v_trade.total_fees AS sell_fees, NULL::numeric AS cost_basis, NULL::numeric AS proceeds,
               NULL::numeric AS pnl, format('sell %s %s at %s on %s (account %s), fee %s',
                      trim_scale(v_trade.size), v_trade.symbol, trim_scale(v_trade.price),
                      fifo._report_clock(v_trade.order_time), v_trade.account, trim_scale(v_trade.total_fees)) AS note
        UNION ALL
        SELECT 1, l.n, 'lot', l.buy_trade_id, l.buy_time, l.allocated_size, l.buy_price,
               l.buy_fees, l.sell_fees, l.cost_basis, l.sale_proceeds, l.pnl_amount,
               format('lot of %s bought %s; %s of it taken by earlier sells, %s here',
                      trim_scale(l.lot_size), fifo._report_clock(l.buy_time),
                      trim_scale(l.taken_before), trim_scale(l.allocated_size))
        FROM lots l
        UNION ALL
        SELECT 2, 0, 'unmatched', NULL, g.sell_time, g.allocated_size, NULL,
               NULL, g.sell_fees, NULL, g.sale_proceeds, NULL,
               fifo._unmatched_reason(g.account, g.symbol, g.sell_time,
                                      v_trade.size - g.allocated_size, g.allocated_size)
        FROM gap g
        UNION ALL
        SELECT 3, 0, 'total', NULL, NULL,
               coalesce(sum(a.allocated_size), 0), NULL,
               sum(a.buy_fees), coalesce(sum(a.sell_fees), 0), sum(a.cost_basis),
               coalesce(sum(a.sale_proceeds), 0), sum(a.pnl_amount),
               format('%s of %s matched to %s lot(s), %s unmatched',
                      trim_scale(coalesce(sum(a.allocated_size) FILTER (WHERE NOT a.unmatched), 0)),
                      trim_scale(v_trade.size),
                      count(*) FILTER (WHERE NOT a.unmatched),
                      trim_scale(coalesce(sum(a.allocated_size) FILTER (WHERE a.unmatched), 0)))
        FROM fifo.allocations a
        WHERE a.version = v_version AND a.sell_trade_id = p_order_id
          AND a.symbol = v_trade.symbol AND a.account = v_trade.account
        )
        SELECT (row_number() OVER (ORDER BY p.phase, p.n) - 1)::integer,
               p.kind, p.id, p.at, p.quantity, p.price, p.buy_fees, p.sell_fees,
               p.cost_basis, p.proceeds, p.pnl, p.note
        FROM parts p
        ORDER BY p.phase, p.n;
    ELSE
        RETURN QUERY
        WITH used AS (
            SELECT a.*,
                   row_number() OVER (ORDER BY a.sell_time, a.sell_trade_id COLLATE "C")::integer AS n
            FROM fifo.allocations a
            WHERE a.version = v_version AND a.buy_trade_id = p_order_id
              AND a.symbol = v_trade.symbol AND a.account = v_trade.account
        ),
        rest AS (
            SELECT coalesce(sum(u.allocated_size), 0) AS consumed, count(*)::integer AS sells
            FROM used u
        ),
        open_part AS (
            SELECT v_trade.size - r.consumed AS qty,
                   trim_scale(v_trade.total_fees
                              - fifo._fee_point(v_trade.total_fees, v_trade.size, r.consumed)) AS fee_left,
                   r.sells
            FROM rest r
        ),
        parts AS (
        SELECT 0 AS phase, 0 AS n, 'buy' AS kind, v_trade.order_id AS id, v_trade.order_time AS at,
               v_trade.size AS quantity, v_trade.price AS price, v_trade.total_fees AS buy_fees,
               NULL::numeric AS sell_fees, NULL::numeric AS cost_basis, NULL::numeric AS proceeds,
               NULL::numeric AS pnl,
               format('buy %s %s at %s on %s (account %s), fee %s',
                      trim_scale(v_trade.size), v_trade.symbol, trim_scale(v_trade.price),
                      fifo._report_clock(v_trade.order_time), v_trade.account,
                      trim_scale(v_trade.total_fees)) AS note
        UNION ALL
        SELECT 1, u.n, 'consumed by', u.sell_trade_id, u.sell_time, u.allocated_size, u.sell_price,
               u.buy_fees, u.sell_fees, u.cost_basis, u.sale_proceeds, u.pnl_amount,
               format('sold %s, held %s', fifo._report_clock(u.sell_time), u.sell_time - u.buy_time)
        FROM used u
        UNION ALL
        SELECT 2, 0, 'open', NULL, NULL, o.qty, v_trade.price,
               o.fee_left, NULL, o.qty * v_trade.price + o.fee_left, NULL, NULL,
               format('%s of %s still open', trim_scale(o.qty), trim_scale(v_trade.size))
        FROM open_part o
        WHERE o.qty > 0
        UNION ALL
        SELECT 3, 0, 'total', NULL, NULL, v_trade.size, NULL,
               v_trade.total_fees, (SELECT sum(u.sell_fees) FROM used u),
               (SELECT sum(u.cost_basis) FROM used u), (SELECT sum(u.sale_proceeds) FROM used u),
               (SELECT sum(u.pnl_amount) FROM used u),
               format('%s sold by %s sell(s), %s open; realized P&L on this lot %s',
                      trim_scale(v_trade.size - o.qty), o.sells, trim_scale(o.qty),
                      coalesce(trim_scale((SELECT sum(u.pnl_amount) FROM used u))::text, '0'))
        FROM open_part o
        )
        SELECT (row_number() OVER (ORDER BY p.phase, p.n) - 1)::integer,
               p.kind, p.id, p.at, p.quantity, p.price, p.buy_fees, p.sell_fees,
               p.cost_basis, p.proceeds, p.pnl, p.note
        FROM parts p
        ORDER BY p.phase, p.n;
    END IF;
END;
$$;
COMMENT ON FUNCTION public.explain_fifo(text) IS
    'Explain one trade: for a sell, the lots it consumed (quantities, prices, fee shares, P&L) and any unmatched '
    'part with the reason; for a buy, the sells that consumed it and what remains open. Current version.';
