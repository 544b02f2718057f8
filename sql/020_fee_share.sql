-- fifo._fee_point(fee, size, x): the cumulative fee share of a trade of
-- `size` with total fee `fee` at quantity offset x, i.e. fee * x / size
-- rounded half-up to 40 decimal places (exact at x = 0 and x = size).
-- A row's fee share is _fee_point(to) - _fee_point(from); the shares of one
-- trade telescope, so they add up to its fee exactly (design.md rule 5).
--
-- Deliberately no SET search_path: a SET clause stops the planner from
-- inlining this SQL function, and it is evaluated twice per allocation row.
-- The body uses only pg_catalog built-ins, which are always resolved first.
CREATE OR REPLACE FUNCTION fifo._fee_point(p_fee numeric, p_size numeric, p_x numeric)
RETURNS numeric
LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$
    SELECT CASE
        WHEN p_x <= 0 OR p_fee = 0 THEN 0::numeric
        WHEN p_x >= p_size THEN p_fee
        ELSE pg_catalog.div(p_fee * p_x * 2e40 + p_size, 2 * p_size) * 1e-40
    END
$$;

-- fifo._fee_share(fee, size, from, to): the fee share of the part [from, to)
-- of a trade, trailing zeros trimmed. Inlined like _fee_point.
CREATE OR REPLACE FUNCTION fifo._fee_share(p_fee numeric, p_size numeric, p_from numeric, p_to numeric)
RETURNS numeric
LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$
    SELECT CASE
        WHEN p_fee = 0 THEN 0::numeric
        ELSE pg_catalog.trim_scale(fifo._fee_point(p_fee, p_size, p_to) - fifo._fee_point(p_fee, p_size, p_from))
    END
$$;
