-- Change capture: statement-level triggers with transition tables record,
-- per statement, each pool touched and the earliest order_time affected
-- (old and new positions of updated rows). One row per pool per statement,
-- however many trades it wrote.

-- fifo._capture_insert(): AFTER INSERT ... REFERENCING NEW TABLE AS new_rows
CREATE OR REPLACE FUNCTION fifo._capture_insert()
RETURNS trigger
LANGUAGE plpgsql
SET search_path = pg_catalog, fifo
AS $$
BEGIN
    INSERT INTO fifo.pool_changes (symbol, account, from_time)
    SELECT n.symbol, n.account, min(n.order_time) FROM new_rows n GROUP BY 1, 2;
    RETURN NULL;
END;
$$;

-- fifo._capture_update(): only rows whose matching inputs changed count; a
-- moved trade marks both its old and its new pool.
CREATE OR REPLACE FUNCTION fifo._capture_update()
RETURNS trigger
LANGUAGE plpgsql
SET search_path = pg_catalog, fifo
AS $$
BEGIN
    INSERT INTO fifo.pool_changes (symbol, account, from_time)
    SELECT x.symbol, x.account, min(x.order_time)
    FROM old_rows o
    JOIN new_rows n ON n.id = o.id
    CROSS JOIN LATERAL (VALUES (o.symbol, o.account, o.order_time),
                               (n.symbol, n.account, n.order_time)) AS x(symbol, account, order_time)
    WHERE (o.order_id, o.account, o.symbol, o.side, o.size, o.price, o.total_fees, o.order_time)
          IS DISTINCT FROM
          (n.order_id, n.account, n.symbol, n.side, n.size, n.price, n.total_fees, n.order_time)
    GROUP BY 1, 2;
    RETURN NULL;
END;
$$;

-- fifo._capture_delete(): AFTER DELETE ... REFERENCING OLD TABLE AS old_rows
CREATE OR REPLACE FUNCTION fifo._capture_delete()
RETURNS trigger
LANGUAGE plpgsql
SET search_path = pg_catalog, fifo
AS $$
BEGIN
    INSERT INTO fifo.pool_changes (symbol, account, from_time)
    SELECT o.symbol, o.account, min(o.order_time) FROM old_rows o GROUP BY 1, 2;
    RETURN NULL;
END;
$$;

-- fifo._capture_truncate(): every computed pool starts over.
CREATE OR REPLACE FUNCTION fifo._capture_truncate()
RETURNS trigger
LANGUAGE plpgsql
SET search_path = pg_catalog, fifo
AS $$
BEGIN
    INSERT INTO fifo.pool_changes (symbol, account, from_time)
    SELECT DISTINCT ps.symbol, ps.account, '-infinity'::timestamptz FROM fifo.pool_state ps;
    RETURN NULL;
END;
$$;

CREATE OR REPLACE TRIGGER fifo_capture_insert
    AFTER INSERT ON public.trade_records
    REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION fifo._capture_insert();
CREATE OR REPLACE TRIGGER fifo_capture_update
    AFTER UPDATE ON public.trade_records
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION fifo._capture_update();
CREATE OR REPLACE TRIGGER fifo_capture_delete
    AFTER DELETE ON public.trade_records
    REFERENCING OLD TABLE AS old_rows
    FOR EACH STATEMENT EXECUTE FUNCTION fifo._capture_delete();
CREATE OR REPLACE TRIGGER fifo_capture_truncate
    AFTER TRUNCATE ON public.trade_records
    FOR EACH STATEMENT EXECUTE FUNCTION fifo._capture_truncate();
