-- fifo-db 0009: a run's realized P&L per quote currency.
-- fifo_runs.total_pnl adds up every allocation the run wrote, whatever its
-- currency (BotTrader's total_pnl_computed; a run over USD symbols only is
-- in USD). pnl_by_currency holds the same P&L per quote currency
-- ({"USD": -0.30893, "BTC": 0.0318}, exact numerics; '?' for a symbol with no quote), so
-- that nothing has to add BTC to dollars: the statistics block prints it.
-- depends: 0008.allocations-partitioned-by-version

ALTER TABLE public.fifo_runs ADD COLUMN pnl_by_currency jsonb NOT NULL DEFAULT '{}';
COMMENT ON COLUMN public.fifo_runs.total_pnl IS
    'Realized P&L of the allocations the run wrote, added across quote currencies: '
    'read pnl_by_currency when the run spans more than one.';
COMMENT ON COLUMN public.fifo_runs.pnl_by_currency IS
    'Realized P&L of the allocations the run wrote, per quote currency (BTC-USD: USD); ''?'' for no quote.';
