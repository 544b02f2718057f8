-- Realized P&L summaries: by symbol, by day, month and year (report time
-- zone) and in total, per quote currency (never added across currencies),
-- all from fifo_trade_pnl and the buys in the range. fifo._pnl_rollup
-- computes every grain once with GROUPING SETS, each set keyed by currency,
-- so the measures are defined in one place:
--   sells          SELLs in the range; trades: those with a matched part
--   wins/losses    trades with P&L > 0 / < 0; win_rate = wins / trades
--   buys           BUYs in the range
--   sell_volume    sum of size * price over the sells (quote currency)
--   buy_volume     sum of size * price over the buys
--   realized_fees  the fee shares inside realized P&L: the sells' matched
--                  parts and the lot fees those parts carried
--   fees_paid      every fee paid on the trades in the range: buys and sells,
--                  open lots and unmatched parts included
--   not_computed   sells without allocations in the current version
-- Days, months and years are dates in the report time zone (setting
-- report_timezone). p_round (NULL: exact): each trade's money (its volume
-- size*price, its fee, its allocations' amounts through fifo_trade_pnl) is
-- rounded once by fifo._money and every measure, cumulative_pnl and total is
-- a sum of those rounded figures, so a day's P&L, its running total and the
-- TOTAL line add up to the cent; win_rate is then rounded to
-- greatest(p_round, 4) places. fifo._pnl_rollup is inlined into the report functions
-- that call it, which pin their search_path (see sql/210).
CREATE OR REPLACE FUNCTION fifo._pnl_rollup(
    p_symbol text DEFAULT NULL,
    p_from timestamptz DEFAULT NULL,
    p_to timestamptz DEFAULT NULL,
    p_round integer DEFAULT NULL)
RETURNS TABLE (
    grain text, currency text, year integer, month date, day date, symbol text,
    sells bigint, trades bigint, wins bigint, losses bigint, win_rate numeric,
    buys bigint, sell_volume numeric, buy_volume numeric, realized_fees numeric, fees_paid numeric,
    unmatched_size numeric, not_computed bigint, pnl_amount numeric)
LANGUAGE sql STABLE
AS $$
    SELECT CASE GROUPING(d.symbol, d.day, d.month, d.year)
               WHEN 3 THEN 'day,symbol' WHEN 11 THEN 'day' WHEN 13 THEN 'month' WHEN 14 THEN 'year'
               WHEN 7 THEN 'symbol' ELSE 'total' END,
           d.currency, d.year, d.month, d.day, d.symbol,
           pg_catalog.count(*) FILTER (WHERE d.is_sell),
           pg_catalog.count(*) FILTER (WHERE d.matched_size OPERATOR(pg_catalog.>) 0::pg_catalog.numeric),
           pg_catalog.count(*) FILTER (WHERE d.pnl_amount OPERATOR(pg_catalog.>) 0::pg_catalog.numeric),
           pg_catalog.count(*) FILTER (WHERE d.pnl_amount OPERATOR(pg_catalog.<) 0::pg_catalog.numeric),
           CASE WHEN p_round IS NULL THEN pg_catalog.trim_scale(
               (pg_catalog.count(*) FILTER (WHERE d.pnl_amount OPERATOR(pg_catalog.>) 0::pg_catalog.numeric))::pg_catalog.numeric
               OPERATOR(pg_catalog./)
               NULLIF(pg_catalog.count(*) FILTER (WHERE d.matched_size OPERATOR(pg_catalog.>) 0::pg_catalog.numeric),
                      0::pg_catalog.int8)::pg_catalog.numeric)
           ELSE pg_catalog.round(
               (pg_catalog.count(*) FILTER (WHERE d.pnl_amount OPERATOR(pg_catalog.>) 0::pg_catalog.numeric))::pg_catalog.numeric
               OPERATOR(pg_catalog./)
               NULLIF(pg_catalog.count(*) FILTER (WHERE d.matched_size OPERATOR(pg_catalog.>) 0::pg_catalog.numeric),
                      0::pg_catalog.int8)::pg_catalog.numeric,
               GREATEST(p_round, 4)) END,
           pg_catalog.count(*) FILTER (WHERE NOT d.is_sell),
           -- sums of rounded figures; fifo._money again only gives a sum of none (0) its scale
           fifo._money(COALESCE(pg_catalog.sum(d.volume) FILTER (WHERE d.is_sell), 0::pg_catalog.numeric),
                       d.currency, p_round),
           fifo._money(COALESCE(pg_catalog.sum(d.volume) FILTER (WHERE NOT d.is_sell), 0::pg_catalog.numeric),
                       d.currency, p_round),
           fifo._money(COALESCE(pg_catalog.sum(d.buy_fees), 0::pg_catalog.numeric)
               OPERATOR(pg_catalog.+) COALESCE(pg_catalog.sum(d.sell_fees), 0::pg_catalog.numeric), d.currency, p_round),
           fifo._money(COALESCE(pg_catalog.sum(d.total_fees), 0::pg_catalog.numeric), d.currency, p_round),
           COALESCE(pg_catalog.sum(d.unmatched_size), 0::pg_catalog.numeric),
           pg_catalog.count(*) FILTER (WHERE d.status OPERATOR(pg_catalog.=) 'not computed'::pg_catalog.text),
           fifo._money(COALESCE(pg_catalog.sum(d.pnl_amount), 0::pg_catalog.numeric), d.currency, p_round)
    FROM (
        SELECT x.*, fifo._money(x.size OPERATOR(pg_catalog.*) x.price, x.currency, p_round) AS volume,
               pg_catalog.date_trunc('month', x.day::pg_catalog.timestamp)::pg_catalog.date AS month,
               pg_catalog.date_part('year'::pg_catalog.text, x.day::pg_catalog.timestamp)::pg_catalog.int4 AS year
        FROM (
            SELECT tp.currency, tp.symbol, (tp.order_time AT TIME ZONE (SELECT fifo._report_tz()))::pg_catalog.date AS day,
                   true AS is_sell, tp.size, tp.price, tp.total_fees, tp.matched_size, tp.unmatched_size,
                   tp.buy_fees, tp.sell_fees, tp.pnl_amount, tp.status
            FROM public.fifo_trade_pnl(p_symbol, p_from, p_to, p_round) tp
            UNION ALL
            SELECT fifo._quote_currency(t.symbol), t.symbol,
                   (t.order_time AT TIME ZONE (SELECT fifo._report_tz()))::pg_catalog.date,
                   false, t.size, t.price, fifo._money(t.total_fees, fifo._quote_currency(t.symbol), p_round),
                   NULL, NULL, NULL, NULL, NULL, NULL
            FROM fifo.trades t
            WHERE t.side = 'buy'
              AND (p_symbol IS NULL OR t.symbol = p_symbol)
              AND (p_from IS NULL OR t.order_time >= p_from)
              AND (p_to IS NULL OR t.order_time < p_to)
        ) x
    ) d
    GROUP BY GROUPING SETS ((d.currency, d.day, d.symbol), (d.currency, d.day), (d.currency, d.month),
                            (d.currency, d.year), (d.currency, d.symbol), (d.currency))
$$;

-- fifo_pnl_by_symbol([symbol, from, to]): realized P&L per symbol.
CREATE OR REPLACE FUNCTION public.fifo_pnl_by_symbol(
    p_symbol text DEFAULT NULL,
    p_from timestamptz DEFAULT NULL,
    p_to timestamptz DEFAULT NULL,
    p_round integer DEFAULT NULL)
RETURNS TABLE (
    symbol text, currency text,
    sells bigint, trades bigint, wins bigint, losses bigint, win_rate numeric,
    buys bigint, sell_volume numeric, buy_volume numeric, realized_fees numeric, fees_paid numeric,
    unmatched_size numeric, not_computed bigint, pnl_amount numeric)
LANGUAGE plpgsql STABLE
SECURITY DEFINER   -- readers read reports without any right on fifo-db's internal tables
SET search_path = pg_catalog, pg_temp
AS $$
#variable_conflict use_column
BEGIN
    RETURN QUERY
    SELECT r.symbol, r.currency,
           r.sells, r.trades, r.wins, r.losses, r.win_rate,
           r.buys, r.sell_volume, r.buy_volume, r.realized_fees, r.fees_paid,
           r.unmatched_size, r.not_computed, r.pnl_amount
    FROM fifo._pnl_rollup(p_symbol, p_from, p_to, p_round) r
    WHERE r.grain = 'symbol';
END;
$$;
COMMENT ON FUNCTION public.fifo_pnl_by_symbol(text, timestamptz, timestamptz, integer) IS
    'Realized P&L per symbol in its quote currency (sells, trades, wins, losses, win rate, volumes, fees, P&L) for trades in [from, to).';

CREATE OR REPLACE VIEW public.fifo_pnl_by_symbol AS
    SELECT * FROM public.fifo_pnl_by_symbol();
COMMENT ON VIEW public.fifo_pnl_by_symbol IS
    'Realized P&L per symbol, in `currency` (the quote): sells, trades (sells with a matched part), wins, losses, win_rate = wins/trades, buys, sell_volume and buy_volume (size*price), realized_fees (fee shares inside realized P&L), fees_paid (all fees of the trades), unmatched size, not_computed, P&L. Current version, exact numerics.';

-- fifo_pnl_by_day([symbol, from, to]): realized P&L per day in the report
-- time zone and quote currency, with the running total per currency.
CREATE OR REPLACE FUNCTION public.fifo_pnl_by_day(
    p_symbol text DEFAULT NULL,
    p_from timestamptz DEFAULT NULL,
    p_to timestamptz DEFAULT NULL,
    p_round integer DEFAULT NULL)
RETURNS TABLE (
    day date, currency text,
    sells bigint, trades bigint, wins bigint, losses bigint, win_rate numeric,
    buys bigint, sell_volume numeric, buy_volume numeric, realized_fees numeric, fees_paid numeric,
    unmatched_size numeric, not_computed bigint, pnl_amount numeric,
    cumulative_pnl numeric)
LANGUAGE plpgsql STABLE
SECURITY DEFINER   -- readers read reports without any right on fifo-db's internal tables
SET search_path = pg_catalog, pg_temp
AS $$
#variable_conflict use_column
BEGIN
    RETURN QUERY
    SELECT r.day, r.currency,
           r.sells, r.trades, r.wins, r.losses, r.win_rate,
           r.buys, r.sell_volume, r.buy_volume, r.realized_fees, r.fees_paid,
           r.unmatched_size, r.not_computed, r.pnl_amount,
           pg_catalog.sum(r.pnl_amount) OVER (PARTITION BY r.currency ORDER BY r.day ROWS UNBOUNDED PRECEDING)
    FROM fifo._pnl_rollup(p_symbol, p_from, p_to, p_round) r
    WHERE r.grain = 'day';
END;
$$;
COMMENT ON FUNCTION public.fifo_pnl_by_day(text, timestamptz, timestamptz, integer) IS
    'Realized P&L per day (report time zone) and currency with the running total, for trades in [from, to).';

CREATE OR REPLACE VIEW public.fifo_pnl_by_day AS
    SELECT * FROM public.fifo_pnl_by_day();
COMMENT ON VIEW public.fifo_pnl_by_day IS
    'Realized P&L per day in the report time zone (setting report_timezone, default UTC) and currency, with cumulative_pnl per currency. Current version, exact numerics.';

-- fifo_pnl_by_month([symbol, from, to]): the same per calendar month.
CREATE OR REPLACE FUNCTION public.fifo_pnl_by_month(
    p_symbol text DEFAULT NULL,
    p_from timestamptz DEFAULT NULL,
    p_to timestamptz DEFAULT NULL,
    p_round integer DEFAULT NULL)
RETURNS TABLE (
    month date, currency text,
    sells bigint, trades bigint, wins bigint, losses bigint, win_rate numeric,
    buys bigint, sell_volume numeric, buy_volume numeric, realized_fees numeric, fees_paid numeric,
    unmatched_size numeric, not_computed bigint, pnl_amount numeric,
    cumulative_pnl numeric)
LANGUAGE plpgsql STABLE
SECURITY DEFINER   -- readers read reports without any right on fifo-db's internal tables
SET search_path = pg_catalog, pg_temp
AS $$
#variable_conflict use_column
BEGIN
    RETURN QUERY
    SELECT r.month, r.currency,
           r.sells, r.trades, r.wins, r.losses, r.win_rate,
           r.buys, r.sell_volume, r.buy_volume, r.realized_fees, r.fees_paid,
           r.unmatched_size, r.not_computed, r.pnl_amount,
           pg_catalog.sum(r.pnl_amount) OVER (PARTITION BY r.currency ORDER BY r.month ROWS UNBOUNDED PRECEDING)
    FROM fifo._pnl_rollup(p_symbol, p_from, p_to, p_round) r
    WHERE r.grain = 'month';
END;
$$;
COMMENT ON FUNCTION public.fifo_pnl_by_month(text, timestamptz, timestamptz, integer) IS
    'Realized P&L per month (first day of the month, report time zone) and currency, with the running total.';

CREATE OR REPLACE VIEW public.fifo_pnl_by_month AS
    SELECT * FROM public.fifo_pnl_by_month();
COMMENT ON VIEW public.fifo_pnl_by_month IS
    'Realized P&L per month (month = its first day, report time zone) and currency, with cumulative_pnl per currency. Current version, exact numerics.';

-- fifo_pnl_by_year([symbol, from, to]): the same per calendar year.
CREATE OR REPLACE FUNCTION public.fifo_pnl_by_year(
    p_symbol text DEFAULT NULL,
    p_from timestamptz DEFAULT NULL,
    p_to timestamptz DEFAULT NULL,
    p_round integer DEFAULT NULL)
RETURNS TABLE (
    year integer, currency text,
    sells bigint, trades bigint, wins bigint, losses bigint, win_rate numeric,
    buys bigint, sell_volume numeric, buy_volume numeric, realized_fees numeric, fees_paid numeric,
    unmatched_size numeric, not_computed bigint, pnl_amount numeric)
LANGUAGE plpgsql STABLE
SECURITY DEFINER   -- readers read reports without any right on fifo-db's internal tables
SET search_path = pg_catalog, pg_temp
AS $$
#variable_conflict use_column
BEGIN
    RETURN QUERY
    SELECT r.year, r.currency,
           r.sells, r.trades, r.wins, r.losses, r.win_rate,
           r.buys, r.sell_volume, r.buy_volume, r.realized_fees, r.fees_paid,
           r.unmatched_size, r.not_computed, r.pnl_amount
    FROM fifo._pnl_rollup(p_symbol, p_from, p_to, p_round) r
    WHERE r.grain = 'year';
END;
$$;
COMMENT ON FUNCTION public.fifo_pnl_by_year(text, timestamptz, timestamptz, integer) IS
    'Realized P&L per calendar year (report time zone) and currency.';

CREATE OR REPLACE VIEW public.fifo_pnl_by_year AS
    SELECT * FROM public.fifo_pnl_by_year();
COMMENT ON VIEW public.fifo_pnl_by_year IS
    'Realized P&L per calendar year (report time zone) and currency. Current version, exact numerics.';

-- fifo_pnl_summary([symbol, from, to]): the totals, one row per currency.
CREATE OR REPLACE FUNCTION public.fifo_pnl_summary(
    p_symbol text DEFAULT NULL,
    p_from timestamptz DEFAULT NULL,
    p_to timestamptz DEFAULT NULL,
    p_round integer DEFAULT NULL)
RETURNS TABLE (
    currency text,
    sells bigint, trades bigint, wins bigint, losses bigint, win_rate numeric,
    buys bigint, sell_volume numeric, buy_volume numeric, realized_fees numeric, fees_paid numeric,
    unmatched_size numeric, not_computed bigint, pnl_amount numeric)
LANGUAGE plpgsql STABLE
SECURITY DEFINER   -- readers read reports without any right on fifo-db's internal tables
SET search_path = pg_catalog, pg_temp
AS $$
#variable_conflict use_column
BEGIN
    RETURN QUERY
    SELECT r.currency,
           r.sells, r.trades, r.wins, r.losses, r.win_rate,
           r.buys, r.sell_volume, r.buy_volume, r.realized_fees, r.fees_paid,
           r.unmatched_size, r.not_computed, r.pnl_amount
    FROM fifo._pnl_rollup(p_symbol, p_from, p_to, p_round) r
    WHERE r.grain = 'total';
END;
$$;
COMMENT ON FUNCTION public.fifo_pnl_summary(text, timestamptz, timestamptz, integer) IS
    'Realized P&L totals, one row per quote currency (same measures as fifo_pnl_by_symbol), for trades in [from, to).';

-- fifo_pnl_curve([symbol, from, to]): cumulative realized P&L per day with
-- sells, per symbol and per currency in total (symbol NULL), for the chart.
CREATE OR REPLACE FUNCTION public.fifo_pnl_curve(
    p_symbol text DEFAULT NULL,
    p_from timestamptz DEFAULT NULL,
    p_to timestamptz DEFAULT NULL,
    p_round integer DEFAULT NULL)
RETURNS TABLE (currency text, symbol text, day date, pnl_amount numeric, cumulative_pnl numeric)
LANGUAGE plpgsql STABLE
SECURITY DEFINER   -- readers read reports without any right on fifo-db's internal tables
SET search_path = pg_catalog, pg_temp
AS $$
#variable_conflict use_column
BEGIN
    RETURN QUERY
    SELECT r.currency, r.symbol, r.day, r.pnl_amount,
           sum(r.pnl_amount) OVER (PARTITION BY r.currency, r.symbol ORDER BY r.day ROWS UNBOUNDED PRECEDING)
    FROM fifo._pnl_rollup(p_symbol, p_from, p_to, p_round) r
    WHERE r.grain IN ('day', 'day,symbol') AND r.sells > 0;
END;
$$;
COMMENT ON FUNCTION public.fifo_pnl_curve(text, timestamptz, timestamptz, integer) IS
    'Cumulative realized P&L per day with sells, per symbol and per currency in total (symbol NULL).';
