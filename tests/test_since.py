"""`fifo-db compute --all-symbols --since TIME`: pools with trades recorded or changed since TIME.

Unlike the seed's rule (symbols with an order_time since TIME), a trade
recorded now with an order_time months ago is picked up, and so are updates
and deletes.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import psycopg
import pytest

from fifo_db.cli import main
from fifo_db.compute import parse_since
from tests.helpers import add_trades, expected, findings, stored


def trade(order_id, symbol, side, size, price, when):
    return {"order_id": order_id, "symbol": symbol, "side": side, "size": size, "price": price,
            "order_time": when}


@pytest.fixture
def yesterday(db):
    """Three computed pools whose trades were recorded (and captured) a day ago."""
    add_trades(db, [
        trade("a1", "A-USD", "buy", 5, 10, "2025-01-01"), trade("a2", "A-USD", "sell", 3, 12, "2025-03-01"),
        trade("b1", "B-USD", "buy", 5, 20, "2025-01-01"), trade("b2", "B-USD", "sell", 3, 22, "2025-03-01"),
        trade("c1", "C-USD", "buy", 5, 30, "2025-01-01"), trade("c2", "C-USD", "sell", 3, 33, "2025-03-01"),
    ])
    db.execute("UPDATE trade_records SET recorded_at = recorded_at - interval '1 day'")
    db.execute("UPDATE fifo.pool_changes SET changed_at = changed_at - interval '1 day'")
    db.execute("SELECT compute_fifo_all()")
    return db


def allocation_ids(db, symbol):
    return db.execute("SELECT id FROM fifo_allocations WHERE symbol = %s ORDER BY id", (symbol,)).fetchall()


def last_run(db):
    return db.execute("SELECT mode, symbols, pools, status FROM fifo_runs ORDER BY run_id DESC LIMIT 1").fetchone()


def test_backdated_insert_is_picked_up(yesterday, dsn, capsys):
    db = yesterday
    b_ids, c_ids = allocation_ids(db, "B-USD"), allocation_ids(db, "C-USD")
    # recorded now, dated months ago, before A's sell: the seed's case
    add_trades(db, [trade("a0", "A-USD", "buy", 2, 1, "2024-12-01")])
    seed_rule = db.execute("SELECT DISTINCT symbol FROM trade_records "
                           "WHERE order_time >= now() - interval '10 minutes'").fetchall()
    assert seed_rule == []   # the seed's order_time rule would have recomputed nothing

    assert main(["--dsn", dsn, "compute", "--all-symbols", "--since", "10 minutes ago"]) == 0
    out = capsys.readouterr().out
    assert "  - Mode: since" in out and "  - Pools processed: 1" in out
    assert last_run(db) == ("since", ["A-USD"], 1, "ok")
    assert stored(db) == expected(db)
    assert db.execute("SELECT buy_trade_id, allocated_size FROM fifo_allocations "
                      "WHERE sell_trade_id = 'a2' ORDER BY buy_time").fetchall() == [("a0", 2), ("a1", 1)]
    assert allocation_ids(db, "B-USD") == b_ids and allocation_ids(db, "C-USD") == c_ids
    assert findings(db) == []


def test_updates_and_deletes_are_picked_up_with_an_absolute_time(yesterday, dsn):
    db = yesterday
    a_ids = allocation_ids(db, "A-USD")
    since = datetime.now(timezone.utc) - timedelta(minutes=1)
    db.execute("DELETE FROM trade_records WHERE order_id = 'b1'")
    db.execute("UPDATE trade_records SET price = 35 WHERE order_id = 'c1'")
    assert main(["--dsn", dsn, "compute", "--all-symbols", "--since", since.isoformat()]) == 0
    assert last_run(db) == ("since", ["B-USD", "C-USD"], 2, "ok")
    assert stored(db) == expected(db)
    assert allocation_ids(db, "A-USD") == a_ids
    assert findings(db) == []


def test_pools_changed_before_the_window_are_left_alone(yesterday):
    db = yesterday
    add_trades(db, [trade("a3", "A-USD", "sell", 1, 13, "2025-04-01")])
    db.execute("SELECT compute_fifo_incremental()")          # consumed: no longer pending
    db.execute("UPDATE fifo.pool_changes SET changed_at = changed_at - interval '1 hour'")
    db.execute("UPDATE trade_records SET recorded_at = recorded_at - interval '1 hour' WHERE order_id = 'a3'")
    db.execute("SELECT compute_fifo_since(now() - interval '10 minutes')")
    assert last_run(db) == ("since", [], 0, "ok")
    assert stored(db) == expected(db) and findings(db) == []


def test_pending_changes_older_than_the_window_are_brought_current(yesterday):
    """A change no run has computed yet (a skipped or failed pool) is not lost because it is older
    than the window: the seed's --since would never have looked at it again."""
    db = yesterday
    add_trades(db, [trade("a3", "A-USD", "sell", 1, 13, "2025-04-01")])
    db.execute("UPDATE fifo.pool_changes SET changed_at = changed_at - interval '1 hour' "
               "WHERE processed_at IS NULL")
    db.execute("UPDATE trade_records SET recorded_at = recorded_at - interval '1 hour' WHERE order_id = 'a3'")
    db.execute("SELECT compute_fifo_since(now() - interval '10 minutes')")
    assert last_run(db) == ("since", ["A-USD"], 1, "ok")
    assert stored(db) == expected(db) and findings(db) == []


def test_since_further_back_than_the_change_log_keeps_is_refused(yesterday):
    db = yesterday
    with pytest.raises(psycopg.errors.InvalidParameterValue, match="change_retention"):
        db.execute("SELECT compute_fifo_since(now() - interval '8 days')")


def test_since_consumes_the_pending_changes_it_covers(yesterday):
    db = yesterday
    add_trades(db, [trade("c3", "C-USD", "buy", 1, 31, "2025-02-01")])
    db.execute("SELECT compute_fifo_since(now() - interval '10 minutes')")
    assert db.execute("SELECT count(*) FROM fifo.pool_changes WHERE processed_at IS NULL").fetchone()[0] == 0
    assert db.execute("SELECT compute_fifo_incremental() IS NULL").fetchone()[0]
    assert stored(db) == expected(db)


@pytest.mark.parametrize("text", ["last tuesday-ish", "03/01/2025", "13/01/2025"])
def test_unreadable_or_ambiguous_since_is_one_line_with_the_accepted_forms(dsn, capsys, text):
    """--since reads times as every report's --from/--to does: 03/01/2025 (March 1 or
    January 3?) is refused, not taken for March 1."""
    assert main(["--dsn", dsn, "compute", "--all-symbols", "--since", text]) == 1
    err = capsys.readouterr().err
    assert err == (f'fifo-db: error: --since: cannot read "{text}" as a time: use 2025-03-01 (midnight in '
                   "the report time zone), 2025-03-01 14:30, 2025-03-01T14:30:00Z or +01:00, today, "
                   "yesterday, now or 7 days ago (Year first: a date like 03/01/2025 is refused because "
                   "it can be March 1 or January 3.)\n")


def test_since_reads_an_iso_date_in_the_report_time_zone(db, dsn):
    db.execute("SELECT fifo_set_setting('report_timezone', 'America/New_York')")
    with psycopg.connect(dsn) as conn:
        assert parse_since(conn, "2025-03-01") == datetime(2025, 3, 1, 5, tzinfo=timezone.utc)
        assert parse_since(conn, "2025-03-01 14:30+01:00") == datetime(2025, 3, 1, 13, 30, tzinfo=timezone.utc)


def test_since_must_be_finite(db):
    with pytest.raises(psycopg.errors.InvalidParameterValue, match="since must be a finite time, got -infinity"):
        db.execute("SELECT compute_fifo_since('-infinity')")


def test_consumed_changes_are_kept_seven_days_then_dropped(db):
    # one consumed change 8 days old (dropped), one 6 days old and one pending (both kept)
    db.execute("INSERT INTO fifo.pool_changes (symbol, account, from_time, changed_at, processed_at) VALUES "
               "('OLD', 'default', '2025-01-01', now() - interval '8 days', now() - interval '8 days'), "
               "('RECENT', 'default', '2025-01-01', now() - interval '6 days', now() - interval '6 days'), "
               "('PENDING', 'default', '2025-01-01', now() - interval '8 days', NULL)")
    db.execute("SELECT compute_fifo_incremental()")
    kept = db.execute("SELECT symbol FROM fifo.pool_changes WHERE symbol IN ('OLD', 'RECENT', 'PENDING') "
                      "ORDER BY symbol").fetchall()
    assert kept == [("PENDING",), ("RECENT",)]
