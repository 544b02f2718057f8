-- fifo._match(version, batch, symbols[], accounts[], from_times[]): the
-- engine. For each pool (symbols[i], accounts[i]) it replaces the
-- allocations of every sell at or after from_times[i] in `version`, and
-- returns what it processed. from_time '-infinity' is a full recompute.
--
-- Set-based, no loop over trades or lots (design.md rule 3):
--   * the starting inventory at the cut is the lots still open after the
--     retained allocations (sells before the cut): the last lot those
--     consumed, with its remainder, and every later buy before the cut;
--   * events are ordered (order_time, buys first, order_id COLLATE "C");
--     windows give the cumulative bought B, sold S and matched
--     M = S + min(0, running min(B - S)) quantities;
--   * buy i owns [B_i - q_i, B_i), sell j owns [M_(j-1), M_j); the
--     boundaries of both, merged in one sort, cut the line into segments,
--     and each segment is one (sell, lot) allocation;
--   * the part of a sell beyond M becomes one unmatched row (rule 4).
-- Coordinates restart at 0 at the cut: carried lots come first with their
-- remaining size; the formula is unchanged (see docs/engine.md).
-- The caller holds the pools' locks. Cross-pool work is only the batching of
-- independent pools into one statement.
CREATE OR REPLACE FUNCTION fifo._match(
    p_version integer,
    p_batch_id uuid,
    p_symbols text[],
    p_accounts text[],
    p_from timestamptz[],
    OUT pools integer,
    OUT buys bigint,
    OUT sells bigint,
    OUT allocations bigint,
    OUT unmatched bigint,
    OUT total_pnl numeric)
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
SET work_mem = '256MB'
SET jit = off   -- a big chunk's cost estimate would trigger JIT compilation, which costs more than it saves
AS $$
DECLARE
    v_bad record;
BEGIN
    pools := coalesce(cardinality(p_symbols), 0);

    -- a trade the source cannot give as a valid fill (an adopted table has no
    -- CHECK constraints) fails its pool, naming the row; never skipped silently
    SELECT t.symbol, t.account, t.order_id, t.problem INTO v_bad
    FROM unnest(p_symbols, p_accounts) AS c(symbol, account)
    JOIN fifo.trades t ON t.symbol = c.symbol AND t.account = c.account
    WHERE t.problem IS NOT NULL
    LIMIT 1;
    IF FOUND THEN
        RAISE EXCEPTION 'trade % (%/%) cannot be matched: %', v_bad.order_id, v_bad.symbol, v_bad.account, v_bad.problem
            USING ERRCODE = '22023',
                  HINT = 'Correct the row in the trades table, or leave it out with the setting fill_statuses; '
                         'the pool is retried by the next incremental run.';
    END IF;

    DELETE FROM fifo.allocations a
    USING unnest(p_symbols, p_accounts, p_from) AS c(symbol, account, from_time)
    WHERE a.version = p_version
      AND a.symbol = c.symbol
      AND a.account = c.account
      AND a.sell_time >= c.from_time;

    WITH cut AS (
        SELECT c.symbol, c.account, c.from_time
        FROM unnest(p_symbols, p_accounts, p_from) AS c(symbol, account, from_time)
    ),
    -- Per pool (LATERAL: the windows need no PARTITION BY, and the index
    -- delivers the events already in matching order, so only the line is sorted):
    seg AS (
        SELECT c.symbol, c.account, g.*
        FROM cut c
        -- the newest lot that a retained allocation consumed, and how much of it
        LEFT JOIN LATERAL (
            SELECT a.buy_time, a.buy_trade_id,
                   (SELECT coalesce(sum(u.allocated_size), 0)
                    FROM fifo.allocations u
                    WHERE u.buy_trade_id = a.buy_trade_id
                      AND u.version = p_version
                      AND u.sell_time < c.from_time) AS used
            FROM fifo.allocations a
            WHERE c.from_time > '-infinity'
              AND a.version = p_version
              AND a.symbol = c.symbol
              AND a.account = c.account
              AND a.sell_time < c.from_time
              AND a.buy_trade_id IS NOT NULL
            ORDER BY a.sell_time DESC, a.sell_trade_id COLLATE "C" DESC,
                     a.buy_time DESC, a.buy_trade_id COLLATE "C" DESC
            LIMIT 1
        ) ll ON true
        -- The lots open at the cut are that lot's remainder and every later buy before
        -- the cut, but a sell at or after the cut only reaches the oldest of them, up to
        -- the quantity sold at or after the cut. Walking them in order, the first whose
        -- cumulative remainder covers that quantity is the last one carried in (none
        -- covers it: all are). The lots after it cannot change any allocation (see
        -- docs/engine.md), so what is read is bounded by what the suffix sells, however
        -- many lots are open. `covered` is the carried quantity, `lots` their number.
        LEFT JOIN LATERAL (
            SELECT x.order_time, x.order_id, x.covered, x.lots
            FROM (
                SELECT t.order_time, t.side, t.order_id,
                       sum(t.size - CASE WHEN t.order_id = ll.buy_trade_id THEN ll.used ELSE 0 END)
                           OVER o AS covered,
                       count(*) OVER o AS lots
                FROM fifo.trades t
                WHERE t.symbol = c.symbol
                  AND t.account = c.account
                  AND t.side = 'buy'
                  AND (t.order_time, t.side, t.order_id COLLATE "C")
                      >= (coalesce(ll.buy_time, '-infinity'), 'buy', coalesce(ll.buy_trade_id, '') COLLATE "C")
                  AND t.order_time < c.from_time
                  AND t.size > CASE WHEN t.order_id = ll.buy_trade_id THEN ll.used ELSE 0 END
                WINDOW o AS (ORDER BY t.order_time, t.side, t.order_id COLLATE "C" ROWS UNBOUNDED PRECEDING)
            ) x
            WHERE x.covered >= (SELECT coalesce(sum(t.size), 0)
                                FROM fifo.trades t
                                WHERE t.symbol = c.symbol AND t.account = c.account
                                  AND t.order_time >= c.from_time AND t.side = 'sell')
            ORDER BY x.order_time, x.side, x.order_id COLLATE "C"
            LIMIT 1
        ) lb ON c.from_time > '-infinity'
        -- no lot covers it: every open lot is carried in
        LEFT JOIN LATERAL (
            SELECT sum(t.size - CASE WHEN t.order_id = ll.buy_trade_id THEN ll.used ELSE 0 END) AS covered,
                   count(*) AS lots
            FROM fifo.trades t
            WHERE lb.order_id IS NULL
              AND t.symbol = c.symbol
              AND t.account = c.account
              AND t.side = 'buy'
              AND (t.order_time, t.side, t.order_id COLLATE "C")
                  >= (coalesce(ll.buy_time, '-infinity'), 'buy', coalesce(ll.buy_trade_id, '') COLLATE "C")
              AND t.order_time < c.from_time
              AND t.size > CASE WHEN t.order_id = ll.buy_trade_id THEN ll.used ELSE 0 END
        ) al ON c.from_time > '-infinity'
        CROSS JOIN LATERAL (
            -- the lot's and the sell's columns of each segment, fetched by their
            -- distance back (lag with a per-row offset: no join back to the events)
            SELECT k.kind, k.seg_start, k.coord AS seg_end,
                   lag(k.order_id, k.to_buy::integer) OVER d AS buy_trade_id,
                   lag(k.price, k.to_buy::integer) OVER d AS buy_price,
                   lag(k.total_fees, k.to_buy::integer) OVER d AS b_fee,
                   lag(k.size, k.to_buy::integer) OVER d AS b_size,
                   lag(k.lot_offset - (k.b_end - k.qty), k.to_buy::integer) OVER d AS b_shift,
                   lag(k.order_time, k.to_buy::integer) OVER d AS buy_time,
                   lag(k.order_id, k.to_sell::integer) OVER d AS sell_trade_id,
                   lag(k.price, k.to_sell::integer) OVER d AS sell_price,
                   lag(k.total_fees, k.to_sell::integer) OVER d AS s_fee,
                   lag(k.size, k.to_sell::integer) OVER d AS s_size,
                   lag(k.m_start, k.to_sell::integer) OVER d AS s_start,
                   lag(k.order_time, k.to_sell::integer) OVER d AS sell_time,
                   k.size, k.m_start, k.m_end
            FROM (
                -- walking the sorted line backwards, a segment ends at its point
                -- and starts at the next one; its lot is the latest buy point seen
                -- (the first lot ending at or after it), its sell likewise
                SELECT l.*,
                       coalesce(lead(l.coord) OVER d, 0) AS seg_start,
                       l.rn - max(l.rn) FILTER (WHERE l.kind = 1) OVER d AS to_buy,
                       l.rn - max(l.rn) FILTER (WHERE l.kind = 0) OVER d AS to_sell
                FROM (
                    SELECT v.*, row_number() OVER d AS rn
                    FROM (
                        -- each event is one point on the line: a lot's end or a sell's
                        -- matched end. The carried lots come first on the line, from
                        -- 0 to `carried`, in their own index range ...
                        SELECT o.order_time, o.order_id, o.size, o.price, o.total_fees, o.lot_offset,
                               o.qty, o.b_end, NULL::numeric AS m_start, NULL::numeric AS m_end,
                               o.b_end AS coord, 1 AS kind, o.ord
                        FROM (
                            SELECT t.order_time, t.order_id, t.size, t.price, t.total_fees, r.lot_offset,
                                   t.size - r.lot_offset AS qty,
                                   sum(t.size - r.lot_offset) OVER o AS b_end,
                                   count(*) OVER o AS ord
                            FROM fifo.trades t
                            CROSS JOIN LATERAL (
                                SELECT CASE WHEN t.order_id = ll.buy_trade_id THEN ll.used
                                            ELSE 0::numeric END AS lot_offset) r
                            WHERE t.symbol = c.symbol
                              AND t.account = c.account
                              AND t.side = 'buy'
                              AND (t.order_time, t.side, t.order_id COLLATE "C")
                                  >= (coalesce(ll.buy_time, '-infinity'), 'buy',
                                      coalesce(ll.buy_trade_id, '') COLLATE "C")
                              AND (t.order_time, t.side, t.order_id COLLATE "C")
                                  <= (coalesce(lb.order_time, c.from_time), 'buy',
                                      coalesce(lb.order_id, '') COLLATE "C")
                              AND t.order_time < c.from_time
                              AND t.size > r.lot_offset
                            WINDOW o AS (ORDER BY t.order_time, t.side, t.order_id COLLATE "C"
                                         ROWS UNBOUNDED PRECEDING)
                        ) o
                        UNION ALL
                        -- ... then every trade from the cut, in one index scan
                        SELECT m.order_time, m.order_id, m.size, m.price, m.total_fees, 0, m.size,
                               m.b_end,
                               coalesce(lag(m.m_end) OVER w, 0),
                               m.m_end,
                               CASE WHEN m.side = 'buy' THEN m.b_end ELSE m.m_end END,
                               CASE WHEN m.side = 'buy' THEN 1 ELSE 0 END,
                               CASE WHEN m.side = 'buy' THEN m.buy_ord ELSE m.sell_ord END
                        FROM (
                            -- matched quantity M = S + min(0, running min of B - S)
                            SELECT r.*, r.s_end + least(0, min(r.b_end - r.s_end) OVER w) AS m_end
                            FROM (
                                -- cumulative bought (after the carried lots) and sold
                                -- quantities, and each side's ordinal
                                SELECT t.order_time, t.side, t.order_id, t.size, t.price, t.total_fees,
                                       coalesce(lb.covered, al.covered, 0)
                                       + sum(CASE WHEN t.side = 'buy' THEN t.size ELSE 0 END) OVER w AS b_end,
                                       sum(CASE WHEN t.side = 'sell' THEN t.size ELSE 0 END) OVER w AS s_end,
                                       coalesce(lb.lots, al.lots, 0)
                                       + count(*) FILTER (WHERE t.side = 'buy') OVER w AS buy_ord,
                                       count(*) FILTER (WHERE t.side = 'sell') OVER w AS sell_ord
                                FROM fifo.trades t
                                WHERE t.symbol = c.symbol
                                  AND t.account = c.account
                                  AND t.order_time >= c.from_time
                                WINDOW w AS (ORDER BY t.order_time, t.side, t.order_id COLLATE "C"
                                             ROWS UNBOUNDED PRECEDING)
                            ) r
                            WINDOW w AS (ORDER BY r.order_time, r.side, r.order_id COLLATE "C"
                                         ROWS UNBOUNDED PRECEDING)
                        ) m
                        WINDOW w AS (ORDER BY m.order_time, m.side, m.order_id COLLATE "C")
                    ) v
                    WINDOW d AS (ORDER BY v.coord DESC, v.kind DESC, v.ord DESC)
                ) l
                WINDOW d AS (ORDER BY l.coord DESC, l.kind DESC, l.ord DESC ROWS UNBOUNDED PRECEDING)
            ) k
            WINDOW d AS (ORDER BY k.coord DESC, k.kind DESC, k.ord DESC)
        ) g
    ),
    pieces AS (
        -- the segment's matched piece, with offsets inside the buy and inside the sell
        SELECT g.symbol, g.account, g.sell_trade_id, g.sell_price, g.s_fee, g.s_size, g.sell_time,
               g.buy_trade_id, g.seg_end - g.seg_start AS q, g.buy_price, g.b_fee, g.b_size,
               g.b_shift + g.seg_start AS b_from, g.seg_start - g.s_start AS s_from, g.buy_time
        FROM seg g
        WHERE g.seg_end > g.seg_start
          AND g.buy_trade_id IS NOT NULL AND g.sell_trade_id IS NOT NULL
        UNION ALL
        -- at a sell's own point: its part that found no inventory (rule 4)
        SELECT g.symbol, g.account, g.sell_trade_id, g.sell_price, g.s_fee, g.s_size, g.sell_time,
               NULL, g.size - (g.m_end - g.m_start), NULL, NULL, NULL,
               NULL, g.m_end - g.m_start, NULL
        FROM seg g
        WHERE g.kind = 0 AND g.m_end - g.m_start < g.size
    ),
    -- buys and sells processed: the trades at or after each cut
    counted AS (
        SELECT sum(n.buys)::bigint AS buys, sum(n.sells)::bigint AS sells
        FROM cut c
        CROSS JOIN LATERAL (
            SELECT count(*) FILTER (WHERE t.side = 'buy') AS buys,
                   count(*) FILTER (WHERE t.side = 'sell') AS sells
            FROM fifo.trades t
            WHERE t.symbol = c.symbol AND t.account = c.account AND t.order_time >= c.from_time
        ) n
    ),
    -- OFFSET 0 keeps each subquery from being flattened into the INSERT, which
    -- would evaluate a fee share once per reference (buy_fees, cost_basis and
    -- pnl_amount: three times); measured 220 ms of a 50-pool chunk's 950 ms
    priced AS (
        SELECT p.*,
               CASE WHEN p.buy_trade_id IS NOT NULL
                    THEN fifo._fee_share(p.b_fee, p.b_size, p.b_from, p.b_from + p.q) END AS buy_fees,
               fifo._fee_share(p.s_fee, p.s_size, p.s_from, p.s_from + p.q) AS sell_fees
        FROM pieces p
        OFFSET 0
    ),
    written AS (
        INSERT INTO fifo.allocations (
            version, batch_id, account, symbol, sell_trade_id, buy_trade_id,
            allocated_size, buy_price, sell_price, buy_fees, sell_fees,
            cost_basis, sale_proceeds, pnl_amount, buy_time, sell_time)
        SELECT p_version, p_batch_id, x.account, x.symbol, x.sell_trade_id, x.buy_trade_id,
               x.q, x.buy_price, x.sell_price, x.buy_fees, x.sell_fees,
               x.cost, x.proceeds, x.proceeds - x.cost, x.buy_time, x.sell_time
        FROM (SELECT pr.*,
                     pr.q * pr.buy_price + pr.buy_fees AS cost,
                     pr.q * pr.sell_price - pr.sell_fees AS proceeds
              FROM priced pr
              OFFSET 0) x
        RETURNING pnl_amount, buy_trade_id IS NULL AS is_unmatched
    )
    SELECT coalesce((SELECT c.buys FROM counted c), 0),
           coalesce((SELECT c.sells FROM counted c), 0),
           count(*),
           count(*) FILTER (WHERE w.is_unmatched),
           coalesce(sum(w.pnl_amount), 0)
    INTO buys, sells, allocations, unmatched, total_pnl
    FROM written w;

    INSERT INTO fifo.pool_state AS ps (version, symbol, account, batch_id, computed_at)
    SELECT p_version, c.symbol, c.account, p_batch_id, now()
    FROM unnest(p_symbols, p_accounts) AS c(symbol, account)
    ON CONFLICT (version, symbol, account)
    DO UPDATE SET batch_id = excluded.batch_id, computed_at = excluded.computed_at, stale_from = NULL;
END;
$$;
