-- The public faces of fifo-db's output, in both vocabularies:
--   public.fifo_allocations     over fifo.allocations: fifo-db's columns (the
--                               seed's sell_trade_id, pnl_amount, ...) and
--                               BotTrader's (sell_order_id, pnl_usd,
--                               allocation_version, ...), same values
--   public.fifo_computation_log over public.fifo_runs, in BotTrader's columns
-- When fifo-db has adopted a BotTrader database, the bot's own tables are
-- kept in schema fifo_legacy; each column the bot's table had is then cast
-- to the bot's exact type, so the bot's views that were re-pointed at these
-- (CREATE OR REPLACE VIEW keeps their columns' types) keep working.

-- fifo._create_compat_view(view, legacy, from, columns): CREATE OR REPLACE
-- VIEW `view` AS SELECT the (name, expression, type) columns FROM `from`;
-- a column that the legacy table `legacy` has takes its type from there.
CREATE OR REPLACE FUNCTION fifo._create_compat_view(
    p_view text, p_legacy text, p_from text, p_columns text[])
RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_legacy regclass := to_regclass(p_legacy);
    v_select text;
BEGIN
    SELECT string_agg(format('(%s)::%s AS %I', c.expr,
                             coalesce(format_type(l.atttypid, l.atttypmod), c.typ), c.name),
                      ', ' ORDER BY c.ord)
    INTO v_select
    FROM (SELECT p_columns[i][1] AS name, p_columns[i][2] AS expr, p_columns[i][3] AS typ, i AS ord
          FROM generate_subscripts(p_columns, 1) AS i) c
    LEFT JOIN pg_attribute l
           ON l.attrelid = v_legacy AND l.attname = c.name AND l.attnum > 0 AND NOT l.attisdropped;
    EXECUTE format('CREATE OR REPLACE VIEW %s AS SELECT %s FROM %s', p_view, v_select, p_from);
END;
$$;

SELECT fifo._create_compat_view('public.fifo_allocations', 'fifo_legacy.fifo_allocations',
    'fifo.allocations a', ARRAY[
    -- fifo-db's columns (design.md; the seed's spot check reads sell_trade_id and pnl_amount)
    ['id', 'a.id', 'bigint'],
    ['version', 'a.version', 'integer'],
    ['batch_id', 'a.batch_id', 'uuid'],
    ['account', 'a.account', 'text'],
    ['symbol', 'a.symbol', 'text'],
    ['sell_trade_id', 'a.sell_trade_id', 'text'],
    ['buy_trade_id', 'a.buy_trade_id', 'text'],
    ['allocated_size', 'a.allocated_size', 'numeric'],
    ['buy_price', 'a.buy_price', 'numeric'],
    ['sell_price', 'a.sell_price', 'numeric'],
    ['buy_fees', 'a.buy_fees', 'numeric'],
    ['sell_fees', 'a.sell_fees', 'numeric'],
    ['cost_basis', 'a.cost_basis', 'numeric'],
    ['sale_proceeds', 'a.sale_proceeds', 'numeric'],
    ['pnl_amount', 'a.pnl_amount', 'numeric'],
    ['buy_time', 'a.buy_time', 'timestamptz'],
    ['sell_time', 'a.sell_time', 'timestamptz'],
    ['unmatched', 'a.unmatched', 'boolean'],
    ['computed_at', 'a.computed_at', 'timestamptz'],
    -- BotTrader's names for the same values
    ['sell_order_id', 'a.sell_trade_id', 'varchar'],
    ['buy_order_id', 'a.buy_trade_id', 'varchar'],
    ['allocation_version', 'a.version', 'integer'],
    ['allocation_batch_id', 'a.batch_id', 'uuid'],
    ['allocation_time', 'a.computed_at', 'timestamptz'],
    ['pnl_usd', 'a.pnl_amount', 'numeric'],
    ['cost_basis_usd', 'a.cost_basis', 'numeric'],
    ['proceeds_usd', 'a.allocated_size * a.sell_price', 'numeric'],          -- gross
    ['net_proceeds_usd', 'a.sale_proceeds', 'numeric'],                      -- gross - sell fee share
    ['buy_fees_per_unit', 'a.buy_fees / a.allocated_size', 'numeric'],       -- derived, for reading
    ['sell_fees_per_unit', 'a.sell_fees / a.allocated_size', 'numeric'],
    ['notes', $e$CASE WHEN a.buy_trade_id IS NULL
                      THEN 'unmatched: ' || pg_catalog.trim_scale(a.allocated_size)
                           || ' sold with no inventory at the sell''s position (oversold); no cost basis' END$e$,
     'text']]);
COMMENT ON VIEW public.fifo_allocations IS
    'FIFO allocations (read-only): one row per (sell, lot) plus one unmatched row per oversold sell. '
    'fifo-db''s columns and BotTrader''s names for the same values (sell_order_id = sell_trade_id, '
    'pnl_usd = pnl_amount, allocation_version = version, proceeds_usd = gross allocated_size * sell_price, '
    'net_proceeds_usd = sale_proceeds). Exact numerics.';

SELECT fifo._create_compat_view('public.fifo_computation_log', 'fifo_legacy.fifo_computation_log',
    'public.fifo_runs r', ARRAY[
    ['id', 'r.run_id', 'bigint'],
    ['symbol', 'CASE WHEN pg_catalog.cardinality(r.symbols) = 1 THEN r.symbols[1] END', 'varchar'],
    ['allocation_version', 'r.version', 'integer'],
    ['allocation_batch_id', 'r.batch_id', 'uuid'],
    ['computation_start', 'r.started_at', 'timestamptz'],
    ['computation_end', 'r.finished_at', 'timestamptz'],
    ['computation_duration_ms', 'r.duration_ms', 'numeric'],
    ['status', $e$CASE r.status WHEN 'ok' THEN 'completed' WHEN 'skipped' THEN 'completed' ELSE r.status END$e$,
     'varchar'],
    ['buys_processed', 'r.buys', 'bigint'],
    ['sells_processed', 'r.sells', 'bigint'],
    ['allocations_created', 'r.allocations', 'bigint'],
    ['error_message', 'r.error', 'text'],
    ['symbols_processed', 'r.symbols', 'varchar[]'],
    ['total_pnl_computed', 'r.total_pnl', 'numeric'],
    ['computation_mode', $e$CASE r.mode WHEN 'all' THEN 'full' WHEN 'since' THEN 'incremental' ELSE r.mode END$e$,
     'varchar'],
    ['triggered_by', 'NULL', 'varchar']]);
COMMENT ON VIEW public.fifo_computation_log IS
    'fifo_runs in BotTrader''s columns: one row per computation (status completed/partial/failed/running, '
    'computation_mode full/incremental/symbol).';
