-- fifo-db 0013: `fifo-db worker`, for servers without pg_cron.
--
-- fifo.workers: one row per database ('worker'): the session of the worker
-- that computes (its backend pid and start time), when it claimed the row and
-- when it last confirmed it. A worker claims the row through
-- fifo_worker_claim() (sql/120_worker.sql) when the recorded session is gone
-- (no such pid with that start time in pg_stat_activity); while it lives,
-- every other worker is a standby. No transaction stays open and no advisory
-- key is used: the row is locked only for the instant of a claim, and only
-- fifo-db's owner (and the functions it grants) can touch it.
-- depends: 0011.unicode-space-and-bounded-queues

CREATE TABLE fifo.workers (
    name          text PRIMARY KEY,
    pid           integer,
    backend_start timestamptz,
    client        text,
    claimed_at    timestamptz,
    seen_at       timestamptz,
    CONSTRAINT name_is_known CHECK (name = 'worker')
);
COMMENT ON TABLE fifo.workers IS
    'The session of the `fifo-db worker` that computes for this database (others wait as standbys).';
INSERT INTO fifo.workers (name) VALUES ('worker');
