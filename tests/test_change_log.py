"""The change log stays bounded and honest: at most one pending row per pool whatever the
write rate, a few consumed rows per pool kept for --since (change_retention), and a version
that is not current is marked stale, never shown as current, when another version consumes
its pools' changes."""

from __future__ import annotations

from decimal import Decimal as D

import psycopg
import pytest
from psycopg.rows import dict_row

from tests.helpers import add_trades, expected, findings, stored


def trade(order_id, side, size, price, when, symbol="X"):
    return {"order_id": order_id, "symbol": symbol, "side": side, "size": size, "price": price,
            "order_time": when}


def change_rows(db, processed: bool) -> list[tuple]:
    return db.execute(
        "SELECT symbol, account, from_time::date::text FROM fifo.pool_changes "
        f"WHERE processed_at IS {'NOT ' if processed else ''}NULL ORDER BY 1, 2, 3").fetchall()


def test_many_statements_leave_one_pending_row_per_pool_with_the_earliest_time(db):
    for day in (5, 3, 9, 4):                      # one statement each, out of order
        add_trades(db, [trade(f"x{day}", "buy", 1, 10, f"2025-01-0{day}")])
    add_trades(db, [trade("y1", "buy", 1, 10, "2025-02-01", symbol="Y")])
    assert change_rows(db, processed=False) == [("X", "default", "2025-01-03"), ("Y", "default", "2025-02-01")]


def test_a_writer_never_waits_for_a_running_computation(db, connect):
    """The computation holds its pending rows; a writer's change goes into a new pending row."""
    add_trades(db, [trade("b1", "buy", 1, 10, "2025-01-01")])
    cron = connect(autocommit=False)
    cron.execute("SELECT id FROM fifo.pool_changes WHERE processed_at IS NULL FOR UPDATE")  # as _run does
    bot = connect()
    bot.execute("SET lock_timeout = '2s'")         # a wait would fail the insert
    bot.execute("INSERT INTO trade_records (order_id, symbol, side, size, price, order_time) "
                "VALUES ('b2', 'X', 'buy', 1, 11, '2025-01-02')")
    cron.rollback()
    assert db.execute("SELECT count(*) FROM fifo.pool_changes WHERE processed_at IS NULL").fetchone()[0] == 2
    db.execute("SELECT compute_fifo_incremental()")
    assert stored(db) == expected(db) and findings(db) == []


def test_consumed_changes_keep_what_since_needs(db):
    """Issue 16: a consumed row is dropped when a later one starts no later; rows are folded
    only with rows changed in the same second (last minute), minute (last hour), hour (last day)
    or day, never into one row whose earliest time every later --since would take."""
    def ten_seconds_pass():
        db.execute("UPDATE fifo.pool_changes SET changed_at = changed_at - interval '10 seconds'")

    add_trades(db, [trade("b1", "buy", 2, 10, "2025-01-05")])
    db.execute("SELECT compute_fifo_incremental()")
    ten_seconds_pass()
    add_trades(db, [trade("b0", "buy", 1, 10, "2025-01-02")])      # back-dated: b1's row is redundant
    db.execute("SELECT compute_fifo_incremental()")
    ten_seconds_pass()
    add_trades(db, [trade("s1", "sell", 1, 12, "2025-01-09")])
    db.execute("SELECT compute_fifo_incremental()")
    assert change_rows(db, processed=True) == [("X", "default", "2025-01-02"), ("X", "default", "2025-01-09")]
    assert change_rows(db, processed=False) == []
    # both an hour and a half old, in one minute: folded into one at the next run of the pool
    db.execute("UPDATE fifo.pool_changes SET changed_at = date_trunc('minute', now()) - interval '90 minutes' "
               "+ (id % 7) * interval '1 second'")
    add_trades(db, [trade("s2", "sell", 1, 12, "2025-01-10")])
    db.execute("SELECT compute_fifo_incremental()")
    assert change_rows(db, processed=True) == [("X", "default", "2025-01-02"), ("X", "default", "2025-01-10")]
    assert stored(db) == expected(db) and findings(db) == []


def test_full_runs_prune_changes_beyond_the_retention(db):
    add_trades(db, [trade("b1", "buy", 2, 10, "2025-01-05"), trade("b2", "buy", 2, 10, "2025-01-05", "Y")])
    db.execute("SELECT compute_fifo_incremental()")
    db.execute("UPDATE fifo.pool_changes SET changed_at = now() - interval '8 days' WHERE symbol = 'X'")
    db.execute("SELECT compute_fifo_all(true)")
    assert change_rows(db, processed=True) == [("Y", "default", "2025-01-05")]


def test_a_write_load_keeps_the_queue_at_one_row_per_pool(db):
    """2,000 single-trade statements over 10 pools, an incremental run every 500: the table
    never holds more than one pending and one consumed row per pool."""
    for i in range(2000):
        add_trades(db, [trade(f"t{i}", "buy" if i % 3 else "sell", D("0.5"), 10 + i % 7,
                              f"2025-01-01 00:00:{i % 60:02d}", symbol=f"S{i % 10}")])
        if i % 500 == 499:
            db.execute("SELECT compute_fifo_incremental()")
            assert db.execute("SELECT count(*) FROM fifo.pool_changes").fetchone()[0] <= 10
        else:
            assert db.execute("SELECT count(*) FROM fifo.pool_changes WHERE processed_at IS NULL"
                              ).fetchone()[0] <= 10
    assert stored(db) == expected(db) and findings(db) == []


def test_another_versions_rows_are_stale_not_current_after_a_switch(db):
    """Issue 8, item 4: versions 1 and 2 computed; a back-dated trade is processed while 1 is
    current; after switching to 2 the reports say stale, and the incremental run repairs it."""
    add_trades(db, [trade("b1", "buy", 1, 10, "2025-01-02"), trade("s1", "sell", 1, 15, "2025-01-03")])
    db.execute("SELECT compute_fifo_all(true, 1)")
    db.execute("SELECT compute_fifo_all(true, 2)")
    add_trades(db, [trade("b0", "buy", 1, 4, "2025-01-01")])        # s1 now consumes b0: P&L 11, not 5
    db.execute("SELECT compute_fifo_incremental()")                 # version 1 is current
    assert db.execute("SELECT version, stale_from::date::text FROM fifo.pool_state ORDER BY 1").fetchall() == [
        (1, None), (2, "2025-01-01")]

    db.execute("SELECT fifo_set_setting('current_version', '2')")
    with db.cursor(row_factory=dict_row) as cur:
        row = cur.execute("SELECT status, pnl_amount FROM fifo_trade_pnl WHERE order_id = 's1'").fetchone()
    assert row == {"status": "stale", "pnl_amount": D(5)}          # the old P&L is not shown as matched
    assert [f[0] for f in findings(db)] == ["stale"]

    run = db.execute("SELECT pools, status FROM compute_fifo_incremental()").fetchone()
    assert run == (1, "ok")
    assert stored(db, 2) == expected(db) and findings(db) == []
    with db.cursor(row_factory=dict_row) as cur:
        row = cur.execute("SELECT status, pnl_amount FROM fifo_trade_pnl WHERE order_id = 's1'").fetchone()
    assert row == {"status": "matched", "pnl_amount": D(11)}


def test_a_stale_pool_is_brought_current_by_compute_fifo_all(db):
    add_trades(db, [trade("b1", "buy", 1, 10, "2025-01-02"), trade("s1", "sell", 1, 15, "2025-01-03")])
    db.execute("SELECT compute_fifo_all(true, 1)")
    db.execute("SELECT compute_fifo_all(true, 2)")
    add_trades(db, [trade("b0", "buy", 1, 4, "2025-01-01")])
    db.execute("SELECT compute_fifo_incremental()")
    assert db.execute("SELECT pools FROM compute_fifo_all(false, 2)").fetchone()[0] == 1
    assert stored(db, 2) == expected(db)


def test_since_refuses_a_window_the_log_no_longer_covers(db):
    db.execute("SELECT fifo_set_setting('current_version', '1')")
    with pytest.raises(psycopg.errors.InvalidParameterValue, match="change_retention"):
        db.execute("SELECT compute_fifo_since(now() - interval '30 days')")
