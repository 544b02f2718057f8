-- fifo-db 0001: the data model of design.md.
-- The public tables are the product's data (the bot writes trade_records,
-- analysts read fifo_allocations and fifo_runs); bookkeeping lives in the
-- fifo schema. Functions and views are not here: they live in sql/ and are
-- re-applied on every install.
-- depends:

CREATE SCHEMA IF NOT EXISTS fifo;

-- One row per fill/order: the only input.
CREATE TABLE public.trade_records (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    order_id    text        NOT NULL,
    account     text        NOT NULL DEFAULT 'default',
    symbol      text        NOT NULL,
    side        text        NOT NULL,
    size        numeric     NOT NULL,
    price       numeric     NOT NULL,
    total_fees  numeric     NOT NULL DEFAULT 0,
    order_time  timestamptz NOT NULL,
    recorded_at timestamptz NOT NULL DEFAULT clock_timestamp(),
    source      text,
    CONSTRAINT order_id_is_unique UNIQUE (order_id),
    CONSTRAINT order_id_is_not_empty CHECK (order_id <> ''),
    CONSTRAINT account_is_not_empty CHECK (account <> ''),
    CONSTRAINT symbol_is_not_empty CHECK (symbol <> ''),
    CONSTRAINT side_is_buy_or_sell CHECK (side IN ('buy', 'sell')),
    CONSTRAINT size_is_positive CHECK (size > 0),
    CONSTRAINT price_is_not_negative CHECK (price >= 0),
    CONSTRAINT fees_are_not_negative CHECK (total_fees >= 0),
    CONSTRAINT order_time_is_finite CHECK (isfinite(order_time))
);
COMMENT ON TABLE public.trade_records IS
    'fifo-db input: one row per fill. P&L is never stored here; see fifo_allocations.';

-- The matching order of design.md rule 2: (order_time, buys before sells, order_id).
-- 'buy' < 'sell' in every collation; order_id compares bytewise (COLLATE "C") so
-- the order never depends on the database locale.
CREATE INDEX trade_records_pool_order_idx
    ON public.trade_records (symbol, account, order_time, side, order_id COLLATE "C")
    INCLUDE (size, price, total_fees);
CREATE INDEX trade_records_recorded_at_idx ON public.trade_records (recorded_at);

-- The only P&L truth: one row per (sell, lot) pair, plus one row with
-- buy_trade_id NULL for the part of a sell that had no inventory (rule 4).
CREATE TABLE public.fifo_allocations (
    id             bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    version        integer     NOT NULL,
    batch_id       uuid        NOT NULL,
    account        text        NOT NULL,
    symbol         text        NOT NULL,
    sell_trade_id  text        NOT NULL,
    buy_trade_id   text,
    allocated_size numeric     NOT NULL,
    buy_price      numeric,
    sell_price     numeric     NOT NULL,
    buy_fees       numeric,
    sell_fees      numeric     NOT NULL,
    cost_basis     numeric,
    sale_proceeds  numeric     NOT NULL,
    pnl_amount     numeric,
    buy_time       timestamptz,
    sell_time      timestamptz NOT NULL,
    unmatched      boolean     GENERATED ALWAYS AS (buy_trade_id IS NULL) STORED,
    computed_at    timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT allocated_size_is_positive CHECK (allocated_size > 0),
    CONSTRAINT unmatched_rows_have_no_cost CHECK (
        (buy_trade_id IS NULL) = (cost_basis IS NULL)
        AND (buy_trade_id IS NULL) = (pnl_amount IS NULL)
        AND (buy_trade_id IS NULL) = (buy_price IS NULL)
        AND (buy_trade_id IS NULL) = (buy_fees IS NULL)
        AND (buy_trade_id IS NULL) = (buy_time IS NULL)),
    CONSTRAINT lot_is_not_later_than_sale CHECK (buy_time <= sell_time)
);
COMMENT ON TABLE public.fifo_allocations IS
    'fifo-db output: FIFO allocations, derived from trade_records by compute_fifo*(). Never edit by hand.';

-- Per-pool reads in sell order (reports, suffix recompute, delete of a suffix).
CREATE INDEX fifo_allocations_pool_sell_idx
    ON public.fifo_allocations (version, symbol, account, sell_time, sell_trade_id COLLATE "C");
-- The seed's spot check joins on sell_trade_id; lots and explain look up by buy.
CREATE INDEX fifo_allocations_sell_trade_idx ON public.fifo_allocations (sell_trade_id);
CREATE INDEX fifo_allocations_buy_trade_idx ON public.fifo_allocations (buy_trade_id, version)
    WHERE buy_trade_id IS NOT NULL;

-- One row per computation (batch).
CREATE TABLE public.fifo_runs (
    run_id        bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    batch_id      uuid        NOT NULL UNIQUE,
    version       integer     NOT NULL,
    mode          text        NOT NULL,
    symbols       text[]      NOT NULL DEFAULT '{}',
    pools         integer     NOT NULL DEFAULT 0,
    buys          bigint      NOT NULL DEFAULT 0,
    sells         bigint      NOT NULL DEFAULT 0,
    allocations   bigint      NOT NULL DEFAULT 0,
    unmatched     bigint      NOT NULL DEFAULT 0,
    total_pnl     numeric     NOT NULL DEFAULT 0,
    skipped_pools integer     NOT NULL DEFAULT 0,
    failed_pools  integer     NOT NULL DEFAULT 0,
    started_at    timestamptz NOT NULL,
    finished_at   timestamptz,
    duration_ms   numeric,
    status        text        NOT NULL,
    error         text,
    CONSTRAINT mode_is_known CHECK (mode IN ('symbol', 'all', 'incremental', 'since')),
    CONSTRAINT status_is_known CHECK (status IN ('running', 'ok', 'partial', 'skipped', 'failed'))
);
CREATE INDEX fifo_runs_started_at_idx ON public.fifo_runs (started_at);

-- Settings read by the functions and views (current version, long-term
-- threshold, report time zone).
CREATE TABLE fifo.settings (
    name  text PRIMARY KEY,
    value text NOT NULL
);
INSERT INTO fifo.settings (name, value) VALUES
    ('current_version', '1'),
    ('long_term_days', '365'),
    ('report_timezone', 'UTC');

-- Which pools are computed for which version, so a suffix recompute knows
-- that the allocations before its cut exist.
CREATE TABLE fifo.pool_state (
    version     integer     NOT NULL,
    symbol      text        NOT NULL,
    account     text        NOT NULL,
    batch_id    uuid        NOT NULL,
    computed_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (version, symbol, account)
);

-- Change capture: pools whose trades changed, with the earliest order_time
-- affected. Insert-only for writers (statement-level triggers); the
-- incremental computation stamps processed_at on what it consumed, and the
-- rows stay a while so `--since` can find pools changed in a time window
-- (deletes and back-dated inserts included).
CREATE TABLE fifo.pool_changes (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    symbol       text        NOT NULL,
    account      text        NOT NULL,
    from_time    timestamptz NOT NULL,
    changed_at   timestamptz NOT NULL DEFAULT clock_timestamp(),
    processed_at timestamptz
);
CREATE INDEX pool_changes_pending_idx ON fifo.pool_changes (symbol, account) WHERE processed_at IS NULL;
CREATE INDEX pool_changes_changed_at_idx ON fifo.pool_changes (changed_at);
