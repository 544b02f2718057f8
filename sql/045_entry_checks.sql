-- Checks shared by the SECURITY DEFINER entry points (compute_fifo*,
-- explain_fifo, verify_fifo, fifo_set_setting, fifo_schedule). Those run
-- with the owner's rights so that a reader can recompute P&L without any
-- right to write it; these checks keep what such a caller can ask for to
-- what the privilege model (sql/900_privileges.sql) gives them.

-- fifo._caller_may_operate(): the role that called the entry point (the
-- session's role) holds the operator's rights: EXECUTE on compute_fifo_all.
CREATE OR REPLACE FUNCTION fifo._caller_may_operate()
RETURNS boolean
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$ SELECT has_function_privilege(session_user, 'public.compute_fifo_all(boolean, integer)', 'EXECUTE') $$;

-- fifo._entry_version(version): the version an entry point computes: the
-- current one when NULL. Another version (a re-run of history, a new
-- version being prepared) is the operator's call, not a reader's.
CREATE OR REPLACE FUNCTION fifo._entry_version(p_version integer)
RETURNS integer
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_current integer := fifo._setting('current_version')::integer;   -- fifo._current_version(), without planning a SQL function
BEGIN
    IF p_version IS NULL OR p_version = v_current THEN
        RETURN v_current;
    END IF;
    IF p_version < 1 THEN
        RAISE EXCEPTION 'version must be a positive integer, got %', p_version
            USING ERRCODE = '22023', HINT = 'Versions start at 1; the current one is in fifo.settings.';
    END IF;
    IF NOT fifo._caller_may_operate() THEN
        RAISE EXCEPTION 'computing version % (the current version is %) needs the operator''s rights', p_version, v_current
            USING ERRCODE = '42501',
                  HINT = 'Leave the version out to compute the current one, or ask the owner for '
                         '`fifo-db grant operator ROLE`.';
    END IF;
    RETURN p_version;
END;
$$;

-- fifo._require_text(name, value): a required text argument is given.
CREATE OR REPLACE FUNCTION fifo._require_text(p_name text, p_value text)
RETURNS void
LANGUAGE plpgsql IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF p_value IS NULL OR p_value = '' THEN
        RAISE EXCEPTION '% must be given, got %', p_name, coalesce(quote_literal(p_value), 'NULL')
            USING ERRCODE = '22004', HINT = format('Pass a %s, e.g. compute_fifo(''BTC-USD'').', p_name);
    END IF;
END;
$$;
