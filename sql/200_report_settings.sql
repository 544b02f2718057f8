-- Report helpers: the settings reports read (report time zone, long-term
-- rule, report currency), the quote currency and base asset of a symbol,
-- report bounds parsed from user text, and the explanation of an unmatched
-- (oversold) sell shared by fifo_unmatched_sells and explain_fifo. Views and
-- report functions live in sql/210..270.
--
-- The small SQL helpers without a SET clause (_quote_currency, _base_asset,
-- _long_term_after, _currency_places, _money) are inlined into the report queries; their bodies call
-- only pg_catalog-qualified functions and operators on exact built-in types,
-- so no caller search_path can redirect them.

-- fifo._report_tz(): the report time zone (setting report_timezone, default UTC).
CREATE OR REPLACE FUNCTION fifo._report_tz()
RETURNS text
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$ SELECT fifo._setting('report_timezone') $$;

-- fifo._long_term_rule(): 'anniversary' (default) or 'days' (setting long_term_rule).
CREATE OR REPLACE FUNCTION fifo._long_term_rule()
RETURNS text
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$ SELECT fifo._setting('long_term_rule') $$;

-- fifo._long_term_days(): the day count of the 'days' rule (setting long_term_days, default 365).
CREATE OR REPLACE FUNCTION fifo._long_term_days()
RETURNS integer
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$ SELECT fifo._setting('long_term_days')::integer $$;

-- fifo._long_term_after(acquired, rule, days): the last sell DATE on which a
-- lot acquired on `acquired` is still short-term; sold on a later date it is
-- long-term. Both dates are in the report time zone.
--   'anniversary' (default): the one-year anniversary of the acquisition date,
--       acquired + interval '1 year' (bought 2023-01-05: sold 2024-01-05 is
--       short, 2024-01-06 long). A Feb 29 acquisition has its anniversary on
--       Feb 28 of the next year, as PostgreSQL's date arithmetic gives it.
--   'days': acquired + long_term_days (long-term when the sell date is more
--       than that many days after the acquisition date).
CREATE OR REPLACE FUNCTION fifo._long_term_after(p_acquired date, p_rule text, p_days integer)
RETURNS date
LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$
    SELECT CASE WHEN p_rule OPERATOR(pg_catalog.=) 'days'::pg_catalog.text
                THEN p_acquired OPERATOR(pg_catalog.+) p_days
                ELSE (p_acquired OPERATOR(pg_catalog.+) '1 year'::pg_catalog.interval)::pg_catalog.date END
$$;

-- fifo._quote_currency(symbol): the currency a symbol's prices, fees and P&L
-- are in: the part after its last '-' (BTC-USD -> USD, ETH-BTC -> BTC);
-- NULL when the symbol has no '-' (reports show it as '?').
CREATE OR REPLACE FUNCTION fifo._quote_currency(p_symbol text)
RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$
    SELECT NULLIF(pg_catalog.substring(p_symbol, '-([^-]*)$'::pg_catalog.text), ''::pg_catalog.text)
$$;

-- fifo._base_asset(symbol): what was bought and sold: the part before the
-- last '-' (BTC-USD -> BTC), or the whole symbol when it has no '-'.
CREATE OR REPLACE FUNCTION fifo._base_asset(p_symbol text)
RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$
    SELECT COALESCE(NULLIF(pg_catalog.substring(p_symbol, '^(.*)-[^-]*$'::pg_catalog.text),
                                                 ''::pg_catalog.text), p_symbol)
$$;

-- fifo._report_currency(): the currency of tax exports (setting report_currency, default USD).
CREATE OR REPLACE FUNCTION fifo._report_currency()
RETURNS text
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$ SELECT fifo._setting('report_currency') $$;

-- fifo._report_currencies(): the quote codes that count as the report
-- currency: report_currency itself plus report_currency_aliases (a comma
-- list, e.g. 'USDC,USDT'; empty by default).
CREATE OR REPLACE FUNCTION fifo._report_currencies()
RETURNS text[]
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT ARRAY[fifo._setting('report_currency')]
           || coalesce(array_remove(string_to_array(fifo._setting('report_currency_aliases'), ','), ''), '{}')
$$;

-- fifo._report_clock(t): t as 'YYYY-MM-DD HH24:MI' in the report time zone.
CREATE OR REPLACE FUNCTION fifo._report_clock(p_time timestamptz)
RETURNS text
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$ SELECT to_char(p_time AT TIME ZONE fifo._report_tz(), 'YYYY-MM-DD HH24:MI') $$;

-- fifo._currency_places(currency): the decimals a money amount in `currency`
-- is rounded to in every rounded report (docs/reports.md, "Rounding"): 2
-- for fiat and the dollar/euro stablecoins, 8 for any other quote (BTC, ETH,
-- ...) and for a symbol with no quote, so 0.00346 BTC never reads as 0.
CREATE OR REPLACE FUNCTION fifo._currency_places(p_currency text)
RETURNS integer
LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$
    SELECT CASE WHEN pg_catalog.upper(p_currency) OPERATOR(pg_catalog.=) ANY (ARRAY[
                    'USD', 'EUR', 'GBP', 'CHF', 'CAD', 'AUD', 'NZD', 'JPY', 'SGD', 'HKD', 'SEK', 'NOK', 'DKK',
                    'PLN', 'CZK', 'MXN', 'BRL', 'ZAR', 'TRY', 'INR', 'KRW', 'USDC', 'USDT', 'DAI', 'PYUSD',
                    'EURC', 'BUSD', 'TUSD', 'USDP']::pg_catalog.text[])
                THEN 2 ELSE 8 END
$$;

-- fifo._money(value, currency, round): the one rounding rule of the reports.
-- round NULL: the exact value. Else `value` rounded half away from zero to
-- greatest(round, the currency's places): a requested --round N below the
-- currency's precision never zeroes a BTC amount. Report functions apply it
-- to each allocation's (or trade's) own amounts once and add up the rounded
-- figures, so every row, total and running sum adds up to the cent.
CREATE OR REPLACE FUNCTION fifo._money(p_value numeric, p_currency text, p_round integer)
RETURNS numeric
LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$
    SELECT CASE WHEN p_round IS NULL THEN p_value
                ELSE pg_catalog.round(p_value, GREATEST(p_round, fifo._currency_places(p_currency))) END
$$;

-- fifo_report_time(text): a report bound (--from/--to) from user text. Only
-- unambiguous forms are read: an ISO date (2025-03-01, or 2025/03/01) is
-- midnight in the report time zone; an ISO date and time
-- (2025-03-01 14:30[:05[.123]], T or space) is read there too unless it
-- carries a zone (Z, UTC, +01:00, -0500); now, today, yesterday, tomorrow;
-- and a span back from now ('7 days ago'). Anything else, 03/01/2025 (March 1
-- or January 3?) or 13/01/2025 included, is refused with the accepted forms.
CREATE OR REPLACE FUNCTION public.fifo_report_time(p_text text)
RETURNS timestamptz
LANGUAGE plpgsql VOLATILE
-- SECURITY DEFINER: it reads the report time zone (fifo._report_tz, schema fifo), which a reader
-- has no right on; it only parses its argument, and its SET clause restores TimeZone on exit.
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
SET TimeZone = 'UTC'
SET DateStyle = 'ISO, YMD'
AS $$
DECLARE
    v_text text := lower(btrim(p_text));
BEGIN
    -- SET LOCAL inside a function with its own SET clause ends with the function
    PERFORM set_config('TimeZone', fifo._report_tz(), true);
    IF v_text ~ '^[0-9]+(\.[0-9]+)?\s*[a-z]+(\s+[0-9]+(\.[0-9]+)?\s*[a-z]+)*\s+ago$' THEN
        RETURN now() - regexp_replace(v_text, '\s*ago$', '')::interval;
    END IF;
    IF v_text IN ('now', 'today', 'yesterday', 'tomorrow')
       OR v_text ~ ('^[0-9]{4}([-/])[0-9]{2}\1[0-9]{2}'
                    '([t ][0-9]{2}:[0-9]{2}(:[0-9]{2}(\.[0-9]{1,6})?)?(\s*(z|utc|[+-][0-9]{2}(:?[0-9]{2})?))?)?$') THEN
        RETURN upper(translate(v_text, '/', '-'))::timestamptz;
    END IF;
    RAISE invalid_datetime_format;
EXCEPTION WHEN invalid_datetime_format OR datetime_field_overflow OR interval_field_overflow
              OR invalid_parameter_value OR syntax_error THEN
    RAISE EXCEPTION 'cannot read "%" as a time: use 2025-03-01 (midnight in the report time zone), '
                    '2025-03-01 14:30, 2025-03-01T14:30:00Z or +01:00, today, yesterday, now or 7 days ago',
                    fifo._shown(p_text)
        USING ERRCODE = '22007',
              HINT = 'Year first: a date like 03/01/2025 is refused because it can be March 1 or January 3.';
END;
$$;
COMMENT ON FUNCTION public.fifo_report_time(text) IS
    'Parse a report bound: an ISO date or zone-less time is read in the report time zone; '
    'now/today/yesterday/tomorrow; ''7 days ago'' counts back from now; ambiguous forms (03/01/2025) are refused.';

-- fifo._unmatched_reason(...): why the unmatched part of a sell had no
-- inventory, in one sentence: what inventory the pool held at the sell's
-- position, whether earlier buys existed, and the next buy if one came later.
CREATE OR REPLACE FUNCTION fifo._unmatched_reason(
    p_account text, p_symbol text, p_sell_time timestamptz, p_matched numeric, p_unmatched numeric)
RETURNS text
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT format('inventory at %s was %s: %s',
                  fifo._report_clock(p_sell_time),
                  trim_scale(p_matched),
                  CASE
                      WHEN NOT earlier.found THEN 'no earlier buy in this pool'
                      WHEN p_matched = 0 THEN 'all earlier buys consumed by earlier sells'
                      ELSE format('the sell was %s larger than what was left', trim_scale(p_unmatched))
                  END)
           || CASE WHEN nb.order_id IS NULL THEN ''
                   ELSE format('; next buy %s at %s', nb.order_id, fifo._report_clock(nb.order_time)) END
    FROM (SELECT EXISTS (
              -- buys at the same time as the sell come before it (docs/rules.md, rule 2)
              SELECT 1 FROM fifo.trades t
              WHERE t.symbol = p_symbol AND t.account = p_account
                AND t.side = 'buy' AND t.order_time <= p_sell_time) AS found) earlier
    LEFT JOIN LATERAL (
        SELECT t.order_id, t.order_time FROM fifo.trades t
        WHERE t.symbol = p_symbol AND t.account = p_account
          AND t.side = 'buy' AND t.order_time > p_sell_time
        ORDER BY t.order_time, t.order_id COLLATE "C"
        LIMIT 1) nb ON true
$$;

-- fifo_report_context([symbol [, order_id]]): what a report on `symbol`
-- (NULL: all) works with, so the CLI can refuse one that would show nothing
-- true and warn about one that is partial: the report time zone, currency
-- (with the quote codes that count as it) and long-term rule; the current
-- version; the pools with trades, how many of them are computed and one that
-- is not (for the message); how many computed pools are stale (another
-- version consumed their changes) and how many have trades changed since
-- they were computed (fifo._pending_pools, what verify_fifo reports as
-- 'stale'), each with an example; and the quote currency of `order_id`'s
-- symbol (for explain). A symbol with no trades raises the same error as
-- compute_fifo.
CREATE OR REPLACE FUNCTION public.fifo_report_context(p_symbol text DEFAULT NULL, p_order_id text DEFAULT NULL)
RETURNS TABLE (report_timezone text, report_currency text, report_currencies text[], long_term_rule text,
               version integer, pools bigint, computed bigint, not_computed_example text, stale bigint,
               order_currency text, stale_example text, pending bigint, pending_example text)
LANGUAGE plpgsql STABLE
SECURITY DEFINER   -- readers learn what a report covers without any right on fifo-db's internal tables
SET search_path = pg_catalog, pg_temp
AS $$
#variable_conflict use_column
DECLARE
    v_version integer := fifo._current_version();
BEGIN
    IF p_symbol IS NOT NULL AND NOT EXISTS (SELECT 1 FROM fifo.trades t WHERE t.symbol = p_symbol) THEN
        RAISE EXCEPTION 'no trades for symbol "%"', fifo._shown(p_symbol)
            USING ERRCODE = 'P0002',
                  HINT = 'Symbols are case-sensitive; SELECT DISTINCT symbol FROM trade_records lists them.';
    END IF;
    RETURN QUERY
    SELECT fifo._report_tz(), fifo._report_currency(), fifo._report_currencies(), fifo._long_term_rule(),
           v_version, count(*), count(ps.version),
           min(p.label) FILTER (WHERE ps.version IS NULL),
           count(ps.stale_from),
           (SELECT fifo._quote_currency(t.symbol) FROM fifo.trades t WHERE t.order_id = p_order_id),
           min(p.label) FILTER (WHERE ps.stale_from IS NOT NULL),
           count(*) FILTER (WHERE ps.version IS NOT NULL AND pp.symbol IS NOT NULL),
           min(p.label) FILTER (WHERE ps.version IS NOT NULL AND pp.symbol IS NOT NULL)
    FROM (SELECT DISTINCT t.symbol, t.account,
                 t.symbol || CASE WHEN t.account = 'default' THEN '' ELSE ' (account ' || t.account || ')' END
                     AS label
          FROM fifo.trades t
          WHERE p_symbol IS NULL OR t.symbol = p_symbol) p
    LEFT JOIN fifo.pool_state ps
           ON ps.version = v_version AND ps.symbol = p.symbol AND ps.account = p.account
    LEFT JOIN fifo._pending_pools(p_symbol) pp ON pp.symbol = p.symbol AND pp.account = p.account;
END;
$$;
COMMENT ON FUNCTION public.fifo_report_context(text, text) IS
    'What a report works with: report time zone, currency and long-term rule, the current version, '
    'pools with trades / computed / stale / with trades changed since computed, and the quote currency of an order.';
