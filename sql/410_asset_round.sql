-- The asset (tax) view, the matching: one round over every (wallet, asset) pool.
-- docs/engine.md ("The asset (tax) view") has the design.

-- fifo._asset_round(pooling): one round over every pool at once (docs/engine.md,
-- "FIFO by acquisition among the units held"): rewrites fifo.asset_allocations
-- from fifo.asset_lots (the trades' acquisitions plus the transfer pieces
-- known so far) and the disposals (legs, transfers out, transfer fees).
-- Returns the number of allocation rows. One INSERT ... SELECT, no loop.
CREATE OR REPLACE FUNCTION fifo._asset_round(p_pooling text, p_window interval, p_fiat text[])
RETURNS bigint
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
SET work_mem = '256MB'
-- every join below has an equality key (pool, id); the CTEs' row estimates are 1-3 rows, which
-- made the planner nest a loop over 580 disposals inside 45,000 lot x disposal pairs (18.5 s
-- for 1,000 trades); hash joins do the same in milliseconds
SET enable_nestloop = off
SET jit = off
AS $$
DECLARE
    v_rows bigint;
BEGIN
    DELETE FROM fifo.asset_allocations;
    INSERT INTO fifo.asset_allocations (wallet, asset, disposal_id, kind, ref_id, lot_id, quantity, acquired_at,
                                        disposed_at, cost_basis, proceeds, gain, unmatched, unpriced, to_wallet)
    WITH disp AS MATERIALIZED (
        -- trade legs that dispose: phase 2 (after the acquisitions and transfers of their instant)
        SELECT g.wallet, g.asset, g.leg_id AS id, CASE WHEN g.leg = 'fee' THEN 'fee' ELSE 'trade' END AS kind,
               g.order_id AS ref_id, g.quantity AS qty, g.value, g.at, 2 AS phase, g.order_id AS seq,
               g.leg AS seq2, NULL::text AS to_wallet
        FROM fifo.asset_legs g
        WHERE g.direction = 'dispose'
        UNION ALL
        -- transfers out (wallet pooling only: under universal pooling both wallets are one pool; sql/415)
        SELECT t.from_account, t.asset, t.transfer_id || ':out', 'transfer', t.transfer_id, t.quantity, NULL,
               t.at, 1, t.transfer_id, 'a', t.to_account
        FROM fifo.transfers t
        WHERE fifo._asset_moves(p_pooling, t.at) AND NOT (t.asset = ANY (p_fiat))
        UNION ALL
        -- a transfer's fee: a disposal of the fee units at their fair market value, right after it
        SELECT CASE WHEN fifo._asset_moves(p_pooling, t.at) THEN t.from_account ELSE '*' END, t.asset,
               t.transfer_id || ':fee', 'transfer_fee', t.transfer_id, t.fee,
               t.fee * fifo._asset_price(t.asset, t.at, p_window), t.at, 1, t.transfer_id, 'b', NULL
        FROM fifo.transfers t
        WHERE t.fee > 0 AND NOT (t.asset = ANY (p_fiat))
    ),
    lots0 AS MATERIALIZED (
        -- the lots in key order (k: acquired_at, origin order, origin leg, path) and in arrival order (r)
        SELECT l.*, row_number() OVER (PARTITION BY l.wallet, l.asset
                                       ORDER BY l.acquired_at, l.origin_order COLLATE "C", l.origin_leg,
                                                l.path COLLATE "C") AS k,
                    row_number() OVER (PARTITION BY l.wallet, l.asset
                                       ORDER BY l.arrived_at, l.arrival_phase, l.arrival_seq COLLATE "C",
                                                l.lot_id COLLATE "C") AS r
        FROM fifo.asset_lots l
    ),
    -- a pool whose lots arrive in key order (every pool without a transfer in, most with one):
    -- served_K = min(M, B_K), the pair view's interval overlap (docs/engine.md); the others
    -- take the nested-queue formula over thresholds
    ordered AS MATERIALIZED (
        SELECT l.wallet, l.asset, bool_and(l.k = l.r) AS ordered
        FROM lots0 l GROUP BY l.wallet, l.asset
    ),
    lots AS MATERIALIZED (
        SELECT l.*, coalesce(o.ordered, true) AS ordered,
               sum(l.quantity) OVER (PARTITION BY l.wallet, l.asset ORDER BY l.k) AS b
        FROM lots0 l JOIN ordered o ON o.wallet = l.wallet AND o.asset = l.asset
    ),
    ev AS MATERIALIZED (
        -- every event of a pool, numbered in pool order: arrivals before disposals at one position
        SELECT e.*, row_number() OVER (PARTITION BY e.wallet, e.asset
                                       ORDER BY e.at, e.phase, e.seq COLLATE "C", e.is_disp,
                                                e.seq2 COLLATE "C", e.id COLLATE "C") AS n
        FROM (SELECT l.wallet, l.asset, l.lot_id AS id, l.arrived_at AS at, l.arrival_phase::integer AS phase,
                     l.arrival_seq AS seq, 0 AS is_disp, ''::text AS seq2, l.quantity AS a_qty,
                     0::numeric AS d_qty, l.k
              FROM lots l
              UNION ALL
              SELECT d.wallet, d.asset, d.id, d.at, d.phase, d.seq, 1, d.seq2, 0, d.qty, NULL
              FROM disp d) e
    ),
    -- ordered pools: M = D - max(0, running max(D - A)) over all the pool's events (rule 3)
    matched AS MATERIALIZED (
        SELECT x.wallet, x.asset, x.id, x.m, coalesce(lag(x.m) OVER (PARTITION BY x.wallet, x.asset ORDER BY x.n), 0)
                   AS m_prev
        FROM (SELECT y.*, y.d - greatest(0, max(y.d - y.a) OVER w) AS m
              FROM (SELECT e.*, sum(e.a_qty) OVER w AS a, sum(e.d_qty) OVER w AS d
                    FROM ev e
                    LEFT JOIN ordered o ON o.wallet = e.wallet AND o.asset = e.asset
                    WHERE coalesce(o.ordered, true)
                    WINDOW w AS (PARTITION BY e.wallet, e.asset ORDER BY e.n ROWS UNBOUNDED PRECEDING)) y
              WINDOW w AS (PARTITION BY y.wallet, y.asset ORDER BY y.n ROWS UNBOUNDED PRECEDING)) x
        WHERE x.is_disp = 1
    ),
    served AS (
        -- per threshold lot k: served_k = D - max(0, running max(D - A_k)) (nested lost-demand queues)
        SELECT x.wallet, x.asset, x.k_t, x.n, x.id, x.is_disp,
               x.d - greatest(0, max(x.d - x.a) OVER w) AS served
        FROM (
            SELECT t.wallet, t.asset, t.k AS k_t, e.n, e.id, e.is_disp,
                   sum(e.a_qty) OVER w AS a, sum(e.d_qty) OVER w AS d
            FROM lots t
            JOIN ev e ON e.wallet = t.wallet AND e.asset = t.asset AND (e.is_disp = 1 OR e.k <= t.k)
            WHERE NOT t.ordered
            WINDOW w AS (PARTITION BY t.wallet, t.asset, t.k ORDER BY e.n ROWS UNBOUNDED PRECEDING)
        ) x
        WINDOW w AS (PARTITION BY x.wallet, x.asset, x.k_t ORDER BY x.n ROWS UNBOUNDED PRECEDING)
    ),
    inc AS MATERIALIZED (
        -- what disposal j took from the lots with key <= k (inc), and lot k's consumption so far (c)
        SELECT s.*, s.served - coalesce(lag(s.served) OVER (PARTITION BY s.wallet, s.asset, s.k_t ORDER BY s.n), 0)
                        AS inc
        FROM served s
        WHERE s.is_disp = 1
    ),
    piece AS (
        SELECT i.*,
               coalesce(lag(i.inc) OVER (PARTITION BY i.wallet, i.asset, i.n ORDER BY i.k_t), 0) AS inc_prev,
               i.served - coalesce(lag(i.served) OVER (PARTITION BY i.wallet, i.asset, i.n ORDER BY i.k_t), 0) AS c
        FROM inc i
    ),
    last AS (
        -- what disposal j took from all the pool's lots (the largest threshold)
        SELECT i.wallet, i.asset, i.id, i.inc
        FROM inc i
        JOIN (SELECT l.wallet, l.asset, max(l.k) AS k FROM lots l WHERE NOT l.ordered GROUP BY l.wallet, l.asset) m
          ON m.wallet = i.wallet AND m.asset = i.asset AND m.k = i.k_t
    )
    -- a piece of a lot
    SELECT d.wallet, d.asset, d.id, d.kind, d.ref_id, l.lot_id, p.inc - p.inc_prev, l.acquired_at, d.at,
           fifo._fee_share(l.basis, l.quantity, p.c - (p.inc - p.inc_prev), p.c),
           r.proceeds, r.proceeds - fifo._fee_share(l.basis, l.quantity, p.c - (p.inc - p.inc_prev), p.c),
           false, d.kind <> 'transfer' AND d.value IS NULL, d.to_wallet
    FROM piece p
    JOIN lots l ON l.wallet = p.wallet AND l.asset = p.asset AND l.k = p.k_t
    JOIN disp d ON d.wallet = p.wallet AND d.asset = p.asset AND d.id = p.id
    CROSS JOIN LATERAL (
        SELECT CASE WHEN d.kind <> 'transfer' THEN fifo._fee_share(d.value, d.qty, p.inc_prev, p.inc) END AS proceeds
    ) r
    WHERE p.inc > p.inc_prev
    UNION ALL
    -- the unmatched (oversold) part of a disposal: no lot, no basis (rule 4)
    SELECT d.wallet, d.asset, d.id, d.kind, d.ref_id, NULL, d.qty - coalesce(x.inc, 0), NULL, d.at, NULL,
           CASE WHEN d.kind <> 'transfer' THEN fifo._fee_share(d.value, d.qty, coalesce(x.inc, 0), d.qty) END,
           NULL, true, d.kind <> 'transfer' AND d.value IS NULL, d.to_wallet
    FROM disp d
    JOIN ordered o ON o.wallet = d.wallet AND o.asset = d.asset AND NOT o.ordered
    LEFT JOIN last x ON x.wallet = d.wallet AND x.asset = d.asset AND x.id = d.id
    WHERE d.qty > coalesce(x.inc, 0)
    UNION ALL
    -- ordered pools: lot i owns [B_i - q_i, B_i), disposal j [M_(j-1), M_j); a piece is their overlap
    SELECT d.wallet, d.asset, d.id, d.kind, d.ref_id, l.lot_id, v.hi - v.lo, l.acquired_at, d.at,
           fifo._fee_share(l.basis, l.quantity, v.lo - (l.b - l.quantity), v.hi - (l.b - l.quantity)),
           r.proceeds,
           r.proceeds - fifo._fee_share(l.basis, l.quantity, v.lo - (l.b - l.quantity), v.hi - (l.b - l.quantity)),
           false, d.kind <> 'transfer' AND d.value IS NULL, d.to_wallet
    FROM matched m
    JOIN disp d ON d.wallet = m.wallet AND d.asset = m.asset AND d.id = m.id
    JOIN lots l ON l.wallet = m.wallet AND l.asset = m.asset AND l.ordered
                AND l.b - l.quantity < m.m AND l.b > m.m_prev
    CROSS JOIN LATERAL (SELECT greatest(l.b - l.quantity, m.m_prev) AS lo, least(l.b, m.m) AS hi) v
    CROSS JOIN LATERAL (
        SELECT CASE WHEN d.kind <> 'transfer'
                    THEN fifo._fee_share(d.value, d.qty, v.lo - m.m_prev, v.hi - m.m_prev) END AS proceeds
    ) r
    UNION ALL
    SELECT d.wallet, d.asset, d.id, d.kind, d.ref_id, NULL, d.qty - (m.m - m.m_prev), NULL, d.at, NULL,
           CASE WHEN d.kind <> 'transfer' THEN fifo._fee_share(d.value, d.qty, m.m - m.m_prev, d.qty) END,
           NULL, true, d.kind <> 'transfer' AND d.value IS NULL, d.to_wallet
    FROM matched m
    JOIN disp d ON d.wallet = m.wallet AND d.asset = m.asset AND d.id = m.id
    WHERE d.qty > m.m - m.m_prev;
    GET DIAGNOSTICS v_rows = ROW_COUNT;
    RETURN v_rows;
END;
$$;

-- fifo.asset_new_pieces: the lot pieces the transfers out of the last round
-- carry to their destination: quantity, basis share and the origin lot's key.
CREATE OR REPLACE VIEW fifo.asset_new_pieces AS
    SELECT a.ref_id AS transfer_id, a.to_wallet, a.asset,
           l.lot_id || '/' || a.ref_id AS lot_id, l.origin_order, l.origin_leg, l.path || '/' || a.ref_id AS path,
           l.acquired_at, a.quantity, a.cost_basis AS basis, a.disposed_at AS at
    FROM fifo.asset_allocations a
    JOIN fifo.asset_lots l ON l.wallet = a.wallet AND l.asset = a.asset AND l.lot_id = a.lot_id
    WHERE a.kind = 'transfer';
