-- `fifo-db worker` (fifo_db/worker.py): keeps allocations current on a server
-- without pg_cron. Only one worker per database computes; the others wait as
-- standbys. The exclusion is the row fifo.workers 'worker' (migration 0013),
-- never an advisory key and never a transaction held open: it records the
-- computing worker's session as (backend pid, application_name). A session
-- is unique among the live ones by its pid, and the application_name carries
-- a random token of the worker's own, so a pid reused by an unrelated session
-- after the worker died does not pass for it. Both columns of
-- pg_stat_activity are visible to every role, so the check works for a
-- non-superuser owner whose worker logs in as an operator role.

-- fifo_worker_claim(): called by a worker on each tick. Returns active =
-- true when this session is (now) the computing worker: it was already, or
-- the recorded session is gone and this one took its place. Otherwise
-- active = false with the live holder's pid, application_name and the time it
-- claimed the row. The row is locked only for the instant of the call.
CREATE OR REPLACE FUNCTION public.fifo_worker_claim(
    OUT active boolean,
    OUT holder_pid integer,
    OUT holder_client text,
    OUT holder_since timestamptz)
LANGUAGE plpgsql
SECURITY DEFINER   -- an operator's worker claims the row without any right in schema fifo
SET search_path = pg_catalog, pg_temp
SET lock_timeout = '5s'   -- two claims take turns for an instant; never an unbounded wait
AS $$
DECLARE
    v_me text := pg_catalog.current_setting('application_name');
    w fifo.workers;
BEGIN
    IF coalesce(v_me, '') !~ '^fifo-db worker .*[^ ]' THEN
        RAISE EXCEPTION 'fifo_worker_claim() is for `fifo-db worker`, whose session names itself; application_name is %',
                coalesce(quote_literal(fifo._shown(v_me)), 'NULL')
            USING ERRCODE = '55000',
                  HINT = 'Run `fifo-db worker`; to compute by hand call compute_fifo_incremental().';
    END IF;
    BEGIN
        SELECT * INTO w FROM fifo.workers x WHERE x.name = 'worker' FOR UPDATE;
    EXCEPTION WHEN lock_not_available THEN
        RAISE EXCEPTION 'the worker row fifo.workers is locked by %; gave up after 5s',
                coalesce(fifo._lock_holders(NULL, 'fifo.workers'::regclass), 'a session that has ended since')
            USING ERRCODE = '55P03', HINT = 'The worker retries on its next tick.';
    END;
    IF w.pid = pg_catalog.pg_backend_pid() AND w.client = v_me THEN
        UPDATE fifo.workers x SET seen_at = pg_catalog.clock_timestamp() WHERE x.name = 'worker';
        active := true;
    ELSIF w.pid IS NOT NULL AND EXISTS (
            SELECT 1 FROM pg_catalog.pg_stat_activity a
            WHERE a.pid = w.pid AND a.application_name = w.client
              AND a.datname = pg_catalog.current_database()) THEN
        active := false;
    ELSE
        UPDATE fifo.workers x
        SET pid = pg_catalog.pg_backend_pid(), client = v_me,
            backend_start = (SELECT a.backend_start FROM pg_catalog.pg_stat_activity a
                             WHERE a.pid = pg_catalog.pg_backend_pid()),
            claimed_at = pg_catalog.clock_timestamp(), seen_at = pg_catalog.clock_timestamp()
        WHERE x.name = 'worker'
        RETURNING * INTO w;
        active := true;
    END IF;
    holder_pid := w.pid;
    holder_client := w.client;
    holder_since := w.claimed_at;
END;
$$;
COMMENT ON FUNCTION public.fifo_worker_claim() IS
    '`fifo-db worker`: become (or stay) the one worker that computes for this database; false while another lives.';

-- fifo_worker_release(): a worker that stops cleanly gives the row up, so that
-- the capture triggers stop notifying (sql/080) until a worker claims it again.
-- Only the recorded session itself can release it; returns whether it did.
CREATE OR REPLACE FUNCTION public.fifo_worker_release()
RETURNS boolean
LANGUAGE plpgsql
SECURITY DEFINER   -- an operator's worker releases the row without any right in schema fifo
SET search_path = pg_catalog, pg_temp
SET lock_timeout = '5s'
AS $$
BEGIN
    UPDATE fifo.workers x SET pid = NULL, backend_start = NULL, seen_at = pg_catalog.clock_timestamp()
    WHERE x.name = 'worker' AND x.pid = pg_catalog.pg_backend_pid()
      AND x.client = pg_catalog.current_setting('application_name');
    RETURN FOUND;
END;
$$;
COMMENT ON FUNCTION public.fifo_worker_release() IS
    '`fifo-db worker`: give up the worker row on a clean stop (only the session that holds it can).';
