-- fifo-db 0004: trade_records refuses values that would poison P&L.
--   size, price, total_fees: finite ('NaN' > 0 and 'Infinity' > 0 are true in
--     PostgreSQL, so the checks of 0001 let them in);
--   order_time: from 1970-01-01 to before 2200-01-01 (UTC);
--   order_id, symbol, account: no leading or trailing whitespace ('dup-a '
--     and 'dup-a' would be two trades that look the same in every report).
-- Existing rows that break a rule stop the migration, named with the SQL
-- that fixes them; the install is one transaction, so nothing half-applies.
-- Only fifo-db's own trade_records gets the constraints: an adopted bot
-- table (trades_source 'bottrader') is never altered, and fifo.trades'
-- problem column names its unusable rows instead.
-- depends: 0002.allocations-in-fifo-schema

DO $migration$
DECLARE
    v_bad text;
    v_count bigint;
BEGIN
    IF (SELECT s.value FROM fifo.settings s WHERE s.name = 'trades_source') IS DISTINCT FROM 'fifo-db' THEN
        RETURN;
    END IF;
    SELECT count(*), string_agg(format('order_id %L: %s', x.order_id, x.why), '; ')
           FILTER (WHERE x.n <= 10)
    INTO v_count, v_bad
    FROM (SELECT t.order_id, row_number() OVER (ORDER BY t.id) AS n,
                 concat_ws(', ',
                     CASE WHEN NOT (t.size < 'Infinity') THEN format('size %s', t.size) END,
                     CASE WHEN NOT (t.price < 'Infinity') THEN format('price %s', t.price) END,
                     CASE WHEN NOT (t.total_fees < 'Infinity') THEN format('total_fees %s', t.total_fees) END,
                     CASE WHEN t.order_time < '1970-01-01 00:00+00' OR t.order_time >= '2200-01-01 00:00+00'
                          THEN format('order_time %s outside 1970..2200', t.order_time) END,
                     CASE WHEN t.order_id ~ '(^[[:space:]]|[[:space:]]$)' THEN 'order_id has surrounding whitespace' END,
                     CASE WHEN t.symbol ~ '(^[[:space:]]|[[:space:]]$)' THEN format('symbol %L has surrounding whitespace', t.symbol) END,
                     CASE WHEN t.account ~ '(^[[:space:]]|[[:space:]]$)' THEN format('account %L has surrounding whitespace', t.account) END
                 ) AS why
          FROM public.trade_records t
          WHERE NOT (t.size < 'Infinity' AND t.price < 'Infinity' AND t.total_fees < 'Infinity')
             OR t.order_time < '1970-01-01 00:00+00' OR t.order_time >= '2200-01-01 00:00+00'
             OR t.order_id ~ '(^[[:space:]]|[[:space:]]$)'
             OR t.symbol ~ '(^[[:space:]]|[[:space:]]$)'
             OR t.account ~ '(^[[:space:]]|[[:space:]]$)') x;
    IF v_count > 0 THEN
        RAISE EXCEPTION 'trade_records holds % row(s) fifo-db can no longer accept: %', v_count, v_bad
            USING ERRCODE = '23514',
                  HINT = 'Fix or delete them, then run `fifo-db install` again; nothing was changed. '
                         'Whitespace: UPDATE trade_records SET order_id = btrim(order_id), symbol = btrim(symbol), '
                         'account = btrim(account) WHERE ...; NaN/Infinity or times outside 1970..2200: '
                         'DELETE FROM trade_records WHERE order_id IN (...) and re-import the correct fills.';
    END IF;
    ALTER TABLE public.trade_records
        ADD CONSTRAINT size_is_finite CHECK (size < 'Infinity'),
        ADD CONSTRAINT price_is_finite CHECK (price < 'Infinity'),
        ADD CONSTRAINT fees_are_finite CHECK (total_fees < 'Infinity'),
        ADD CONSTRAINT order_time_is_from_1970_to_2200
            CHECK (order_time >= '1970-01-01 00:00+00' AND order_time < '2200-01-01 00:00+00'),
        ADD CONSTRAINT order_id_has_no_surrounding_space CHECK (order_id !~ '(^[[:space:]]|[[:space:]]$)'),
        ADD CONSTRAINT symbol_has_no_surrounding_space CHECK (symbol !~ '(^[[:space:]]|[[:space:]]$)'),
        ADD CONSTRAINT account_has_no_surrounding_space CHECK (account !~ '(^[[:space:]]|[[:space:]]$)');
END;
$migration$;
