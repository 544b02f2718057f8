-- fifo-db 0003: the settings of the calendar long-term rule and of the report
-- currency (docs/reports.md), and a one-time drop of the report functions and
-- views whose result columns changed (currency, long_term_after as a date,
-- sell_volume / realized_fees / fees_paid). sql/2xx re-creates them in the
-- same install; CREATE OR REPLACE cannot change a function's result type.
-- depends: 0002.allocations-in-fifo-schema

INSERT INTO fifo.settings (name, value) VALUES
    ('long_term_rule', 'anniversary'),
    ('report_currency', 'USD'),
    ('report_currency_aliases', '')
ON CONFLICT (name) DO NOTHING;

DROP VIEW IF EXISTS public.fifo_trade_pnl, public.fifo_pnl_by_symbol, public.fifo_pnl_by_day,
    public.fifo_open_lots, public.fifo_positions, public.fifo_unmatched_sells, public.fifo_tax_lots;
DROP FUNCTION IF EXISTS public.fifo_trade_pnl(text, timestamptz, timestamptz);
DROP FUNCTION IF EXISTS fifo._pnl_rollup(text, timestamptz, timestamptz);
DROP FUNCTION IF EXISTS public.fifo_pnl_by_symbol(text, timestamptz, timestamptz);
DROP FUNCTION IF EXISTS public.fifo_pnl_by_day(text, timestamptz, timestamptz);
DROP FUNCTION IF EXISTS public.fifo_pnl_summary(text, timestamptz, timestamptz);
DROP FUNCTION IF EXISTS fifo._pnl_curve(text, timestamptz, timestamptz);
DROP FUNCTION IF EXISTS public.fifo_open_lots(text, timestamptz, timestamptz);
DROP FUNCTION IF EXISTS public.fifo_positions(text, timestamptz);
DROP FUNCTION IF EXISTS public.fifo_unmatched_sells(text, timestamptz, timestamptz);
DROP FUNCTION IF EXISTS public.fifo_tax_lots(text, timestamptz, timestamptz);
DROP FUNCTION IF EXISTS fifo._long_term();
