-- The trades source. Every function reads trades through the view
-- fifo.trades, which maps the table the trades live in onto fifo-db's
-- canonical columns:
--   order_id, account, symbol, side, size, price, total_fees, order_time,
--   recorded_at, problem (NULL, or why the row cannot be matched)
-- 'fifo-db' maps public.trade_records as migration 0001 creates it (a plain
-- projection: the planner sees straight through it, indexes included).
-- 'bottrader' maps the BotTrader bot's own trade_records in place (`fifo-db
-- install --adopt`): double precision columns read as their shortest
-- decimal, NULL fees as 0, no account column as account 'default', only
-- the statuses named by the setting fill_statuses. A further mapping is one
-- more branch in fifo._trades_mapping(); the view and the change-capture
-- triggers (sql/080) are generated from it.

-- fifo._decimal(float8): the shortest decimal that reads back as the same
-- double (188.9, never 188.900000000000005684...), at every magnitude. NULL
-- for NaN and +-Infinity: fifo.trades' problem column names such rows.
-- extra_float_digits = 1 pins PostgreSQL's shortest-exact float output
-- whatever the session says; that output is the shortest decimal except for
-- integral values from 2^53 on, which it prints with every digit
-- (6.305039478318694e+16 as 6.3050394783186944e+16): there, the fewest
-- significant digits that round-trip are searched (1 to 17), so the value
-- reads as 63050394783186940. Below 2^53 the text is taken as it is.
CREATE OR REPLACE FUNCTION fifo._decimal(p_value double precision)
RETURNS numeric
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
SET extra_float_digits = 1
AS $$
    SELECT CASE WHEN p_value = ANY ('{NaN,Infinity,-Infinity}'::float8[]) THEN NULL::numeric
                WHEN abs(p_value) < 9007199254740992::float8 THEN p_value::text::numeric
                ELSE (SELECT r.v
                      FROM generate_series(1, 17) AS d(digits)
                      CROSS JOIN LATERAL (
                          SELECT round(p_value::text::numeric,
                                       d.digits - 1 - floor(log(abs(p_value::text::numeric)))::integer) AS v) r
                      WHERE CASE WHEN abs(r.v) <= 1.7976931348623157e308 THEN r.v::float8 = p_value END   -- no overflow
                      ORDER BY d.digits
                      LIMIT 1) END
$$;

-- The same for the other numeric-like column types an adopted table may
-- use, so a mapping is written once, fifo._decimal(t.col), whatever the
-- column's type: real (its own shortest decimal: 188.9, not the double's
-- 188.899993896484375), numeric (NaN and +-Infinity -> NULL) and bigint.
-- smallint and integer columns resolve to the double precision overload,
-- which is exact for them.
-- (real: the same from 2^24 on, 1 to 9 digits: 1.2345679e+09 reads as 1234568000)
CREATE OR REPLACE FUNCTION fifo._decimal(p_value real)
RETURNS numeric
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
SET extra_float_digits = 1
AS $$
    SELECT CASE WHEN p_value = ANY ('{NaN,Infinity,-Infinity}'::float4[]) THEN NULL::numeric
                WHEN abs(p_value) < 16777216::float4 THEN p_value::text::numeric
                ELSE (SELECT r.v
                      FROM generate_series(1, 9) AS d(digits)
                      CROSS JOIN LATERAL (
                          SELECT round(p_value::text::numeric,
                                       d.digits - 1 - floor(log(abs(p_value::text::numeric)))::integer) AS v) r
                      WHERE CASE WHEN abs(r.v) <= 3.4028235e38 THEN r.v::float4 = p_value END
                      ORDER BY d.digits
                      LIMIT 1) END
$$;

CREATE OR REPLACE FUNCTION fifo._decimal(p_value numeric)
RETURNS numeric
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT CASE WHEN p_value = ANY ('{NaN,Infinity,-Infinity}'::numeric[]) THEN NULL::numeric
                ELSE p_value END
$$;

CREATE OR REPLACE FUNCTION fifo._decimal(p_value bigint)
RETURNS numeric
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $$ SELECT p_value::numeric $$;

-- fifo._trades_mapping(source): the SQL expressions (over the source row
-- `t`) that give fifo.trades' columns, the source table, and `inputs`: the
-- row of matching inputs whose change marks a pool changed. Code, not data:
-- nobody but the owner can change what install executes.
CREATE OR REPLACE FUNCTION fifo._trades_mapping(
    p_source text,
    OUT source_table text,
    OUT order_id text, OUT account text, OUT symbol text, OUT side text,
    OUT size text, OUT price text, OUT total_fees text, OUT order_time text,
    OUT recorded_at text, OUT counts text, OUT problem text, OUT inputs text)
LANGUAGE plpgsql IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    CASE p_source
    WHEN 'fifo-db' THEN
        source_table := 'public.trade_records';
        order_id := 't.order_id'; account := 't.account'; symbol := 't.symbol'; side := 't.side';
        size := 't.size'; price := 't.price'; total_fees := 't.total_fees';
        order_time := 't.order_time'; recorded_at := 't.recorded_at';
        counts := 'true';
        problem := 'NULL';   -- trade_records' CHECK constraints refuse what cannot be matched
        inputs := 'ROW(t.account, t.symbol, t.side, t.size, t.price, t.total_fees, t.order_time)';
    WHEN 'bottrader' THEN
        source_table := 'public.trade_records';
        order_id := 't.order_id'; account := '''default'''; symbol := 't.symbol'; side := 't.side';
        size := 'fifo._decimal(t.size)'; price := 'fifo._decimal(t.price)';
        total_fees := 'coalesce(fifo._decimal(t.total_fees_usd), 0)';
        order_time := 't.order_time'; recorded_at := 'NULL';
        -- fill_statuses: '*' counts every row (what the bot's engine did), else a comma list
        counts := $e$(SELECT s.value = '*' OR t.status = ANY (pg_catalog.string_to_array(s.value, ','))
                      FROM fifo.settings s WHERE s.name = 'fill_statuses')$e$;
        problem := $e$CASE
            WHEN t.symbol IS NULL OR t.symbol = '' THEN 'symbol is missing'
            -- a space of any kind around a key: a look-alike pool or trade (migration 0011's class)
            WHEN t.symbol ~ '^[[:space:]\u001c-\u001f\u0085\u00a0\u1680\u180e\u2000-\u200d\u2028\u2029\u202f\u205f\u2060\u3000\ufeff]|[[:space:]\u001c-\u001f\u0085\u00a0\u1680\u180e\u2000-\u200d\u2028\u2029\u202f\u205f\u2060\u3000\ufeff]$'
                THEN pg_catalog.format('symbol %L begins or ends with a space character', t.symbol)
            WHEN t.order_id ~ '^[[:space:]\u001c-\u001f\u0085\u00a0\u1680\u180e\u2000-\u200d\u2028\u2029\u202f\u205f\u2060\u3000\ufeff]|[[:space:]\u001c-\u001f\u0085\u00a0\u1680\u180e\u2000-\u200d\u2028\u2029\u202f\u205f\u2060\u3000\ufeff]$'
                THEN pg_catalog.format('order_id %L begins or ends with a space character', t.order_id)
            WHEN t.side IS NULL OR t.side NOT IN ('buy', 'sell') THEN pg_catalog.format('side %L is not buy or sell', t.side)
            WHEN t.order_time IS NULL THEN 'order_time is missing'
            WHEN t.order_time < '1970-01-01 00:00+00' OR t.order_time >= '2200-01-01 00:00+00'
                THEN pg_catalog.format('order_time %s is outside 1970..2200', t.order_time)
            WHEN t.size IS NULL THEN 'size is missing'
            WHEN fifo._decimal(t.size) IS NULL OR t.size <= 0
                THEN pg_catalog.format('size %s is not a positive number', t.size)
            WHEN t.price IS NULL THEN 'price is missing'
            WHEN fifo._decimal(t.price) IS NULL OR t.price < 0
                THEN pg_catalog.format('price %s is not a finite number >= 0', t.price)
            WHEN t.total_fees_usd IS NOT NULL AND (fifo._decimal(t.total_fees_usd) IS NULL OR t.total_fees_usd < 0)
                THEN pg_catalog.format('total_fees_usd %s is not a finite number >= 0', t.total_fees_usd)
            END$e$;
        inputs := 'ROW(t.symbol, t.side, t.size, t.price, t.total_fees_usd, t.order_time, t.status)';
    ELSE
        RAISE EXCEPTION 'unknown trades source "%"', p_source
            USING ERRCODE = '22023', HINT = 'Known sources: fifo-db, bottrader.';
    END CASE;
END;
$$;

-- fifo._trades_fee_currency(source): the expression of fifo.trades'
-- fee_currency (migration 0017), read by the asset view only: fifo-db's own
-- trade_records has the column; an adopted BotTrader table pays its fees in
-- USD, its quote currency (NULL: the quote currency). A function of its own,
-- not an OUT column of _trades_mapping, whose row type a CREATE OR REPLACE
-- cannot change.
CREATE OR REPLACE FUNCTION fifo._trades_fee_currency(p_source text)
RETURNS text
LANGUAGE sql IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $$ SELECT CASE p_source WHEN 'fifo-db' THEN 't.fee_currency' ELSE 'NULL' END $$;

-- fifo._create_trades_view(): (re)create fifo.trades for the configured
-- source (setting trades_source). Called by every install.
CREATE OR REPLACE FUNCTION fifo._create_trades_view()
RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    m record := fifo._trades_mapping(fifo._setting('trades_source'));
BEGIN
    EXECUTE format($v$
        CREATE OR REPLACE VIEW fifo.trades AS
        SELECT (%s)::text AS order_id, (%s)::text AS account, (%s)::text AS symbol, (%s)::text AS side,
               (%s)::numeric AS size, (%s)::numeric AS price, (%s)::numeric AS total_fees,
               (%s)::timestamptz AS order_time, (%s)::timestamptz AS recorded_at, (%s)::text AS problem,
               (%s)::text AS fee_currency
        FROM %s t
        WHERE %s$v$,
        m.order_id, m.account, m.symbol, m.side, m.size, m.price, m.total_fees, m.order_time,
        m.recorded_at, m.problem, fifo._trades_fee_currency(fifo._setting('trades_source')),
        m.source_table, m.counts);
    COMMENT ON VIEW fifo.trades IS
        'The trades as the engine sees them (canonical columns), mapped from the trades source; see sql/005.';
END;
$$;

SELECT fifo._create_trades_view();
