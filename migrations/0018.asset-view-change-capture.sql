-- fifo-db 0018: change capture and incremental runs of the asset (tax) view
-- (docs/engine.md "Incremental asset runs"; sql/450_asset_changes.sql).
--
-- fifo.asset_changes: the queue. Statement-level triggers on the trades
--   source, fifo.prices and fifo.transfers add one row per source table per
--   writing transaction (later statements merge into it); at commit a writer
--   folds the other committed rows of that source into its own, so the queue
--   holds about one pending row per source. compute_fifo_assets_incremental()
--   consumes them. Nobody but the owner has any right on it.
-- fifo.asset_transfer_inputs: the transfers as the last run saw them (an
--   incremental run compares them with fifo.transfers to find changed pools).
-- fifo.asset_work_pools: the pools a run is recomputing (work table, empty
--   between runs).
-- fifo.asset_runs gains kind (full | incremental), pools (pool matchings
--   done), changes (queue rows consumed) and settings (those the run used:
--   an incremental run with other settings is a full one).
-- depends: 0017.asset-view-inputs

CREATE TABLE fifo.asset_changes (
    id         bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    source     text        NOT NULL CHECK (source IN ('trades', 'prices', 'transfers')),
    statements bigint      NOT NULL DEFAULT 1,
    xact       xid8        NOT NULL DEFAULT pg_current_xact_id(),
    changed_at timestamptz NOT NULL DEFAULT clock_timestamp()
);
CREATE INDEX asset_changes_source_idx ON fifo.asset_changes (source, xact);
COMMENT ON TABLE fifo.asset_changes IS
    'Change queue of the asset view: a source table (trades, prices, transfers) written since the last asset run.';

CREATE TABLE fifo.asset_transfer_inputs (
    transfer_id  text        PRIMARY KEY,
    asset        text        NOT NULL,
    from_account text        NOT NULL,
    to_account   text        NOT NULL,
    quantity     numeric     NOT NULL,
    fee          numeric     NOT NULL,
    at           timestamptz NOT NULL
);

CREATE TABLE fifo.asset_work_pools (
    wallet text NOT NULL,
    asset  text NOT NULL,
    PRIMARY KEY (wallet, asset)
);

ALTER TABLE fifo.asset_runs
    ADD COLUMN kind text NOT NULL DEFAULT 'full' CHECK (kind IN ('full', 'incremental')),
    ADD COLUMN pools bigint,
    ADD COLUMN changes bigint,
    ADD COLUMN settings text;

CREATE INDEX asset_legs_pool_idx ON fifo.asset_legs (wallet, asset);
