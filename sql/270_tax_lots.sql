-- fifo_tax_lots: one row per matched allocation in the shape of IRS Form
-- 8949: (a) description '188.9 SAPIEN-USD', (b) date acquired, (c) date
-- sold (both in the report time zone), (d) proceeds, (e) cost basis,
-- (h) gain or loss, and the term: long when the holding period
-- sell_time - buy_time exceeds long_term_days (default 365), else short.
-- Unmatched (oversold) parts have no cost basis and are not tax lots: see
-- fifo_unmatched_sells.
CREATE OR REPLACE FUNCTION public.fifo_tax_lots(
    p_symbol text DEFAULT NULL,
    p_from timestamptz DEFAULT NULL,
    p_to timestamptz DEFAULT NULL)
RETURNS TABLE (
    description text, date_acquired date, date_sold date,
    proceeds numeric, cost_basis numeric, gain_or_loss numeric, term text,
    account text, symbol text, quantity numeric, sell_trade_id text, buy_trade_id text,
    buy_time timestamptz, sell_time timestamptz, holding_period interval)
LANGUAGE sql STABLE
AS $$
    SELECT pg_catalog.trim_scale(fa.allocated_size)::text || ' ' || fa.symbol,
           (fa.buy_time AT TIME ZONE (SELECT fifo._report_tz()))::date,
           (fa.sell_time AT TIME ZONE (SELECT fifo._report_tz()))::date,
           fa.sale_proceeds, fa.cost_basis, fa.pnl_amount,
           CASE WHEN fa.sell_time - fa.buy_time > (SELECT fifo._long_term()) THEN 'long' ELSE 'short' END,
           fa.account, fa.symbol, fa.allocated_size, fa.sell_trade_id, fa.buy_trade_id,
           fa.buy_time, fa.sell_time, fa.sell_time - fa.buy_time
    FROM fifo.allocations fa
    WHERE fa.version = (SELECT fifo._current_version())
      AND NOT fa.unmatched
      AND (p_symbol IS NULL OR fa.symbol = p_symbol)
      AND (p_from IS NULL OR fa.sell_time >= p_from)
      AND (p_to IS NULL OR fa.sell_time < p_to)
$$;
COMMENT ON FUNCTION public.fifo_tax_lots(text, timestamptz, timestamptz) IS
    'Form 8949 rows for lots sold in [from, to), optionally for one symbol.';

CREATE OR REPLACE VIEW public.fifo_tax_lots AS
    SELECT * FROM public.fifo_tax_lots();
COMMENT ON VIEW public.fifo_tax_lots IS
    'Form 8949 shape, one row per (sell, lot): description, date_acquired, date_sold, proceeds, cost_basis, '
    'gain_or_loss, term (long when sell_time - buy_time exceeds long_term_days). Current version, exact numerics.';
