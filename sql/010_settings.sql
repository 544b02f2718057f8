-- Settings: fifo.settings holds one text value per name; fifo_set_setting
-- writes it after validation, fifo._setting reads it and refuses a stored
-- value that would break computations or reports (one written by hand).

-- fifo._whole_number_problem(value, low, high, unit): what is wrong with
-- value as a whole number of `unit` from low to high (NULL: nothing); the
-- digits are checked before the cast, so no value can overflow it.
CREATE OR REPLACE FUNCTION fifo._whole_number_problem(p_value text, p_low bigint, p_high bigint, p_unit text)
RETURNS text
LANGUAGE plpgsql IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF p_value ~ ('^[0-9]{1,' || length(p_high::text) || '}$') AND p_value::bigint BETWEEN p_low AND p_high THEN
        RETURN NULL;
    END IF;
    RETURN format('must be a whole number%s from %s to %s', ' of ' || p_unit, p_low, p_high);
END;
$$;

-- fifo._setting_rule(name, value, full): what is wrong with value for setting
-- name (problem, NULL when it is valid), a valid example value (NULL: no such
-- setting), and set_by: NULL when fifo_set_setting may change it, else what
-- does. One branch per setting: a new setting is a new ELSIF here plus its
-- row in fifo.settings. p_full adds the checks too slow for every read
-- (pg_timezone_names reads the zone files, ~30 ms): fifo_set_setting runs
-- them, fifo._setting does not.
CREATE OR REPLACE FUNCTION fifo._setting_rule(
    p_name text, p_value text, p_full boolean, OUT problem text, OUT example text, OUT set_by text)
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_hint text;
BEGIN
    IF p_name = 'current_version' THEN
        -- any version may be made current, computed or not: reports mark uncomputed pools
        example := '1';
        problem := fifo._whole_number_problem(p_value, 1, 2147483647, NULL);
    ELSIF p_name = 'long_term_days' THEN
        -- 36600 days = 100 years: room for any tax rule, far from integer overflow
        example := '365';
        problem := fifo._whole_number_problem(p_value, 1, 36600, 'days');
    ELSIF p_name = 'report_timezone' THEN
        example := 'America/New_York';
        IF p_full THEN
            -- only full zone names: an abbreviation such as EST is a fixed offset
            -- that ignores daylight saving time and would shift report days
            IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_timezone_names z
                           WHERE z.name = p_value) THEN
                problem := 'must be a time zone name from pg_timezone_names (e.g. UTC, Europe/London)';
            END IF;
        ELSE
            BEGIN
                PERFORM pg_catalog.timezone(p_value, pg_catalog.now());
            EXCEPTION WHEN invalid_parameter_value OR feature_not_supported THEN
                problem := 'must be a time zone name from pg_timezone_names (e.g. UTC, Europe/London)';
            END;
        END IF;
    ELSIF p_name = 'change_retention' THEN
        -- how long consumed changes are kept for compute_fifo_since(); one row per pool
        example := '7 days';
        BEGIN
            IF p_value::interval < interval '1 hour' OR p_value::interval > interval '400 days' THEN
                problem := 'must be an interval from 1 hour to 400 days';
            END IF;
        EXCEPTION WHEN invalid_datetime_format OR datetime_field_overflow OR interval_field_overflow THEN
            problem := 'must be an interval such as ''7 days'' or ''36 hours''';
        END;
    ELSIF p_name = 'run_retention' THEN
        -- how many runs fifo_runs keeps (every run prunes the older ones, sql/055)
        example := '10000';
        problem := fifo._whole_number_problem(p_value, 100, 100000000, 'runs');
    ELSIF p_name = 'forced_in_place_below' THEN
        -- a forced full recompute of fewer trades (and stored rows) writes in place,
        -- only the rows that differ, instead of into a fresh table (sql/050); 0: never
        example := '10000';
        problem := fifo._whole_number_problem(p_value, 0, 100000000, 'trades');
    ELSIF p_name = 'lock_timeout' THEN
        -- how long a run waits for a lock another session holds before it gives up,
        -- records the run as failed and names the holder (sql/040)
        example := '30 s';
        BEGIN
            IF p_value::interval < interval '100 milliseconds' OR p_value::interval > interval '1 hour' THEN
                problem := 'must be an interval from 100 milliseconds to 1 hour';
            END IF;
        EXCEPTION WHEN invalid_datetime_format OR datetime_field_overflow OR interval_field_overflow THEN
            problem := 'must be an interval such as ''30 s'' or ''2 min''';
        END;
    ELSIF p_name = 'fill_statuses' THEN
        -- an adopted bot's table: which status values are fills ('*': every row counts)
        example := 'filled,done';
        IF p_value !~ '^(\*|[^,[:space:]]([^,]*[^,[:space:]])?(,[^,[:space:]]([^,]*[^,[:space:]])?)*)$' THEN
            problem := 'must be * (every row counts) or a comma-separated list of status values, e.g. filled,done';
        END IF;
    ELSIF p_name = 'long_term_rule' THEN
        -- docs/rules.md rule 6: the calendar anniversary (default) or a day count
        example := 'anniversary';
        IF p_value IS DISTINCT FROM 'anniversary' AND p_value IS DISTINCT FROM 'days' THEN
            problem := 'must be anniversary (long-term when sold after the one-year anniversary of the '
                       'acquisition date) or days (when sold more than long_term_days days after it)';
        END IF;
    ELSIF p_name = 'report_currency' THEN
        example := 'USD';
        IF p_value !~ '^[A-Za-z0-9]{1,16}$' THEN
            problem := 'must be a currency code of letters and digits, such as USD';
        END IF;
    ELSIF p_name = 'report_currency_aliases' THEN
        -- quote codes that count as the report currency, e.g. USDC,USDT; '' for none
        example := 'USDC,USDT';
        IF p_value !~ '^([A-Za-z0-9]{1,16}(,[A-Za-z0-9]{1,16})*)?$' THEN
            problem := 'must be a comma-separated list of currency codes without spaces (or empty)';
        END IF;
    ELSIF p_name = 'tax_pooling' THEN
        -- the asset view's pools (docs/rules.md, "The asset view"): per wallet
        -- (Treas. Reg. 1.1012-1(j), from 2025) or one per asset across wallets
        example := 'wallet';
        IF p_value IS DISTINCT FROM 'wallet' AND p_value IS DISTINCT FROM 'universal'
           AND p_value IS DISTINCT FROM 'universal-until-2025' THEN
            problem := 'must be wallet (one pool per account and asset), universal (one pool per asset) or '
                       'universal-until-2025 (universal before 2025, then the 2025 allocation of unused basis '
                       'to wallets, Rev. Proc. 2024-28, and per wallet)';
        END IF;
    ELSIF p_name = 'price_window' THEN
        -- how old a price may be and still value a leg of the asset view
        example := '1 day';
        BEGIN
            IF p_value::interval < interval '1 second' OR p_value::interval > interval '400 days' THEN
                problem := 'must be an interval from 1 second to 400 days';
            END IF;
        EXCEPTION WHEN invalid_datetime_format OR datetime_field_overflow OR interval_field_overflow THEN
            problem := 'must be an interval such as ''1 day'' or ''15 minutes''';
        END;
    ELSIF p_name = 'symbol_map' THEN
        -- symbols that do not split on their last '-': SYMBOL=BASE/QUOTE, comma-separated
        example := 'BTCUSDT=BTC/USDT,ETHBTC=ETH/BTC';
        IF p_value !~ '^([^=,/[:space:]]+=[A-Za-z0-9]{1,16}/[A-Za-z0-9]{1,16}(,[^=,/[:space:]]+=[A-Za-z0-9]{1,16}/[A-Za-z0-9]{1,16})*)?$' THEN
            problem := 'must be a comma-separated list of SYMBOL=BASE/QUOTE (e.g. BTCUSDT=BTC/USDT), or empty';
        END IF;
    ELSIF p_name = 'trades_source' THEN
        -- install generates fifo.trades and the change-capture triggers from it
        example := 'fifo-db';
        set_by := '`fifo-db install` (`--adopt` for a BotTrader database), which regenerates '
                  'fifo.trades and the change-capture triggers';
        BEGIN
            PERFORM fifo._trades_mapping(p_value);
        EXCEPTION WHEN invalid_parameter_value THEN
            GET STACKED DIAGNOSTICS v_hint = PG_EXCEPTION_HINT;
            problem := format('must be a trades source fifo-db knows (%s)',
                              rtrim(regexp_replace(v_hint, '^Known sources: ', ''), '.'));
        END;
    ELSE
        problem := 'is not a fifo-db setting';
        example := NULL;
    END IF;
END;
$$;

-- fifo._setting(name): the value of a setting, or one error naming the
-- setting and the fix when it is missing or holds a value that is not valid.
CREATE OR REPLACE FUNCTION fifo._setting(p_name text)
RETURNS text
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_value text;
    v_rule  record;
BEGIN
    SELECT s.value INTO v_value FROM fifo.settings s WHERE s.name = p_name;
    IF v_value IS NULL THEN
        RAISE EXCEPTION 'fifo-db setting "%" is not set', p_name
            USING ERRCODE = 'F0001',
                  HINT = 'Re-run `fifo-db install`, or INSERT INTO fifo.settings (name, value) VALUES (...).';
    END IF;
    v_rule := fifo._setting_rule(p_name, v_value, false);
    IF v_rule.problem IS NOT NULL THEN
        RAISE EXCEPTION 'fifo-db setting "%" holds "%", which is not valid: it %', p_name, fifo._shown(v_value), v_rule.problem
            USING ERRCODE = 'F0001',
                  HINT = CASE WHEN v_rule.set_by IS NULL
                              THEN format('Set a valid value, e.g. SELECT fifo_set_setting(%L, %L);', p_name, v_rule.example)
                              ELSE format('It is set by %s; repair it by hand (e.g. UPDATE fifo.settings SET value = %L '
                                          'WHERE name = %L), then re-run `fifo-db install`.',
                                          v_rule.set_by, v_rule.example, p_name) END;
    END IF;
    RETURN v_value;
END;
$$;

-- fifo._current_version(): the allocation version that reports read and the
-- incremental computation keeps current.
CREATE OR REPLACE FUNCTION fifo._current_version()
RETURNS integer
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$ SELECT fifo._setting('current_version')::integer $$;

-- fifo_set_setting(name, value): change a setting (current_version,
-- long_term_days, report_timezone, change_retention, run_retention, fill_statuses, lock_timeout),
-- validating the name and value first.
CREATE OR REPLACE FUNCTION public.fifo_set_setting(p_name text, p_value text)
RETURNS void
LANGUAGE plpgsql
SECURITY DEFINER   -- the operator changes settings without any right on fifo.settings itself
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_known text := (SELECT string_agg(s.name, ', ' ORDER BY s.name) FROM fifo.settings s
                     WHERE (fifo._setting_rule(s.name, s.value, false)).set_by IS NULL);
    v_rule  record;
BEGIN
    IF p_name IS NULL THEN
        RAISE EXCEPTION 'fifo_set_setting: the setting name is NULL'
            USING ERRCODE = '22004', HINT = format('Name one of: %s.', v_known);
    END IF;
    v_rule := fifo._setting_rule(p_name, p_value, true);
    IF v_rule.example IS NULL THEN
        RAISE EXCEPTION 'unknown fifo-db setting "%"', fifo._shown(p_name)
            USING ERRCODE = '42704', HINT = format('Settings are: %s.', v_known);
    END IF;
    IF v_rule.set_by IS NOT NULL THEN
        RAISE EXCEPTION 'fifo-db setting "%" is not changed with fifo_set_setting', fifo._shown(p_name)
            USING ERRCODE = '55000', HINT = format('It is set by %s.', v_rule.set_by);
    END IF;
    IF p_value IS NULL THEN
        RAISE EXCEPTION 'fifo-db setting "%" cannot be set to NULL', fifo._shown(p_name)
            USING ERRCODE = '22004',
                  HINT = format('Give a value, e.g. SELECT fifo_set_setting(%L, %L);', p_name, v_rule.example);
    END IF;
    IF v_rule.problem IS NOT NULL THEN
        RAISE EXCEPTION 'fifo-db setting "%" cannot be "%": it %', fifo._shown(p_name), fifo._shown(p_value), v_rule.problem
            USING ERRCODE = '22023',
                  HINT = format('Example: SELECT fifo_set_setting(%L, %L);', p_name, v_rule.example);
    END IF;
    IF NOT fifo._caller_may_operate() THEN
        RAISE EXCEPTION 'changing fifo-db settings needs the operator''s rights'
            USING ERRCODE = '42501', HINT = 'Ask the owner for `fifo-db grant operator ROLE`.';
    END IF;
    -- which rows are fills changed: every pool is recomputed by the next run
    IF p_name = 'fill_statuses' AND p_value IS DISTINCT FROM fifo._setting('fill_statuses') THEN
        PERFORM fifo._note_changes(pg_catalog.array_agg(p.symbol), pg_catalog.array_agg(p.account),
                                   pg_catalog.array_fill('-infinity'::timestamptz, ARRAY[pg_catalog.count(*)::integer]))
        FROM (SELECT t.symbol, t.account FROM fifo.trades t
              UNION SELECT ps.symbol, ps.account FROM fifo.pool_state ps) p;
    END IF;
    INSERT INTO fifo.settings AS s (name, value) VALUES (p_name, p_value)
    ON CONFLICT (name) DO UPDATE SET value = EXCLUDED.value;
    IF p_name = 'current_version' THEN
        -- the next incremental run computes the pools this version has never seen
        PERFORM fifo._queue_uncomputed_pools();
    END IF;
END;
$$;
