"""The privilege model (issue 8, item 5): `fifo-db grant bot|reader|operator ROLE`.

Each test logs in as real roles (the test server trusts its unix socket), so every check
below is PostgreSQL refusing or allowing the statement, never fifo-db's own bookkeeping."""

from __future__ import annotations

from decimal import Decimal as D

import psycopg
import pytest

from fifo_db.cli import main
from tests.helpers import add_trades

TRADES = [
    {"order_id": "b1", "symbol": "X", "side": "buy", "size": 2, "price": 10, "order_time": "2025-01-01"},
    {"order_id": "s1", "symbol": "X", "side": "sell", "size": 1, "price": 13, "order_time": "2025-01-02"},
]


def denied(conn, sql, params=()):
    with pytest.raises(psycopg.errors.InsufficientPrivilege):
        conn.execute(sql, params)


def test_no_fifo_db_function_is_callable_by_public(db):
    callable_by_public = db.execute("""
        SELECT p.oid::regprocedure::text FROM pg_proc p
        WHERE (p.pronamespace = 'fifo'::regnamespace
               OR (p.pronamespace = 'public'::regnamespace
                   AND (p.proname LIKE 'fifo\\_%' OR p.proname LIKE 'compute\\_fifo%'
                        OR p.proname IN ('explain_fifo', 'verify_fifo'))))
          AND has_function_privilege('public', p.oid, 'EXECUTE')""").fetchall()
    assert callable_by_public == []


def test_a_role_with_no_grant_can_do_nothing(db, roles):
    add_trades(db, TRADES)
    _, nobody = roles(None)
    denied(nobody, "SELECT compute_fifo('X')")
    denied(nobody, "SELECT * FROM fifo_allocations")
    denied(nobody, "INSERT INTO trade_records (order_id, symbol, side, size, price, order_time) "
                   "VALUES ('z', 'X', 'buy', 1, 1, now())")
    denied(nobody, "SELECT fifo._note_changes(ARRAY['X'], ARRAY['default'], ARRAY['-infinity'::timestamptz])")


def test_a_bot_writes_trades_and_its_changes_are_captured_and_nothing_else(db, roles):
    _, bot = roles("bot")
    bot.execute("INSERT INTO trade_records (order_id, symbol, side, size, price, order_time) "
                "VALUES ('b1', 'X', 'buy', 2, 10, '2025-01-01+00')")
    bot.execute("INSERT INTO trade_records (order_id, symbol, side, size, price, order_time) "
                "VALUES ('s1', 'X', 'sell', 1, 13, '2025-01-02+00') "
                "ON CONFLICT (order_id) DO UPDATE SET price = excluded.price")
    bot.execute("UPDATE trade_records SET total_fees = 0.5 WHERE order_id = 's1'")
    bot.execute("DELETE FROM trade_records WHERE order_id = 'b1'")
    assert bot.execute("SELECT count(*) FROM trade_records").fetchone()[0] == 1
    # change capture ran with the owner's rights
    assert db.execute("SELECT count(*) FROM fifo.pool_changes WHERE processed_at IS NULL").fetchone()[0] == 1
    denied(bot, "SELECT compute_fifo('X')")
    denied(bot, "SELECT * FROM fifo_allocations")
    denied(bot, "SELECT * FROM fifo.pool_changes")
    denied(bot, "INSERT INTO fifo.pool_changes (symbol, account, from_time) VALUES ('X', 'default', now())")
    denied(bot, "TRUNCATE trade_records")


def test_a_reader_computes_reads_and_explains_but_never_writes_pnl(db, roles):
    add_trades(db, TRADES)
    _, reader = roles("reader")
    run = reader.execute("SELECT status, allocations, total_pnl FROM compute_fifo('X')").fetchone()
    assert run == ("ok", 1, D(3))                                   # 13 - 10
    assert reader.execute("SELECT sell_order_id, pnl_usd, pnl_amount FROM fifo_allocations").fetchall() == [
        ("s1", D(3), D(3))]
    assert reader.execute("SELECT count(*) FROM verify_fifo()").fetchone()[0] == 0
    assert reader.execute("SELECT symbol, account FROM fifo_computed_pools()").fetchall() == [("X", "default")]
    assert reader.execute("SELECT count(*) FROM fifo_computed_trades()").fetchone()[0] == 2
    assert reader.execute("SELECT count(*) FROM explain_fifo('s1')").fetchone()[0] == 3
    assert reader.execute("SELECT count(*) FROM fifo_runs").fetchone()[0] == 1
    assert reader.execute("SELECT compute_fifo_incremental() IS NULL").fetchone()[0] is True
    # no way to write P&L, runs, settings or the change queue, or to run what is the operator's
    denied(reader, "INSERT INTO fifo_allocations (version, batch_id, account, symbol, sell_trade_id, "
                   "allocated_size, sell_price, sell_fees, sale_proceeds, sell_time) "
                   "VALUES (1, gen_random_uuid(), 'default', 'X', 's1', 1, 1000000, 0, 1000000, now())")
    denied(reader, "DELETE FROM fifo_allocations")
    denied(reader, "UPDATE fifo_runs SET total_pnl = 1")
    denied(reader, "SELECT * FROM fifo.allocations")
    denied(reader, "SELECT fifo._run('symbol', 1, ARRAY['X'], ARRAY['default'], ARRAY['-infinity'::timestamptz], true)")
    denied(reader, "SELECT fifo_set_setting('current_version', '2')")
    denied(reader, "SELECT compute_fifo_all(true)")
    denied(reader, "SELECT compute_fifo('X', 2)")
    denied(reader, "SELECT fifo_grant('operator', current_user)")
    assert db.execute("SELECT DISTINCT version FROM fifo.allocations").fetchall() == [(1,)]


def test_an_operator_changes_settings_and_runs_full_recomputes(db, roles):
    add_trades(db, TRADES)
    _, operator = roles("operator")
    assert operator.execute("SELECT status FROM compute_fifo_all(true)").fetchone()[0] == "ok"
    assert operator.execute("SELECT status FROM compute_fifo('X', 2)").fetchone()[0] == "ok"
    operator.execute("SELECT fifo_set_setting('current_version', '2')")
    assert db.execute("SELECT value FROM fifo.settings WHERE name = 'current_version'").fetchone()[0] == "2"
    denied(operator, "UPDATE fifo.settings SET value = '3' WHERE name = 'current_version'")
    denied(operator, "SELECT fifo_grant('operator', current_user)")


def test_revoke_takes_back_what_grant_gave(db, roles):
    add_trades(db, TRADES)
    name, reader = roles("reader")
    assert reader.execute("SELECT status FROM compute_fifo('X')").fetchone()[0] == "ok"
    db.execute("SELECT fifo_revoke('reader', %s)", (name,))
    denied(reader, "SELECT compute_fifo('X')")
    denied(reader, "SELECT * FROM fifo_allocations")


def test_grant_from_the_command_line(db, dsn, roles, capsys):
    name, _ = roles(None)
    assert main(["--dsn", dsn, "grant", "reader", name]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"granted '{name}' the privileges of a fifo-db reader in database ")
    assert main(["--dsn", dsn, "revoke", "reader", name]) == 0
    assert main(["--dsn", dsn, "grant", "reader", "no_such_role_x"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("fifo-db: error: role 'no_such_role_x' does not exist") and err.count("\n") == 1
    with pytest.raises(SystemExit):
        main(["--dsn", dsn, "grant", "admin", name])


def test_a_reader_gets_the_8949_rows(db, roles):
    add_trades(db, [{**t, "symbol": "X-USD"} for t in TRADES])
    db.execute("SELECT compute_fifo('X-USD')")
    _, reader = roles("reader")
    assert reader.execute("SELECT description, gain_or_loss FROM fifo_form_8949()").fetchall() == [("1 X", D("3.00"))]
    denied(reader, "SELECT fifo_form_8949(NULL, NULL, NULL, 'none') FROM fifo.allocations")


def test_a_reader_reads_every_report(db, roles, dsn, capsys):
    add_trades(db, [{**t, "symbol": "X-USD"} for t in TRADES])
    db.execute("SELECT compute_fifo_all(true)")
    name, reader = roles("reader")
    views = [r[0] for r in db.execute(
        "SELECT relname FROM pg_class WHERE relnamespace = 'public'::regnamespace AND relkind = 'v' ORDER BY 1")]
    assert "fifo_trade_pnl" in views and "fifo_tax_lots" in views and "fifo_pnl_by_year" in views
    for view in views:
        reader.execute(f"SELECT * FROM public.{view}").fetchall()
    assert reader.execute("SELECT pnl_amount FROM fifo_trade_pnl WHERE order_id = 's1'").fetchone()[0] == D(3)
    # and the command line, logged in as the reader
    as_reader = f"{dsn} user={name}"
    for args in (["report", "pnl"], ["report", "trades", "--symbol", "X-USD"], ["report", "tax", "--format", "csv"],
                 ["verify"], ["explain", "s1"]):
        assert main(["--dsn", as_reader, *args]) == 0, capsys.readouterr().err
    out, err = capsys.readouterr()
    assert "permission denied" not in out + err
