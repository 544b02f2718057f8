-- YARDSTICK, NOT THE ENGINE. A straightforward set-based FIFO, written the way one
-- would write it first: cumulative sums per pool (PARTITION BY), one sweep over
-- the merged interval ends, a join back to the buys and the sells by ordinal, into
-- unlogged tables with no indexes. `fifo-db bench` runs it on the same data in the
-- same run as the engine and prints the engine's figures as ratios to it, because
-- absolute times on a shared machine swing 2x. It implements docs/rules.md rules 2-5
-- (matched quantity through the running minimum, unmatched rows, fee shares through
-- fifo._fee_share) and the bench checks, once per data set, that it writes exactly
-- the engine's rows. It has none of the engine's duties: no runs, locks, versions,
-- suffix recompute, atomic replacement, or readers to keep serving meanwhile.
-- {pools} is a filter on trade_records t (TRUE, or t.symbol = '...'), pasted in by
-- fifo_db/bench.py, which also drops its tables before each run and times all five
-- statements. (In one statement the planner misestimates the joins on CTEs and picks
-- nested loops, or merge joins on the pool alone that compare every segment with every
-- sell of its pool: minutes for 100,000 trades. Hence the tables and the ANALYZEs.)

-- 1. every event with its interval [lo, hi) on the buy-quantity axis and its ordinal
CREATE UNLOGGED TABLE bench_naive_events AS
SELECT e.*, CASE WHEN e.side = 'buy' THEN e.b - e.size ELSE coalesce(lag(e.m) OVER w, 0) END AS lo,
       CASE WHEN e.side = 'buy' THEN e.b ELSE e.m END AS hi,
       row_number() OVER (PARTITION BY e.account, e.symbol, e.side
                          ORDER BY e.order_time, e.order_id COLLATE "C") AS ord
FROM (SELECT e.*, e.s + least(0, min(e.b - e.s) OVER w) AS m    -- matched M = S + min(0, running min(B - S))
      FROM (SELECT t.account, t.symbol, t.order_id, t.side, t.size, t.price, t.total_fees, t.order_time,
                   sum(CASE WHEN t.side = 'buy' THEN t.size ELSE 0 END) OVER w AS b,   -- bought B
                   sum(CASE WHEN t.side = 'sell' THEN t.size ELSE 0 END) OVER w AS s   -- sold S
            FROM trade_records t WHERE {pools}
            WINDOW w AS (PARTITION BY t.account, t.symbol ORDER BY t.order_time, t.side, t.order_id COLLATE "C"
                         ROWS UNBOUNDED PRECEDING)) e
      WINDOW w AS (PARTITION BY e.account, e.symbol ORDER BY e.order_time, e.side, e.order_id COLLATE "C"
                   ROWS UNBOUNDED PRECEDING)) e
WINDOW w AS (PARTITION BY e.account, e.symbol ORDER BY e.order_time, e.side, e.order_id COLLATE "C");

ANALYZE bench_naive_events;

-- 2. the sweep: consecutive interval ends bound a segment; its lot and its sell are the
--    first ones ending at or after it (their ordinals)
CREATE UNLOGGED TABLE bench_naive_segments AS
SELECT p.account, p.symbol, coalesce(lag(p.hi) OVER w, 0) AS lo, p.hi,
       (sum(p.nb) OVER w - p.nb + 1)::bigint AS buy_ord, (sum(p.ns) OVER w - p.ns + 1)::bigint AS sell_ord
FROM (SELECT account, symbol, hi, count(*) FILTER (WHERE side = 'buy') AS nb,
             count(*) FILTER (WHERE side = 'sell') AS ns
      FROM bench_naive_events GROUP BY account, symbol, hi) p
WINDOW w AS (PARTITION BY p.account, p.symbol ORDER BY p.hi ROWS UNBOUNDED PRECEDING);

ANALYZE bench_naive_segments;

-- 3. the join back by ordinal, plus rule 4's unmatched rows
CREATE UNLOGGED TABLE bench_naive AS
SELECT a.*, a.allocated_size * a.buy_price + a.buy_fees AS cost_basis,
       a.allocated_size * a.sell_price - a.sell_fees AS sale_proceeds,
       (a.allocated_size * a.sell_price - a.sell_fees) - (a.allocated_size * a.buy_price + a.buy_fees) AS pnl_amount
FROM (SELECT s.account, s.symbol, s.order_id AS sell_trade_id, b.order_id AS buy_trade_id,
             g.hi - g.lo AS allocated_size, b.price AS buy_price, s.price AS sell_price,
             fifo._fee_share(b.total_fees, b.size, g.lo - b.lo, g.hi - b.lo) AS buy_fees,
             fifo._fee_share(s.total_fees, s.size, g.lo - s.lo, g.hi - s.lo) AS sell_fees,
             b.order_time AS buy_time, s.order_time AS sell_time
      FROM bench_naive_segments g
      JOIN bench_naive_events b ON (b.account, b.symbol, b.side, b.ord) = (g.account, g.symbol, 'buy', g.buy_ord)
      JOIN bench_naive_events s ON (s.account, s.symbol, s.side, s.ord) = (g.account, g.symbol, 'sell', g.sell_ord)
      WHERE g.hi > g.lo
      UNION ALL
      SELECT s.account, s.symbol, s.order_id, NULL, s.size - (s.hi - s.lo), NULL, s.price, NULL,
             fifo._fee_share(s.total_fees, s.size, s.hi - s.lo, s.size), NULL, s.order_time
      FROM bench_naive_events s WHERE s.side = 'sell' AND s.hi - s.lo < s.size) a;
