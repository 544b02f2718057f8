-- The asset (tax) view, what readers see: disposals, transfers, open lots, positions.

-- public.fifo_asset_disposals: the realized rows of the asset view (sales, trades
-- of one coin for another, fees paid in coins, transfer fees), Form 8949 shaped,
-- in the filer's currency; unmatched and unpriced rows flagged, never valued at zero.
CREATE OR REPLACE FUNCTION public.fifo_asset_disposals()
RETURNS TABLE (description text, date_acquired date, date_sold date, proceeds numeric, cost_basis numeric,
               gain numeric, term text, currency text, wallet text, asset text, quantity numeric, kind text,
               ref_id text, disposal_id text, lot_id text, acquired_at timestamptz, disposed_at timestamptz,
               unmatched boolean, unpriced boolean)
LANGUAGE sql STABLE
SECURITY DEFINER   -- readers read reports without any right on fifo-db's internal tables
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT trim_scale(a.quantity)::text || ' ' || a.asset AS description,
           (a.acquired_at AT TIME ZONE fifo._report_tz())::date AS date_acquired,
           (a.disposed_at AT TIME ZONE fifo._report_tz())::date AS date_sold,
           a.proceeds, a.cost_basis, a.gain,
           CASE WHEN a.unmatched THEN NULL
                WHEN (a.disposed_at AT TIME ZONE fifo._report_tz())::date
                     > fifo._long_term_after((a.acquired_at AT TIME ZONE fifo._report_tz())::date,
                                             fifo._long_term_rule(), fifo._long_term_days())
                THEN 'long' ELSE 'short' END AS term,
           fifo._report_currency() AS currency,
           a.wallet, a.asset, a.quantity, a.kind, a.ref_id, a.disposal_id, a.lot_id,
           a.acquired_at, a.disposed_at, a.unmatched, a.unpriced
    FROM fifo.asset_allocations a
    WHERE a.kind <> 'transfer'
$$;
CREATE OR REPLACE VIEW public.fifo_asset_disposals AS SELECT * FROM public.fifo_asset_disposals();
COMMENT ON VIEW public.fifo_asset_disposals IS
    'Asset view: one row per (disposal, lot) in the filer''s currency, Form 8949 shaped; run compute_fifo_assets() first.';

-- public.fifo_asset_transfers: what each transfer moved (pieces of lots) and what it could not (unmatched).
CREATE OR REPLACE FUNCTION public.fifo_asset_transfers()
RETURNS TABLE (transfer_id text, from_wallet text, to_wallet text, asset text, lot_id text, quantity numeric,
               acquired_at timestamptz, cost_basis numeric, moved_at timestamptz, unmatched boolean)
LANGUAGE sql STABLE
SECURITY DEFINER   -- readers read reports without any right on fifo-db's internal tables
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT a.ref_id AS transfer_id, a.wallet AS from_wallet, a.to_wallet, a.asset, a.lot_id, a.quantity,
           a.acquired_at, a.cost_basis, a.disposed_at AS moved_at, a.unmatched
    FROM fifo.asset_allocations a
    WHERE a.kind = 'transfer'
$$;
CREATE OR REPLACE VIEW public.fifo_asset_transfers AS SELECT * FROM public.fifo_asset_transfers();

-- public.fifo_asset_open_lots: what is still held, lot by lot (pieces of
-- transferred lots in their new wallet), with the basis left on each (exact:
-- the lot's basis less the telescoped shares of its disposals).
CREATE OR REPLACE FUNCTION public.fifo_asset_open_lots()
RETURNS TABLE (wallet text, asset text, lot_id text, acquired_at timestamptz, quantity numeric,
               cost_basis numeric, unpriced boolean)
LANGUAGE sql STABLE
SECURITY DEFINER   -- readers read reports without any right on fifo-db's internal tables
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT l.wallet, l.asset, l.lot_id, l.acquired_at,
           l.quantity - coalesce(u.used, 0) AS quantity,
           l.basis - coalesce(u.basis, 0) AS cost_basis,
           l.basis IS NULL AS unpriced
    FROM fifo.asset_lots l
    LEFT JOIN (SELECT a.wallet, a.asset, a.lot_id, sum(a.quantity) AS used, sum(a.cost_basis) AS basis
               FROM fifo.asset_allocations a
               WHERE a.lot_id IS NOT NULL
               GROUP BY a.wallet, a.asset, a.lot_id) u
      ON u.wallet = l.wallet AND u.asset = l.asset AND u.lot_id = l.lot_id
    WHERE l.quantity > coalesce(u.used, 0)
$$;
CREATE OR REPLACE VIEW public.fifo_asset_open_lots AS SELECT * FROM public.fifo_asset_open_lots();

-- public.fifo_asset_positions(at): the open lots marked to the latest price at
-- or before `at` (no age limit; price_at says how old it is), unrealized P&L
-- per lot. NULL market value when there is no price: flagged, never zero.
CREATE OR REPLACE FUNCTION public.fifo_asset_positions(p_at timestamptz DEFAULT NULL)
RETURNS TABLE (wallet text, asset text, lot_id text, acquired_at timestamptz, quantity numeric,
               cost_basis numeric, price numeric, price_at timestamptz, market_value numeric,
               unrealized numeric, currency text)
LANGUAGE sql STABLE
SECURITY DEFINER   -- readers read reports without any right on fifo-db's internal tables
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT o.wallet, o.asset, o.lot_id, o.acquired_at, o.quantity, o.cost_basis, m.price, m.at,
           o.quantity * m.price, o.quantity * m.price - o.cost_basis, fifo._report_currency()
    FROM public.fifo_asset_open_lots() o
    LEFT JOIN LATERAL (
        SELECT p.price, p.at
        FROM fifo.asset_price_points p
        WHERE p.asset = o.asset AND p.at <= coalesce(p_at, 'infinity')
        ORDER BY p.at DESC, p.rank, p.source COLLATE "C"
        LIMIT 1) m ON true
    ORDER BY o.wallet, o.asset, o.acquired_at, o.lot_id COLLATE "C"
$$;
CREATE OR REPLACE VIEW public.fifo_asset_positions AS SELECT * FROM public.fifo_asset_positions();
COMMENT ON VIEW public.fifo_asset_positions IS
    'Asset view: open lots marked to the latest price (fifo_asset_positions(at) for another time).';
