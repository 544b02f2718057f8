-- verify_fifo([symbol [, version]]): the invariants of docs/rules.md checked in
-- SQL, one row per finding (no rows = clean). Checks only pools that are
-- computed for the version (fifo.pool_state); pools with pending changes
-- are reported as 'stale' since their allocations may lag their trades.
CREATE OR REPLACE FUNCTION public.verify_fifo(p_symbol text DEFAULT NULL, p_version integer DEFAULT NULL)
RETURNS TABLE (check_name text, symbol text, account text, trade_id text, detail text)
LANGUAGE sql STABLE
SECURITY DEFINER   -- readers check P&L without any right on fifo-db's internal tables
SET search_path = pg_catalog, pg_temp
AS $$
    WITH v AS (SELECT coalesce(p_version, fifo._current_version()) AS version),
    pools AS (
        SELECT ps.symbol, ps.account FROM fifo.pool_state ps, v
        WHERE ps.version = v.version AND (p_symbol IS NULL OR ps.symbol = p_symbol)
    ),
    a AS (
        SELECT fa.* FROM fifo.allocations fa JOIN pools USING (symbol, account), v
        WHERE fa.version = v.version
    ),
    t AS (
        SELECT tr.* FROM fifo.trades tr JOIN pools USING (symbol, account)
    ),
    per_sell AS (
        SELECT a.sell_trade_id, sum(a.allocated_size) AS q, sum(a.sell_fees) AS fees
        FROM a GROUP BY a.sell_trade_id
    ),
    per_buy AS (
        SELECT a.buy_trade_id, sum(a.allocated_size) AS q, sum(a.buy_fees) AS fees
        FROM a WHERE a.buy_trade_id IS NOT NULL GROUP BY a.buy_trade_id
    )
    -- every sell is allocated exactly its size, and its fee shares add up to its fee
    SELECT 'sell_size', t.symbol, t.account, t.order_id,
           format('size %s, allocated %s', t.size, coalesce(ps.q, 0))
    FROM t LEFT JOIN per_sell ps ON ps.sell_trade_id = t.order_id
    WHERE t.side = 'sell' AND ps.q IS DISTINCT FROM t.size
    UNION ALL
    SELECT 'sell_fees', t.symbol, t.account, t.order_id,
           format('total_fees %s, fee shares add up to %s', t.total_fees, ps.fees)
    FROM t JOIN per_sell ps ON ps.sell_trade_id = t.order_id
    WHERE t.side = 'sell' AND ps.fees <> t.total_fees
    -- no buy is over-allocated; its fee shares add up to the share of what was used
    UNION ALL
    SELECT 'buy_over_allocated', t.symbol, t.account, t.order_id,
           format('size %s, allocated %s', t.size, pb.q)
    FROM t JOIN per_buy pb ON pb.buy_trade_id = t.order_id
    WHERE t.side = 'buy' AND pb.q > t.size
    UNION ALL
    SELECT 'buy_fees', t.symbol, t.account, t.order_id,
           format('fee share of the %s used should be %s, rows add up to %s',
                  pb.q, fifo._fee_point(t.total_fees, t.size, pb.q), pb.fees)
    FROM t JOIN per_buy pb ON pb.buy_trade_id = t.order_id
    WHERE t.side = 'buy' AND pb.fees <> fifo._fee_point(t.total_fees, t.size, pb.q)
    -- each row points at real trades of its own pool, sides right, prices and times copied
    UNION ALL
    SELECT 'allocation_trades', a.symbol, a.account, a.sell_trade_id,
           format('allocation %s: buy %s / sell %s missing, in another pool, or with other prices or times',
                  a.id, coalesce(a.buy_trade_id, '(unmatched)'), a.sell_trade_id)
    FROM a
    LEFT JOIN fifo.trades s ON s.order_id = a.sell_trade_id
    LEFT JOIN fifo.trades b ON b.order_id = a.buy_trade_id
    WHERE s.order_id IS NULL OR s.side <> 'sell' OR s.symbol <> a.symbol OR s.account <> a.account
       OR s.price <> a.sell_price OR s.order_time <> a.sell_time
       OR (a.buy_trade_id IS NOT NULL AND (
              b.order_id IS NULL OR b.side <> 'buy' OR b.symbol <> a.symbol OR b.account <> a.account
              OR b.price <> a.buy_price OR b.order_time <> a.buy_time))
    -- a sell is never matched to a later buy (rule 2 order)
    UNION ALL
    SELECT 'later_buy', a.symbol, a.account, a.sell_trade_id,
           format('matched to buy %s at %s, after the sell at %s', a.buy_trade_id, a.buy_time, a.sell_time)
    FROM a WHERE a.buy_time > a.sell_time
    -- money: cost = q*buy_price + buy fee share, proceeds = q*sell_price - sell fee share
    UNION ALL
    SELECT 'money', a.symbol, a.account, a.sell_trade_id,
           format('allocation %s: cost %s, proceeds %s, pnl %s do not follow from its size, prices and fees',
                  a.id, a.cost_basis, a.sale_proceeds, a.pnl_amount)
    FROM a
    WHERE a.sale_proceeds <> a.allocated_size * a.sell_price - a.sell_fees
       OR (a.buy_trade_id IS NOT NULL AND (
              a.cost_basis <> a.allocated_size * a.buy_price + a.buy_fees
              OR a.pnl_amount <> a.sale_proceeds - a.cost_basis))
    -- allocations of pools that are not computed at all
    UNION ALL
    SELECT DISTINCT 'orphan_allocations', fa.symbol, fa.account, NULL::text,
           'allocations exist for a pool that is not marked computed'
    FROM fifo.allocations fa, v
    WHERE fa.version = v.version AND (p_symbol IS NULL OR fa.symbol = p_symbol)
      AND NOT EXISTS (SELECT 1 FROM pools WHERE pools.symbol = fa.symbol AND pools.account = fa.account)
    -- pools whose trades changed since they were computed
    UNION ALL
    SELECT DISTINCT 'stale', pc.symbol, pc.account, NULL::text,
           'trades changed since the last computation; run compute_fifo_incremental()'
    FROM fifo.pool_changes pc
    WHERE pc.processed_at IS NULL AND (p_symbol IS NULL OR pc.symbol = p_symbol)
    UNION ALL
    SELECT 'stale', ps.symbol, ps.account, NULL::text,
           format('another version consumed changes from %s on; run compute_fifo_incremental(%s)',
                  ps.stale_from, v.version)
    FROM fifo.pool_state ps, v
    WHERE ps.version = v.version AND ps.stale_from IS NOT NULL AND (p_symbol IS NULL OR ps.symbol = p_symbol)
$$;
COMMENT ON FUNCTION public.verify_fifo(text, integer) IS
    'Check the FIFO invariants in SQL; one row per finding, none when clean.';

-- fifo_computed_pools([symbol [, version]]): the pools computed for a
-- version (default the current one), with that version: what `fifo-db
-- verify` recomputes with its reference FIFO. fifo_computed_trades(...):
-- their trades, as the engine sees them. Both run with the owner's rights
-- (SECURITY DEFINER) so that a reader can verify without any right in
-- schema fifo; they only read.
CREATE OR REPLACE FUNCTION public.fifo_computed_pools(p_symbol text DEFAULT NULL, p_version integer DEFAULT NULL)
RETURNS TABLE (version integer, symbol text, account text)
LANGUAGE sql STABLE
SECURITY DEFINER   -- readers list computed pools without any right on fifo.pool_state
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT ps.version, ps.symbol, ps.account
    FROM fifo.pool_state ps
    WHERE ps.version = coalesce(p_version, fifo._current_version())
      AND (p_symbol IS NULL OR ps.symbol = p_symbol)
$$;
COMMENT ON FUNCTION public.fifo_computed_pools(text, integer) IS
    'The pools computed for a version (default: the current one), optionally of one symbol.';

CREATE OR REPLACE FUNCTION public.fifo_computed_trades(p_symbol text DEFAULT NULL, p_version integer DEFAULT NULL)
RETURNS TABLE (order_id text, account text, symbol text, side text, size numeric, price numeric,
               total_fees numeric, order_time timestamptz)
LANGUAGE sql STABLE
SECURITY DEFINER   -- readers read the trades as the engine sees them (fifo.trades) without rights in fifo
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT t.order_id, t.account, t.symbol, t.side, t.size, t.price, t.total_fees, t.order_time
    FROM fifo.trades t
    JOIN public.fifo_computed_pools(p_symbol, p_version) p ON p.symbol = t.symbol AND p.account = t.account
$$;
COMMENT ON FUNCTION public.fifo_computed_trades(text, integer) IS
    'The trades (as the engine reads them) of the pools computed for a version, optionally of one symbol.';
