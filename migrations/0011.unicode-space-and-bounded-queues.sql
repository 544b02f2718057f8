-- fifo-db 0011: no look-alike pools from Unicode spaces; bounded run history.
--
-- order_id, symbol, account: no leading or trailing space of any kind. The
-- constraints of 0004 test [[:space:]], which under the database's C ctype is
-- ASCII only, so 'BTC-USD' and 'BTC-USD' + U+00A0 were two pools that look the
-- same in every report. The class below is every Unicode White_Space
-- character (tab, line feed, vertical tab, form feed, carriage return, space,
-- U+0085, U+00A0, U+1680, U+2000..U+200A, U+2028, U+2029, U+202F, U+205F,
-- U+3000), the information separators U+001C..U+001F, and the invisible
-- format characters a copy and paste brings along: U+180E, U+200B..U+200D,
-- U+2060, U+FEFF (the byte order mark). Spaces inside a value stay allowed,
-- as before ('my account').
-- Existing rows that break the rule stop the migration (like 0004), named
-- with the code point and the SQL that fixes them: the install is one
-- transaction, so nothing half-applies and nothing is lost. The constraints
-- keep their names; only fifo-db's own trade_records gets them (an adopted
-- table is never altered: fifo.trades' problem column names such rows).
--
-- fifo_runs: setting run_retention (default 10000): how many runs are kept;
-- every run prunes the older ones (sql/050), so a reader calling compute in
-- a loop cannot grow the table without bound.
-- depends: 0009.run-pnl-by-currency

DO $migration$
DECLARE
    c_space constant text :=
        '[[:space:]\u001c-\u001f\u0085\u00a0\u1680\u180e\u2000-\u200d\u2028\u2029\u202f\u205f\u2060\u3000\ufeff]';
    v_bad text;
    v_count bigint;
BEGIN
    IF (SELECT s.value FROM fifo.settings s WHERE s.name = 'trades_source') IS DISTINCT FROM 'fifo-db' THEN
        RETURN;
    END IF;
    SELECT count(*), string_agg(format('order_id %s: %s', x.shown, x.why), '; ') FILTER (WHERE x.n <= 10)
    INTO v_count, v_bad
    FROM (SELECT row_number() OVER (ORDER BY t.id) AS n,
                 CASE WHEN length(t.order_id) > 80 THEN quote_literal(left(t.order_id, 80)) || '... ('
                                                          || length(t.order_id) || ' chars)'
                      ELSE quote_literal(t.order_id) END AS shown,
                 concat_ws(', ',
                     CASE WHEN t.order_id ~ ('^' || c_space || '|' || c_space || '$') THEN 'order_id' END,
                     CASE WHEN t.symbol ~ ('^' || c_space || '|' || c_space || '$') THEN 'symbol' END,
                     CASE WHEN t.account ~ ('^' || c_space || '|' || c_space || '$') THEN 'account' END)
                 || ' begins or ends with a space character (e.g. U+00A0, U+3000, U+FEFF)' AS why
          FROM public.trade_records t
          WHERE t.order_id ~ ('^' || c_space || '|' || c_space || '$')
             OR t.symbol ~ ('^' || c_space || '|' || c_space || '$')
             OR t.account ~ ('^' || c_space || '|' || c_space || '$')) x;
    IF v_count > 0 THEN
        RAISE EXCEPTION 'trade_records holds % row(s) with a Unicode space around order_id, symbol or account: %',
                v_count, v_bad
            USING ERRCODE = '23514',
                  HINT = format('Fix or delete them, then run `fifo-db install` again; nothing was changed. '
                                'To trim: UPDATE trade_records SET symbol = regexp_replace(symbol, %L, '''', ''g'') '
                                'WHERE symbol ~ %L; (the same for order_id and account)',
                                '^' || c_space || '+|' || c_space || '+$', '^' || c_space || '|' || c_space || '$');
    END IF;
    ALTER TABLE public.trade_records
        DROP CONSTRAINT order_id_has_no_surrounding_space,
        DROP CONSTRAINT symbol_has_no_surrounding_space,
        DROP CONSTRAINT account_has_no_surrounding_space;
    EXECUTE format('ALTER TABLE public.trade_records
        ADD CONSTRAINT order_id_has_no_surrounding_space CHECK (order_id !~ %1$L),
        ADD CONSTRAINT symbol_has_no_surrounding_space CHECK (symbol !~ %1$L),
        ADD CONSTRAINT account_has_no_surrounding_space CHECK (account !~ %1$L)',
        '^' || c_space || '|' || c_space || '$');
END;
$migration$;

INSERT INTO fifo.settings (name, value) VALUES ('run_retention', '10000')
ON CONFLICT (name) DO NOTHING;

-- fifo.pool_changes: concurrent writers of one pool end with one pending row.
-- A writer records its changes in rows of its own transaction (xact), and at
-- commit (a deferred trigger, sql/080) folds the pool's other pending rows
-- into its own, holding the pool's row in fifo.pool_change_slots for that
-- instant only: writers of one pool take turns at commit, never for longer,
-- and never wait for a running computation (rows it holds are skipped).
-- Rows recorded before this migration have no xact: they are folded like
-- any other writer's.
ALTER TABLE fifo.pool_changes ADD COLUMN xact xid8;
ALTER TABLE fifo.pool_changes ALTER COLUMN xact SET DEFAULT pg_current_xact_id();
COMMENT ON COLUMN fifo.pool_changes.xact IS
    'The transaction that recorded the row (its commit folds the pool''s other pending rows into it).';
CREATE INDEX pool_changes_xact_idx ON fifo.pool_changes (xact) WHERE processed_at IS NULL;
CREATE TABLE fifo.pool_change_slots (
    symbol  text NOT NULL,
    account text NOT NULL,
    PRIMARY KEY (symbol, account)
);
COMMENT ON TABLE fifo.pool_change_slots IS
    'One row per pool: a committing writer holds it while it folds the pool''s pending changes into one row.';
