-- fifo_trade_pnl: one row per SELL with its allocations in the current
-- version summed up: matched and unmatched size, cost basis, proceeds, fee
-- shares, P&L and holding period, in the symbol's quote currency
-- (`currency`: BTC-USD -> USD, ETH-BTC -> BTC). The clean per-trade answer
-- that replaces the seed's pnl_usd column (NULL for sells the engine has not
-- computed).
--
-- p_round (NULL: exact): money rounded by the one rule of the reports
-- (fifo._money, docs/reports.md "Rounding"): each allocation's cost,
-- proceeds and fee shares, and the sell's fee, rounded once to
-- greatest(p_round, the currency's places); the sell's figures are sums of
-- those, and its P&L is rounded proceeds - rounded cost of its lots, the
-- same cents as its Form 8949 rows. Sizes and prices are never rounded.
--
-- The report functions in sql/2xx run with the owner's rights (SECURITY
-- DEFINER) and search_path pg_catalog, pg_temp: a reader needs no right in
-- schema fifo, and nothing in a caller's search_path can redirect them
-- (tests/test_hostile.py). They are PL/pgSQL, so each call is planned with
-- its arguments: fifo_trade_pnl('X') reads only pool X through the indexes.
-- The views are SELECT * FROM the function: a filter on a view applies to
-- the whole report, so pass symbol/from/to as arguments when it matters.
-- The internal SQL helpers they call (fifo._pnl_rollup, ...) stay
-- inlinable; they only ever run inside these pinned functions.
CREATE OR REPLACE FUNCTION public.fifo_trade_pnl(
    p_symbol text DEFAULT NULL,
    p_from timestamptz DEFAULT NULL,
    p_to timestamptz DEFAULT NULL,
    p_round integer DEFAULT NULL)
RETURNS TABLE (
    account text, symbol text, currency text, order_id text, order_time timestamptz,
    size numeric, price numeric, total_fees numeric,
    matched_size numeric, unmatched_size numeric, lots bigint,
    cost_basis numeric, sale_proceeds numeric, buy_fees numeric, sell_fees numeric,
    pnl_amount numeric, unmatched_proceeds numeric,
    first_buy_time timestamptz, last_buy_time timestamptz,
    shortest_holding interval, longest_holding interval,
    status text)
LANGUAGE plpgsql STABLE
SECURITY DEFINER   -- readers read reports without any right on fifo-db's internal tables
SET search_path = pg_catalog, pg_temp
AS $$
#variable_conflict use_column
BEGIN
    RETURN QUERY
    SELECT t.account, t.symbol, fifo._quote_currency(t.symbol), t.order_id, t.order_time,
           t.size, t.price, fifo._money(t.total_fees, fifo._quote_currency(t.symbol), p_round),
           a.matched_size, a.unmatched_size, a.lots,
           a.cost_basis, a.sale_proceeds, a.buy_fees, a.sell_fees,
           a.pnl_amount, a.unmatched_proceeds,
           a.first_buy_time, a.last_buy_time,
           t.order_time - a.last_buy_time, t.order_time - a.first_buy_time,
           CASE WHEN a.sell_trade_id IS NULL THEN 'not computed'
                -- another version consumed changes of this pool at or before this sell
                WHEN ps.stale_from <= t.order_time THEN 'stale'
                WHEN a.unmatched_size OPERATOR(pg_catalog.=) 0::pg_catalog.numeric THEN 'matched'
                WHEN a.matched_size OPERATOR(pg_catalog.=) 0::pg_catalog.numeric THEN 'unmatched'
                ELSE 'partly unmatched' END
    FROM fifo.trades t
    LEFT JOIN (
        SELECT fa.symbol, fa.account, fa.sell_trade_id,
               COALESCE(pg_catalog.sum(fa.allocated_size) FILTER (WHERE NOT fa.unmatched), 0) AS matched_size,
               COALESCE(pg_catalog.sum(fa.allocated_size) FILTER (WHERE fa.unmatched), 0) AS unmatched_size,
               pg_catalog.count(*) FILTER (WHERE NOT fa.unmatched) AS lots,
               pg_catalog.sum(r.cost_basis) AS cost_basis,
               pg_catalog.sum(r.sale_proceeds) FILTER (WHERE NOT fa.unmatched) AS sale_proceeds,
               pg_catalog.sum(r.buy_fees) AS buy_fees,
               pg_catalog.sum(r.sell_fees) FILTER (WHERE NOT fa.unmatched) AS sell_fees,
               -- exact: the stored P&L; rounded: rounded proceeds - rounded cost, lot by lot
               pg_catalog.sum(CASE WHEN p_round IS NULL THEN fa.pnl_amount
                                   ELSE r.sale_proceeds OPERATOR(pg_catalog.-) r.cost_basis END) AS pnl_amount,
               pg_catalog.sum(r.sale_proceeds) FILTER (WHERE fa.unmatched) AS unmatched_proceeds,
               pg_catalog.min(fa.buy_time) AS first_buy_time,
               pg_catalog.max(fa.buy_time) AS last_buy_time
        FROM fifo.allocations fa
        CROSS JOIN LATERAL (
            SELECT fifo._money(fa.cost_basis, c.currency, p_round) AS cost_basis,
                   fifo._money(fa.sale_proceeds, c.currency, p_round) AS sale_proceeds,
                   fifo._money(fa.buy_fees, c.currency, p_round) AS buy_fees,
                   fifo._money(fa.sell_fees, c.currency, p_round) AS sell_fees
            FROM (SELECT fifo._quote_currency(fa.symbol) AS currency) c) r
        WHERE fa.version = (SELECT fifo._current_version())
          AND (p_symbol IS NULL OR fa.symbol = p_symbol)
          AND (p_from IS NULL OR fa.sell_time >= p_from)
          AND (p_to IS NULL OR fa.sell_time < p_to)
        GROUP BY fa.symbol, fa.account, fa.sell_trade_id
    ) a ON a.symbol = t.symbol AND a.account = t.account AND a.sell_trade_id = t.order_id
    LEFT JOIN fifo.pool_state ps
           ON ps.version = (SELECT fifo._current_version()) AND ps.symbol = t.symbol AND ps.account = t.account
    WHERE t.side = 'sell'
      AND (p_symbol IS NULL OR t.symbol = p_symbol)
      AND (p_from IS NULL OR t.order_time >= p_from)
      AND (p_to IS NULL OR t.order_time < p_to);
END;
$$;
COMMENT ON FUNCTION public.fifo_trade_pnl(text, timestamptz, timestamptz, integer) IS
    'Per-sell realized P&L in the current version, optionally for one symbol and sells in [from, to). '
    'Money in the symbol''s quote currency (column currency); exact, or rounded by fifo._money (p_round).';

CREATE OR REPLACE VIEW public.fifo_trade_pnl AS
    SELECT * FROM public.fifo_trade_pnl();
COMMENT ON VIEW public.fifo_trade_pnl IS
    'One row per SELL: matched/unmatched size, cost basis, proceeds, fee shares, P&L, holding period, all in '
    '`currency` (the symbol''s quote: BTC-USD -> USD) (current version; status ''not computed'' until compute_fifo '
    'has run, ''stale'' from where another version consumed the pool''s changes until it is recomputed). '
    'Exact numerics.';
