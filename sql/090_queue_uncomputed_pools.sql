-- fifo._queue_uncomputed_pools(): queue every pool that has trades but was
-- never computed for the current version, so the first scheduled run (or
-- compute_fifo_incremental()) computes them. Returns how many it queued;
-- called by every install, a no-op when nothing is missing.
CREATE OR REPLACE FUNCTION fifo._queue_uncomputed_pools()
RETURNS integer
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_count integer;
BEGIN
    INSERT INTO fifo.pool_changes (symbol, account, from_time)
    SELECT p.symbol, p.account, '-infinity'
    FROM (SELECT DISTINCT t.symbol, t.account FROM fifo.trades t) p
    WHERE NOT EXISTS (SELECT 1 FROM fifo.pool_state ps
                      WHERE ps.version = fifo._current_version()
                        AND ps.symbol = p.symbol AND ps.account = p.account)
      AND NOT EXISTS (SELECT 1 FROM fifo.pool_changes pc
                      WHERE pc.processed_at IS NULL
                        AND pc.symbol = p.symbol AND pc.account = p.account);
    GET DIAGNOSTICS v_count = ROW_COUNT;
    RETURN v_count;
END;
$$;
