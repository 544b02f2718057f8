-- fifo-db 0008.z (runs just after 0008): puts back the allocations that
-- 0008.0 set aside on PostgreSQL 17 and later, so that the upgrade ends where
-- 0008 ends on 15 and 16: the same rows and ids, one partition per version,
-- owned by fifo.allocations' owner, new ids after the largest. Each
-- partition is made the way fifo._version_partition makes one (a table LIKE
-- fifo.allocations, ids from its identity, attached), as a fresh install on
-- the same server has it. Does nothing where 0008.0 set nothing aside.
-- depends: 0008.allocations-partitioned-by-version

DO $migration$
DECLARE
    v_owner text;
    v_seq text;
    v_version integer;
    v_name text;
    v_next bigint;
    v_path text := pg_catalog.current_setting('search_path');   -- yoyo's bookkeeping needs it back
BEGIN
    IF pg_catalog.to_regclass('fifo.allocations_held_for_0008') IS NULL THEN
        RETURN;
    END IF;
    PERFORM pg_catalog.set_config('search_path', 'pg_catalog', true);   -- everything below fully qualified

    SELECT c.relowner::regrole::text INTO v_owner FROM pg_class c WHERE c.oid = 'fifo.allocations'::regclass;
    v_seq := pg_get_serial_sequence('fifo.allocations', 'id');
    FOR v_version IN SELECT DISTINCT h.version FROM fifo.allocations_held_for_0008 h ORDER BY 1 LOOP
        CONTINUE WHEN EXISTS (
            SELECT FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
            WHERE i.inhparent = 'fifo.allocations'::regclass
              AND pg_get_expr(c.relpartbound, c.oid) = format('FOR VALUES IN (%s)', v_version));
        v_name := 'allocations_v' || v_version;
        EXECUTE format('CREATE TABLE fifo.%I (LIKE fifo.allocations INCLUDING DEFAULTS INCLUDING CONSTRAINTS '
                       'INCLUDING STORAGE INCLUDING COMPRESSION)', v_name);
        EXECUTE format('ALTER TABLE fifo.%I ALTER COLUMN id SET DEFAULT nextval(%L)', v_name, v_seq);
        EXECUTE format('ALTER TABLE fifo.%I OWNER TO %s', v_name, v_owner);
        EXECUTE format('ALTER TABLE fifo.allocations ATTACH PARTITION fifo.%I FOR VALUES IN (%s)',
                       v_name, v_version);
    END LOOP;
    INSERT INTO fifo.allocations (id, version, batch_id, account, symbol, sell_trade_id, buy_trade_id,
                                  allocated_size, buy_price, sell_price, buy_fees, sell_fees, cost_basis,
                                  sale_proceeds, pnl_amount, buy_time, sell_time, unmatched, computed_at)
    OVERRIDING SYSTEM VALUE
    SELECT h.id, h.version, h.batch_id, h.account, h.symbol, h.sell_trade_id, h.buy_trade_id,
           h.allocated_size, h.buy_price, h.sell_price, h.buy_fees, h.sell_fees, h.cost_basis,
           h.sale_proceeds, h.pnl_amount, h.buy_time, h.sell_time, h.unmatched, h.computed_at
    FROM fifo.allocations_held_for_0008 h;
    -- 0008 started the identity after the largest id of a table 0008.0 had emptied
    SELECT coalesce(max(a.id), 0) + 1 INTO v_next FROM fifo.allocations a;
    EXECUTE format('ALTER TABLE fifo.allocations ALTER COLUMN id SET START WITH %s RESTART', v_next);
    DROP TABLE fifo.allocations_held_for_0008;
    ANALYZE fifo.allocations;   -- the new partitions have no statistics yet
    PERFORM set_config('search_path', v_path, true);
END;
$migration$;
