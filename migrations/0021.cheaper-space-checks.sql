-- fifo-db 0021: the three surrounding-space CHECKs of trade_records (0011)
-- refuse exactly what they refused, at half the cost per row (issue 16).
--
-- order_id_has_no_surrounding_space, symbol_has_no_surrounding_space and
-- account_has_no_surrounding_space ran a regular expression on every row
-- written: `x !~ '^<space>|<space>$'`, about 0.29 s of CPU per column per
-- million rows (a third of the cost of all 15 CHECKs of an import of 1M
-- rows). Now each first asks whether the value's first and last characters
-- are printable ASCII other than the space (code points 33 to 126): then it
-- cannot begin or end with a space of any kind, and the regex is skipped.
-- Any other value (empty, or beginning or ending with a space, a control
-- character or any non-ASCII character) gets the very same regex as before:
--     (int4range(33, 127) @> ascii(x) AND int4range(33, 127) @> ascii(right(x, 1)))
--     OR x !~ '<0011's pattern>'
-- The same rows pass and fail (NULL passes both: ascii(NULL) is NULL), under
-- any ctype (every character [[:space:]] can match is outside 33..126); the
-- constraints keep their names, so messages are unchanged. Measured over 1M
-- typical values: 0.29 s -> 0.16 s of CPU per column.
-- A constraint is replaced only while it has exactly 0011's definition (a
-- user's change is left alone), and only on fifo-db's own trade_records (an
-- adopted table is never altered). Rows are checked again as the constraint
-- is added (one scan of the table; they all passed 0011's).
-- depends: 0018.asset-view-change-capture

DO $migration$
DECLARE
    c_pattern constant text :=
        '^[[:space:]\u001c-\u001f\u0085\u00a0\u1680\u180e\u2000-\u200d\u2028\u2029\u202f\u205f\u2060\u3000\ufeff]'
        '|[[:space:]\u001c-\u001f\u0085\u00a0\u1680\u180e\u2000-\u200d\u2028\u2029\u202f\u205f\u2060\u3000\ufeff]$';
    v_column text;
    v_clauses text[] := '{}';
BEGIN
    IF (SELECT s.value FROM fifo.settings s WHERE s.name = 'trades_source') IS DISTINCT FROM 'fifo-db' THEN
        RETURN;
    END IF;
    FOREACH v_column IN ARRAY ARRAY['order_id', 'symbol', 'account'] LOOP
        IF (SELECT pg_catalog.pg_get_constraintdef(k.oid) FROM pg_catalog.pg_constraint k
            WHERE k.conrelid = 'public.trade_records'::regclass AND k.contype = 'c'
              AND k.conname = v_column || '_has_no_surrounding_space')
           = format('CHECK ((%I !~ ''%s''::text))', v_column, c_pattern) THEN
            v_clauses := v_clauses
                || format('DROP CONSTRAINT %I', v_column || '_has_no_surrounding_space')
                || format('ADD CONSTRAINT %1$I CHECK ((int4range(33, 127) @> ascii(%2$I) '
                          'AND int4range(33, 127) @> ascii(right(%2$I, 1))) OR %2$I !~ %3$L)',
                          v_column || '_has_no_surrounding_space', v_column, c_pattern);
        END IF;
    END LOOP;
    IF cardinality(v_clauses) > 0 THEN   -- one statement: one scan of the table checks the rows
        EXECUTE 'ALTER TABLE public.trade_records ' || array_to_string(v_clauses, ', ');
    END IF;
END;
$migration$;
