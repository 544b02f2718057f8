-- The engine: fifo._allocation_rows matches, fifo._match writes.
--
-- Set-based, no loop over trades or lots (docs/rules.md, rule 3). Per pool, on the
-- sold-quantity axis (docs/engine.md has the derivation and a worked example):
--   * events are ordered (order_time, buys first, order_id COLLATE "C");
--     windows give the cumulative bought B and sold S, and the oversold
--     quantity so far U = -min(0, running min(B - S));
--   * sell j owns [S_j - size_j, S_j). Lot i owns [B_i + U_i - q_i, B_i + U_i):
--     an oversell empties the inventory first, so no lot straddles one and
--     every lot sits U_i further along than on the bought axis;
--   * a sell that leaves no inventory (B + U = S) also ends a gap: its part
--     that found no lot, empty unless it oversold (rule 4's unmatched row);
--   * the ends of lots, gaps and sells, sorted once, cut the axis into
--     segments; each segment inside a sell is one allocation: of the first lot
--     or gap ending at or after it, and of the first sell likewise.
-- A suffix recompute (from_time > -infinity) keeps the allocations of sells
-- before the cut and starts the axis at 0 at the cut, with the lots still open
-- there carried in first; only the open lots the suffix's sells can reach are
-- read (fifo._carry_in, sql/025), so its cost does not grow with the open inventory.

-- fifo._allocation_rows(version, symbols[], accounts[], from_times[]): for each
-- pool (symbols[i], accounts[i]), the allocation rows of every sell at or after
-- from_times[i] in `version` ('-infinity': all of them), given the allocations
-- of `version` before the cut. Reads only. Every statement is per pool: the
-- arrays only batch independent pools.
CREATE OR REPLACE FUNCTION fifo._allocation_rows(
    p_version integer,
    p_symbols text[],
    p_accounts text[],
    p_from timestamptz[])
RETURNS TABLE (
    account text, symbol text, sell_trade_id text, buy_trade_id text, allocated_size numeric,
    buy_price numeric, sell_price numeric, buy_fees numeric, sell_fees numeric,
    cost_basis numeric, sale_proceeds numeric, pnl_amount numeric,
    buy_time timestamptz, sell_time timestamptz)
LANGUAGE plpgsql STABLE
-- PARALLEL SAFE: it only reads, and a SET clause is allowed in a parallel worker (the
-- worker pops it itself), so fifo._allocation_rows_split may run calls of it in
-- parallel workers. COST: one call matches whole pools (10 ms per 1,000 trades), not
-- the 100 operator costs of the default; with it the planner sees what a Parallel
-- Append of several calls saves.
PARALLEL SAFE
COST 1000000
SET search_path = pg_catalog, pg_temp
SET work_mem = '256MB'
SET jit = off   -- a big chunk's cost estimate would trigger JIT compilation, which costs more than it saves
AS $$
#variable_conflict use_column
BEGIN
    RETURN QUERY
    -- OFFSET 0 keeps each level from being flattened into the next, which would
    -- evaluate a fee share once per reference (buy_fees, cost_basis, pnl_amount)
    SELECT x.account, x.symbol, x.sell_trade_id, x.buy_trade_id, x.q, x.buy_price, x.sell_price,
           x.buy_fees, x.sell_fees, x.cost, x.proceeds, x.proceeds - x.cost, x.buy_time, x.sell_time
    FROM (
        SELECT pr.*,
               pr.q * pr.buy_price + pr.buy_fees AS cost,
               pr.q * pr.sell_price - pr.sell_fees AS proceeds
        FROM (
            -- fee shares: differences of cumulative fee points (docs/rules.md, rule 5)
            SELECT p.*,
                   CASE WHEN p.buy_trade_id IS NOT NULL
                        THEN fifo._fee_share(p.b_fee, p.b_size, p.b_from, p.b_from + p.q) END AS buy_fees,
                   fifo._fee_share(p.s_fee, p.s_size, p.s_from, p.s_from + p.q) AS sell_fees
            FROM (
                -- a segment inside a sell: a piece of a lot, or the sell's unmatched
                -- part (a gap: no lot); offsets inside the lot and inside the sell
                SELECT c.symbol, c.account, g.seg_end - g.seg_start AS q,
                       (g.sell).order_id AS sell_trade_id, (g.sell).price AS sell_price,
                       (g.sell).fee AS s_fee, (g.sell).size AS s_size,
                       (g.sell).size - (g.sell).coord + g.seg_start AS s_from, (g.sell).at AS sell_time,
                       (g.lot).order_id AS buy_trade_id, (g.lot).price AS buy_price,
                       (g.lot).fee AS b_fee, (g.lot).size AS b_size,
                       (g.lot).size - (g.lot).coord + g.seg_start AS b_from, (g.lot).at AS buy_time
                FROM unnest(p_symbols, p_accounts, p_from) AS c(symbol, account, from_time)
                -- Per pool, LATERAL: the windows need no PARTITION BY, and the index
                -- delivers the events in matching order, so only the axis is sorted.
                -- The lots open at the cut that the sells from the cut can reach, read
                -- per pool with its real cut: fifo._carry_in (sql/025). `covered` is the
                -- quantity carried in. A full recompute carries nothing and does not call
                -- it (a one-time filter; a call costs 10-100 us, its SET clauses).
                LEFT JOIN LATERAL (
                    SELECT f.covered, f.lots
                    FROM fifo._carry_in(p_version, c.symbol, c.account, c.from_time) f
                    WHERE c.from_time > '-infinity'
                    OFFSET 0   -- kept a subquery, so the condition gates the call
                ) ci ON true
                CROSS JOIN LATERAL (
                    -- Walking the sorted axis backwards, a segment ends at its point and
                    -- starts at the next one. Its lot is the first lot end (or gap end)
                    -- at or after it: of the points seen so far, the one with the lowest
                    -- coordinate, so a running min over the packed points returns it,
                    -- columns and all (min skips the NULLs of the other kind; the array
                    -- is there because min compares arrays of rows, not rows). Its sell
                    -- likewise. Where a lot and an empty gap end at one coordinate, the
                    -- lot wins: rows compare coord first, and a gap's NULL order_id sorts
                    -- after a lot's.
                    SELECT coalesce(lead(v.coord) OVER d, 0) AS seg_start, v.coord AS seg_end,
                           (min(v.lot) OVER d)[1] AS lot,
                           (min(v.sell) OVER d)[1] AS sell
                    FROM (
                        -- the carried lots first, from 0 to `covered`
                        SELECT l.coord, 0 AS kind,
                               ARRAY[ROW(l.coord, l.order_id, l.price, l.fee, l.size, l.at)::fifo.leg] AS lot,
                               NULL::fifo.leg[] AS sell
                        FROM unnest(ci.lots) AS l   -- NULL: no rows
                        UNION ALL
                        -- then every trade from the cut, in one index scan: a lot ends at
                        -- B + U, a sell at S; a sell leaving no inventory also ends a gap
                        SELECT m.coord, m.kind,
                               CASE WHEN m.kind = 0
                                    THEN ARRAY[ROW(m.coord, m.order_id, m.price, m.total_fees, m.size,
                                                   m.order_time)::fifo.leg]
                                    WHEN m.b_end + m.u = m.s_end
                                    THEN ARRAY[ROW(m.coord, NULL, NULL, NULL, NULL, NULL)::fifo.leg] END,
                               CASE WHEN m.kind = 1
                                    THEN ARRAY[ROW(m.coord, m.order_id, m.price, m.total_fees, m.size,
                                                   m.order_time)::fifo.leg] END
                        FROM (
                            SELECT n.*,
                                   CASE WHEN n.side = 'buy' THEN n.b_end + n.u ELSE n.s_end END AS coord,
                                   CASE WHEN n.side = 'buy' THEN 0 ELSE 1 END AS kind
                            FROM (
                                -- oversold so far: U = -min(0, running min of B - S)
                                SELECT r.*, -least(0, min(r.b_end - r.s_end) OVER w) AS u
                                FROM (
                                    -- cumulative bought B (after the carried lots) and sold S
                                    SELECT t.order_time, t.side, t.order_id, t.size, t.price, t.total_fees,
                                           coalesce(ci.covered, 0)
                                           + sum(CASE WHEN t.side = 'buy' THEN t.size ELSE 0 END) OVER w AS b_end,
                                           sum(CASE WHEN t.side = 'sell' THEN t.size ELSE 0 END) OVER w AS s_end
                                    FROM fifo.trades t
                                    WHERE t.symbol = c.symbol
                                      AND t.account = c.account
                                      AND t.order_time >= c.from_time
                                    WINDOW w AS (ORDER BY t.order_time, t.side, t.order_id COLLATE "C"
                                                 ROWS UNBOUNDED PRECEDING)
                                ) r
                                WINDOW w AS (ORDER BY r.order_time, r.side, r.order_id COLLATE "C"
                                             ROWS UNBOUNDED PRECEDING)
                            ) n
                        ) m
                    ) v
                    WINDOW d AS (ORDER BY v.coord DESC, v.kind DESC ROWS UNBOUNDED PRECEDING)
                ) g
                WHERE g.seg_end > g.seg_start
                  AND (g.sell).order_id IS NOT NULL
                OFFSET 0
            ) p
            OFFSET 0
        ) pr
        OFFSET 0
    ) x;
END;
$$;

-- fifo._allocation_rows_split(version, symbols[], accounts[]): the rows of
-- fifo._allocation_rows for whole pools (no cut), computed as four calls over
-- quarters of the pool list joined by UNION ALL, so that PostgreSQL's own
-- parallel query can run them on more than one core: a Parallel Append gives
-- each call to one process (two parallel workers; the leader only gathers),
-- and a call matches its pools exactly as alone, so the rows are the same.
-- Parallel workers run with this session's role, security context, settings and
-- snapshot, end with the statement (cancelled too), and leave nothing behind: no
-- connection, no table, no setting (docs/security.md). A plain INSERT ... SELECT never
-- runs in parallel (PostgreSQL 15), but this function's RETURN QUERY may, and
-- fifo._match inserts from it. Whole pools only: fifo._carry_in (a suffix's
-- carry-in) is never called in a worker. Without free worker slots, or with
-- max_parallel_workers_per_gather = 0, the calls run one after another here.
CREATE OR REPLACE FUNCTION fifo._allocation_rows_split(
    p_version integer,
    p_symbols text[],
    p_accounts text[])
RETURNS TABLE (
    account text, symbol text, sell_trade_id text, buy_trade_id text, allocated_size numeric,
    buy_price numeric, sell_price numeric, buy_fees numeric, sell_fees numeric,
    cost_basis numeric, sale_proceeds numeric, pnl_amount numeric,
    buy_time timestamptz, sell_time timestamptz)
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
-- the leader gathers the workers' rows into this function's result; running a call
-- itself as well would leave the workers' rows waiting (a SET clause: restored on return)
SET parallel_leader_participation = off
SET work_mem = '256MB'   -- the result (a chunk's rows) is kept in memory, like fifo._allocation_rows'
AS $$
DECLARE
    n integer := coalesce(cardinality(p_symbols), 0);
    q1 integer := n / 4;
    q2 integer := n / 2;
    q3 integer := 3 * n / 4;
    v_whole timestamptz[] := array_fill('-infinity'::timestamptz, ARRAY[n]);
BEGIN
    RETURN QUERY
    SELECT * FROM fifo._allocation_rows(p_version, p_symbols[1:q1], p_accounts[1:q1], v_whole[1:q1])
    UNION ALL
    SELECT * FROM fifo._allocation_rows(p_version, p_symbols[q1 + 1:q2], p_accounts[q1 + 1:q2], v_whole[q1 + 1:q2])
    UNION ALL
    SELECT * FROM fifo._allocation_rows(p_version, p_symbols[q2 + 1:q3], p_accounts[q2 + 1:q3], v_whole[q2 + 1:q3])
    UNION ALL
    SELECT * FROM fifo._allocation_rows(p_version, p_symbols[q3 + 1:n], p_accounts[q3 + 1:n], v_whole[q3 + 1:n]);
END;
$$;

-- fifo._refuse_problem(symbols[], accounts[], from_times[]): raises, naming
-- the row, when a pool has a trade from its cut on that the trades source
-- cannot give as a valid fill (its `problem`); fifo._match calls it.
CREATE OR REPLACE FUNCTION fifo._refuse_problem(p_symbols text[], p_accounts text[], p_from timestamptz[])
RETURNS void
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_bad record;
BEGIN
    SELECT t.symbol, t.account, t.order_id, t.problem INTO v_bad
    FROM unnest(p_symbols, p_accounts, p_from) AS c(symbol, account, from_time)
    JOIN fifo.trades t ON t.symbol = c.symbol AND t.account = c.account AND t.order_time >= c.from_time
    WHERE t.problem IS NOT NULL
    LIMIT 1;
    IF FOUND THEN
        RAISE EXCEPTION 'trade % (%/%) cannot be matched: %', v_bad.order_id, v_bad.symbol, v_bad.account, v_bad.problem
            USING ERRCODE = '22023',
                  HINT = 'Correct the row in the trades table, or leave it out with the setting fill_statuses; '
                         'the pool is retried by the next incremental run.';
    END IF;
END;
$$;

-- (earlier signatures of fifo._match would make calls ambiguous)
DROP FUNCTION IF EXISTS fifo._match(integer, uuid, text[], text[], timestamptz[]);
DROP FUNCTION IF EXISTS fifo._match(integer, uuid, text[], text[], timestamptz[], regclass);
DROP FUNCTION IF EXISTS fifo._match(integer, uuid, text[], text[], timestamptz[], regclass, boolean);

-- fifo._match(version, batch, symbols[], accounts[], from_times[] [, into
-- [, record]]): replaces, for each pool, the allocations of every sell at or
-- after its cut in `version` with fifo._allocation_rows(), writing only the
-- rows that differ, stamped with `batch` (fifo._write_allocations, sql/032),
-- records the pools as computed (fifo.pool_state), and returns what it
-- processed. `into` (a fresh table shaped like fifo.allocations, see
-- sql/035) receives the rows instead, and nothing is deleted: then only the
-- row count is returned (unmatched, total_pnl and pnl_by_currency are NULL),
-- and the caller totals the table (fifo._fresh_totals). record = false
-- leaves pool_state to the caller. `counted`, ARRAY[buys, sells]: the pools
-- recomputed in full (cut '-infinity') were counted and checked for problem
-- rows by the caller (fifo._count_pools), so they are not read again here.
-- The caller holds the pools' locks.
CREATE OR REPLACE FUNCTION fifo._match(
    p_version integer,
    p_batch_id uuid,
    p_symbols text[],
    p_accounts text[],
    p_from timestamptz[],
    p_into regclass DEFAULT NULL,
    p_record boolean DEFAULT true,
    p_counted bigint[] DEFAULT NULL,
    OUT pools integer,
    OUT buys bigint,
    OUT sells bigint,
    OUT allocations bigint,
    OUT unmatched bigint,
    OUT total_pnl numeric,
    OUT pnl_by_currency jsonb)
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
SET jit = off   -- estimates of per-pool statements cross jit_above_cost; compiling took 133 ms of 144
SET plan_cache_mode = force_custom_plan   -- a suffix's statements see its cut (below)
AS $$
DECLARE
    v_symbol text;
    v_account text;
    v_from timestamptz;
    v_problem boolean;
    v_whole_syms text[];
    v_whole_accs text[];
BEGIN
    pools := coalesce(cardinality(p_symbols), 0);

    -- a trade the source cannot give as a valid fill (an adopted table has no
    -- CHECK constraints) fails its pool, naming the row; never skipped silently.
    -- Only the trades from the cut are read: the ones before it were checked
    -- when they were matched, and changing one queues the pool from its time.
    -- With them, the buys and sells processed: the trades at or after each cut.
    -- A pool recomputed in full is read whole, in one statement for them all; a
    -- suffix is read per pool, planned with its real cut (plan_cache_mode): in a
    -- join with the pool list the planner cannot see the cut and guessed a third
    -- of the pool (issue 16: a sequential scan of a 1M-trade pool to count one
    -- appended trade).
    buys := 0;
    sells := 0;
    FOR i IN 1 .. pools LOOP
        CONTINUE WHEN p_from[i] = '-infinity';
        v_symbol := p_symbols[i];
        v_account := p_accounts[i];
        v_from := p_from[i];
        SELECT buys + count(*) FILTER (WHERE t.side = 'buy'), sells + count(*) FILTER (WHERE t.side = 'sell'),
               coalesce(bool_or(t.problem IS NOT NULL), false)
        INTO buys, sells, v_problem
        FROM fifo.trades t
        WHERE t.symbol = v_symbol AND t.account = v_account AND t.order_time >= v_from;
        IF v_problem THEN
            PERFORM fifo._refuse_problem(ARRAY[v_symbol], ARRAY[v_account], ARRAY[v_from]);
        END IF;
    END LOOP;
    IF p_counted IS NOT NULL THEN
        buys := buys + p_counted[1];
        sells := sells + p_counted[2];
    ELSIF '-infinity' = ANY (p_from) THEN
        SELECT array_agg(c.symbol), array_agg(c.account) INTO v_whole_syms, v_whole_accs
        FROM unnest(p_symbols, p_accounts, p_from) AS c(symbol, account, from_time)
        WHERE c.from_time = '-infinity';
        SELECT buys + count(*) FILTER (WHERE t.side = 'buy'), sells + count(*) FILTER (WHERE t.side = 'sell'),
               coalesce(bool_or(t.problem IS NOT NULL), false)
        INTO buys, sells, v_problem
        FROM unnest(v_whole_syms, v_whole_accs) AS c(symbol, account)
        JOIN fifo.trades t ON t.symbol = c.symbol AND t.account = c.account;
        IF v_problem THEN
            PERFORM fifo._refuse_problem(v_whole_syms, v_whole_accs,
                                         array_fill('-infinity'::timestamptz, ARRAY[cardinality(v_whole_syms)]));
        END IF;
    END IF;

    IF p_into IS NULL THEN
        -- into fifo.allocations, only the rows that differ from the stored ones (sql/032)
        SELECT w.allocations, w.unmatched, w.total_pnl, w.pnl_by_currency
        INTO allocations, unmatched, total_pnl, pnl_by_currency
        FROM fifo._write_allocations(p_version, p_batch_id, p_symbols, p_accounts, p_from) w;
    ELSE
        -- into the fresh table `into` (sql/035): every row, ids reserved at once. A plain
        -- INSERT: the run totals the table once it is complete (fifo._fresh_totals, in
        -- parallel), which is cheaper than collecting every row's P&L here through
        -- RETURNING (1M trades: 0.9 s of the leader's time, while the parallel workers wait).
        allocations := fifo._fill_fresh(p_version, p_batch_id, p_symbols, p_accounts, p_from, p_into, buys + sells);
    END IF;

    IF p_record THEN
        PERFORM fifo._record_pools(p_version, p_batch_id, p_symbols, p_accounts);
    END IF;
END;
$$;

-- fifo._record_pools(version, batch, symbols[], accounts[]): the pools are
-- computed for `version` by `batch` (fifo.pool_state), and current.
-- PL/pgSQL, which keeps its plan (a SQL function with a SET clause is planned on every
-- call: issue 16, 0.15 ms of a compute_fifo).
CREATE OR REPLACE FUNCTION fifo._record_pools(p_version integer, p_batch_id uuid, p_symbols text[], p_accounts text[])
RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    INSERT INTO fifo.pool_state AS ps (version, symbol, account, batch_id, computed_at)
    SELECT p_version, c.symbol, c.account, p_batch_id, now()
    FROM unnest(p_symbols, p_accounts) AS c(symbol, account)
    ON CONFLICT (version, symbol, account)
    DO UPDATE SET batch_id = excluded.batch_id, computed_at = excluded.computed_at, stale_from = NULL;
END;
$$;
