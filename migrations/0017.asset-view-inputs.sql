-- fifo-db 0017: the inputs and outputs of the asset (tax) view (design rule 8,
-- docs/engine.md "The asset (tax) view"). The pair view is untouched.
--
-- trade_records.fee_currency: the currency the fee was paid in (NULL: the
--   symbol's quote currency, what total_fees always meant). Only fifo-db's own
--   trade_records gets it: an adopted bot table is never altered (0006), and
--   its mapping reads NULL.
-- fifo.prices: prices of an asset in a currency at a time (CSV import,
--   `fifo-db import prices`); the asset view also derives prices from the
--   filer's own trades (sql/400_assets.sql).
-- fifo.transfers: moves of an asset between the filer's own wallets
--   (accounts), with the fee paid in the asset (`fifo-db import transfers`).
-- fifo.asset_price_points, asset_legs, asset_lots, asset_pieces,
--   asset_allocations: what compute_fifo_assets() writes, wholesale.
-- Settings: tax_pooling (wallet | universal), price_window, symbol_map.
-- depends: 0013.worker

DO $migration$
BEGIN
    IF (SELECT s.value FROM fifo.settings s WHERE s.name = 'trades_source') IS DISTINCT FROM 'fifo-db' THEN
        RETURN;
    END IF;
    ALTER TABLE public.trade_records
        ADD COLUMN fee_currency text,
        ADD CONSTRAINT fee_currency_is_a_code CHECK (fee_currency ~ '^[A-Za-z0-9]{1,16}$');
    COMMENT ON COLUMN public.trade_records.fee_currency IS
        'Currency of total_fees when it is not the quote currency (e.g. BNB); NULL: the quote currency. '
        'Read by the asset view only; the pair view takes total_fees in the quote currency.';
END;
$migration$;

CREATE TABLE fifo.prices (
    asset       text        NOT NULL CHECK (asset ~ '^[A-Za-z0-9]{1,16}$'),
    currency    text        NOT NULL CHECK (currency ~ '^[A-Za-z0-9]{1,16}$'),
    price       numeric     NOT NULL CHECK (price >= 0 AND price < 'Infinity'),
    at          timestamptz NOT NULL CHECK (at >= '1970-01-01 00:00+00' AND at < '2200-01-01 00:00+00'),
    source      text        NOT NULL DEFAULT 'import',
    recorded_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (asset, currency, at, source)
);
COMMENT ON TABLE fifo.prices IS
    'Prices of an asset in a currency (one unit of asset = price units of currency) at a time; read by the asset view.';

CREATE TABLE fifo.transfers (
    transfer_id  text        PRIMARY KEY CHECK (transfer_id ~ '^[^[:space:]/]([^/]*[^[:space:]/])?$'),
    asset        text        NOT NULL CHECK (asset ~ '^[A-Za-z0-9]{1,16}$'),
    from_account text        NOT NULL CHECK (from_account ~ '^[^[:space:]](.*[^[:space:]])?$'),
    to_account   text        NOT NULL CHECK (to_account ~ '^[^[:space:]](.*[^[:space:]])?$'),
    quantity     numeric     NOT NULL CHECK (quantity > 0 AND quantity < 'Infinity'),
    fee          numeric     NOT NULL DEFAULT 0 CHECK (fee >= 0 AND fee < 'Infinity'),
    at           timestamptz NOT NULL CHECK (at >= '1970-01-01 00:00+00' AND at < '2200-01-01 00:00+00'),
    recorded_at  timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT between_two_wallets CHECK (from_account <> to_account)
);
COMMENT ON TABLE fifo.transfers IS
    'Moves of an asset between the filer''s own wallets: quantity arrives at to_account; fee (in the asset) '
    'is paid by from_account on top of it.';
CREATE INDEX transfers_at_idx ON fifo.transfers (at);

-- what compute_fifo_assets() writes (wholesale, every run)
CREATE TABLE fifo.asset_price_points (
    asset  text        NOT NULL,
    at     timestamptz NOT NULL,
    rank   smallint    NOT NULL,   -- at equal times the lower rank wins: 0 imported, 1 derived from a trade
    price  numeric     NOT NULL,
    source text        NOT NULL
);
CREATE INDEX asset_price_points_idx ON fifo.asset_price_points (asset, at DESC, rank);

CREATE TABLE fifo.asset_legs (
    leg_id     text        PRIMARY KEY,   -- order_id || ':' || leg (base, quote, fee)
    order_id   text        NOT NULL,
    leg        text        NOT NULL,      -- base | quote | fee
    wallet     text        NOT NULL,      -- the pool's wallet ('*' under universal pooling)
    account    text        NOT NULL,
    asset      text        NOT NULL,
    direction  text        NOT NULL CHECK (direction IN ('acquire', 'dispose')),
    quantity   numeric     NOT NULL,
    value      numeric,                   -- basis (acquire) or proceeds (dispose) in the filer's currency; NULL: unpriced
    at         timestamptz NOT NULL,
    symbol     text        NOT NULL,
    unpriced   text                       -- why value is NULL (which price is missing)
);

CREATE TABLE fifo.asset_lots (
    wallet       text        NOT NULL,
    asset        text        NOT NULL,
    lot_id       text        NOT NULL,    -- origin leg id, then /transfer_id per move
    origin_order text        NOT NULL,
    origin_leg   text        NOT NULL,
    path         text        NOT NULL,
    acquired_at  timestamptz NOT NULL,
    quantity     numeric     NOT NULL,
    basis        numeric,
    arrived_at   timestamptz NOT NULL,
    arrival_phase smallint   NOT NULL,
    arrival_seq  text        NOT NULL,
    PRIMARY KEY (wallet, asset, lot_id)
);

CREATE TABLE fifo.asset_pieces (
    transfer_id  text        NOT NULL,
    to_wallet    text        NOT NULL,
    asset        text        NOT NULL,
    lot_id       text        NOT NULL,
    origin_order text        NOT NULL,
    origin_leg   text        NOT NULL,
    path         text        NOT NULL,
    acquired_at  timestamptz NOT NULL,
    quantity     numeric     NOT NULL,
    basis        numeric,
    at           timestamptz NOT NULL,
    PRIMARY KEY (transfer_id, lot_id)
);

CREATE TABLE fifo.asset_allocations (
    wallet       text        NOT NULL,
    asset        text        NOT NULL,
    disposal_id  text        NOT NULL,    -- a leg id, or transfer_id || ':out' / ':fee'
    kind         text        NOT NULL CHECK (kind IN ('trade', 'fee', 'transfer', 'transfer_fee')),
    ref_id       text        NOT NULL,    -- the trade's order_id or the transfer's id
    lot_id       text,                    -- NULL: the unmatched (oversold) part
    quantity     numeric     NOT NULL,
    acquired_at  timestamptz,
    disposed_at  timestamptz NOT NULL,
    cost_basis   numeric,
    proceeds     numeric,                 -- NULL for a transfer (nothing realized) or an unpriced disposal
    gain         numeric,
    unmatched    boolean     NOT NULL,
    unpriced     boolean     NOT NULL,
    to_wallet    text                     -- a transfer's destination
);
CREATE INDEX asset_allocations_pool_idx ON fifo.asset_allocations (wallet, asset, disposed_at);

CREATE TABLE fifo.asset_runs (
    run_id      bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    started_at  timestamptz NOT NULL DEFAULT clock_timestamp(),
    finished_at timestamptz,
    pooling     text        NOT NULL,
    rounds      integer,
    legs        bigint,
    unpriced    bigint,
    unmatched   bigint,
    unsplit     bigint
);
COMMENT ON TABLE fifo.asset_runs IS 'One row per compute_fifo_assets() run.';

INSERT INTO fifo.settings (name, value) VALUES
    ('tax_pooling', 'wallet'),
    ('price_window', '1 day'),
    ('symbol_map', '')
ON CONFLICT (name) DO NOTHING;
