-- fifo-db 0002: the allocations table moves into the fifo schema as
-- fifo.allocations. public.fifo_allocations becomes a view over it
-- (sql/012_allocations_view.sql) that answers to fifo-db's column names and
-- to BotTrader's (sell_order_id, pnl_usd, allocation_version, ...), so the
-- seed's spot check and the bot's report SQL both run unchanged, and readers
-- can be granted SELECT on the view without any way to write P&L.
-- depends: 0001.initial-schema

ALTER TABLE public.fifo_allocations SET SCHEMA fifo;
ALTER TABLE fifo.fifo_allocations RENAME TO allocations;
COMMENT ON TABLE fifo.allocations IS
    'fifo-db output: FIFO allocations, derived from the trades by compute_fifo*(). Never edit by hand; '
    'read public.fifo_allocations.';

-- Where the engine reads trades from: 'fifo-db' (public.trade_records as
-- created by 0001) or an adopted table mapped in by `fifo-db install --adopt`
-- ('bottrader'). Managed by install, not by fifo_set_setting.
INSERT INTO fifo.settings (name, value) VALUES ('trades_source', 'fifo-db')
ON CONFLICT (name) DO NOTHING;
