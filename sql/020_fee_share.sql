-- fifo._fee_point(fee, size, x): the cumulative fee share of a trade of
-- `size` with total fee `fee` at quantity offset x, i.e. fee * x / size
-- rounded half-up to 40 decimal places (scale 40) (exact at x = 0 and x = size).
-- A row's fee share is _fee_point(to) - _fee_point(from); the shares of one
-- trade telescope, so they add up to its fee exactly (docs/rules.md rule 5).
--
-- Deliberately no SET search_path: a SET clause stops the planner from
-- inlining this SQL function, and it is evaluated twice per allocation row.
-- An inlined body is parsed in the CALLER's search_path, so every operator,
-- function and type in it is written schema-qualified (OPERATOR(pg_catalog.x),
-- pg_catalog.fn): a look-alike planted in a schema the caller searches
-- first can never be picked (tests/test_hostile.py).
CREATE OR REPLACE FUNCTION fifo._fee_point(p_fee numeric, p_size numeric, p_x numeric)
RETURNS numeric
LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$
    SELECT CASE
        WHEN p_x OPERATOR(pg_catalog.<=) 0::pg_catalog.numeric
          OR p_fee OPERATOR(pg_catalog.=) 0::pg_catalog.numeric THEN 0::pg_catalog.numeric
        WHEN p_x OPERATOR(pg_catalog.>=) p_size THEN p_fee
        -- the quotient truncated at 41 places (div is exact), then rounded half-up at
        -- 40: the 41st digit alone decides, so this is the exact rounding of
        -- fee * x / size. Half the numeric work of div(fee*x*2e40 + size, 2*size) * 1e-40,
        -- which gave the same digits (issue 16: fee shares were a quarter of the matching).
        ELSE pg_catalog.round(pg_catalog.div((p_fee OPERATOR(pg_catalog.*) p_x)
                                                 OPERATOR(pg_catalog.*) 1e41::pg_catalog.numeric,
                                             p_size)
                              OPERATOR(pg_catalog.*) 1e-41::pg_catalog.numeric, 40)
    END
$$;

-- fifo._fee_share(fee, size, from, to): the fee share of the part [from, to)
-- of a trade, trailing zeros trimmed. Inlined and qualified like _fee_point.
CREATE OR REPLACE FUNCTION fifo._fee_share(p_fee numeric, p_size numeric, p_from numeric, p_to numeric)
RETURNS numeric
LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$
    SELECT CASE
        WHEN p_fee OPERATOR(pg_catalog.=) 0::pg_catalog.numeric THEN 0::pg_catalog.numeric
        ELSE pg_catalog.trim_scale(fifo._fee_point(p_fee, p_size, p_to)
                                   OPERATOR(pg_catalog.-) fifo._fee_point(p_fee, p_size, p_from))
    END
$$;
