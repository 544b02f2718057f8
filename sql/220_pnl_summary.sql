-- Realized P&L summaries: by symbol, by day (report time zone) and in
-- total, all from fifo_trade_pnl. fifo._pnl_rollup computes every grain
-- once with GROUPING SETS so the measures are defined in one place:
--   sells        SELLs in the range; trades: those with a matched part
--   wins/losses  trades with P&L > 0 / < 0; win_rate = wins / trades
--   volume       sum of size * price over the sells (quote currency)
--   fees         fee shares charged in realized P&L (buy + sell, matched part)
--   not_computed sells without allocations in the current version
CREATE OR REPLACE FUNCTION fifo._pnl_rollup(
    p_symbol text DEFAULT NULL,
    p_from timestamptz DEFAULT NULL,
    p_to timestamptz DEFAULT NULL)
RETURNS TABLE (
    grain text, day date, symbol text,
    sells bigint, trades bigint, wins bigint, losses bigint, win_rate numeric,
    volume numeric, fees numeric, matched_size numeric, unmatched_size numeric,
    not_computed bigint, pnl_amount numeric)
LANGUAGE sql STABLE
AS $$
    SELECT CASE grouping(d.day, d.symbol)
               WHEN 0 THEN 'day,symbol' WHEN 1 THEN 'day' WHEN 2 THEN 'symbol' ELSE 'total' END,
           d.day, d.symbol,
           count(*),
           count(*) FILTER (WHERE d.matched_size > 0),
           count(*) FILTER (WHERE d.pnl_amount > 0),
           count(*) FILTER (WHERE d.pnl_amount < 0),
           pg_catalog.trim_scale(count(*) FILTER (WHERE d.pnl_amount > 0)::numeric
               / nullif(count(*) FILTER (WHERE d.matched_size > 0), 0)),
           coalesce(sum(d.size * d.price), 0),
           coalesce(sum(d.buy_fees), 0) + coalesce(sum(d.sell_fees), 0),
           coalesce(sum(d.matched_size), 0),
           coalesce(sum(d.unmatched_size), 0),
           count(*) FILTER (WHERE d.status = 'not computed'),
           coalesce(sum(d.pnl_amount), 0)
    FROM (SELECT (tp.order_time AT TIME ZONE (SELECT fifo._report_tz()))::date AS day, tp.*
          FROM public.fifo_trade_pnl(p_symbol, p_from, p_to) tp) d
    GROUP BY GROUPING SETS ((d.day, d.symbol), (d.day), (d.symbol), ())
$$;

-- fifo_pnl_by_symbol([symbol, from, to]): realized P&L per symbol.
CREATE OR REPLACE FUNCTION public.fifo_pnl_by_symbol(
    p_symbol text DEFAULT NULL,
    p_from timestamptz DEFAULT NULL,
    p_to timestamptz DEFAULT NULL)
RETURNS TABLE (
    symbol text, sells bigint, trades bigint, wins bigint, losses bigint, win_rate numeric,
    volume numeric, fees numeric, unmatched_size numeric, not_computed bigint, pnl_amount numeric)
LANGUAGE sql STABLE
AS $$
    SELECT r.symbol, r.sells, r.trades, r.wins, r.losses, r.win_rate,
           r.volume, r.fees, r.unmatched_size, r.not_computed, r.pnl_amount
    FROM fifo._pnl_rollup(p_symbol, p_from, p_to) r
    WHERE r.grain = 'symbol'
$$;
COMMENT ON FUNCTION public.fifo_pnl_by_symbol(text, timestamptz, timestamptz) IS
    'Realized P&L per symbol (sells, trades, wins, losses, win rate, volume, fees, P&L) for sells in [from, to).';

CREATE OR REPLACE VIEW public.fifo_pnl_by_symbol AS
    SELECT * FROM public.fifo_pnl_by_symbol();
COMMENT ON VIEW public.fifo_pnl_by_symbol IS
    'Realized P&L per symbol: sells, trades (sells with a matched part), wins, losses, win_rate = wins/trades, '
    'volume (size*price of sells), fees in P&L, unmatched size, P&L. Current version, exact numerics.';

-- fifo_pnl_by_day([symbol, from, to]): realized P&L per day in the report
-- time zone, with the running total.
CREATE OR REPLACE FUNCTION public.fifo_pnl_by_day(
    p_symbol text DEFAULT NULL,
    p_from timestamptz DEFAULT NULL,
    p_to timestamptz DEFAULT NULL)
RETURNS TABLE (
    day date, sells bigint, trades bigint, wins bigint, losses bigint, win_rate numeric,
    volume numeric, fees numeric, unmatched_size numeric, not_computed bigint,
    pnl_amount numeric, cumulative_pnl numeric)
LANGUAGE sql STABLE
AS $$
    SELECT r.day, r.sells, r.trades, r.wins, r.losses, r.win_rate,
           r.volume, r.fees, r.unmatched_size, r.not_computed, r.pnl_amount,
           sum(r.pnl_amount) OVER (ORDER BY r.day ROWS UNBOUNDED PRECEDING)
    FROM fifo._pnl_rollup(p_symbol, p_from, p_to) r
    WHERE r.grain = 'day'
$$;
COMMENT ON FUNCTION public.fifo_pnl_by_day(text, timestamptz, timestamptz) IS
    'Realized P&L per day (report time zone) with the running total, for sells in [from, to).';

CREATE OR REPLACE VIEW public.fifo_pnl_by_day AS
    SELECT * FROM public.fifo_pnl_by_day();
COMMENT ON VIEW public.fifo_pnl_by_day IS
    'Realized P&L per day in the report time zone (setting report_timezone, default UTC), with cumulative_pnl. '
    'Current version, exact numerics.';

-- fifo_pnl_summary([symbol, from, to]): the totals row of the summaries.
CREATE OR REPLACE FUNCTION public.fifo_pnl_summary(
    p_symbol text DEFAULT NULL,
    p_from timestamptz DEFAULT NULL,
    p_to timestamptz DEFAULT NULL)
RETURNS TABLE (
    sells bigint, trades bigint, wins bigint, losses bigint, win_rate numeric,
    volume numeric, fees numeric, unmatched_size numeric, not_computed bigint, pnl_amount numeric)
LANGUAGE sql STABLE
AS $$
    SELECT r.sells, r.trades, r.wins, r.losses, r.win_rate,
           r.volume, r.fees, r.unmatched_size, r.not_computed, r.pnl_amount
    FROM fifo._pnl_rollup(p_symbol, p_from, p_to) r
    WHERE r.grain = 'total'
$$;
COMMENT ON FUNCTION public.fifo_pnl_summary(text, timestamptz, timestamptz) IS
    'Realized P&L totals (one row, same measures as fifo_pnl_by_symbol) for sells in [from, to).';

-- fifo._pnl_curve([symbol, from, to]): cumulative realized P&L per day,
-- per symbol and in total (symbol NULL), for the chart.
CREATE OR REPLACE FUNCTION fifo._pnl_curve(
    p_symbol text DEFAULT NULL,
    p_from timestamptz DEFAULT NULL,
    p_to timestamptz DEFAULT NULL)
RETURNS TABLE (day date, symbol text, pnl_amount numeric, cumulative_pnl numeric)
LANGUAGE sql STABLE
AS $$
    SELECT r.day, r.symbol, r.pnl_amount,
           sum(r.pnl_amount) OVER (PARTITION BY r.symbol ORDER BY r.day ROWS UNBOUNDED PRECEDING)
    FROM fifo._pnl_rollup(p_symbol, p_from, p_to) r
    WHERE r.grain IN ('day', 'day,symbol')
$$;
