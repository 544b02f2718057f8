-- The asset (tax) view: lots by (wallet, asset) across every pair, valued in
-- the filer's currency, transfers that keep acquisition time and basis.
-- docs/engine.md ("The asset (tax) view") has the design and a worked example;
-- docs/rules.md ("The asset view") the rules and their sources. The pair view
-- (sql/030) is untouched: nothing here reads or writes fifo.allocations.

-- fifo._split_symbol(symbol, map): BASE and QUOTE of a symbol: the symbol_map
-- entry (SYMBOL=BASE/QUOTE) when there is one, else the parts around the last
-- '-'; both NULL when neither applies (the trade gets no legs and is counted
-- as `unsplit` by compute_fifo_assets).
CREATE OR REPLACE FUNCTION fifo._split_symbol(p_symbol text, p_map text, OUT base text, OUT quote text)
LANGUAGE sql IMMUTABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT coalesce(m.base, nullif(substring(p_symbol, '^(.+)-[^-]+$'), '')),
           coalesce(m.quote, nullif(substring(p_symbol, '^.+-([^-]+)$'), ''))
    FROM (SELECT NULL::text AS none) d
    LEFT JOIN LATERAL (
        SELECT split_part(split_part(e.entry, '=', 2), '/', 1) AS base,
               split_part(split_part(e.entry, '=', 2), '/', 2) AS quote
        FROM unnest(string_to_array(nullif(p_map, ''), ',')) AS e(entry)
        WHERE split_part(e.entry, '=', 1) = p_symbol
        LIMIT 1) m ON true
$$;

-- fifo._ratio(a, b): a / b rounded half up to 20 decimal places, exactly
-- (integer division, like fifo._fee_point): the value of one QUOTE unit when
-- only BASE has a price (docs/rules.md, "The asset view").
CREATE OR REPLACE FUNCTION fifo._ratio(p_a numeric, p_b numeric)
RETURNS numeric
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $$ SELECT div(p_a * 2e20 + p_b, 2 * p_b) * 1e-20 $$;

-- fifo._asset_price(asset, at, window): the price of one unit of asset in the
-- filer's currency at `at`: the latest price point at or before it and not
-- older than `window` (NULL: no limit), an imported price before a derived one
-- at the same time. NULL when there is none. One index probe.
CREATE OR REPLACE FUNCTION fifo._asset_price(p_asset text, p_at timestamptz, p_window interval)
RETURNS numeric
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT p.price
    FROM fifo.asset_price_points p
    WHERE p.asset = p_asset
      AND p.at <= p_at
      AND (p_window IS NULL OR p.at >= p_at - p_window)
    ORDER BY p.at DESC, p.rank, p.source COLLATE "C"
    LIMIT 1
$$;

