-- fifo-db 0014: a one-time drop of the report functions that gained a
-- rounding argument (p_round: the one rounding rule of the reports,
-- docs/reports.md "Rounding"), of the views that call them, and of
-- fifo_report_context, whose result gained the pools with trades changed
-- since they were computed. sql/1xx-2xx re-create all of them in the same
-- install; CREATE OR REPLACE cannot change a function's arguments or result.
-- depends: 0013.worker

-- What a user built on these views and functions (a view, a rule, a function with
-- a body that names them) would block the drops below; say which, and how to keep
-- them, instead of PostgreSQL's "cannot drop ... because other objects depend on it".
DO $$
DECLARE
    v_theirs text;
BEGIN
    WITH ours(classid, oid) AS (
        SELECT 'pg_catalog.pg_class'::pg_catalog.regclass, c.oid
        FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
        WHERE n.nspname = 'public' AND c.relkind = 'v'
          AND c.relname IN ('fifo_trade_pnl', 'fifo_pnl_by_symbol', 'fifo_pnl_by_day', 'fifo_pnl_by_month',
                            'fifo_pnl_by_year', 'fifo_open_lots', 'fifo_positions', 'fifo_unmatched_sells')
        UNION ALL
        SELECT 'pg_catalog.pg_proc'::pg_catalog.regclass, p.oid
        FROM pg_catalog.pg_proc p JOIN pg_catalog.pg_namespace n ON n.oid = p.pronamespace
        WHERE (n.nspname = 'public' AND p.proname IN ('fifo_trade_pnl', 'fifo_pnl_by_symbol', 'fifo_pnl_by_day',
                   'fifo_pnl_by_month', 'fifo_pnl_by_year', 'fifo_pnl_summary', 'fifo_pnl_curve', 'fifo_open_lots',
                   'fifo_positions', 'fifo_unmatched_sells', 'fifo_report_context'))
           OR (n.nspname = 'fifo' AND p.proname = '_pnl_rollup')
    )
    SELECT pg_catalog.string_agg(DISTINCT COALESCE(r.ev_class::pg_catalog.regclass::text,
                                 pg_catalog.pg_describe_object(d.classid, d.objid, d.objsubid)), ', ')
    INTO v_theirs
    FROM pg_catalog.pg_depend d
    JOIN ours o ON o.classid = d.refclassid AND o.oid = d.refobjid
    LEFT JOIN pg_catalog.pg_rewrite r ON d.classid = 'pg_catalog.pg_rewrite'::pg_catalog.regclass AND r.oid = d.objid
    WHERE d.deptype = 'n'
      AND NOT (r.ev_class IS NOT NULL AND r.ev_class IN (SELECT oid FROM ours))
      AND NOT (d.classid = 'pg_catalog.pg_proc'::pg_catalog.regclass AND d.objid IN (SELECT oid FROM ours));
    IF v_theirs IS NOT NULL THEN
        RAISE EXCEPTION 'fifo-db 0014 re-creates the report views and functions (they gained a rounding argument), and objects not made by fifo-db depend on them: %', v_theirs
            USING ERRCODE = 'dependent_objects_still_exist',
                  HINT = 'Save their definitions (pg_get_viewdef / pg_get_functiondef), drop them, install again '
                         '(nothing was changed), then re-create them: the views keep their names and columns.';
    END IF;
END
$$;

DROP VIEW IF EXISTS public.fifo_trade_pnl, public.fifo_pnl_by_symbol, public.fifo_pnl_by_day,
    public.fifo_pnl_by_month, public.fifo_pnl_by_year, public.fifo_open_lots, public.fifo_positions,
    public.fifo_unmatched_sells;
DROP FUNCTION IF EXISTS public.fifo_trade_pnl(text, timestamptz, timestamptz);
DROP FUNCTION IF EXISTS fifo._pnl_rollup(text, timestamptz, timestamptz);
DROP FUNCTION IF EXISTS public.fifo_pnl_by_symbol(text, timestamptz, timestamptz);
DROP FUNCTION IF EXISTS public.fifo_pnl_by_day(text, timestamptz, timestamptz);
DROP FUNCTION IF EXISTS public.fifo_pnl_by_month(text, timestamptz, timestamptz);
DROP FUNCTION IF EXISTS public.fifo_pnl_by_year(text, timestamptz, timestamptz);
DROP FUNCTION IF EXISTS public.fifo_pnl_summary(text, timestamptz, timestamptz);
DROP FUNCTION IF EXISTS public.fifo_pnl_curve(text, timestamptz, timestamptz);
DROP FUNCTION IF EXISTS public.fifo_open_lots(text, timestamptz, timestamptz);
DROP FUNCTION IF EXISTS public.fifo_positions(text, timestamptz);
DROP FUNCTION IF EXISTS public.fifo_unmatched_sells(text, timestamptz, timestamptz);
DROP FUNCTION IF EXISTS public.fifo_report_context(text, text);
