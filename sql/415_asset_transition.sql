-- The asset (tax) view, the 2025 transition (Rev. Proc. 2024-28): tax_pooling =
-- 'universal-until-2025'. docs/rules.md rule 10a has the rule and its source,
-- docs/engine.md ("The 2025 transition") the design.
--
-- Before 2025-01-01 00:00 (report time zone) every leg and every transfer fee of an
-- asset is in one pool ('*', asset), and a transfer moves nothing: the universal
-- pooling. At that instant the universal pool's open lots (its unused basis) are
-- allocated to the wallets, so that each wallet receives exactly the units it
-- actually holds then, by one standing rule (a global allocation): the pool's open
-- lots in FIFO key order (earliest acquired first) are laid end to end against the
-- wallets in name order (bytewise), each wallet taking as many units as it holds.
-- The allocated pieces arrive in their wallet at the transition like pieces of a
-- transfer, keeping acquisition time, origin and their share of the basis
-- (fifo._fee_share, rule 5). From then on pools are per wallet.
--
-- The hooks: compute_fifo_assets (sql/420) asks fifo._asset_moves which pool a leg
-- belongs to and adds fifo._asset_transition_pieces to the pieces of every round;
-- fifo._asset_round (sql/410) asks fifo._asset_moves whether a transfer moves lots.

-- The marker of the transition: the path segment and transfer_id prefix of the
-- allocated pieces ('!' sorts them before any transfer id at the same instant).
CREATE OR REPLACE FUNCTION fifo._asset_transition_marker()
RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$ SELECT '!rp2024-28'::pg_catalog.text $$;

-- fifo._asset_transition_at(): 2025-01-01 00:00 in the report time zone: the start of
-- the filer's day of January 1, 2025, when basis is first tracked wallet by wallet.
CREATE OR REPLACE FUNCTION fifo._asset_transition_at()
RETURNS timestamptz
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$ SELECT '2025-01-01 00:00'::timestamp AT TIME ZONE fifo._report_tz() $$;

-- fifo._asset_moves(pooling, at): true when an event at `at` is in a per-wallet pool
-- (a leg in its account's pool, a transfer moving lots): under 'wallet' always, under
-- 'universal' never, under 'universal-until-2025' from the transition on.
CREATE OR REPLACE FUNCTION fifo._asset_moves(p_pooling text, p_at timestamptz)
RETURNS boolean
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT p_pooling = 'wallet' OR (p_pooling = 'universal-until-2025' AND p_at >= fifo._asset_transition_at())
$$;

-- fifo._asset_transition_pieces(at): the universal pools' open lots at the transition,
-- allocated to the wallets (the rule above). Reads the last round's fifo.asset_lots and
-- fifo.asset_allocations: the universal pools have only events before `at`, so their
-- open lots after any round are those at `at`. Set-based: two cumulative axes per asset,
-- the lots' open units in key order and the wallets' holdings in name order; a piece is
-- an overlap (the pair view's interval overlap, docs/engine.md). A wallet's holding is
-- what its own legs, transfers in and transfers out (with their fees) leave before `at`;
-- holdings that are not positive get nothing. When the wallets hold more units than the
-- pool has open, the last wallets in name order get less (their later disposals show the
-- shortfall as unmatched); when they hold fewer, the rest of the basis is allocated to
-- no wallet (docs/rules.md rule 10a).
CREATE OR REPLACE FUNCTION fifo._asset_transition_pieces(p_at timestamptz)
RETURNS TABLE (transfer_id text, to_wallet text, asset text, lot_id text, origin_order text, origin_leg text,
               path text, acquired_at timestamptz, quantity numeric, basis numeric, at timestamptz)
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
    WITH open AS (
        SELECT l.asset, l.lot_id, l.origin_order, l.origin_leg, l.path, l.acquired_at, l.quantity, l.basis,
               coalesce(u.used, 0) AS used, l.quantity - coalesce(u.used, 0) AS left_qty
        FROM fifo.asset_lots l
        LEFT JOIN (SELECT a.asset, a.lot_id, sum(a.quantity) AS used
                   FROM fifo.asset_allocations a
                   WHERE a.wallet = '*' AND a.lot_id IS NOT NULL
                   GROUP BY a.asset, a.lot_id) u ON u.asset = l.asset AND u.lot_id = l.lot_id
        WHERE l.wallet = '*' AND l.quantity > coalesce(u.used, 0)
    ),
    lots AS (
        SELECT o.*, sum(o.left_qty) OVER (PARTITION BY o.asset
                                          ORDER BY o.acquired_at, o.origin_order COLLATE "C", o.origin_leg,
                                                   o.path COLLATE "C") AS b
        FROM open o
    ),
    held AS (
        SELECT x.wallet, x.asset, sum(x.qty) AS qty
        FROM (SELECT g.account AS wallet, g.asset,
                     CASE WHEN g.direction = 'acquire' THEN g.quantity ELSE -g.quantity END AS qty
              FROM fifo.asset_legs g WHERE g.at < p_at
              UNION ALL
              SELECT t.to_account, t.asset, t.quantity FROM fifo.transfers t WHERE t.at < p_at
              UNION ALL
              SELECT t.from_account, t.asset, -(t.quantity + t.fee) FROM fifo.transfers t WHERE t.at < p_at) x
        GROUP BY x.wallet, x.asset
        HAVING sum(x.qty) > 0
    ),
    wallets AS (
        SELECT h.*, sum(h.qty) OVER (PARTITION BY h.asset ORDER BY h.wallet COLLATE "C") AS w
        FROM held h
    )
    SELECT fifo._asset_transition_marker() || ' ' || w.wallet, w.wallet, l.asset,
           l.lot_id || '/' || fifo._asset_transition_marker(), l.origin_order, l.origin_leg,
           l.path || '/' || fifo._asset_transition_marker(), l.acquired_at, v.hi - v.lo,
           fifo._fee_share(l.basis, l.quantity, l.used + v.lo - (l.b - l.left_qty), l.used + v.hi - (l.b - l.left_qty)),
           p_at
    FROM lots l
    JOIN wallets w ON w.asset = l.asset AND l.b - l.left_qty < w.w AND l.b > w.w - w.qty
    CROSS JOIN LATERAL (SELECT greatest(l.b - l.left_qty, w.w - w.qty) AS lo, least(l.b, w.w) AS hi) v
$$;
