-- fifo._shown(value): a value as an error message or hint shows it: whole
-- when it has at most 80 characters, else its first 80 followed by
-- '... (N chars)'. Every RAISE that echoes what a caller passed (an order_id,
-- a symbol, a setting's name or value, a time) goes through it, so a 1 MB
-- argument never comes back as a 1 MB message. NULL stays NULL.
CREATE OR REPLACE FUNCTION fifo._shown(p_value text)
RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT CASE WHEN length(p_value) > 80
                THEN left(p_value, 80) || '... (' || length(p_value) || ' chars)'
                ELSE p_value END
$$;
