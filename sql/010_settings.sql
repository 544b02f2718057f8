-- fifo._setting(name): a value from fifo.settings, or an error naming the
-- missing setting.
CREATE OR REPLACE FUNCTION fifo._setting(p_name text)
RETURNS text
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, fifo
AS $$
DECLARE
    v_value text;
BEGIN
    SELECT s.value INTO v_value FROM fifo.settings s WHERE s.name = p_name;
    IF v_value IS NULL THEN
        RAISE EXCEPTION 'fifo-db setting "%" is not set', p_name
            USING ERRCODE = 'F0001',
                  HINT = 'Re-run `fifo-db install`, or INSERT INTO fifo.settings (name, value) VALUES (...).';
    END IF;
    RETURN v_value;
END;
$$;

-- fifo._current_version(): the allocation version that reports read and the
-- incremental computation keeps current.
CREATE OR REPLACE FUNCTION fifo._current_version()
RETURNS integer
LANGUAGE sql STABLE
SET search_path = pg_catalog, fifo
AS $$ SELECT fifo._setting('current_version')::integer $$;

-- fifo_set_setting(name, value): change a setting (current_version,
-- long_term_days, report_timezone), validating the value first.
CREATE OR REPLACE FUNCTION public.fifo_set_setting(p_name text, p_value text)
RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, fifo
AS $$
BEGIN
    IF p_name = 'current_version' AND (p_value !~ '^[0-9]+$' OR p_value::numeric < 1) THEN
        RAISE EXCEPTION 'current_version must be a positive integer, got "%"', p_value
            USING ERRCODE = '22023', HINT = 'Example: SELECT fifo_set_setting(''current_version'', ''2'');';
    ELSIF p_name = 'long_term_days' AND (p_value !~ '^[0-9]+$') THEN
        RAISE EXCEPTION 'long_term_days must be a whole number of days, got "%"', p_value
            USING ERRCODE = '22023', HINT = 'Example: SELECT fifo_set_setting(''long_term_days'', ''365'');';
    ELSIF p_name = 'report_timezone' AND NOT EXISTS (SELECT 1 FROM pg_timezone_names WHERE name = p_value) THEN
        RAISE EXCEPTION 'report_timezone "%" is not a time zone PostgreSQL knows', p_value
            USING ERRCODE = '22023', HINT = 'Use a name from pg_timezone_names, e.g. UTC or America/Los_Angeles.';
    ELSIF p_name NOT IN ('current_version', 'long_term_days', 'report_timezone') THEN
        RAISE EXCEPTION 'unknown fifo-db setting "%"', p_name
            USING ERRCODE = '22023', HINT = 'Settings are current_version, long_term_days and report_timezone.';
    END IF;
    UPDATE fifo.settings SET value = p_value WHERE name = p_name;
END;
$$;
