-- fifo_positions: one row per pool (account, symbol) with inventory left,
-- summed from fifo_open_lots: open quantity, cost of the remainder (fees
-- included, in the quote currency) and the average cost per unit
-- (open_cost / open_quantity, an exact division to numeric's default
-- precision). p_round (NULL: exact): open_cost is the sum of the lots'
-- rounded remaining_cost (fifo_open_lots), average_cost that divided by the
-- quantity, rounded to GREATEST(p_round, 8) places like a price.
CREATE OR REPLACE FUNCTION public.fifo_positions(
    p_symbol text DEFAULT NULL,
    p_as_of timestamptz DEFAULT NULL,
    p_round integer DEFAULT NULL)
RETURNS TABLE (
    account text, symbol text, currency text, lots bigint, open_quantity numeric, open_cost numeric,
    average_cost numeric, first_lot_time timestamptz, last_lot_time timestamptz, computed boolean)
LANGUAGE plpgsql STABLE
SECURITY DEFINER   -- readers read reports without any right on fifo-db's internal tables
SET search_path = pg_catalog, pg_temp
AS $$
#variable_conflict use_column
BEGIN
    RETURN QUERY
    SELECT l.account, l.symbol, l.currency, pg_catalog.count(*), pg_catalog.sum(l.remaining_size),
           pg_catalog.sum(l.remaining_cost),
           CASE WHEN p_round IS NULL
                THEN pg_catalog.sum(l.remaining_cost) OPERATOR(pg_catalog./) pg_catalog.sum(l.remaining_size)
                ELSE pg_catalog.round(pg_catalog.sum(l.remaining_cost) OPERATOR(pg_catalog./) pg_catalog.sum(l.remaining_size),
                                      GREATEST(p_round, 8)) END,
           pg_catalog.min(l.order_time), pg_catalog.max(l.order_time), pg_catalog.bool_and(l.computed)
    FROM public.fifo_open_lots(p_symbol, NULL, p_as_of, p_round) l
    GROUP BY l.account, l.symbol, l.currency;
END;
$$;
COMMENT ON FUNCTION public.fifo_positions(text, timestamptz, integer) IS
    'Open position per pool (account, symbol) as of a time (default now): quantity, cost, average cost.';

CREATE OR REPLACE VIEW public.fifo_positions AS
    SELECT * FROM public.fifo_positions();
COMMENT ON VIEW public.fifo_positions IS
    'Open position per pool (account, symbol): lots, open_quantity, open_cost (fees included, in `currency`), '
    'average_cost = open_cost / open_quantity. Current version.';
