-- fifo-db 0008: fifo.allocations becomes a table partitioned by version, one
-- partition per version (fifo.allocations_v1, ...; fifo._version_partition()
-- adds them). A forced full recompute writes a version into a fresh table with
-- no index, builds the indexes once and swaps it in for the version's
-- partition (fifo._swap_partition), instead of deleting and re-inserting every
-- row through four indexes; the old partition's space goes back at once.
-- Same name and columns for readers. The per-pool index no longer starts
-- with version (a partition holds one version); the primary key is (id,
-- version) (a partitioned table's keys include the partition key; id stays
-- unique through the shared identity, which now hands out ids 100 at a time
-- per session: a forced run writes from two sessions at once). `unmatched` is
-- written by the engine instead of generated (forming every row twice was 3%
-- of a forced run), a CHECK keeping it equal to buy_trade_id IS NULL.
-- Views that read the old table are pointed at the new one (their definitions
-- are re-applied); install then re-creates fifo-db's own views anyway.
-- depends: 0007.engine-leg

DO $migration$
DECLARE
    v_views record;
    v_grant record;
    v_defs text[] := '{}';
    v_names text[] := '{}';
    v_opts text[] := '{}';
    v_acl aclitem[];
    v_owner text;
    v_next bigint;
    v_version integer;
    i integer;
    v_path text := pg_catalog.current_setting('search_path');   -- yoyo's bookkeeping needs it back
BEGIN
    PERFORM pg_catalog.set_config('search_path', 'pg_catalog', true);   -- definitions fully qualified

    -- the views reading the old table directly, and their definitions as of now
    FOR v_views IN
        SELECT DISTINCT v.oid::regclass::text AS name, pg_get_viewdef(v.oid) AS def,
               array_to_string(v.reloptions, ', ') AS opts
        FROM pg_depend d
        JOIN pg_rewrite r ON r.oid = d.objid AND d.classid = 'pg_rewrite'::regclass
        JOIN pg_class v ON v.oid = r.ev_class AND v.relkind = 'v'
        WHERE d.refclassid = 'pg_class'::regclass AND d.refobjid = 'fifo.allocations'::regclass
    LOOP
        v_names := v_names || v_views.name;
        v_defs := v_defs || v_views.def;
        v_opts := v_opts || coalesce(v_views.opts, '');
    END LOOP;

    SELECT c.relacl, c.relowner::regrole::text INTO v_acl, v_owner
    FROM pg_class c WHERE c.oid = 'fifo.allocations'::regclass;
    SELECT coalesce(max(a.id), 0) + 1 INTO v_next FROM fifo.allocations a;

    ALTER TABLE fifo.allocations RENAME TO allocations_before_0008;
    ALTER INDEX fifo.fifo_allocations_pkey RENAME TO allocations_before_0008_pkey;
    ALTER INDEX fifo.fifo_allocations_pool_sell_idx RENAME TO allocations_before_0008_pool_sell_idx;
    ALTER INDEX fifo.fifo_allocations_sell_trade_idx RENAME TO allocations_before_0008_sell_trade_idx;
    ALTER INDEX fifo.fifo_allocations_buy_trade_idx RENAME TO allocations_before_0008_buy_trade_idx;

    EXECUTE format($t$
        CREATE TABLE fifo.allocations (
            id             bigint      GENERATED ALWAYS AS IDENTITY (START WITH %s CACHE 100),
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
            unmatched      boolean     NOT NULL,
            computed_at    timestamptz NOT NULL DEFAULT now(),
            CONSTRAINT fifo_allocations_pkey PRIMARY KEY (id, version),
            CONSTRAINT allocated_size_is_positive CHECK (allocated_size > 0),
            CONSTRAINT unmatched_rows_have_no_cost CHECK (
                (buy_trade_id IS NULL) = (cost_basis IS NULL)
                AND (buy_trade_id IS NULL) = (pnl_amount IS NULL)
                AND (buy_trade_id IS NULL) = (buy_price IS NULL)
                AND (buy_trade_id IS NULL) = (buy_fees IS NULL)
                AND (buy_trade_id IS NULL) = (buy_time IS NULL)),
            CONSTRAINT lot_is_not_later_than_sale CHECK (buy_time <= sell_time),
            CONSTRAINT unmatched_says_the_lot_is_missing CHECK (unmatched = (buy_trade_id IS NULL))
        ) PARTITION BY LIST (version)$t$, v_next);
    EXECUTE format('ALTER TABLE fifo.allocations OWNER TO %s', v_owner);
    COMMENT ON TABLE fifo.allocations IS
        'fifo-db output: FIFO allocations, derived from the trades by compute_fifo*(); one partition per version. '
        'Never edit by hand; read public.fifo_allocations.';
    -- Per-pool reads in sell order (reports, suffix recompute, delete of a suffix).
    CREATE INDEX fifo_allocations_pool_sell_idx
        ON fifo.allocations (symbol, account, sell_time, sell_trade_id COLLATE "C");
    -- The seed's spot check and BotTrader's reports join on the sell; lots and explain look up by buy.
    CREATE INDEX fifo_allocations_sell_trade_idx ON fifo.allocations (sell_trade_id);
    CREATE INDEX fifo_allocations_buy_trade_idx ON fifo.allocations (buy_trade_id)
        WHERE buy_trade_id IS NOT NULL;

    -- the rows, one partition per version they have
    FOR v_version IN SELECT DISTINCT a.version FROM fifo.allocations_before_0008 a ORDER BY 1 LOOP
        EXECUTE format('CREATE TABLE fifo.%I PARTITION OF fifo.allocations FOR VALUES IN (%s)',
                       'allocations_v' || v_version, v_version);
        EXECUTE format('ALTER TABLE fifo.%I OWNER TO %s', 'allocations_v' || v_version, v_owner);
        -- like a partition fifo._version_partition makes: ids from the shared identity on direct inserts
        EXECUTE format('ALTER TABLE fifo.%I ALTER COLUMN id SET DEFAULT nextval(%L)', 'allocations_v' || v_version,
                       pg_get_serial_sequence('fifo.allocations', 'id'));
    END LOOP;
    INSERT INTO fifo.allocations (id, version, batch_id, account, symbol, sell_trade_id, buy_trade_id,
                                  allocated_size, buy_price, sell_price, buy_fees, sell_fees, cost_basis,
                                  sale_proceeds, pnl_amount, buy_time, sell_time, unmatched, computed_at)
    OVERRIDING SYSTEM VALUE
    SELECT a.id, a.version, a.batch_id, a.account, a.symbol, a.sell_trade_id, a.buy_trade_id,
           a.allocated_size, a.buy_price, a.sell_price, a.buy_fees, a.sell_fees, a.cost_basis,
           a.sale_proceeds, a.pnl_amount, a.buy_time, a.sell_time, a.unmatched, a.computed_at
    FROM fifo.allocations_before_0008 a;

    -- the same rights, and the views pointed at the new table
    FOR v_grant IN
        SELECT CASE WHEN g.grantee = 0 THEN 'PUBLIC' ELSE g.grantee::regrole::text END AS grantee,
               g.privilege_type, g.is_grantable
        FROM aclexplode(v_acl) g
        WHERE g.grantee <> (SELECT c.relowner FROM pg_class c WHERE c.oid = 'fifo.allocations'::regclass)
    LOOP
        EXECUTE format('GRANT %s ON fifo.allocations TO %s%s', v_grant.privilege_type, v_grant.grantee,
                       CASE WHEN v_grant.is_grantable THEN ' WITH GRANT OPTION' ELSE '' END);
    END LOOP;
    FOR i IN 1 .. coalesce(cardinality(v_names), 0) LOOP
        EXECUTE format('CREATE OR REPLACE VIEW %s%s AS %s', v_names[i],
                       CASE WHEN v_opts[i] <> '' THEN format(' WITH (%s)', v_opts[i]) ELSE '' END,
                       v_defs[i]);
    END LOOP;
    DROP TABLE fifo.allocations_before_0008;
    ANALYZE fifo.allocations;   -- the new partitions have no statistics yet
    PERFORM set_config('search_path', v_path, true);
END;
$migration$;
