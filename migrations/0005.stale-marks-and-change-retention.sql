-- fifo-db 0005: versions other than the current one are marked stale
-- instead of forgotten, and the change log keeps a documented window.
--   fifo.pool_state.stale_from: when a run of the current version consumes
--     a pool's changes, every other version computed for that pool gets the
--     earliest changed order_time here. Its reports say 'stale' from there
--     on, and its next run (an incremental run once it is current)
--     recomputes that suffix. NULL: the version is current for the pool.
--   setting change_retention (default 7 days): how long consumed changes
--     stay for compute_fifo_since() / `compute --since`; one row per pool.
-- depends: 0004.trade-records-refuse-poison

ALTER TABLE fifo.pool_state ADD COLUMN stale_from timestamptz;

INSERT INTO fifo.settings (name, value) VALUES ('change_retention', '7 days')
ON CONFLICT (name) DO NOTHING;
