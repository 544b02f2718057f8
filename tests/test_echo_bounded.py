"""No error message echoes a huge argument (issue 14, section 5): explain_fifo echoed a 1 MB
order_id whole. Every value a caller passed is shown cut to 80 characters plus '... (N chars)'
(fifo._shown); the class test calls every public fifo-db function with 1 MB text arguments."""

from __future__ import annotations

import psycopg
import pytest

from fifo_db.cli import main
from tests.helpers import add_trades

HUGE = "x" * (1 << 20)
CUT = "x" * 80 + "... (1048576 chars)"
TRADES = [
    {"order_id": "b1", "symbol": "X", "side": "buy", "size": 2, "price": 10, "order_time": "2025-01-01"},
    {"order_id": "s1", "symbol": "X", "side": "sell", "size": 1, "price": 13, "order_time": "2025-01-02"},
]


def error(db, sql, params):
    with pytest.raises(psycopg.Error) as info:
        db.execute(sql, params)
    return info.value.diag


@pytest.mark.parametrize("sql, message", [
    ("SELECT * FROM explain_fifo(%s)", f'no trade with order_id "{CUT}"'),
    ("SELECT * FROM compute_fifo(%s)", f'no trades for symbol "{CUT}"'),
    ("SELECT * FROM fifo_report_context(%s)", f'no trades for symbol "{CUT}"'),
    ("SELECT fifo_report_time(%s)", f'cannot read "{CUT}" as a time: use 2025-03-01 (midnight in the report time '
                                    f'zone), 2025-03-01 14:30, 2025-03-01T14:30:00Z or +01:00, today, yesterday, '
                                    f'now or 7 days ago'),
    ("SELECT * FROM fifo_form_8949(NULL, NULL, NULL, %s)", f'reported must be none, proceeds or basis, got "{CUT}"'),
    ("SELECT fifo_set_setting(%s, '1')", f'unknown fifo-db setting "{CUT}"'),
    ("SELECT fifo_set_setting('report_timezone', %s)",
     f'fifo-db setting "report_timezone" cannot be "{CUT}": it must be a time zone name from pg_timezone_names '
     f'(e.g. UTC, Europe/London)'),
    ("SELECT fifo_grant(%s, current_user)", f"unknown kind of role '{CUT}'; the kinds are bot, reader and operator"),
])
def test_each_echo_is_cut(db, sql, message):
    add_trades(db, TRADES)
    assert error(db, sql, (HUGE,)).message_primary == message


def test_every_public_function_with_huge_text_arguments_answers_briefly(db):
    add_trades(db, TRADES)
    db.execute("SELECT compute_fifo_all(true)")
    functions = db.execute("""
        SELECT p.oid::regprocedure::text, p.proname, array(SELECT format_type(t, NULL) FROM unnest(p.proargtypes) t)
        FROM pg_proc p
        WHERE p.pronamespace = 'public'::regnamespace
          AND (p.proname LIKE 'fifo\\_%%' OR p.proname LIKE 'compute\\_fifo%%' OR p.proname IN ('explain_fifo', 'verify_fifo'))
          AND p.proname NOT IN ('fifo_schedule', 'fifo_unschedule')   -- pg_cron: another database here
          AND 'text' = ANY (array(SELECT format_type(t, NULL) FROM unnest(p.proargtypes) t))
        ORDER BY 1""").fetchall()
    assert len(functions) >= 20
    for signature, name, types in functions:
        args = ", ".join("%s" if t == "text" else f"NULL::{t}" for t in types)
        call = f"SELECT * FROM public.{name}({args})"
        try:
            with db.transaction():
                db.execute(call, [HUGE] * types.count("text"))
        except psycopg.Error as exc:
            shown = (exc.diag.message_primary or "") + (exc.diag.message_hint or "") + (exc.diag.message_detail or "")
            assert len(shown) < 1000, (signature, shown[:300])


def test_explain_on_the_command_line_is_one_short_line(db, dsn, capsys):
    add_trades(db, TRADES)
    assert main(["--dsn", dsn, "explain", HUGE]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and len(err) < 500 and CUT in err
