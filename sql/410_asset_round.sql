-- The asset (tax) view, the matching: one round over every (wallet, asset) pool.
-- docs/engine.md ("The asset (tax) view") has the design.

-- fifo._asset_round(pooling, window, fiat): one round over the pools listed in
-- fifo.asset_work_pools, all at once (docs/engine.md, "FIFO by acquisition
-- among the units held"): rewrites those pools' rows of fifo.asset_allocations
-- from fifo.asset_lots (the trades' acquisitions plus the transfer pieces known
-- so far) and the disposals (legs, transfers out, transfer fees). The other
-- pools' rows stay. Returns the number of allocation rows written. One
-- INSERT ... SELECT, no loop.
--
-- A pool's lots, in key order, fall into blocks: a new block starts where a lot
-- arrived before the lot preceding it in key order. Within a block lots arrive in
-- key order, so what the disposals take from a block is a prefix of it: the pair
-- view's interval overlap. Across blocks, the nested lost-demand queue with one
-- threshold per block end. A pool whose lots arrive in key order (every pool
-- without a transfer in, and most with one) is one block: its thresholds are its
-- events, once. Cost: O(blocks x events) window rows per pool plus sorts.
CREATE OR REPLACE FUNCTION fifo._asset_round(p_pooling text, p_window interval, p_fiat text[])
RETURNS bigint
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
SET work_mem = '256MB'
-- every join below has an equality key (pool, block, position); the CTEs' row estimates are 1-3
-- rows, which made the planner nest loops over thousands of rows (18.5 s for 1,000 trades before);
-- hash joins do the same in milliseconds
SET enable_nestloop = off
SET enable_mergejoin = off   -- a merge join on the pool alone, with the positions as a filter, went quadratic
SET join_collapse_limit = 1  -- joins in the order written: each on its full key (the planner joined on the pool alone)
SET jit = off
AS $$
DECLARE
    v_rows bigint;
BEGIN
    DELETE FROM fifo.asset_allocations a
    USING fifo.asset_work_pools w
    WHERE a.wallet = w.wallet AND a.asset = w.asset;
    INSERT INTO fifo.asset_allocations (wallet, asset, disposal_id, kind, ref_id, lot_id, quantity, acquired_at,
                                        disposed_at, cost_basis, proceeds, gain, unmatched, unpriced, to_wallet)
    WITH disp AS MATERIALIZED (
        -- trade legs that dispose: phase 2 (after the acquisitions and transfers of their instant)
        SELECT g.wallet, g.asset, g.leg_id AS id, CASE WHEN g.leg = 'fee' THEN 'fee' ELSE 'trade' END AS kind,
               g.order_id AS ref_id, g.quantity AS qty, g.value, g.at, 2 AS phase, g.order_id AS seq,
               g.leg AS seq2, NULL::text AS to_wallet
        FROM fifo.asset_legs g
        JOIN fifo.asset_work_pools w ON w.wallet = g.wallet AND w.asset = g.asset
        WHERE g.direction = 'dispose'
        UNION ALL
        -- transfers out (wallet pooling only: under universal pooling both wallets are one pool; sql/415)
        SELECT t.from_account, t.asset, t.transfer_id || ':out', 'transfer', t.transfer_id, t.quantity, NULL,
               t.at, 1, t.transfer_id, 'a', t.to_account
        FROM fifo.transfers t
        JOIN fifo.asset_work_pools w ON w.wallet = t.from_account AND w.asset = t.asset
        WHERE fifo._asset_moves(p_pooling, t.at) AND NOT (t.asset = ANY (p_fiat))
        UNION ALL
        -- a transfer's fee: a disposal of the fee units at their fair market value, right after it
        SELECT w.wallet, t.asset, t.transfer_id || ':fee', 'transfer_fee', t.transfer_id, t.fee,
               t.fee * fifo._asset_price(t.asset, t.at, p_window), t.at, 1, t.transfer_id, 'b', NULL
        FROM fifo.transfers t
        JOIN fifo.asset_work_pools w
          ON w.wallet = CASE WHEN fifo._asset_moves(p_pooling, t.at) THEN t.from_account ELSE '*' END
         AND w.asset = t.asset
        WHERE t.fee > 0 AND NOT (t.asset = ANY (p_fiat))
    ),
    lots0 AS MATERIALIZED (
        -- the lots in key order (k: acquired_at, origin order, origin leg, path) and in arrival order (r;
        -- lots arriving at one position, with no disposal between them, in key order)
        SELECT l.*, row_number() OVER (PARTITION BY l.wallet, l.asset
                                       ORDER BY l.acquired_at, l.origin_order COLLATE "C", l.origin_leg,
                                                l.path COLLATE "C") AS k,
                    row_number() OVER (PARTITION BY l.wallet, l.asset
                                       ORDER BY l.arrived_at, l.arrival_phase, l.arrival_seq COLLATE "C",
                                                l.acquired_at, l.origin_order COLLATE "C", l.origin_leg,
                                                l.path COLLATE "C") AS r
        FROM fifo.asset_lots l
        JOIN fifo.asset_work_pools w ON w.wallet = l.wallet AND w.asset = l.asset
    ),
    lots AS MATERIALIZED (
        -- blocks (blk, from 1): a new one where a lot arrived before the one preceding it in key order;
        -- li: the lot's place in its block, bb: the block's cumulative quantity through it
        SELECT y.*, row_number() OVER (PARTITION BY y.wallet, y.asset, y.blk ORDER BY y.k) AS li,
               sum(y.quantity) OVER (PARTITION BY y.wallet, y.asset, y.blk ORDER BY y.k) AS bb
        FROM (SELECT x.*, 1 + sum(x.brk) OVER (PARTITION BY x.wallet, x.asset ORDER BY x.k) AS blk
              FROM (SELECT l.*, CASE WHEN l.r < lag(l.r) OVER (PARTITION BY l.wallet, l.asset ORDER BY l.k)
                                     THEN 1 ELSE 0 END AS brk
                    FROM lots0 l) x) y
    ),
    blocks AS MATERIALIZED (
        SELECT l.wallet, l.asset, l.blk, max(l.blk) OVER (PARTITION BY l.wallet, l.asset) AS last_blk
        FROM lots l GROUP BY l.wallet, l.asset, l.blk
    ),
    ev AS MATERIALIZED (
        -- every event of a pool, numbered in pool order: arrivals before disposals at one position
        SELECT e.*, row_number() OVER (PARTITION BY e.wallet, e.asset
                                       ORDER BY e.at, e.phase, e.seq COLLATE "C", e.is_disp,
                                                e.seq2 COLLATE "C", e.id COLLATE "C") AS n
        FROM (SELECT l.wallet, l.asset, l.lot_id AS id, l.arrived_at AS at, l.arrival_phase::integer AS phase,
                     l.arrival_seq AS seq, 0 AS is_disp, ''::text AS seq2, l.quantity AS a_qty,
                     0::numeric AS d_qty, l.blk
              FROM lots l
              UNION ALL
              SELECT d.wallet, d.asset, d.id, d.at, d.phase, d.seq, 1, d.seq2, 0, d.qty, NULL
              FROM disp d) e
    ),
    -- per block threshold b (the lots of blocks <= b): served_b = D - max(0, running max(D - A_b))
    -- (nested lost-demand queues; one block: rule 3's matched quantity)
    served AS MATERIALIZED (
        SELECT x.wallet, x.asset, x.b, x.last_blk, x.n, x.id, x.is_disp,
               x.d - greatest(0, max(x.d - x.a) OVER w) AS served
        FROM (
            SELECT t.wallet, t.asset, t.blk AS b, t.last_blk, e.n, e.id, e.is_disp,
                   sum(e.a_qty) OVER w AS a, sum(e.d_qty) OVER w AS d
            FROM blocks t
            JOIN ev e ON e.wallet = t.wallet AND e.asset = t.asset AND (e.is_disp = 1 OR e.blk <= t.blk)
            WINDOW w AS (PARTITION BY t.wallet, t.asset, t.blk ORDER BY e.n ROWS UNBOUNDED PRECEDING)
        ) x
        WINDOW w AS (PARTITION BY x.wallet, x.asset, x.b ORDER BY x.n ROWS UNBOUNDED PRECEDING)
    ),
    inc AS MATERIALIZED (
        -- what disposal j took from the lots of blocks <= b (inc)
        SELECT s.*, s.served - coalesce(lag(s.served) OVER (PARTITION BY s.wallet, s.asset, s.b ORDER BY s.n), 0)
                        AS inc
        FROM served s
        WHERE s.is_disp = 1
    ),
    take AS MATERIALIZED (
        -- what disposal j took from block b: its offsets [inc_prev, inc); c: block b's consumption through j
        SELECT t.*, row_number() OVER (PARTITION BY t.wallet, t.asset, t.b ORDER BY t.n) AS di
        FROM (SELECT i.*, coalesce(lag(i.inc) OVER p, 0) AS inc_prev,
                     i.served - coalesce(lag(i.served) OVER p, 0) AS c
              FROM inc i
              WINDOW p AS (PARTITION BY i.wallet, i.asset, i.n ORDER BY i.b)) t
        WHERE t.inc > t.inc_prev
    ),
    seg AS (
        -- block b's axis: lot li owns [bb - q, bb), disposal di [c - (inc - inc_prev), c); the ends, sorted
        -- once, cut it into segments, each the overlap of one lot (the first lot end at or after the
        -- segment's end) and one disposal (likewise)
        SELECT p.wallet, p.asset, p.b, p.coord, coalesce(lag(p.coord) OVER w, 0) AS lo,
               (sum(p.nl) OVER w - p.nl + 1)::bigint AS li, (sum(p.nd) OVER w - p.nd + 1)::bigint AS di
        FROM (SELECT q.wallet, q.asset, q.b, q.coord, sum(q.nl)::integer AS nl, sum(q.nd)::integer AS nd
              FROM (SELECT l.wallet, l.asset, l.blk AS b, l.bb AS coord, 1 AS nl, 0 AS nd FROM lots l
                    UNION ALL
                    SELECT t.wallet, t.asset, t.b, t.c, 0, 1 FROM take t) q
              GROUP BY q.wallet, q.asset, q.b, q.coord) p
        WINDOW w AS (PARTITION BY p.wallet, p.asset, p.b ORDER BY p.coord ROWS UNBOUNDED PRECEDING)
    ),
    piece AS MATERIALIZED (
        SELECT s.wallet, s.asset, s.coord - s.lo AS q, l.lot_id, l.acquired_at, l.basis, l.quantity AS lot_qty,
               s.lo - (l.bb - l.quantity) AS l_from,
               t.id, t.inc_prev + (s.lo - (t.c - (t.inc - t.inc_prev))) AS d_from
        FROM seg s
        JOIN lots l ON l.wallet = s.wallet AND l.asset = s.asset AND l.blk = s.b AND l.li = s.li
        JOIN take t ON t.wallet = s.wallet AND t.asset = s.asset AND t.b = s.b AND t.di = s.di
        WHERE s.coord > s.lo
    )
    -- a piece of a lot
    SELECT d.wallet, d.asset, d.id, d.kind, d.ref_id, p.lot_id, p.q, p.acquired_at, d.at, r.basis, r.proceeds,
           r.proceeds - r.basis, false, d.kind <> 'transfer' AND d.value IS NULL, d.to_wallet
    FROM piece p
    JOIN disp d ON d.wallet = p.wallet AND d.asset = p.asset AND d.id = p.id
    CROSS JOIN LATERAL (
        SELECT fifo._fee_share(p.basis, p.lot_qty, p.l_from, p.l_from + p.q) AS basis,
               CASE WHEN d.kind <> 'transfer' THEN fifo._fee_share(d.value, d.qty, p.d_from, p.d_from + p.q) END
                   AS proceeds
        OFFSET 0
    ) r
    UNION ALL
    -- the unmatched (oversold) part of a disposal: what the last block's threshold did not serve (rule 4)
    SELECT d.wallet, d.asset, d.id, d.kind, d.ref_id, NULL, d.qty - coalesce(x.inc, 0), NULL, d.at, NULL,
           CASE WHEN d.kind <> 'transfer' THEN fifo._fee_share(d.value, d.qty, coalesce(x.inc, 0), d.qty) END,
           NULL, true, d.kind <> 'transfer' AND d.value IS NULL, d.to_wallet
    FROM disp d
    LEFT JOIN inc x ON x.wallet = d.wallet AND x.asset = d.asset AND x.id = d.id AND x.b = x.last_blk
    WHERE d.qty > coalesce(x.inc, 0);
    GET DIAGNOSTICS v_rows = ROW_COUNT;
    RETURN v_rows;
END;
$$;

-- fifo.asset_new_pieces: the lot pieces the transfers out of the last round
-- carry to their destination: quantity, basis share and the origin lot's key;
-- from_wallet is the source pool's wallet.
CREATE OR REPLACE VIEW fifo.asset_new_pieces AS
    SELECT a.ref_id AS transfer_id, a.to_wallet, a.asset,
           l.lot_id || '/' || a.ref_id AS lot_id, l.origin_order, l.origin_leg, l.path || '/' || a.ref_id AS path,
           l.acquired_at, a.quantity, a.cost_basis AS basis, a.disposed_at AS at, a.wallet AS from_wallet
    FROM fifo.asset_allocations a
    JOIN fifo.asset_lots l ON l.wallet = a.wallet AND l.asset = a.asset AND l.lot_id = a.lot_id
    WHERE a.kind = 'transfer';
