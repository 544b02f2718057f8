-- fifo_runs stays bounded: every statement that records runs prunes the
-- oldest ones beyond the setting run_retention (default 10000 runs). A
-- reader may call compute_fifo in a loop, and each call records a run; the
-- table never holds much more than run_retention rows for all that.
-- Runs still 'running' are kept. Rows another transaction holds (a run not
-- yet committed) are skipped, not waited for: the next run prunes them.

-- fifo._prune_runs(): the trigger function (AFTER INSERT, per statement).
CREATE OR REPLACE FUNCTION fifo._prune_runs()
RETURNS trigger
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_last bigint;   -- the newest run id a run beyond the retention can have
BEGIN
    -- the setting read once, not per row; the two ends of the primary key first, so a
    -- table within the retention costs two index probes (issue 16: per-call overheads)
    SELECT max(n.run_id) - fifo._setting('run_retention')::bigint INTO v_last FROM public.fifo_runs n;
    IF v_last IS NULL OR (SELECT min(o.run_id) FROM public.fifo_runs o) > v_last THEN
        RETURN NULL;
    END IF;
    -- through the primary key: the oldest run ids first
    DELETE FROM public.fifo_runs r
    WHERE r.run_id IN (
        SELECT o.run_id FROM public.fifo_runs o
        WHERE o.run_id <= v_last
          AND o.status <> 'running'
        ORDER BY o.run_id
        FOR UPDATE SKIP LOCKED);
    RETURN NULL;
END;
$$;

CREATE OR REPLACE TRIGGER fifo_prune_runs
    AFTER INSERT ON public.fifo_runs
    FOR EACH STATEMENT EXECUTE FUNCTION fifo._prune_runs();
