-- The privilege model: what each kind of role may do, granted per role by
-- the owner (`fifo-db grant bot|reader|operator ROLE`, fifo_grant()).
--   bot       writes trades: SELECT, INSERT, UPDATE, DELETE on the trades
--             table; change capture works through SECURITY DEFINER triggers.
--             Nothing else.
--   reader    reads every report view and table of results, and calls
--             compute_fifo, compute_fifo_incremental, compute_fifo_since,
--             compute_fifo_assets, compute_fifo_assets_incremental,
--             explain_fifo_asset (the asset view),
--             explain_fifo, verify_fifo and the report functions. These run
--             with the owner's rights (SECURITY DEFINER), so a reader never
--             needs, and never gets, any right to write allocations, runs,
--             settings or the change queue, nor any right in schema fifo.
--   operator  a reader who also changes settings, schedules, runs full
--             recomputes (compute_fifo_all) and other versions than the
--             current one, and runs `fifo-db worker` (fifo_worker_claim/_release).
-- Every install revokes EXECUTE from PUBLIC on every fifo-db function: by
-- default PostgreSQL lets any role call any function.

-- fifo._privileges(kind): the grants that make a role a `kind`, as
-- (object kind, object, privileges) rows; one source for grant and revoke.
CREATE OR REPLACE FUNCTION fifo._privileges(p_kind text)
RETURNS TABLE (object_kind text, object_name text, privileges text)
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_source text := (fifo._trades_mapping(fifo._setting('trades_source'))).source_table;
BEGIN
    IF p_kind IS NULL OR p_kind NOT IN ('bot', 'reader', 'operator') THEN
        RAISE EXCEPTION 'unknown kind of role %; the kinds are bot, reader and operator',
                coalesce(quote_literal(fifo._shown(p_kind)), 'NULL')
            USING ERRCODE = '22023', HINT = 'Example: SELECT fifo_grant(''reader'', ''analyst'');';
    END IF;
    IF p_kind = 'bot' THEN
        RETURN QUERY SELECT 'TABLE', v_source, 'SELECT, INSERT, UPDATE, DELETE';
        RETURN;
    END IF;
    -- reader (and operator): results and reports
    RETURN QUERY
    SELECT 'TABLE', x.name, 'SELECT'
    FROM (SELECT v_source AS name
          UNION ALL
          SELECT format('public.%I', c.relname)
          FROM pg_class c
          WHERE c.relnamespace = 'public'::regnamespace
            AND (c.relname IN ('fifo_runs', 'fifo_allocations', 'fifo_computation_log', 'fifo_trade_pnl',
                               'fifo_pnl_by_symbol', 'fifo_pnl_by_day', 'fifo_pnl_by_month', 'fifo_pnl_by_year',
                               'fifo_open_lots', 'fifo_positions',
                               'fifo_unmatched_sells', 'fifo_tax_lots',
                               'fifo_asset_disposals', 'fifo_asset_transfers', 'fifo_asset_open_lots',
                               'fifo_asset_positions')
                 -- the replacements of an adopted bot's tables (fifo-db install --adopt)
                 OR (c.relkind = 'v' AND c.relname IN ('fifo_inventory_snapshot', 'manual_review_queue')
                     AND to_regnamespace('fifo_legacy') IS NOT NULL))) x
    UNION ALL
    SELECT 'FUNCTION', p.oid::regprocedure::text, 'EXECUTE'
    FROM pg_proc p
    WHERE p.pronamespace = 'public'::regnamespace
      AND (p.proname IN ('compute_fifo', 'compute_fifo_incremental', 'compute_fifo_since', 'explain_fifo',
                         'verify_fifo', 'fifo_report_time', 'compute_fifo_assets',
                         'compute_fifo_assets_incremental', 'explain_fifo_asset')
           OR (p.proname LIKE 'fifo\_%' AND EXISTS (
                   -- the report functions: the ones a public report view of the same name calls
                   SELECT 1 FROM pg_class v
                   WHERE v.relnamespace = 'public'::regnamespace AND v.relkind = 'v' AND v.relname = p.proname))
           OR p.proname IN ('fifo_pnl_summary', 'fifo_form_8949', 'fifo_pnl_curve', 'fifo_report_context',
                            'fifo_computed_pools', 'fifo_computed_trades', 'fifo_asset_form_8949',
                            'fifo_asset_position_totals'))
      AND (p_kind = 'operator'
           OR p.proname NOT IN ('compute_fifo_all', 'fifo_set_setting', 'fifo_schedule', 'fifo_unschedule',
                                'fifo_worker_claim', 'fifo_worker_release'));
    IF p_kind = 'operator' THEN
        RETURN QUERY
        SELECT 'FUNCTION', p.oid::regprocedure::text, 'EXECUTE'
        FROM pg_proc p
        WHERE p.pronamespace = 'public'::regnamespace
          AND p.proname IN ('compute_fifo_all', 'fifo_set_setting', 'fifo_schedule', 'fifo_unschedule',
                            'fifo_worker_claim', 'fifo_worker_release');
    END IF;
END;
$$;

-- fifo._apply_privileges(kind, role, grant): GRANT (or REVOKE) a kind's
-- privileges to (from) a role. Identifiers through format('%I') / regclass
-- and regprocedure text (already quoted).
CREATE OR REPLACE FUNCTION fifo._apply_privileges(p_kind text, p_role text, p_grant boolean)
RETURNS integer
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_row record;
    v_count integer := 0;
BEGIN
    IF p_role IS NULL OR NOT EXISTS (SELECT 1 FROM pg_roles r WHERE r.rolname = p_role) THEN
        RAISE EXCEPTION 'role % does not exist', coalesce(quote_literal(fifo._shown(p_role)), 'NULL')
            USING ERRCODE = '42704', HINT = 'Create it first: CREATE ROLE name LOGIN PASSWORD ...;';
    END IF;
    FOR v_row IN SELECT * FROM fifo._privileges(p_kind) LOOP   -- one statement per object
        IF p_grant THEN
            EXECUTE format('GRANT %s ON %s %s TO %I', v_row.privileges, v_row.object_kind, v_row.object_name, p_role);
        ELSE
            EXECUTE format('REVOKE %s ON %s %s FROM %I', v_row.privileges, v_row.object_kind, v_row.object_name, p_role);
        END IF;
        v_count := v_count + 1;
    END LOOP;
    RETURN v_count;
END;
$$;

-- fifo_grant(kind, role) / fifo_revoke(kind, role): make a role a bot,
-- reader or operator of this database's fifo-db, or undo it. Returns how
-- many objects the grant covers. For the owner (EXECUTE is not granted to
-- anybody: it runs with the caller's rights, who must be allowed to grant).
CREATE OR REPLACE FUNCTION public.fifo_grant(p_kind text, p_role text)
RETURNS integer
LANGUAGE sql
SET search_path = pg_catalog, pg_temp
AS $$ SELECT fifo._apply_privileges(p_kind, p_role, true) $$;
COMMENT ON FUNCTION public.fifo_grant(text, text) IS
    'Grant a role the privileges of a fifo-db bot, reader or operator (see sql/900_privileges.sql).';

CREATE OR REPLACE FUNCTION public.fifo_revoke(p_kind text, p_role text)
RETURNS integer
LANGUAGE sql
SET search_path = pg_catalog, pg_temp
AS $$ SELECT fifo._apply_privileges(p_kind, p_role, false) $$;
COMMENT ON FUNCTION public.fifo_revoke(text, text) IS
    'Revoke what fifo_grant(kind, role) granted.';

-- fifo._revoke_public(): no fifo-db function is callable by PUBLIC; the
-- privilege model grants EXECUTE per role. Called at the end of every install.
CREATE OR REPLACE FUNCTION fifo._revoke_public()
RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_fn regprocedure;
BEGIN
    FOR v_fn IN
        SELECT p.oid::regprocedure FROM pg_proc p
        WHERE p.pronamespace IN ('fifo'::regnamespace, 'public'::regnamespace)
          AND p.proowner = (SELECT n.nspowner FROM pg_namespace n WHERE n.nspname = 'fifo')
          AND (p.pronamespace = 'fifo'::regnamespace
               OR p.proname IN ('compute_fifo', 'compute_fifo_all', 'compute_fifo_incremental', 'compute_fifo_since',
                                'explain_fifo', 'verify_fifo', 'fifo_grant', 'fifo_revoke', 'compute_fifo_assets',
                                'compute_fifo_assets_incremental', 'explain_fifo_asset')
               OR p.proname LIKE 'fifo\_%')
          AND has_function_privilege('public', p.oid, 'EXECUTE')
    LOOP
        EXECUTE format('REVOKE EXECUTE ON FUNCTION %s FROM PUBLIC', v_fn);
    END LOOP;
END;
$$;

SELECT fifo._revoke_public();
