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
        -- transfers out (wallet pooling only: under universal pooling both wallets are one pool)
        SELECT t.from_account, t.asset, t.transfer_id || ':out', 'transfer', t.transfer_id, t.quantity, NULL,
               t.at, 1, t.transfer_id, 'a', t.to_account
        FROM fifo.transfers t
        WHERE p_pooling = 'wallet' AND NOT (t.asset = ANY (p_fiat))
        UNION ALL
        -- a transfer's fee: a disposal of the fee units at their fair market value, right after it
        SELECT CASE WHEN p_pooling = 'wallet' THEN t.from_account ELSE '*' END, t.asset,
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

-- compute_fifo_assets(): recompute the whole asset view (legs, lots, allocations).
-- Set-based per round; the rounds are over generations of transfers
-- (docs/engine.md, "Transfers: rounds over transfer generations"), bounded by
-- the number of transfers plus one. Returns the run's row.
CREATE OR REPLACE FUNCTION public.compute_fifo_assets()
RETURNS fifo.asset_runs
LANGUAGE plpgsql
SECURITY DEFINER   -- an operator recomputes the asset view without any right on fifo-db's tables
SET search_path = pg_catalog, pg_temp
SET lock_timeout = '30s'   -- every wait bounded; the caller's value is back on return
AS $$
DECLARE
    v_pooling text := fifo._setting('tax_pooling');
    v_window interval := fifo._setting('price_window')::interval;
    v_map text := fifo._setting('symbol_map');
    v_fiat text[] := fifo._report_currencies();
    v_run fifo.asset_runs;
    v_max integer;
    v_diff bigint;
    v_holder text;
BEGIN
    BEGIN
        -- one run at a time: the tables are rewritten wholesale
        LOCK TABLE fifo.asset_runs IN EXCLUSIVE MODE;
    EXCEPTION WHEN lock_not_available THEN
        SELECT string_agg(format('pid %s (%s)', a.pid, coalesce(nullif(a.application_name, ''), a.usename)), ', ')
        INTO v_holder
        FROM pg_locks k JOIN pg_stat_activity a ON a.pid = k.pid
        WHERE k.relation = 'fifo.asset_runs'::regclass AND k.granted AND k.pid <> pg_backend_pid();
        RAISE EXCEPTION 'another compute_fifo_assets() holds the asset view: %', coalesce(v_holder, 'a session that ended')
            USING ERRCODE = '55P03', HINT = 'Wait for it to finish and run it again.';
    END;
    INSERT INTO fifo.asset_runs (pooling) VALUES (v_pooling) RETURNING * INTO v_run;

    -- price points: imported (in the filer's currency or an alias), then one per trade of an ASSET-<fiat> pair
    DELETE FROM fifo.asset_price_points;
    INSERT INTO fifo.asset_price_points (asset, at, rank, price, source)
    SELECT p.asset, p.at, 0, p.price, p.source
    FROM fifo.prices p
    WHERE p.currency = ANY (v_fiat) AND NOT (p.asset = ANY (v_fiat))
    UNION ALL
    SELECT s.base, t.order_time, 1, t.price, 'trade ' || t.order_id
    FROM fifo.trades t
    CROSS JOIN LATERAL fifo._split_symbol(t.symbol, v_map) s
    WHERE t.problem IS NULL AND s.quote = ANY (v_fiat) AND NOT (s.base = ANY (v_fiat));

    -- legs (docs/engine.md, "Legs"): one statement over the trades
    DELETE FROM fifo.asset_legs;
    INSERT INTO fifo.asset_legs (leg_id, order_id, leg, wallet, account, asset, direction, quantity, value, at,
                                 symbol, unpriced)
    SELECT v.order_id || ':' || g.leg, v.order_id, g.leg,
           CASE WHEN v_pooling = 'universal' THEN '*' ELSE v.account END, v.account, g.asset, g.direction,
           g.qty, g.value, v.at, v.symbol,
           CASE WHEN g.value IS NULL THEN
                CASE WHEN g.leg = 'fee' OR (v.val IS NOT NULL AND v.fv IS NULL)
                     THEN format('no %s price in %s within %s before %s', v.fccy, v_fiat[1], v_window, v.at)
                     ELSE format('no %s or %s price in %s within %s before %s', v.quote, v.base, v_fiat[1],
                                 v_window, v.at) END END
    FROM (
        SELECT u.*,
               CASE WHEN u.price = 0 THEN 0 ELSE u.size * u.ub END AS val,
               CASE WHEN u.fee = 0 THEN 0
                    WHEN u.fccy = ANY (v_fiat) THEN u.fee
                    WHEN u.fccy = u.quote THEN u.fee * u.uq
                    WHEN u.fccy = u.base THEN u.fee * u.ub
                    ELSE u.fee * fifo._asset_price(u.fccy, u.at, v_window) END AS fv
        FROM (
            SELECT r.*,
                   coalesce(r.pq, CASE WHEN r.price > 0 THEN fifo._ratio(r.pb, r.price) END) AS uq,   -- one QUOTE unit
                   coalesce(r.price * r.pq, r.pb) AS ub                                   -- one BASE unit
            FROM (
                SELECT t.order_id, t.account, t.symbol, t.side, t.size, t.price, t.total_fees AS fee,
                       t.order_time AS at, s.base, s.quote, coalesce(t.fee_currency, s.quote) AS fccy,
                       CASE WHEN s.quote = ANY (v_fiat) THEN 1 ELSE fifo._asset_price(s.quote, t.order_time, v_window) END AS pq,
                       CASE WHEN s.base = ANY (v_fiat) THEN 1 ELSE fifo._asset_price(s.base, t.order_time, v_window) END AS pb
                FROM fifo.trades t
                CROSS JOIN LATERAL fifo._split_symbol(t.symbol, v_map) s
                WHERE t.problem IS NULL AND s.base IS NOT NULL
            ) r
        ) u
    ) v
    CROSS JOIN LATERAL (VALUES
        -- BASE: a buy acquires it (net of a fee withheld in it), a sell disposes of it (plus such a fee)
        ('base', v.base, CASE WHEN v.side = 'buy' THEN 'acquire' ELSE 'dispose' END,
         CASE WHEN v.fccy = v.base THEN v.size + CASE WHEN v.side = 'buy' THEN -v.fee ELSE v.fee END ELSE v.size END,
         CASE WHEN v.side = 'buy' THEN v.val + CASE WHEN v.fccy = v.base THEN 0 ELSE v.fv END
              ELSE v.val - CASE WHEN v.fccy = v.base THEN 0 ELSE v.fv END END),
        -- QUOTE: a buy disposes of it (plus a fee paid in it), a sell acquires it (net of such a fee)
        ('quote', v.quote, CASE WHEN v.side = 'buy' THEN 'dispose' ELSE 'acquire' END,
         v.size * v.price + CASE WHEN v.fccy = v.quote THEN CASE WHEN v.side = 'buy' THEN v.fee ELSE -v.fee END
                                 ELSE 0 END,
         v.val + CASE WHEN v.fccy = v.quote THEN CASE WHEN v.side = 'buy' THEN v.fv ELSE -v.fv END ELSE 0 END),
        -- a fee in a third coin: a disposal of that coin for services at its value (Treas. Reg. 1.1001-7(b)(1)(ii))
        ('fee', v.fccy, 'dispose', CASE WHEN v.fccy IN (v.base, v.quote) THEN 0 ELSE v.fee END, v.fv)
    ) AS g(leg, asset, direction, qty, value)
    WHERE g.qty > 0 AND NOT (g.asset = ANY (v_fiat));

    -- rounds over transfer generations
    v_max := (SELECT count(*) FROM fifo.transfers)::integer + 1;
    DELETE FROM fifo.asset_pieces;
    LOOP
        v_run.rounds := coalesce(v_run.rounds, 0) + 1;
        IF v_run.rounds > v_max THEN
            RAISE EXCEPTION 'the asset view did not settle after % rounds (% transfers)', v_max, v_max - 1
                USING ERRCODE = 'F0002', HINT = 'This is a bug in fifo-db: report it with `fifo-db explain`.';
        END IF;
        DELETE FROM fifo.asset_lots;
        INSERT INTO fifo.asset_lots (wallet, asset, lot_id, origin_order, origin_leg, path, acquired_at, quantity,
                                     basis, arrived_at, arrival_phase, arrival_seq)
        SELECT g.wallet, g.asset, g.leg_id, g.order_id, g.leg, '', g.at, g.quantity, g.value, g.at, 0, g.order_id
        FROM fifo.asset_legs g
        WHERE g.direction = 'acquire'
        UNION ALL
        SELECT p.to_wallet, p.asset, p.lot_id, p.origin_order, p.origin_leg, p.path, p.acquired_at, p.quantity,
               p.basis, p.at, 1, p.transfer_id
        FROM fifo.asset_pieces p;
        PERFORM fifo._asset_round(v_pooling, v_window, v_fiat);
        SELECT count(*) INTO v_diff
        FROM ((SELECT * FROM fifo.asset_new_pieces EXCEPT SELECT transfer_id, to_wallet, asset, lot_id, origin_order,
                      origin_leg, path, acquired_at, quantity, basis, at FROM fifo.asset_pieces)
              UNION ALL
              (SELECT transfer_id, to_wallet, asset, lot_id, origin_order, origin_leg, path, acquired_at, quantity,
                      basis, at FROM fifo.asset_pieces EXCEPT SELECT * FROM fifo.asset_new_pieces)) x;
        EXIT WHEN v_diff = 0;
        DELETE FROM fifo.asset_pieces;
        INSERT INTO fifo.asset_pieces (transfer_id, to_wallet, asset, lot_id, origin_order, origin_leg, path,
                                       acquired_at, quantity, basis, at)
        SELECT * FROM fifo.asset_new_pieces;
    END LOOP;

    UPDATE fifo.asset_runs r
    SET finished_at = clock_timestamp(), rounds = v_run.rounds,
        legs = (SELECT count(*) FROM fifo.asset_legs),
        unpriced = (SELECT count(*) FROM fifo.asset_legs g WHERE g.value IS NULL)
                   + (SELECT count(*) FROM fifo.transfers t
                      WHERE t.fee > 0 AND NOT (t.asset = ANY (v_fiat))
                        AND fifo._asset_price(t.asset, t.at, v_window) IS NULL),
        unmatched = (SELECT count(DISTINCT a.disposal_id) FROM fifo.asset_allocations a WHERE a.unmatched),
        unsplit = (SELECT count(*) FROM fifo.trades t
                   WHERE t.problem IS NULL AND (fifo._split_symbol(t.symbol, v_map)).base IS NULL)
    WHERE r.run_id = v_run.run_id
    RETURNING * INTO v_run;
    -- every report recomputes: keep the last 100 runs, not one row per report forever
    DELETE FROM fifo.asset_runs r WHERE r.run_id <= v_run.run_id - 100;
    RETURN v_run;
END;
$$;
COMMENT ON FUNCTION public.compute_fifo_assets() IS
    'Recompute the asset (tax) view: legs, lots by (wallet, asset), FIFO by acquisition time, transfers.';

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

-- fifo._asset_route(path): how a piece got where it is: the transfers its path
-- names ('/t1/t2'), in order, as 't1 exchange -> cold 2024-05-01 10:00'.
CREATE OR REPLACE FUNCTION fifo._asset_route(p_path text)
RETURNS text
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT string_agg(format('%s %s -> %s %s', x.id, t.from_account, t.to_account,
                             to_char(t.at AT TIME ZONE fifo._report_tz(), 'YYYY-MM-DD HH24:MI')), ', '
                      ORDER BY x.n)
    FROM unnest(string_to_array(nullif(ltrim(p_path, '/'), ''), '/')) WITH ORDINALITY AS x(id, n)
    LEFT JOIN fifo.transfers t ON t.transfer_id = x.id
$$;

-- fifo._asset_seq(kind, disposal_id, ref_id): a disposal's order among those
-- of one instant in one pool, as the engine orders them (a transfer before its fee).
CREATE OR REPLACE FUNCTION fifo._asset_seq(p_kind text, p_disposal_id text, p_ref_id text)
RETURNS text
LANGUAGE sql IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT CASE p_kind WHEN 'transfer' THEN '1 ' || p_ref_id || ' a' WHEN 'transfer_fee' THEN '1 ' || p_ref_id || ' b'
                ELSE '2 ' || p_disposal_id END
$$;

-- explain_fifo_asset(id): how the asset view treats one trade (by order_id) or
-- one transfer (by transfer_id), step by step: its legs (what each acquires or
-- disposes of, valued how, or why it has no value), then each lot piece every
-- disposal took, with the lot's acquisition, the transfers that brought it into
-- the wallet and how much of it earlier disposals had taken, then any unmatched
-- part; for an acquisition, where its units went. Reads the last
-- compute_fifo_assets() run.
CREATE OR REPLACE FUNCTION public.explain_fifo_asset(p_id text)
RETURNS TABLE (step integer, kind text, wallet text, asset text, lot_id text, acquired_at timestamptz,
               quantity numeric, cost_basis numeric, proceeds numeric, gain numeric, note text)
LANGUAGE plpgsql STABLE
SECURITY DEFINER   -- readers explain a disposal without any right on fifo-db's internal tables
SET search_path = pg_catalog, pg_temp
AS $$
#variable_conflict use_column
BEGIN
    PERFORM fifo._require_text('id', p_id);
    IF NOT EXISTS (SELECT 1 FROM fifo.asset_runs r WHERE r.finished_at IS NOT NULL) THEN
        RAISE EXCEPTION 'the asset view has not been computed'
            USING ERRCODE = '55000', HINT = 'Run SELECT compute_fifo_assets(); (or fifo-db assets compute) first.';
    END IF;
    IF NOT EXISTS (SELECT 1 FROM fifo.asset_legs g WHERE g.order_id = p_id)
       AND NOT EXISTS (SELECT 1 FROM fifo.asset_allocations a WHERE a.ref_id = p_id) THEN
        RAISE EXCEPTION 'no trade leg or transfer "%" in the asset view', fifo._shown(p_id)
            USING ERRCODE = 'P0002',
                  HINT = 'Give an order_id or a transfer_id, exact and case-sensitive; a trade whose symbol does '
                         'not split or whose legs are all in the filer''s currency has no legs.';
    END IF;
    RETURN QUERY
    WITH legs AS (
        SELECT g.leg_id AS id, g.leg AS kind, g.wallet, g.asset, g.direction, g.quantity, g.value, g.at, g.unpriced
        FROM fifo.asset_legs g WHERE g.order_id = p_id
        UNION ALL
        SELECT DISTINCT ON (a.disposal_id) a.disposal_id, a.kind, a.wallet, a.asset, 'dispose',
               sum(a.quantity) OVER (PARTITION BY a.disposal_id),
               sum(a.proceeds) OVER (PARTITION BY a.disposal_id), a.disposed_at,
               CASE WHEN a.unpriced THEN 'no price' END
        FROM fifo.asset_allocations a WHERE a.ref_id = p_id AND a.kind IN ('transfer', 'transfer_fee')
    ),
    steps AS (
        SELECT 0 AS grp, fifo._asset_seq(l.kind, l.id, p_id) AS ord1, ''::text AS ord2, l.kind || ' ' || l.direction AS kind, l.wallet, l.asset,
               NULL::text AS lot_id, NULL::timestamptz AS acquired_at, l.quantity,
               CASE WHEN l.direction = 'acquire' THEN l.value END AS cost_basis,
               CASE WHEN l.direction = 'dispose' THEN l.value END AS proceeds, NULL::numeric AS gain,
               CASE WHEN l.kind = 'transfer' THEN 'moves lots to another wallet: realizes nothing'
                    WHEN l.value IS NULL THEN 'no value: ' || coalesce(l.unpriced, 'no price') || ' (flagged, left out of totals)'
                    WHEN l.direction = 'acquire' THEN 'a new lot; its basis in the filer''s currency'
                    ELSE 'proceeds in the filer''s currency' END AS note
        FROM legs l
        UNION ALL
        -- the pieces each disposal took, earliest acquired first
        SELECT 1, fifo._asset_seq(a.kind, a.disposal_id, a.ref_id), coalesce(to_char(a.acquired_at, 'YYYYMMDDHH24MISSUS'), 'z') || coalesce(a.lot_id, ''),
               CASE WHEN a.unmatched THEN 'unmatched' ELSE 'lot' END, a.wallet, a.asset, a.lot_id, a.acquired_at,
               a.quantity, a.cost_basis, a.proceeds, a.gain,
               CASE WHEN a.unmatched
                    THEN format('the wallet held no more %s at this point (oversold): no basis, never charged to a later lot', a.asset)
                    ELSE concat_ws('; ',
                        format('acquired %s by %s (%s) in %s', fifo._report_clock(lo.acquired_at), lo.origin_order,
                               lo.origin_leg, coalesce((SELECT g.account FROM fifo.asset_legs g
                                                        WHERE g.leg_id = lo.origin_order || ':' || lo.origin_leg), '?')),
                        CASE WHEN lo.path <> '' THEN 'moved by ' || fifo._asset_route(lo.path) END,
                        CASE WHEN u.before > 0 THEN format('%s of its %s taken before', trim_scale(u.before),
                                                           trim_scale(lo.quantity)) END,
                        CASE WHEN a.kind = 'transfer' THEN format('arrives in %s keeping date and basis', a.to_wallet) END,
                        CASE WHEN a.acquired_at IS NOT NULL THEN
                            CASE WHEN (a.disposed_at AT TIME ZONE fifo._report_tz())::date
                                      > fifo._long_term_after((a.acquired_at AT TIME ZONE fifo._report_tz())::date,
                                                              fifo._long_term_rule(), fifo._long_term_days())
                                 THEN 'long-term' ELSE 'short-term' END END) END
        FROM fifo.asset_allocations a
        LEFT JOIN fifo.asset_lots lo ON lo.wallet = a.wallet AND lo.asset = a.asset AND lo.lot_id = a.lot_id
        LEFT JOIN LATERAL (
            SELECT coalesce(sum(b.quantity), 0) AS before
            FROM fifo.asset_allocations b
            WHERE b.wallet = a.wallet AND b.asset = a.asset AND b.lot_id = a.lot_id
              AND (b.disposed_at, fifo._asset_seq(b.kind, b.disposal_id, b.ref_id) COLLATE "C")
                  < (a.disposed_at, fifo._asset_seq(a.kind, a.disposal_id, a.ref_id) COLLATE "C")) u ON true
        WHERE a.disposal_id IN (SELECT l.id FROM legs l WHERE l.direction = 'dispose')
        UNION ALL
        -- where an acquisition's units went (in its wallet and, by transfers, elsewhere)
        SELECT 2, l.id, to_char(a.disposed_at, 'YYYYMMDDHH24MISSUS') || a.disposal_id,
               'went to ' || a.kind, a.wallet, a.asset, a.lot_id, a.acquired_at, a.quantity, a.cost_basis,
               a.proceeds, a.gain,
               format('%s on %s%s', a.disposal_id, fifo._report_clock(a.disposed_at),
                      CASE WHEN a.to_wallet IS NOT NULL THEN ' to ' || a.to_wallet ELSE '' END)
        FROM legs l
        JOIN fifo.asset_allocations a ON a.lot_id = l.id OR a.lot_id LIKE l.id || '/%'
        WHERE l.direction = 'acquire'
    )
    SELECT (row_number() OVER (ORDER BY s.grp, s.ord1 COLLATE "C", s.ord2 COLLATE "C"))::integer - 1,
           s.kind, s.wallet, s.asset, s.lot_id, s.acquired_at, s.quantity, s.cost_basis, s.proceeds, s.gain, s.note
    FROM steps s
    ORDER BY s.grp, s.ord1 COLLATE "C", s.ord2 COLLATE "C";
END;
$$;
COMMENT ON FUNCTION public.explain_fifo_asset(text) IS
    'How the asset view treats one trade (order_id) or transfer (transfer_id): legs, lot pieces, where units went.';
