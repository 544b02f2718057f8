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
-- the lot's basis less the telescoped shares of its disposals). Under
-- universal-until-2025 a universal lot's units the 2025 allocation gave to
-- wallets are held there (sql/415), not in the universal pool: only what it
-- allocated to no wallet stays open in '*'.
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
    LEFT JOIN (SELECT x.wallet, x.asset, x.lot_id, sum(x.quantity) AS used, sum(x.cost_basis) AS basis
               FROM (SELECT a.wallet, a.asset, a.lot_id, a.quantity, a.cost_basis
                     FROM fifo.asset_allocations a
                     WHERE a.lot_id IS NOT NULL
                     UNION ALL
                     SELECT '*', p.asset, left(p.lot_id, -length(fifo._asset_transition_marker()) - 1), p.quantity,
                            p.basis
                     FROM fifo.asset_pieces p
                     WHERE p.transfer_id LIKE fifo._asset_transition_marker() || ' %') x
               GROUP BY x.wallet, x.asset, x.lot_id) u
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

-- fifo_asset_form_8949([from, to, reported]): the asset view's Form 8949 rows, per
-- wallet, as fifo_form_8949 gives the pair view's (sql/270): proceeds and cost basis
-- rounded ONCE to the filer's currency's places (fifo._money(.., 0): cents for USD),
-- the gain computed from the rounded figures, Part I/II and the box (fifo._form_8949_box).
-- An oversold part has no basis (no_basis) and counts its proceeds as gain, in Part I.
-- A row whose proceeds or basis has no price (unpriced: the disposal's leg, or the lot's
-- acquisition, had no price) keeps NULL there and a NULL gain: flagged, summed nowhere,
-- never valued at zero. Rows disposed of in [from, to); transfers are not rows.
CREATE OR REPLACE FUNCTION public.fifo_asset_form_8949(
    p_from timestamptz DEFAULT NULL,
    p_to timestamptz DEFAULT NULL,
    p_reported text DEFAULT 'none')
RETURNS TABLE (
    tax_year integer, part text, box text, description text, date_acquired date, date_sold date,
    proceeds numeric, cost_basis numeric, adjustment_code text, adjustment numeric, gain_or_loss numeric,
    term text, no_basis boolean, unpriced boolean, currency text, wallet text, asset text, kind text,
    disposal_id text, lot_id text, disposed_at timestamptz, acquired_at timestamptz)
LANGUAGE plpgsql STABLE
-- SECURITY DEFINER: a reader gets the rows without any right on fifo.asset_allocations or the
-- internal helpers; it only reads, its search path is pinned and p_reported is checked first
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    PERFORM fifo._check_reported(p_reported);
    RETURN QUERY
    SELECT y.year, CASE WHEN y.long THEN 'II' ELSE 'I' END, fifo._form_8949_box(y.year, y.long, p_reported),
           d.description, d.date_acquired, d.date_sold, r.proceeds, r.cost, NULL::text, NULL::numeric,
           CASE WHEN u.unpriced THEN NULL ELSE r.proceeds - coalesce(r.cost, 0) END,
           CASE WHEN y.long THEN 'long' ELSE 'short' END, d.unmatched, u.unpriced, d.currency, d.wallet,
           d.asset, d.kind, d.disposal_id, d.lot_id, d.disposed_at, d.acquired_at
    FROM public.fifo_asset_disposals() d
    -- fifo._money: the filer's currency's places (cents for USD), the rule of every rounded report
    CROSS JOIN LATERAL (SELECT fifo._money(d.proceeds, d.currency, 0) AS proceeds,
                               fifo._money(d.cost_basis, d.currency, 0) AS cost) r
    CROSS JOIN LATERAL (SELECT d.unpriced OR (d.cost_basis IS NULL AND NOT d.unmatched) AS unpriced) u
    CROSS JOIN LATERAL (SELECT extract(year FROM d.date_sold)::integer AS year,
                               coalesce(d.term = 'long', false) AS long) y
    WHERE (p_from IS NULL OR d.disposed_at >= p_from)
      AND (p_to IS NULL OR d.disposed_at < p_to);
END;
$$;
COMMENT ON FUNCTION public.fifo_asset_form_8949(timestamptz, timestamptz, text) IS
    'Asset view Form 8949 rows per wallet in the filer''s currency: money rounded to cents once (gain = rounded '
    'proceeds - rounded cost), part I/II, box; oversold rows with no basis, unpriced rows flagged with no gain.';

-- fifo_asset_position_totals([at, round]): the open lots marked to market
-- (fifo_asset_positions(at)) added up per (wallet, asset), per asset across wallets
-- (wallet '(all)') and in total (wallet '(all)', asset '(total)'). round: 0 (default) each
-- lot's money rounded to the filer's currency's places once, N: to N places but never
-- fewer, NULL: exact (fifo._money); the sums are of the rounded figures, so they add up.
-- A lot with no mark price or no basis is counted in `left_out` and in nothing else.
CREATE OR REPLACE FUNCTION public.fifo_asset_position_totals(p_at timestamptz DEFAULT NULL,
                                                             p_round integer DEFAULT 0)
RETURNS TABLE (wallet text, asset text, lots bigint, quantity numeric, price numeric, price_at timestamptz,
               cost_basis numeric, market_value numeric, unrealized numeric, left_out bigint, currency text)
LANGUAGE sql STABLE
SECURITY DEFINER   -- readers read reports without any right on fifo-db's internal tables
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT coalesce(p.wallet, '(all)'), coalesce(p.asset, '(total)'), count(*),
           CASE WHEN grouping(p.asset) = 0 THEN sum(p.quantity) END,
           CASE WHEN grouping(p.asset) = 0 THEN max(p.price) END,
           CASE WHEN grouping(p.asset) = 0 THEN max(p.price_at) END,
           coalesce(sum(m.cost) FILTER (WHERE m.ok), 0), coalesce(sum(m.value) FILTER (WHERE m.ok), 0),
           coalesce(sum(m.value - m.cost) FILTER (WHERE m.ok), 0), count(*) FILTER (WHERE NOT m.ok),
           max(p.currency)
    FROM public.fifo_asset_positions(p_at) p
    CROSS JOIN LATERAL (SELECT fifo._money(p.cost_basis, p.currency, p_round) AS cost,
                               fifo._money(p.market_value, p.currency, p_round) AS value,
                               p.unrealized IS NOT NULL AS ok) m
    GROUP BY GROUPING SETS ((p.wallet, p.asset), (p.asset), ())
    ORDER BY grouping(p.wallet), grouping(p.asset), p.wallet, p.asset
$$;
COMMENT ON FUNCTION public.fifo_asset_position_totals(timestamptz, integer) IS
    'Asset view: open lots marked to the latest price at or before `at`, per wallet and asset, per asset and in '
    'total, money rounded per lot by fifo._money(round) and added up; unpriced lots counted in left_out only.';
