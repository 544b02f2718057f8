-- fifo-db 0010: exclusion rests on rows only fifo-db's owner can lock, not on
-- advisory keys (any role may take any advisory key: a role with no grant at
-- all could stall every run). Locking a row (SELECT ... FOR UPDATE / FOR
-- SHARE) needs the UPDATE privilege on its table, and nobody but the owner
-- has any privilege on these tables, nor USAGE on schema fifo (sql/900).
--   fifo.run_locks: one row per run-wide lock. 'all': every per-pool run
--     holds it FOR SHARE, a forced full recompute FOR UPDATE. 'incremental':
--     the compute_fifo_incremental tick that holds it prunes the change log.
--   fifo.pool_locks: one row per pool (symbol, account), added by the first
--     run that locks the pool; a run holds it FOR UPDATE.
-- The setting lock_timeout bounds every wait of a run (sql/040).
-- Fresh tables that forced runs of older versions left behind (committed by
-- their second session, then the run failed) are dropped by install
-- (fifo._drop_stale_fresh_tables, sql/035).
-- depends: 0009.run-pnl-by-currency

CREATE TABLE fifo.run_locks (
    name text PRIMARY KEY,
    CONSTRAINT name_is_known CHECK (name IN ('all', 'incremental'))
);
INSERT INTO fifo.run_locks (name) VALUES ('all'), ('incremental');

CREATE TABLE fifo.pool_locks (
    symbol  text NOT NULL,
    account text NOT NULL,
    PRIMARY KEY (symbol, account)
);
INSERT INTO fifo.pool_locks (symbol, account)
SELECT DISTINCT ps.symbol, ps.account FROM fifo.pool_state ps;

INSERT INTO fifo.settings (name, value) VALUES ('lock_timeout', '30 s')
ON CONFLICT (name) DO NOTHING;
