"""`fifo-db verify` runs with a bounded statement_timeout (issue 14, section 5): --timeout, default
30min; when it runs out, one line says so and what to do, exit 1."""

from __future__ import annotations

from fifo_db.cli import build_parser, main
from fifo_db.verify import DEFAULT_TIMEOUT, bound_statements
from tests.helpers import add_trades

TRADES = [
    {"order_id": "b1", "symbol": "X", "side": "buy", "size": 2, "price": 10, "order_time": "2025-01-01"},
    {"order_id": "s1", "symbol": "X", "side": "sell", "size": 1, "price": 13, "order_time": "2025-01-02"},
]


def test_the_default_bound_is_30_minutes(db):
    assert build_parser().parse_args(["verify"]).timeout == DEFAULT_TIMEOUT == "30min"
    bound_statements(db, DEFAULT_TIMEOUT)
    assert db.execute("SHOW statement_timeout").fetchone()[0] == "30min"


def test_a_verify_that_runs_out_of_time_says_so_in_one_line(db, dsn, connect, capsys):
    add_trades(db, TRADES)
    db.execute("SELECT compute_fifo_all(true)")
    # verify cannot finish while another session holds the allocations exclusively
    holder = connect()
    holder.execute("BEGIN")
    holder.execute("LOCK TABLE fifo.allocations IN ACCESS EXCLUSIVE MODE")
    assert main(["--dsn", dsn, "verify", "--timeout", "300ms"]) == 1
    err = capsys.readouterr().err
    assert err == ("fifo-db: error: verify: stopped after --timeout 300ms (statement_timeout), nothing was "
                   "concluded: give it more time (--timeout 2h) or verify one symbol at a time (--symbol)\n")
    holder.execute("ROLLBACK")
    assert main(["--dsn", dsn, "verify", "--timeout", "300ms"]) == 0
    assert capsys.readouterr().out.startswith("verify: clean (1 computed pool(s)")


def test_a_timeout_postgresql_cannot_read_is_one_line(db, dsn, capsys):
    assert main(["--dsn", dsn, "verify", "--timeout", "soon"]) == 1
    assert capsys.readouterr().err == ("fifo-db: error: verify: --timeout 'soon' is not a duration PostgreSQL "
                                       "reads (e.g. 90s, 30min, 2h; 0 = no limit)\n")
