"""fifo_runs: one row per computation with mode, counts, duration, status and error;
a failing pool in a multi-pool run is isolated, recorded, re-queued and reported.
"""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal as D

import pytest
from psycopg.rows import dict_row

from fifo_db.cli import main
from tests.helpers import add_trades, expected, findings, stored


def trade(order_id, symbol, side, size, price, when, account="default"):
    return {"order_id": order_id, "symbol": symbol, "account": account, "side": side, "size": size,
            "price": price, "order_time": when}


def run_of(db, sql, *params) -> dict:
    with db.cursor(row_factory=dict_row) as cur:
        return cur.execute(f"SELECT * FROM {sql}", params).fetchone()


def pool_rows(db, symbol):
    return db.execute("SELECT * FROM fifo_allocations WHERE symbol = %s ORDER BY id", (symbol,)).fetchall()


def assert_counts(run, **want):
    assert {k: run[k] for k in want} == want
    assert run["finished_at"] >= run["started_at"]
    assert run["duration_ms"] == round(D((run["finished_at"] - run["started_at"])
                                         / timedelta(microseconds=1)) / 1000, 3)


def test_every_mode_is_recorded_with_its_counts(db):
    add_trades(db, [
        trade("x1", "X", "buy", 2, 10, "2025-01-01"), trade("x2", "X", "buy", 2, 11, "2025-01-02"),
        trade("x3", "X", "sell", 3, 12, "2025-01-03"), trade("x4", "X", "sell", 2, 13, "2025-01-04"),
        trade("y1", "Y", "buy", 1, 5, "2025-01-01"), trade("y2", "Y", "sell", 1, 4, "2025-01-02"),
    ])
    # x3: 2 from x1 (+4), 1 from x2 (+1); x4: 1 from x2 (+2), 1 unmatched
    run = run_of(db, "compute_fifo('X')")
    assert_counts(run, mode="symbol", symbols=["X"], pools=1, buys=2, sells=2, allocations=4, unmatched=1,
                  total_pnl=7, skipped_pools=0, failed_pools=0, status="ok", error=None)
    run = run_of(db, "compute_fifo_all(true)")
    assert_counts(run, mode="all", symbols=["X", "Y"], pools=2, buys=3, sells=3, allocations=5, unmatched=1,
                  total_pnl=6, status="ok", error=None)
    # appended trades: the incremental run reads only the suffix from x5 (no lot is open at that cut)
    add_trades(db, [trade("x5", "X", "buy", 1, 20, "2025-01-05"), trade("x6", "X", "sell", 1, 21, "2025-01-06")])
    run = run_of(db, "compute_fifo_incremental()")
    assert_counts(run, mode="incremental", symbols=["X"], pools=1, buys=1, sells=1, allocations=1,
                  unmatched=0, total_pnl=1, status="ok", error=None)
    db.execute("UPDATE trade_records SET recorded_at = recorded_at - interval '1 day'")   # all of that was
    db.execute("UPDATE fifo.pool_changes SET changed_at = changed_at - interval '1 day'")  # yesterday
    add_trades(db, [trade("y3", "Y", "buy", 1, 5, "2024-12-31")])
    run = run_of(db, "compute_fifo_since(now() - interval '1 minute')")
    assert_counts(run, mode="since", symbols=["Y"], pools=1, buys=2, sells=1, allocations=1, unmatched=0,
                  total_pnl=-1, status="ok", error=None)
    # nothing pending: compute_fifo_all() is an empty incremental run, recorded; the cron entry point is quiet
    run = run_of(db, "compute_fifo_all()")
    assert_counts(run, mode="incremental", symbols=[], pools=0, allocations=0, status="ok")
    assert db.execute("SELECT compute_fifo_incremental() IS NULL").fetchone()[0]
    assert db.execute("SELECT mode FROM fifo_runs ORDER BY run_id").fetchall() == [
        ("symbol",), ("all",), ("incremental",), ("since",), ("incremental",)]
    assert stored(db) == expected(db)


@pytest.fixture
def bad_pool(db):
    """Four computed pools; from now on any allocation of BAD-USD is rejected, and every pool changed."""
    add_trades(db, [trade(f"{s}-{n}", s, side, 2, price, f"2025-01-0{n}")
                    for s in ("AAA-USD", "BAD-USD", "ZZZ-USD", "MMM-USD")
                    for n, side, price in ((1, "buy", 10), (2, "sell", 12))])
    db.execute("SELECT compute_fifo_all()")
    db.bad_before = pool_rows(db, "BAD-USD")
    db.execute("ALTER TABLE fifo.allocations ADD CONSTRAINT test_reject CHECK (symbol <> 'BAD-USD') NOT VALID")
    add_trades(db, [trade(f"{s}-3", s, "sell", 1, 15, "2025-01-03")
                    for s in ("AAA-USD", "BAD-USD", "ZZZ-USD", "MMM-USD")])
    return db


def test_failing_pool_does_not_abort_the_others_and_the_cli_says_so(bad_pool, dsn, capsys):
    db = bad_pool
    assert main(["--dsn", dsn, "compute", "--all-symbols"]) == 1
    out = capsys.readouterr().out
    assert out.startswith("Computation PARTIAL\n")
    assert "  - Pools failed (previous allocations kept): 1\n" in out
    assert ('      pool BAD-USD/default: new row for relation "allocations_v1" violates check constraint '
            '"test_reject"') in out

    run = db.execute("SELECT mode, status, pools, failed_pools, error FROM fifo_runs "
                     "ORDER BY run_id DESC LIMIT 1").fetchone()
    assert run[:4] == ("incremental", "partial", 4, 1)
    assert run[4].startswith("pool BAD-USD/default: ") and run[4].count("\n") == 0
    # the failing pool kept its previous allocations and is queued again; the others are current
    assert pool_rows(db, "BAD-USD") == db.bad_before
    assert db.execute("SELECT symbol, from_time::text FROM fifo.pool_changes WHERE processed_at IS NULL"
                      ).fetchall() == [("BAD-USD", "2025-01-03 00:00:00+00")]
    good = [a for a in expected(db) if a.symbol != "BAD-USD"]
    assert [a for a in stored(db) if a.symbol != "BAD-USD"] == good
    assert sorted(f[0] for f in findings(db)) == ["stale"]   # BAD's new sell, pending: not checked row by row

    # fixed: the next scheduled run brings it current
    db.execute("ALTER TABLE fifo.allocations DROP CONSTRAINT test_reject")
    run = run_of(db, "compute_fifo_incremental()")
    assert (run["symbols"], run["status"]) == (["BAD-USD"], "ok")
    assert stored(db) == expected(db) and findings(db) == []


def test_incremental_run_isolates_the_failing_pool_too(bad_pool):
    db = bad_pool
    run = run_of(db, "compute_fifo_incremental()")
    assert (run["status"], run["pools"], run["failed_pools"]) == ("partial", 4, 1)
    assert "BAD-USD/default" in run["error"] and "test_reject" in run["error"]
    assert pool_rows(db, "BAD-USD") == db.bad_before
    # still failing on the next tick, still re-queued, never lost
    run = run_of(db, "compute_fifo_incremental()")
    assert (run["status"], run["pools"], run["failed_pools"]) == ("failed", 1, 1)
    assert db.execute("SELECT count(*) FROM fifo.pool_changes WHERE processed_at IS NULL").fetchone()[0] == 1


def test_forced_run_where_every_pool_fails_is_failed(db, dsn, capsys):
    add_trades(db, [trade("b1", "BAD-USD", "buy", 1, 1, "2025-01-01"),
                    trade("b2", "BAD-USD", "sell", 1, 2, "2025-01-02")])
    db.execute("ALTER TABLE fifo.allocations ADD CONSTRAINT test_reject CHECK (symbol <> 'BAD-USD')")
    assert main(["--dsn", dsn, "compute", "--all-symbols", "--force"]) == 1
    out = capsys.readouterr().out
    assert out.startswith("Computation FAILED\n") and "pool BAD-USD/default:" in out
    assert db.execute("SELECT mode, status, failed_pools FROM fifo_runs").fetchall() == [("all", "failed", 1)]


def test_single_symbol_run_is_all_or_nothing_and_recorded(db, dsn, capsys):
    add_trades(db, [trade("b1", "BAD-USD", "buy", 1, 1, "2025-01-01"),
                    trade("b2", "BAD-USD", "sell", 1, 2, "2025-01-02")])
    db.execute("ALTER TABLE fifo.allocations ADD CONSTRAINT test_reject CHECK (symbol <> 'BAD-USD')")
    assert main(["--dsn", dsn, "compute", "--symbol", "BAD-USD"]) == 1
    out = capsys.readouterr().out
    assert out.startswith("Computation FAILED\n")
    assert 'new row for relation "allocations_v1" violates check constraint "test_reject"' in out
    assert db.execute("SELECT mode, status, pools, failed_pools, allocations FROM fifo_runs").fetchall() == [
        ("symbol", "failed", 1, 1, 0)]
    assert db.execute("SELECT count(*) FROM fifo.allocations").fetchone()[0] == 0
