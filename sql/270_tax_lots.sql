-- fifo_tax_lots: one row per allocation of a sell, in the shape of IRS Form
-- 8949: (a) description '0.37 ETH' (quantity and base asset), (b) date
-- acquired, (c) date sold (both dates in the report time zone), (d)
-- proceeds, (e) cost basis, (h) gain or loss, exact and in the symbol's quote
-- currency, and the term under the long-term rule (fifo._long_term_after:
-- by default long-term only when sold on a date after the one-year
-- anniversary of the acquisition date).
-- The unmatched (oversold) part of a sell is a row too, flagged unmatched,
-- with no acquisition date, no cost basis, no gain and no term: the engine
-- knows what it was sold for, not what it cost (see fifo_unmatched_sells).
-- in_report_currency: the quote currency is the report currency or one of
-- its aliases (settings report_currency, report_currency_aliases).
CREATE OR REPLACE FUNCTION public.fifo_tax_lots(
    p_symbol text DEFAULT NULL,
    p_from timestamptz DEFAULT NULL,
    p_to timestamptz DEFAULT NULL)
RETURNS TABLE (
    description text, date_acquired date, date_sold date,
    proceeds numeric, cost_basis numeric, gain_or_loss numeric, term text,
    currency text, in_report_currency boolean, unmatched boolean, long_term_after date,
    account text, symbol text, asset text, quantity numeric, sell_trade_id text, buy_trade_id text,
    buy_time timestamptz, sell_time timestamptz, holding_period interval)
LANGUAGE plpgsql STABLE
SECURITY DEFINER   -- readers read reports without any right on fifo-db's internal tables
SET search_path = pg_catalog, pg_temp
AS $$
#variable_conflict use_column
BEGIN
    RETURN QUERY
    SELECT pg_catalog.trim_scale(fa.allocated_size)::pg_catalog.text OPERATOR(pg_catalog.||) ' '::pg_catalog.text
               OPERATOR(pg_catalog.||) fifo._base_asset(fa.symbol),
           d.acquired, d.sold,
           fa.sale_proceeds, fa.cost_basis, fa.pnl_amount,
           CASE WHEN fa.unmatched THEN NULL
                WHEN d.sold OPERATOR(pg_catalog.>) d.long_term_after THEN 'long' ELSE 'short' END,
           d.currency,
           COALESCE(d.currency OPERATOR(pg_catalog.=) ANY ((SELECT fifo._report_currencies())::pg_catalog.text[]), false),
           fa.unmatched, d.long_term_after,
           fa.account, fa.symbol, fifo._base_asset(fa.symbol), fa.allocated_size, fa.sell_trade_id, fa.buy_trade_id,
           fa.buy_time, fa.sell_time, fa.sell_time OPERATOR(pg_catalog.-) fa.buy_time
    FROM fifo.allocations fa
    CROSS JOIN LATERAL (
        SELECT a.acquired, a.sold, a.currency,
               fifo._long_term_after(a.acquired, (SELECT fifo._long_term_rule()), (SELECT fifo._long_term_days()))
                   AS long_term_after
        FROM (SELECT (fa.buy_time AT TIME ZONE (SELECT fifo._report_tz()))::pg_catalog.date AS acquired,
                     (fa.sell_time AT TIME ZONE (SELECT fifo._report_tz()))::pg_catalog.date AS sold,
                     fifo._quote_currency(fa.symbol) AS currency) a
    ) d
    WHERE fa.version = (SELECT fifo._current_version())
      AND (p_symbol IS NULL OR fa.symbol = p_symbol)
      AND (p_from IS NULL OR fa.sell_time >= p_from)
      AND (p_to IS NULL OR fa.sell_time < p_to);
END;
$$;
COMMENT ON FUNCTION public.fifo_tax_lots(text, timestamptz, timestamptz) IS
    'Form 8949 rows (exact, every currency, unmatched parts flagged) for lots sold in [from, to), optionally for one symbol.';

CREATE OR REPLACE VIEW public.fifo_tax_lots AS
    SELECT * FROM public.fifo_tax_lots();
COMMENT ON VIEW public.fifo_tax_lots IS
    'Form 8949 shape, one row per (sell, lot): description (''0.37 ETH''), date_acquired, date_sold, proceeds, '
    'cost_basis, gain_or_loss in `currency`, term (long when sold after long_term_after, the anniversary of the '
    'acquisition date by default); unmatched (oversold) parts flagged, with no basis. Current version, exact numerics.';

-- fifo._check_reported(reported): refuses what the broker reported unless it is
-- none, proceeds or basis (the Form 8949 functions of both views take it).
CREATE OR REPLACE FUNCTION fifo._check_reported(p_reported text)
RETURNS void
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF p_reported IS NULL OR p_reported NOT IN ('none', 'proceeds', 'basis') THEN
        RAISE EXCEPTION 'reported must be none, proceeds or basis, got "%"', fifo._shown(p_reported)
            USING ERRCODE = '22023',
                  HINT = 'What the broker reported to the IRS on Form 1099-B / 1099-DA: none (no form), '
                         'proceeds (proceeds only), basis (proceeds and cost basis).';
    END IF;
END;
$$;

-- fifo._form_8949_box(year, long, reported): the Form 8949 check box of a
-- row. Tax years before 2025: A/B/C (short) and D/E/F (long); from 2025,
-- digital assets have their own boxes G/H/I (short) and J/K/L (long). The
-- letter within each triple says what the broker reported: 'basis' (a
-- 1099-B / 1099-DA with the basis reported to the IRS), 'proceeds' (one
-- without the basis), 'none' (no such form: the default, since fifo-db's
-- numbers come from the trader's own records).
CREATE OR REPLACE FUNCTION fifo._form_8949_box(p_year integer, p_long boolean, p_reported text)
RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$
    SELECT pg_catalog.substr('ABCDEFGHIJKL'::pg_catalog.text,
               (CASE WHEN p_year OPERATOR(pg_catalog.>=) 2025 THEN 7 ELSE 1 END)
               OPERATOR(pg_catalog.+) (CASE WHEN p_long THEN 3 ELSE 0 END)
               OPERATOR(pg_catalog.+) (CASE p_reported WHEN 'basis' THEN 0 WHEN 'proceeds' THEN 1 ELSE 2 END),
               1)
$$;

-- fifo_form_8949([symbol, from, to, reported]): the rows a filer imports:
-- report-currency lots only (fifo_tax_lots.in_report_currency), proceeds and
-- cost rounded half away from zero to cents ONCE, here, and the gain computed
-- from the rounded figures, so every row adds up and every reader (table,
-- CSV, JSON) shows the same cents. Part I (short) / II (long) and the box
-- (fifo._form_8949_box). An unmatched (oversold) part is a row with no
-- acquisition date and no basis (no_basis = true): its gain is the whole
-- proceeds, and it goes to Part I, the conservative choice when the holding
-- period is unknown. `reported`: none (default), proceeds or basis.
CREATE OR REPLACE FUNCTION public.fifo_form_8949(
    p_symbol text DEFAULT NULL,
    p_from timestamptz DEFAULT NULL,
    p_to timestamptz DEFAULT NULL,
    p_reported text DEFAULT 'none')
RETURNS TABLE (
    tax_year integer, part text, box text, description text, date_acquired date, date_sold date,
    proceeds numeric, cost_basis numeric, adjustment_code text, adjustment numeric, gain_or_loss numeric,
    term text, no_basis boolean, currency text, symbol text, sell_trade_id text, buy_trade_id text,
    sell_time timestamptz, buy_time timestamptz)
LANGUAGE plpgsql STABLE
-- SECURITY DEFINER: a reader (fifo-db grant reader) gets the Form 8949 rows without any right on
-- fifo.allocations; it only reads, its search path is pinned and p_reported is checked first
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    PERFORM fifo._check_reported(p_reported);
    RETURN QUERY
    SELECT y.year, CASE WHEN y.long THEN 'II' ELSE 'I' END,
           fifo._form_8949_box(y.year, y.long, p_reported),
           l.description, l.date_acquired, l.date_sold,
           r.proceeds, r.cost, NULL::text, NULL::numeric,
           r.proceeds - coalesce(r.cost, 0),
           CASE WHEN y.long THEN 'long' ELSE 'short' END, l.unmatched, l.currency, l.symbol,
           l.sell_trade_id, l.buy_trade_id, l.sell_time, l.buy_time
    FROM public.fifo_tax_lots(p_symbol, p_from, p_to) l
    -- fifo._money: the report currency's places (cents for USD), the rule of every rounded report
    CROSS JOIN LATERAL (SELECT fifo._money(l.proceeds, l.currency, 0) AS proceeds,
                               fifo._money(l.cost_basis, l.currency, 0) AS cost) r
    CROSS JOIN LATERAL (SELECT extract(year FROM l.date_sold)::integer AS year,
                               coalesce(l.term = 'long', false) AS long) y
    WHERE l.in_report_currency;
END;
$$;
COMMENT ON FUNCTION public.fifo_form_8949(text, timestamptz, timestamptz, text) IS
    'Form 8949 rows a filer imports: report-currency lots, money rounded to cents once (gain = rounded proceeds - '
    'rounded cost), part I/II, box A-F (before 2025) or G-L (digital assets from 2025), oversold parts with no basis.';
