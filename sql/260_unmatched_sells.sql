-- fifo_unmatched_sells: the SELLs, or parts of them, that found no inventory
-- at their position (docs/rules.md, rule 4), with why: they are reported here
-- and never charged to a later buy. Money in the quote currency, exact or
-- (p_round) rounded once by fifo._money.
CREATE OR REPLACE FUNCTION public.fifo_unmatched_sells(
    p_symbol text DEFAULT NULL,
    p_from timestamptz DEFAULT NULL,
    p_to timestamptz DEFAULT NULL,
    p_round integer DEFAULT NULL)
RETURNS TABLE (
    account text, symbol text, currency text, order_id text, order_time timestamptz, size numeric, price numeric,
    matched_size numeric, unmatched_size numeric, unmatched_proceeds numeric, unmatched_fees numeric,
    reason text)
LANGUAGE plpgsql STABLE
SECURITY DEFINER   -- readers read reports without any right on fifo-db's internal tables
SET search_path = pg_catalog, pg_temp
AS $$
#variable_conflict use_column
BEGIN
    RETURN QUERY
    SELECT fa.account, fa.symbol, fifo._quote_currency(fa.symbol), fa.sell_trade_id, fa.sell_time, t.size,
           fa.sell_price,
           t.size OPERATOR(pg_catalog.-) fa.allocated_size, fa.allocated_size,
           fifo._money(fa.sale_proceeds, fifo._quote_currency(fa.symbol), p_round),
           fifo._money(fa.sell_fees, fifo._quote_currency(fa.symbol), p_round),
           fifo._unmatched_reason(fa.account, fa.symbol, fa.sell_time,
                                  t.size OPERATOR(pg_catalog.-) fa.allocated_size, fa.allocated_size)
    FROM fifo.allocations fa
    -- the sell in the row's own pool (an order_id moved or re-used elsewhere is another trade)
    JOIN fifo.trades t ON t.order_id = fa.sell_trade_id AND t.symbol = fa.symbol AND t.account = fa.account
    WHERE fa.version = (SELECT fifo._current_version())
      AND fa.unmatched
      AND (p_symbol IS NULL OR fa.symbol = p_symbol)
      AND (p_from IS NULL OR fa.sell_time >= p_from)
      AND (p_to IS NULL OR fa.sell_time < p_to);
END;
$$;
COMMENT ON FUNCTION public.fifo_unmatched_sells(text, timestamptz, timestamptz, integer) IS
    'Oversold sells (the part with no inventory) in [from, to), with the reason, optionally for one symbol.';

CREATE OR REPLACE VIEW public.fifo_unmatched_sells AS
    SELECT * FROM public.fifo_unmatched_sells();
COMMENT ON VIEW public.fifo_unmatched_sells IS
    'Sells larger than the inventory at their position: matched and unmatched size, proceeds of the unmatched '
    'part (no cost basis, no P&L, in `currency`) and the reason. Current version.';
