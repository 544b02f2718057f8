-- fifo_open_lots: every BUY with inventory left, as of now or as of a
-- time. The remaining size is derived from the allocations (size minus what
-- sells consumed), never stored; the remainder carries the rest of the buy's
-- fee, fee - fifo._fee_point(fee, size, consumed), so a lot's fee shares in
-- its allocations plus its remaining fee add up to its fee exactly.
--   p_from  only lots bought at or after this time
--   p_to    as of this time: only buys and sells before it count
-- long_term_after: the last sell date (report time zone) on which the lot is
-- still short-term under the long-term rule (fifo._long_term_after): sold on
-- a later date, it is long-term.
-- computed = false flags pools the engine has not computed in the current
-- version (their buys look untouched until it does). Money is in the
-- symbol's quote currency (column currency).
-- p_round (NULL: exact): remaining_fees and the remainder's value
-- remaining_size * price each rounded once by fifo._money, and
-- remaining_cost their sum (docs/reports.md, "Rounding").
CREATE OR REPLACE FUNCTION public.fifo_open_lots(
    p_symbol text DEFAULT NULL,
    p_from timestamptz DEFAULT NULL,
    p_to timestamptz DEFAULT NULL,
    p_round integer DEFAULT NULL)
RETURNS TABLE (
    account text, symbol text, currency text, order_id text, order_time timestamptz,
    size numeric, price numeric, total_fees numeric,
    consumed_size numeric, remaining_size numeric, remaining_fees numeric, remaining_cost numeric,
    date_acquired date, long_term_after date, computed boolean)
LANGUAGE plpgsql STABLE
SECURITY DEFINER   -- readers read reports without any right on fifo-db's internal tables
SET search_path = pg_catalog, pg_temp
AS $$
#variable_conflict use_column
BEGIN
    RETURN QUERY
    SELECT t.account, t.symbol, fifo._quote_currency(t.symbol), t.order_id, t.order_time,
           t.size, t.price, fifo._money(t.total_fees, l.currency, p_round),
           l.consumed, t.size OPERATOR(pg_catalog.-) l.consumed,
           fifo._money(l.fee_left, l.currency, p_round),
           fifo._money((t.size OPERATOR(pg_catalog.-) l.consumed) OPERATOR(pg_catalog.*) t.price, l.currency, p_round)
               OPERATOR(pg_catalog.+) fifo._money(l.fee_left, l.currency, p_round),
           l.acquired,
           fifo._long_term_after(l.acquired, (SELECT fifo._long_term_rule()), (SELECT fifo._long_term_days())),
           ps.version IS NOT NULL
    FROM fifo.trades t
    LEFT JOIN (
        SELECT fa.symbol, fa.account, fa.buy_trade_id, pg_catalog.sum(fa.allocated_size) AS consumed
        FROM fifo.allocations fa
        WHERE fa.version = (SELECT fifo._current_version())
          AND fa.buy_trade_id IS NOT NULL
          AND (p_symbol IS NULL OR fa.symbol = p_symbol)
          AND (p_to IS NULL OR fa.sell_time < p_to)
        GROUP BY fa.symbol, fa.account, fa.buy_trade_id
    ) u ON u.symbol = t.symbol AND u.account = t.account AND u.buy_trade_id = t.order_id
    CROSS JOIN LATERAL (
        SELECT COALESCE(u.consumed, 0::pg_catalog.numeric) AS consumed,
               pg_catalog.trim_scale(t.total_fees OPERATOR(pg_catalog.-)
                   fifo._fee_point(t.total_fees, t.size, COALESCE(u.consumed, 0::pg_catalog.numeric))) AS fee_left,
               (t.order_time AT TIME ZONE (SELECT fifo._report_tz()))::pg_catalog.date AS acquired,
               fifo._quote_currency(t.symbol) AS currency
    ) l
    LEFT JOIN fifo.pool_state ps
           ON ps.version = (SELECT fifo._current_version())
          AND ps.symbol = t.symbol AND ps.account = t.account
    WHERE t.side = 'buy'
      AND t.size > l.consumed
      AND (p_symbol IS NULL OR t.symbol = p_symbol)
      AND (p_from IS NULL OR t.order_time >= p_from)
      AND (p_to IS NULL OR t.order_time < p_to);
END;
$$;
COMMENT ON FUNCTION public.fifo_open_lots(text, timestamptz, timestamptz, integer) IS
    'Open lots (buys with inventory left) bought in [from, to), as of `to` (default now), optionally for one symbol.';

CREATE OR REPLACE VIEW public.fifo_open_lots AS
    SELECT * FROM public.fifo_open_lots();
COMMENT ON VIEW public.fifo_open_lots IS
    'Open lots: remaining_size = size - sum(allocated_size) of the sells that consumed the buy (current version); '
    'remaining_cost = remaining_size * price + remaining_fees (the unallocated rest of the buy''s fee), in `currency`; '
    'long_term_after = the last sell date on which the lot is still short-term (setting long_term_rule).';
