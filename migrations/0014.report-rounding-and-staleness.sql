-- fifo-db 0014: a one-time drop of the report functions that gained a
-- rounding argument (p_round: the one rounding rule of the reports,
-- docs/reports.md "Rounding"), of the views that call them, and of
-- fifo_report_context, whose result gained the pools with trades changed
-- since they were computed. sql/1xx-2xx re-create all of them in the same
-- install; CREATE OR REPLACE cannot change a function's arguments or result.
-- depends: 0013.worker

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
