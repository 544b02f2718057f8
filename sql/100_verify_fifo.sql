-- fifo._pending_pools([symbol]): the pools whose trades changed since they
-- were last computed (a change in fifo.pool_changes not yet processed): their
-- allocations may lag their trades. verify_fifo reports them as 'stale', the
-- reports warn about them (fifo_report_context.pending): one definition.
-- Inlined into both; its body only compares text with pg_catalog.=.
CREATE OR REPLACE FUNCTION fifo._pending_pools(p_symbol text DEFAULT NULL)
RETURNS TABLE (symbol text, account text)
LANGUAGE sql STABLE
AS $$
    SELECT DISTINCT pc.symbol, pc.account
    FROM fifo.pool_changes pc
    WHERE pc.processed_at IS NULL AND (p_symbol IS NULL OR pc.symbol OPERATOR(pg_catalog.=) p_symbol)
$$;

-- fifo._verify_pools(version, symbols[], accounts[]): verify_fifo's findings
-- about the given pools (all of them computed for `version`, current, every
-- trade a valid fill: verify_fifo's `checked`): not_fifo, sell_size and the
-- invariants that name the kind of damage. Reads only, per pool: pools given
-- to separate calls get the findings one call over them all would give.
-- PARALLEL SAFE (it only reads; a SET clause is popped by the worker itself),
-- so that verify_fifo may run calls of it in parallel workers; COST, as
-- fifo._allocation_rows': a call recomputes whole pools.
CREATE OR REPLACE FUNCTION fifo._verify_pools(p_version integer, p_symbols text[], p_accounts text[])
RETURNS TABLE (check_name text, symbol text, account text, trade_id text, detail text)
LANGUAGE plpgsql STABLE
PARALLEL SAFE
COST 1000000
SET search_path = pg_catalog, pg_temp
SET work_mem = '256MB'
SET enable_nestloop = off
SET enable_mergejoin = off
SET join_collapse_limit = 1
SET plan_cache_mode = force_custom_plan   -- planned with the real symbols: one pool reads its index range
SET jit = off
AS $$
#variable_conflict use_column
BEGIN
    RETURN QUERY
    WITH checked AS MATERIALIZED (
        SELECT DISTINCT c.symbol, c.account FROM unnest(p_symbols, p_accounts) AS c(symbol, account)
    ),
    -- every event in matching order (rule 2) with its ordinal among its side and its
    -- interval [lo, hi) on the bought-quantity axis: a buy's [B - size, B); a sell's
    -- matched part [M before it, M), M = S + min(0, running min(B - S)) (rule 3)
    ev AS MATERIALIZED (
        SELECT e.* FROM (
        SELECT e.account, e.symbol, e.order_id, e.side, e.size, e.price, e.total_fees, e.order_time,
               CASE WHEN e.side = 'buy' THEN e.nb ELSE e.ns END AS ord,
               CASE WHEN e.side = 'buy' THEN e.b - e.size ELSE coalesce(lag(e.m) OVER w, 0) END AS lo,
               CASE WHEN e.side = 'buy' THEN e.b ELSE e.m END AS hi
        FROM (
            SELECT e.*, e.s + least(0, min(e.b - e.s) OVER w) AS m
            FROM (
                -- (symbol, account, order_time, side, order_id): trade_records' pool index
                -- delivers this order, so the windows need no sort; other pools are
                -- dropped after them
                SELECT t.account, t.symbol, t.order_id, t.side, t.size, t.price, t.total_fees, t.order_time,
                       sum(CASE WHEN t.side = 'buy' THEN t.size ELSE 0 END) OVER w AS b,
                       sum(CASE WHEN t.side = 'sell' THEN t.size ELSE 0 END) OVER w AS s,
                       count(*) FILTER (WHERE t.side = 'buy') OVER w AS nb,
                       count(*) FILTER (WHERE t.side = 'sell') OVER w AS ns
                FROM fifo.trades t
                WHERE t.symbol = ANY (p_symbols)
                WINDOW w AS (PARTITION BY t.symbol, t.account
                             ORDER BY t.order_time, t.side, t.order_id COLLATE "C" ROWS UNBOUNDED PRECEDING)
            ) e
            WINDOW w AS (PARTITION BY e.symbol, e.account
                         ORDER BY e.order_time, e.side, e.order_id COLLATE "C" ROWS UNBOUNDED PRECEDING)
        ) e
        WINDOW w AS (PARTITION BY e.symbol, e.account
                     ORDER BY e.order_time, e.side, e.order_id COLLATE "C" ROWS UNBOUNDED PRECEDING)
        OFFSET 0) e
        WHERE EXISTS (SELECT 1 FROM checked c WHERE c.symbol = e.symbol AND c.account = e.account)
    ),
    -- the sweep: consecutive distinct interval ends bound a segment; its lot and its
    -- sell are the first buy and the first sell ending at or after it (ordinals)
    seg AS (
        SELECT p.account, p.symbol, coalesce(lag(p.hi) OVER w, 0) AS lo, p.hi,
               (sum(p.nb) OVER w - p.nb + 1)::bigint AS buy_ord,   -- bigint like ev.ord: a hash key
               (sum(p.ns) OVER w - p.ns + 1)::bigint AS sell_ord
        FROM (SELECT e.account, e.symbol, e.hi,
                     count(*) FILTER (WHERE e.side = 'buy') AS nb, count(*) FILTER (WHERE e.side = 'sell') AS ns
              FROM ev e GROUP BY e.account, e.symbol, e.hi) p
        WINDOW w AS (PARTITION BY p.account, p.symbol ORDER BY p.hi ROWS UNBOUNDED PRECEDING)
    ),
    -- the expected rows: a segment inside a lot and a sell, plus each sell's part beyond
    -- its matched interval (rule 4); fee shares by offsets inside the trade (rule 5)
    want AS (
        SELECT x.*,
               x.q * x.buy_price + x.buy_fees AS cost_basis,
               x.q * x.sell_price - x.sell_fees AS sale_proceeds,
               (x.q * x.sell_price - x.sell_fees) - (x.q * x.buy_price + x.buy_fees) AS pnl_amount
        FROM (
            SELECT g.account, g.symbol, s.order_id AS sell_trade_id, b.order_id AS buy_trade_id,
                   g.hi - g.lo AS q, b.price AS buy_price, s.price AS sell_price,
                   fifo._fee_share(b.total_fees, b.size, g.lo - b.lo, g.hi - b.lo) AS buy_fees,
                   fifo._fee_share(s.total_fees, s.size, g.lo - s.lo, g.hi - s.lo) AS sell_fees,
                   b.order_time AS buy_time, s.order_time AS sell_time
            FROM seg g
            JOIN ev b ON b.account = g.account AND b.symbol = g.symbol AND b.side = 'buy' AND b.ord = g.buy_ord
            JOIN ev s ON s.account = g.account AND s.symbol = g.symbol AND s.side = 'sell' AND s.ord = g.sell_ord
            WHERE g.hi > g.lo
            UNION ALL
            SELECT s.account, s.symbol, s.order_id, NULL, s.size - (s.hi - s.lo), NULL, s.price, NULL,
                   fifo._fee_share(s.total_fees, s.size, s.hi - s.lo, s.size), NULL, s.order_time
            FROM ev s
            WHERE s.side = 'sell' AND s.hi - s.lo < s.size
        ) x
    ),
    have AS MATERIALIZED (
        SELECT a.id, a.account, a.symbol, a.sell_trade_id, a.buy_trade_id, a.allocated_size AS q,
               a.buy_price, a.sell_price, a.buy_fees, a.sell_fees, a.cost_basis, a.sale_proceeds, a.pnl_amount,
               a.buy_time, a.sell_time, a.unmatched
        FROM fifo.allocations a
        JOIN checked c ON c.symbol = a.symbol AND c.account = a.account
        WHERE a.version = p_version AND a.symbol = ANY (p_symbols)
    ),
    per_sell AS MATERIALIZED (
        SELECT h.symbol, h.account, h.sell_trade_id, sum(h.q) AS q, sum(h.sell_fees) AS fees
        FROM have h GROUP BY h.symbol, h.account, h.sell_trade_id
    ),
    -- every allocation equals FIFO over the current trades (rules 2-5), every column
    diff AS MATERIALIZED (
    SELECT 'not_fifo'::text AS check_name, coalesce(w.symbol, h.symbol) AS symbol, coalesce(w.account, h.account) AS account,
           coalesce(w.sell_trade_id, h.sell_trade_id) AS trade_id,
           CASE WHEN h.id IS NULL
                THEN format('missing allocation of sell %s to lot %s: expected %s at %s, pnl %s',
                            w.sell_trade_id, coalesce(w.buy_trade_id, '(unmatched)'), trim_scale(w.q),
                            coalesce(trim_scale(w.buy_price)::text, '-'),
                            coalesce(trim_scale(w.pnl_amount)::text, '-'))
                WHEN w.sell_trade_id IS NULL
                THEN format('unexpected allocation %s of sell %s to lot %s: %s, pnl %s; FIFO gives this sell no such row',
                            h.id, h.sell_trade_id, coalesce(h.buy_trade_id, '(unmatched)'), trim_scale(h.q),
                            coalesce(trim_scale(h.pnl_amount)::text, '-'))
                ELSE format('allocation %s of sell %s to lot %s: %s', h.id, h.sell_trade_id,
                            coalesce(h.buy_trade_id, '(unmatched)'), concat_ws('; ',
                    CASE WHEN h.q IS DISTINCT FROM w.q
                         THEN format('allocated_size %s, expected %s', h.q, w.q) END,
                    CASE WHEN h.buy_price IS DISTINCT FROM w.buy_price
                         THEN format('buy_price %s, expected %s', h.buy_price, w.buy_price) END,
                    CASE WHEN h.sell_price IS DISTINCT FROM w.sell_price
                         THEN format('sell_price %s, expected %s', h.sell_price, w.sell_price) END,
                    CASE WHEN h.buy_fees IS DISTINCT FROM w.buy_fees
                         THEN format('buy_fees %s, expected %s', h.buy_fees, w.buy_fees) END,
                    CASE WHEN h.sell_fees IS DISTINCT FROM w.sell_fees
                         THEN format('sell_fees %s, expected %s', h.sell_fees, w.sell_fees) END,
                    CASE WHEN h.cost_basis IS DISTINCT FROM w.cost_basis
                         THEN format('cost_basis %s, expected %s', h.cost_basis, w.cost_basis) END,
                    CASE WHEN h.sale_proceeds IS DISTINCT FROM w.sale_proceeds
                         THEN format('sale_proceeds %s, expected %s', h.sale_proceeds, w.sale_proceeds) END,
                    CASE WHEN h.pnl_amount IS DISTINCT FROM w.pnl_amount
                         THEN format('pnl_amount %s, expected %s', h.pnl_amount, w.pnl_amount) END,
                    CASE WHEN h.buy_time IS DISTINCT FROM w.buy_time
                         THEN format('buy_time %s, expected %s', h.buy_time, w.buy_time) END,
                    CASE WHEN h.sell_time IS DISTINCT FROM w.sell_time
                         THEN format('sell_time %s, expected %s', h.sell_time, w.sell_time) END,
                    CASE WHEN h.unmatched IS DISTINCT FROM (w.buy_trade_id IS NULL)
                         THEN format('unmatched %s, expected %s', h.unmatched, w.buy_trade_id IS NULL) END))
           END AS detail
    FROM want w
    FULL JOIN have h
           ON h.symbol = w.symbol AND h.account = w.account AND h.sell_trade_id = w.sell_trade_id
          AND (h.buy_trade_id IS NULL) = (w.buy_trade_id IS NULL)
          AND coalesce(h.buy_trade_id, '') = coalesce(w.buy_trade_id, '')
    WHERE h.id IS NULL OR w.sell_trade_id IS NULL
       OR h.q IS DISTINCT FROM w.q OR h.buy_price IS DISTINCT FROM w.buy_price
       OR h.sell_price IS DISTINCT FROM w.sell_price OR h.buy_fees IS DISTINCT FROM w.buy_fees
       OR h.sell_fees IS DISTINCT FROM w.sell_fees OR h.cost_basis IS DISTINCT FROM w.cost_basis
       OR h.sale_proceeds IS DISTINCT FROM w.sale_proceeds OR h.pnl_amount IS DISTINCT FROM w.pnl_amount
       OR h.buy_time IS DISTINCT FROM w.buy_time OR h.sell_time IS DISTINCT FROM w.sell_time
       OR h.unmatched IS DISTINCT FROM (w.buy_trade_id IS NULL)
    ),
    -- every sell is allocated exactly its size (this also catches a row stored twice,
    -- which the comparison above pairs with its expected row twice)
    sizes AS MATERIALIZED (
        SELECT 'sell_size'::text AS check_name, t.symbol, t.account, t.order_id AS trade_id,
               format('size %s, allocated %s', t.size, coalesce(ps.q, 0)) AS detail
        FROM ev t LEFT JOIN per_sell ps
               ON ps.symbol = t.symbol AND ps.account = t.account AND ps.sell_trade_id = t.order_id
        WHERE t.side = 'sell' AND ps.q IS DISTINCT FROM t.size
    ),
    -- A pool whose rows all equal the expected ones, each once, satisfies every
    -- invariant below (the expected rows do), so they run only on the pools
    -- found wrong, to say what kind of damage it is: a clean run pays nothing.
    flagged AS MATERIALIZED (
        SELECT d.symbol, d.account FROM diff d
        UNION
        SELECT z.symbol, z.account FROM sizes z
    ),
    fh AS (
        SELECT h.* FROM have h
        WHERE EXISTS (SELECT 1 FROM flagged f WHERE f.symbol = h.symbol AND f.account = h.account)
    ),
    fe AS MATERIALIZED (
        SELECT e.* FROM ev e
        WHERE EXISTS (SELECT 1 FROM flagged f WHERE f.symbol = e.symbol AND f.account = e.account)
    ),
    per_buy AS (
        SELECT h.symbol, h.account, h.buy_trade_id, sum(h.q) AS q, sum(h.buy_fees) AS fees
        FROM fh h WHERE h.buy_trade_id IS NOT NULL GROUP BY h.symbol, h.account, h.buy_trade_id
    )
    SELECT * FROM diff
    UNION ALL
    SELECT * FROM sizes
    -- a sell's fee shares add up to its fee
    UNION ALL
    SELECT 'sell_fees', t.symbol, t.account, t.order_id,
           format('total_fees %s, fee shares add up to %s', t.total_fees, ps.fees)
    FROM fe t JOIN per_sell ps ON ps.symbol = t.symbol AND ps.account = t.account AND ps.sell_trade_id = t.order_id
    WHERE t.side = 'sell' AND ps.fees <> t.total_fees
    -- no buy is over-allocated; its fee shares add up to the share of what was used
    UNION ALL
    SELECT 'buy_over_allocated', t.symbol, t.account, t.order_id,
           format('size %s, allocated %s', t.size, pb.q)
    FROM fe t JOIN per_buy pb ON pb.symbol = t.symbol AND pb.account = t.account AND pb.buy_trade_id = t.order_id
    WHERE t.side = 'buy' AND pb.q > t.size
    UNION ALL
    SELECT 'buy_fees', t.symbol, t.account, t.order_id,
           format('fee share of the %s used should be %s, rows add up to %s',
                  pb.q, fifo._fee_point(t.total_fees, t.size, pb.q), pb.fees)
    FROM fe t JOIN per_buy pb ON pb.symbol = t.symbol AND pb.account = t.account AND pb.buy_trade_id = t.order_id
    WHERE t.side = 'buy' AND pb.fees <> fifo._fee_point(t.total_fees, t.size, pb.q)
    -- each row points at real trades of its own pool, sides right, prices and times copied
    UNION ALL
    SELECT 'allocation_trades', h.symbol, h.account, h.sell_trade_id,
           format('allocation %s: buy %s / sell %s missing, in another pool, or with other prices or times',
                  h.id, coalesce(h.buy_trade_id, '(unmatched)'), h.sell_trade_id)
    FROM fh h
    LEFT JOIN fe s ON s.symbol = h.symbol AND s.account = h.account AND s.order_id = h.sell_trade_id
    LEFT JOIN fe b ON b.symbol = h.symbol AND b.account = h.account AND b.order_id = h.buy_trade_id
    WHERE s.order_id IS NULL OR s.side <> 'sell' OR s.price <> h.sell_price OR s.order_time <> h.sell_time
       OR (h.buy_trade_id IS NOT NULL AND (
              b.order_id IS NULL OR b.side <> 'buy' OR b.price <> h.buy_price OR b.order_time <> h.buy_time))
    -- a sell is never matched to a later buy (rule 2 order)
    UNION ALL
    SELECT 'later_buy', h.symbol, h.account, h.sell_trade_id,
           format('matched to buy %s at %s, after the sell at %s', h.buy_trade_id, h.buy_time, h.sell_time)
    FROM fh h WHERE h.buy_time > h.sell_time
    -- money: cost = q*buy_price + buy fee share, proceeds = q*sell_price - sell fee share
    UNION ALL
    SELECT 'money', h.symbol, h.account, h.sell_trade_id,
           format('allocation %s: cost %s, proceeds %s, pnl %s do not follow from its size, prices and fees',
                  h.id, h.cost_basis, h.sale_proceeds, h.pnl_amount)
    FROM fh h
    WHERE h.sale_proceeds <> h.q * h.sell_price - h.sell_fees
       OR (h.buy_trade_id IS NOT NULL AND (
              h.cost_basis <> h.q * h.buy_price + h.buy_fees
              OR h.pnl_amount <> h.sale_proceeds - h.cost_basis));
END;
$$;

-- verify_fifo([symbol [, version]]): one row per finding, none when clean.
--
-- For every pool computed for the version (fifo.pool_state) and current (no
-- pending change, no stale mark), it recomputes the FIFO allocations of the
-- pool's current trades from scratch and compares them, every column, with
-- the stored rows: a missing, unexpected or different row is a 'not_fifo'
-- finding naming the pool, the sell, the lot and what differs. The
-- recomputation is written independently of the engine (sql/030): not the
-- engine's sold axis, carried lots or running minimum over packed rows, but
-- the yardstick's formulation (bench/naive_fifo.sql): intervals on the
-- bought-quantity axis, a sweep over their merged ends, and a join back to
-- the buys and sells by ordinal. Only fee shares come from the same rule
-- function (fifo._fee_share, docs/rules.md rule 5). Beside it, the
-- invariants of docs/rules.md name the kind of damage (sell_size, sell_fees,
-- buy_over_allocated, buy_fees, allocation_trades, later_buy, money).
-- Pools with pending changes or a stale mark are reported once as 'stale'
-- (their rows may lag their trades), allocations of pools not computed as
-- 'orphan_allocations', a trade the source cannot give as a fill as
-- 'unmatchable'.
--
-- Every join is an equality on (account, symbol, ...) and set-based: hash
-- joins and sorts, linear-ish in the trades and rows checked (docs/engine.md,
-- "Verify"). The planner cannot estimate a CTE's rows (it guessed 100 for
-- 100,000 events) and took nested loops, or a merge join on the pool alone
-- with the ordinals as a filter: verify went quadratic. So nested loops and
-- merge joins are off and joins run in the order written (join_collapse_limit):
-- every join is a hash join on its full key.
--
-- The recomputation and the comparison are per pool, so they run in
-- fifo._verify_pools over the pools checked; over many pools (20,000 trades
-- or more), as four calls over quarters of the pool list joined by UNION ALL,
-- which PostgreSQL's parallel query gives to two parallel workers (a Parallel
-- Append, like the engine's fifo._allocation_rows_split): 1M trades, 24.4 s
-- in one process before (docs/benchmarks.md, issue 16's fourth session).
-- Parallel workers run with this function's role, security context, settings
-- and snapshot, only read, and end with the statement: nothing is left in the
-- caller's session (docs/security.md).
CREATE OR REPLACE FUNCTION public.verify_fifo(p_symbol text DEFAULT NULL, p_version integer DEFAULT NULL)
RETURNS TABLE (check_name text, symbol text, account text, trade_id text, detail text)
LANGUAGE plpgsql STABLE
SECURITY DEFINER   -- readers check P&L without any right on fifo-db's internal tables
SET search_path = pg_catalog, pg_temp
SET work_mem = '256MB'
SET enable_nestloop = off
SET enable_mergejoin = off
SET join_collapse_limit = 1
SET plan_cache_mode = force_custom_plan   -- planned with the real symbol: one pool reads its index range
SET jit = off
-- the leader gathers the workers' findings; running a call itself as well would leave the
-- workers' rows waiting (a SET clause: restored on return)
SET parallel_leader_participation = off
AS $$
#variable_conflict use_column
DECLARE
    v_version integer := coalesce(p_version, fifo._current_version());
    v_syms text[];
    v_accs text[];
    n integer;
BEGIN
    -- the pools checked: computed, current, every trade a valid fill
    SELECT coalesce(array_agg(c.symbol ORDER BY c.symbol, c.account), '{}'),
           coalesce(array_agg(c.account ORDER BY c.symbol, c.account), '{}')
    INTO v_syms, v_accs
    FROM fifo.pool_state c
    WHERE c.version = v_version AND (p_symbol IS NULL OR c.symbol = p_symbol)
      AND c.stale_from IS NULL
      AND NOT EXISTS (SELECT 1 FROM fifo._pending_pools(p_symbol) p WHERE p.symbol = c.symbol AND p.account = c.account)
      AND NOT EXISTS (SELECT 1 FROM fifo.trades t
                      WHERE t.symbol = c.symbol AND t.account = c.account AND t.problem IS NOT NULL);
    n := cardinality(v_syms);
    IF n >= 4 AND (SELECT count(*) FROM (SELECT 1 FROM fifo.trades t LIMIT 20000) x) >= 20000 THEN
        -- many pools, enough trades to repay starting parallel workers (a few ms): four calls,
        -- each a quarter of the pools (sorted: a symbol's pools are mostly in one call)
        RETURN QUERY
        SELECT * FROM fifo._verify_pools(v_version, v_syms[1:n / 4], v_accs[1:n / 4])
        UNION ALL
        SELECT * FROM fifo._verify_pools(v_version, v_syms[n / 4 + 1:n / 2], v_accs[n / 4 + 1:n / 2])
        UNION ALL
        SELECT * FROM fifo._verify_pools(v_version, v_syms[n / 2 + 1:3 * n / 4], v_accs[n / 2 + 1:3 * n / 4])
        UNION ALL
        SELECT * FROM fifo._verify_pools(v_version, v_syms[3 * n / 4 + 1:n], v_accs[3 * n / 4 + 1:n]);
    ELSIF n > 0 THEN
        RETURN QUERY SELECT * FROM fifo._verify_pools(v_version, v_syms, v_accs);
    END IF;
    RETURN QUERY
    WITH pending AS MATERIALIZED (
        -- trades changed since computed: the same definition the reports warn with (sql/200)
        SELECT pp.symbol, pp.account FROM fifo._pending_pools(p_symbol) pp
    ),
    computed AS MATERIALIZED (
        SELECT ps.symbol, ps.account, ps.stale_from
        FROM fifo.pool_state ps
        WHERE ps.version = v_version AND (p_symbol IS NULL OR ps.symbol = p_symbol)
    ),
    unmatchable AS MATERIALIZED (
        SELECT t.symbol, t.account, t.order_id, t.problem
        FROM fifo.trades t JOIN computed c ON c.symbol = t.symbol AND c.account = t.account
        WHERE t.problem IS NOT NULL AND (p_symbol IS NULL OR t.symbol = p_symbol)
    )
    -- a trade the source cannot give as a fill: its pool cannot be computed
    SELECT 'unmatchable', u.symbol, u.account, u.order_id,
           format('cannot be matched: %s; correct the row in the trades table', u.problem)
    FROM unmatchable u
    -- allocations of pools that are not computed at all (one row per pool)
    UNION ALL
    SELECT 'orphan_allocations', o.symbol, o.account, NULL::text,
           'allocations exist for a pool that is not marked computed'
    FROM (SELECT DISTINCT fa.symbol, fa.account FROM fifo.allocations fa
          WHERE fa.version = v_version AND (p_symbol IS NULL OR fa.symbol = p_symbol)) o
    WHERE NOT EXISTS (SELECT 1 FROM computed c WHERE c.symbol = o.symbol AND c.account = o.account)
    -- pools whose trades changed since they were computed
    UNION ALL
    SELECT 'stale', p.symbol, p.account, NULL::text,
           'trades changed since the last computation; run compute_fifo_incremental()'
    FROM pending p
    UNION ALL
    SELECT 'stale', c.symbol, c.account, NULL::text,
           format('another version consumed changes from %s on; run compute_fifo_incremental(%s)',
                  c.stale_from, v_version)
    FROM computed c
    WHERE c.stale_from IS NOT NULL;
    IF p_symbol IS NULL THEN
        -- the asset (tax) view: staleness and internal consistency (sql/450), once it has been computed
        RETURN QUERY SELECT * FROM fifo._verify_assets();
    END IF;
END;
$$;
COMMENT ON FUNCTION public.verify_fifo(text, integer) IS
    'Recompute FIFO over the current trades of every computed, current pool and compare every allocation '
    'exactly (not_fifo), plus the invariants; one row per finding, none when clean.';

-- fifo_computed_pools([symbol [, version]]): the pools computed for a
-- version (default the current one), with that version: what `fifo-db
-- verify` recomputes with its reference FIFO. fifo_computed_trades(...):
-- their trades, as the engine sees them. Both run with the owner's rights
-- (SECURITY DEFINER) so that a reader can verify without any right in
-- schema fifo; they only read.
CREATE OR REPLACE FUNCTION public.fifo_computed_pools(p_symbol text DEFAULT NULL, p_version integer DEFAULT NULL)
RETURNS TABLE (version integer, symbol text, account text)
LANGUAGE sql STABLE
SECURITY DEFINER   -- readers list computed pools without any right on fifo.pool_state
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT ps.version, ps.symbol, ps.account
    FROM fifo.pool_state ps
    WHERE ps.version = coalesce(p_version, fifo._current_version())
      AND (p_symbol IS NULL OR ps.symbol = p_symbol)
$$;
COMMENT ON FUNCTION public.fifo_computed_pools(text, integer) IS
    'The pools computed for a version (default: the current one), optionally of one symbol.';

CREATE OR REPLACE FUNCTION public.fifo_computed_trades(p_symbol text DEFAULT NULL, p_version integer DEFAULT NULL)
RETURNS TABLE (order_id text, account text, symbol text, side text, size numeric, price numeric,
               total_fees numeric, order_time timestamptz)
LANGUAGE sql STABLE
SECURITY DEFINER   -- readers read the trades as the engine sees them (fifo.trades) without rights in fifo
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT t.order_id, t.account, t.symbol, t.side, t.size, t.price, t.total_fees, t.order_time
    FROM fifo.trades t
    JOIN public.fifo_computed_pools(p_symbol, p_version) p ON p.symbol = t.symbol AND p.account = t.account
$$;
COMMENT ON FUNCTION public.fifo_computed_trades(text, integer) IS
    'The trades (as the engine reads them) of the pools computed for a version, optionally of one symbol.';
