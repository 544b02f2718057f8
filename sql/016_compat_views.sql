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
-- a column that the legacy table `legacy` has takes its type from there, and
-- a legacy column fifo-db has no equivalent for is appended as NULL of its
-- type, so every view or query written against the legacy table still
-- finds its columns. Columns that are always NULL (expression 'NULL', or
-- appended) carry a column comment saying so, which `fifo-db install
-- --adopt` reports.
CREATE OR REPLACE FUNCTION fifo._create_compat_view(
    p_view text, p_legacy text, p_from text, p_columns text[])
RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    c_null_note constant text := 'no fifo-db equivalent: always NULL (kept for the adopted bot''s table of this name)';
    v_legacy regclass := to_regclass(p_legacy);
    v_select text;
    v_nulls text[];
    v_name text;
BEGIN
    WITH listed AS (
        SELECT p_columns[i][1] AS name, p_columns[i][2] AS expr, p_columns[i][3] AS typ, i AS ord
        FROM generate_subscripts(p_columns, 1) AS i
    ), cols AS (
        SELECT c.name, c.expr, coalesce(format_type(l.atttypid, l.atttypmod), c.typ) AS typ, c.ord,
               upper(btrim(c.expr)) = 'NULL' AS always_null
        FROM listed c
        LEFT JOIN pg_attribute l
               ON l.attrelid = v_legacy AND l.attname = c.name AND l.attnum > 0 AND NOT l.attisdropped
        UNION ALL
        SELECT l.attname::text, 'NULL', format_type(l.atttypid, l.atttypmod), 1000000 + l.attnum, true
        FROM pg_attribute l
        WHERE l.attrelid = v_legacy AND l.attnum > 0 AND NOT l.attisdropped
          AND l.attname::text NOT IN (SELECT c.name FROM listed c)
    )
    SELECT string_agg(format('(%s)::%s AS %I', c.expr, c.typ, c.name), ', ' ORDER BY c.ord),
           array_agg(c.name ORDER BY c.ord) FILTER (WHERE c.always_null)
    INTO v_select, v_nulls
    FROM cols c;
    EXECUTE format('CREATE OR REPLACE VIEW %s AS SELECT %s FROM %s', p_view, v_select, p_from);
    FOREACH v_name IN ARRAY coalesce(v_nulls, '{}') LOOP
        EXECUTE format('COMMENT ON COLUMN %s.%I IS %L', p_view, v_name, c_null_note);
    END LOOP;
END;
$$;

SELECT fifo._create_compat_view('public.fifo_allocations', 'fifo_legacy.fifo_allocations',
    'fifo.allocations a', ARRAY[
    -- fifo-db's columns (docs/rules.md; the seed's spot check reads sell_trade_id and pnl_amount)
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

-- Replacement views for the adopted bot's other tables, created only when
-- fifo-db adopted a database that had them (fifo_legacy.<name> exists), so a
-- fresh install's public schema holds no bot-only names. Both read the
-- current version (fifo.settings directly, so a reader needs no right on
-- fifo's functions) and only pools computed in it.

-- fifo_inventory_snapshot: the open lots (buys with inventory left) of every
-- computed pool. remaining_cost_basis_usd = remaining size * price + the
-- part of the buy's fee its allocations did not take (shares add up to the
-- fee exactly, docs/rules.md rule 5).
SELECT fifo._create_compat_view('public.fifo_inventory_snapshot', 'fifo_legacy.fifo_inventory_snapshot',
    $f$fifo.trades t
       JOIN fifo.pool_state ps
         ON ps.version = (SELECT s.value::integer FROM fifo.settings s WHERE s.name = 'current_version')
        AND ps.symbol = t.symbol AND ps.account = t.account
       CROSS JOIN LATERAL (
           SELECT coalesce(sum(a.allocated_size), 0) AS consumed, coalesce(sum(a.buy_fees), 0) AS fees_used
           FROM fifo.allocations a
           WHERE a.buy_trade_id = t.order_id AND a.version = ps.version
             AND a.symbol = t.symbol AND a.account = t.account) u
       WHERE t.side = 'buy' AND t.size > u.consumed$f$, ARRAY[
    ['id', 'NULL', 'bigint'],
    ['symbol', 't.symbol', 'text'],
    ['account', 't.account', 'text'],
    ['buy_order_id', 't.order_id', 'varchar'],
    ['buy_time', 't.order_time', 'timestamptz'],
    ['buy_price', 't.price', 'numeric'],
    ['original_size', 't.size', 'numeric'],
    ['remaining_size', 't.size - u.consumed', 'numeric'],
    ['remaining_fees_usd', 't.total_fees - u.fees_used', 'numeric'],
    ['remaining_cost_basis_usd', '(t.size - u.consumed) * t.price + (t.total_fees - u.fees_used)', 'numeric'],
    ['allocation_version', 'ps.version', 'integer'],
    ['allocation_batch_id', 'ps.batch_id', 'uuid'],
    ['snapshot_time', 'ps.computed_at', 'timestamptz']])
WHERE to_regclass('fifo_legacy.fifo_inventory_snapshot') IS NOT NULL;

-- manual_review_queue: the unmatched (oversold) part of every sell in the
-- current version, the rows the bot's engine filed for review. fifo-db keeps
-- no review workflow: status is always 'pending', the resolution columns NULL.
SELECT fifo._create_compat_view('public.manual_review_queue', 'fifo_legacy.manual_review_queue',
    $f$fifo.allocations a
       WHERE a.version = (SELECT s.value::integer FROM fifo.settings s WHERE s.name = 'current_version')
         AND a.buy_trade_id IS NULL$f$, ARRAY[
    ['id', 'a.id', 'bigint'],
    ['order_id', 'a.sell_trade_id', 'varchar'],
    ['symbol', 'a.symbol', 'text'],
    ['account', 'a.account', 'text'],
    ['issue_type', $e$'unmatched_sell'$e$, 'varchar'],
    ['unmatched_size', 'a.allocated_size', 'numeric'],
    ['details', $e$pg_catalog.jsonb_build_object('sell_time', a.sell_time, 'sell_price', a.sell_price,
                  'unmatched_size', a.allocated_size, 'net_proceeds_usd', a.sale_proceeds,
                  'reason', 'sold with no inventory at the sell''s position (oversold); no cost basis')$e$, 'jsonb'],
    ['status', $e$'pending'$e$, 'varchar'],
    ['allocation_version', 'a.version', 'integer'],
    ['allocation_batch_id', 'a.batch_id', 'uuid'],
    ['created_at', 'a.computed_at', 'timestamptz']])
WHERE to_regclass('fifo_legacy.manual_review_queue') IS NOT NULL;
