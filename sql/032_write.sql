-- The write path of a per-pool run (issue 16): fifo._match (sql/030) hands
-- the pools and their cuts here; a forced run of every pool writes into a
-- fresh table instead (sql/035) and never comes here.
--
-- Only what changed is written. The rows fifo._allocation_rows computes
-- for each pool from its cut are paired with the rows stored for the same
-- sells (sell_time at or after the cut): a stored row identical to a
-- computed one, every digit and scale included, is kept as it is (its id,
-- batch_id and computed_at too); every other stored row is deleted and every
-- other computed row inserted. A recompute of an unchanged pool writes
-- nothing; a change in the middle rewrites only the rows that differ. The
-- result equals a DELETE of the whole suffix and an INSERT of every computed
-- row in every column but id, batch_id and computed_at, which say when a
-- row was last written, not when it was last confirmed (fifo.pool_state and
-- fifo_runs say that). Writing was half of compute_fifo of a 1,000-trade
-- pool: ~900 rows through the heap, four indexes and the WAL.

-- (issue 16 replaced it: the suffix is deleted row by row here)
DROP FUNCTION IF EXISTS fifo._delete_suffixes(integer, text[], text[], timestamptz[]);

-- fifo._write_allocations(version, batch, symbols[], accounts[], from_times[]):
-- makes the version's stored allocations of each pool's sells at or after its
-- cut equal to fifo._allocation_rows(), new rows stamped with `batch`.
-- Returns what the rows computed add up to (allocations, unmatched, total_pnl,
-- pnl_by_currency: the run's figures, as if every row had been rewritten), and
-- how many rows were deleted and inserted. The caller holds the pools' locks.
CREATE OR REPLACE FUNCTION fifo._write_allocations(
    p_version integer,
    p_batch_id uuid,
    p_symbols text[],
    p_accounts text[],
    p_from timestamptz[],
    OUT allocations bigint,
    OUT unmatched bigint,
    OUT total_pnl numeric,
    OUT pnl_by_currency jsonb,
    OUT deleted bigint,
    OUT inserted bigint)
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
SET jit = off   -- estimates of per-pool statements cross jit_above_cost (sql/030)
-- One generic plan per session, for this statement and fifo._allocation_rows' (fifo._match,
-- the caller, plans per call): neither depends on a guess of a pool's size or cut (every
-- pool is read per pool, LATERAL, with its cut as a parameter of the inner scan; the
-- carry-in plans its own statements per call, sql/025), and planning the two per call was
-- 3.5 ms of a compute_fifo of a 1,000-trade pool (pg_stat_statements, track_planning).
SET plan_cache_mode = force_generic_plan
SET enable_mergejoin = off   -- the pairing below sorted both sides for a merge join: a hash join costs less
SET enable_seqscan = off     -- the stored rows of a pool from its cut are an index range: with one pool
                             -- most of the partition, a plan without the cut chose a sequential scan
                             -- of the partition per pool (15.8 s for one appended sell to a 100k pool)
AS $$
#variable_conflict use_column
BEGIN
    WITH computed AS MATERIALIZED (
        -- k: the row's ordinal, to name it below
        SELECT r.*
        FROM fifo._allocation_rows(p_version, p_symbols, p_accounts, p_from)
             WITH ORDINALITY AS r(account, symbol, sell_trade_id, buy_trade_id, allocated_size, buy_price,
                                  sell_price, buy_fees, sell_fees, cost_basis, sale_proceeds, pnl_amount,
                                  buy_time, sell_time, k)
    ),
    paired AS MATERIALIZED (
        -- each computed row beside the stored rows of its (sell, lot), one hash full join;
        -- same: every stored column equal byte for byte (record_image_eq, the operator *=):
        -- a numeric is stored as its digits and its scale, so equal values of another scale
        -- differ (1.0 is not 1.00). One comparison of two row values; the stored side's is
        -- built in its scan, so the hash keeps it instead of eleven columns
        SELECT s.id AS stored_id, n.k,
               (s.id IS NOT NULL AND n.k IS NOT NULL
                AND s.image OPERATOR(pg_catalog.*=)
                    ROW(n.buy_trade_id IS NULL, n.sell_time, n.buy_time, n.allocated_size, n.sell_price,
                        n.sell_fees, n.sale_proceeds, n.buy_price, n.buy_fees, n.cost_basis, n.pnl_amount)) AS same
        FROM computed n
        FULL JOIN (
            -- the stored rows, per pool, LATERAL and kept a subquery (OFFSET 0): an index
            -- range of the pool from its cut, whatever the planner would guess of a join with
            -- the pool list (the suffix DELETE this replaces had that problem: a sequential scan)
            SELECT a.*
            FROM unnest(p_symbols, p_accounts, p_from) AS c(symbol, account, from_time)
            CROSS JOIN LATERAL (
                SELECT a.id, a.symbol, a.account, a.sell_trade_id, a.buy_trade_id,
                       ROW(a.unmatched, a.sell_time, a.buy_time, a.allocated_size, a.sell_price,
                           a.sell_fees, a.sale_proceeds, a.buy_price, a.buy_fees, a.cost_basis,
                           a.pnl_amount) AS image
                FROM fifo.allocations a
                WHERE a.version = p_version
                  AND a.symbol = c.symbol
                  AND a.account = c.account
                  AND a.sell_time >= c.from_time
                OFFSET 0
            ) a
        ) s
               ON s.symbol = n.symbol
              AND s.account = n.account
              AND s.sell_trade_id = n.sell_trade_id
              AND coalesce(s.buy_trade_id, '') = coalesce(n.buy_trade_id, '')
              AND (s.buy_trade_id IS NULL) = (n.buy_trade_id IS NULL)
    ),
    twice AS MATERIALIZED (
        -- a (sell, lot) pair with more than one row on either side: the engine never
        -- computes one, but a stored table may hold one (written by hand). A row of such a
        -- pair is paired with each row of the other side, so its ordinal or id is paired
        -- more than once; every row of such a pair is rewritten, and every other row is
        -- paired with at most one row, so pairing by (sell, lot) is exact whatever is
        -- stored. (Counting the integer ordinals and ids of the pairs costs less than
        -- hashing the text keys of both sides again, which cost a millisecond per 900 rows.)
        SELECT p.k, NULL::bigint AS stored_id
        FROM paired p WHERE p.k IS NOT NULL AND p.stored_id IS NOT NULL
        GROUP BY p.k HAVING count(*) > 1
        UNION ALL
        SELECT NULL, p.stored_id
        FROM paired p WHERE p.k IS NOT NULL AND p.stored_id IS NOT NULL
        GROUP BY p.stored_id HAVING count(*) > 1
    ),
    judged AS MATERIALIZED (
        -- keep: a stored row identical to the one computed row it is paired with. The
        -- lookups in `twice` run only when it holds a row (a one-time test); they are
        -- hashed subplans, planned for the few rows a HAVING leaves and built once
        SELECT p.stored_id, p.k,
               p.same AND (NOT EXISTS (SELECT 1 FROM twice)
                           OR (p.k NOT IN (SELECT t.k FROM twice t WHERE t.k IS NOT NULL)
                               AND p.stored_id NOT IN (SELECT t.stored_id FROM twice t
                                                       WHERE t.stored_id IS NOT NULL))) AS keep
        FROM paired p
    ),
    gone AS (
        DELETE FROM fifo.allocations a
        WHERE a.version = p_version
          AND a.id = ANY (ARRAY(SELECT j.stored_id FROM judged j WHERE j.stored_id IS NOT NULL AND NOT j.keep))
        RETURNING 1
    ),
    written AS (
        -- every computed row not kept (a semi join: with nothing to write, the computed
        -- rows are not read at all)
        INSERT INTO fifo.allocations (
            version, batch_id, account, symbol, sell_trade_id, buy_trade_id,
            allocated_size, buy_price, sell_price, buy_fees, sell_fees,
            cost_basis, sale_proceeds, pnl_amount, buy_time, sell_time, unmatched)
        SELECT p_version, p_batch_id, n.account, n.symbol, n.sell_trade_id, n.buy_trade_id,
               n.allocated_size, n.buy_price, n.sell_price, n.buy_fees, n.sell_fees,
               n.cost_basis, n.sale_proceeds, n.pnl_amount, n.buy_time, n.sell_time, n.buy_trade_id IS NULL
        FROM computed n
        WHERE n.k IN (SELECT j.k FROM judged j WHERE j.k IS NOT NULL AND NOT j.keep)
        RETURNING 1
    ),
    per_symbol AS (
        SELECT n.symbol, count(*) AS n, count(*) FILTER (WHERE n.buy_trade_id IS NULL) AS u,
               sum(n.pnl_amount) AS pnl
        FROM computed n GROUP BY n.symbol
    )
    SELECT coalesce(sum(g.n), 0), coalesce(sum(g.u), 0), coalesce(sum(g.pnl), 0),
           fifo._pnl_by_currency(array_agg(g.symbol), array_agg(g.pnl)),
           (SELECT count(*) FROM gone), (SELECT count(*) FROM written)
    INTO allocations, unmatched, total_pnl, pnl_by_currency, deleted, inserted
    FROM per_symbol g;
END;
$$;
