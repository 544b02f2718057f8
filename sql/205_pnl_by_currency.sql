-- A run's realized P&L per quote currency (fifo_runs.pnl_by_currency):
-- totals never add BTC to dollars. fifo._match builds the map from the rows
-- it wrote, fifo._run adds the maps of its chunks.

-- fifo._pnl_by_currency(symbols[], pnls[]): P&L per quote currency, as
-- {"USD": -0.30893, "BTC": 0.0318} ('?' for a symbol with no quote; a
-- currency whose rows were all unmatched counts 0). jsonb numbers are exact.
-- PL/pgSQL, not SQL, for both: a SQL function with a SET clause is planned again on every
-- call, 0.7 ms of every run (pg_stat_statements, issue 16); PL/pgSQL keeps the plan.
CREATE OR REPLACE FUNCTION fifo._pnl_by_currency(p_symbols text[], p_pnls numeric[])
RETURNS jsonb
LANGUAGE plpgsql IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    RETURN (SELECT coalesce(jsonb_object_agg(x.currency, x.pnl), '{}')
            FROM (SELECT coalesce(fifo._quote_currency(u.symbol), '?') AS currency, coalesce(sum(u.pnl), 0) AS pnl
                  FROM unnest(p_symbols, p_pnls) AS u(symbol, pnl)
                  GROUP BY 1) x);
END;
$$;

-- fifo._add_pnl_by_currency(a, b): two pnl_by_currency maps added key by key.
CREATE OR REPLACE FUNCTION fifo._add_pnl_by_currency(p_a jsonb, p_b jsonb)
RETURNS jsonb
LANGUAGE plpgsql IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    RETURN (SELECT coalesce(jsonb_object_agg(e.key, e.pnl), '{}')
            FROM (SELECT x.key, sum(x.value::numeric) AS pnl
                  FROM (SELECT * FROM jsonb_each_text(coalesce(p_a, '{}'))
                        UNION ALL
                        SELECT * FROM jsonb_each_text(coalesce(p_b, '{}'))) x
                  GROUP BY x.key) e);
END;
$$;
