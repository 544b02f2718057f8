-- Report helpers: the settings reports read (report time zone, long-term
-- threshold), report bounds parsed from user text, and the explanation of
-- an unmatched (oversold) sell shared by fifo_unmatched_sells and
-- explain_fifo. Views and report functions live in sql/210..270.

-- fifo._report_tz(): the report time zone (setting report_timezone, default UTC).
CREATE OR REPLACE FUNCTION fifo._report_tz()
RETURNS text
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$ SELECT fifo._setting('report_timezone') $$;

-- fifo._long_term(): the holding period a lot must exceed to be long-term
-- (setting long_term_days, default 365).
CREATE OR REPLACE FUNCTION fifo._long_term()
RETURNS interval
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$ SELECT make_interval(days => fifo._setting('long_term_days')::integer) $$;

-- fifo._report_clock(t): t as 'YYYY-MM-DD HH24:MI' in the report time zone.
CREATE OR REPLACE FUNCTION fifo._report_clock(p_time timestamptz)
RETURNS text
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$ SELECT to_char(p_time AT TIME ZONE fifo._report_tz(), 'YYYY-MM-DD HH24:MI') $$;

-- fifo_report_time(text): a report bound (--from/--to) from user text. A date
-- or a time without a zone is read in the report time zone ('2025-12-01' is
-- midnight there); '7 days ago' counts back from now.
CREATE OR REPLACE FUNCTION public.fifo_report_time(p_text text)
RETURNS timestamptz
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
SET TimeZone = 'UTC'
AS $$
BEGIN
    -- SET LOCAL inside a function with its own SET clause ends with the function
    PERFORM set_config('TimeZone', fifo._report_tz(), true);
    IF lower(btrim(p_text)) LIKE '%ago' THEN
        RETURN now() - regexp_replace(lower(btrim(p_text)), '\s*ago$', '')::interval;
    END IF;
    RETURN p_text::timestamptz;
EXCEPTION WHEN invalid_datetime_format OR datetime_field_overflow OR interval_field_overflow THEN
    RAISE EXCEPTION 'cannot read "%" as a time', p_text
        USING ERRCODE = '22007',
              HINT = 'Use a date (2025-12-01, midnight in the report time zone), a time with a zone '
                     '(2025-12-03T23:40:00Z) or a span back from now (7 days ago).';
END;
$$;
COMMENT ON FUNCTION public.fifo_report_time(text) IS
    'Parse a report bound: a date or zone-less time is read in the report time zone; ''7 days ago'' counts back from now.';

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
              -- buys at the same time as the sell come before it (design.md rule 2)
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
