"""Issue 16, the incremental half: the suffix recompute's carry-in (fifo._carry_in, sql/025) and
counts are planned per pool with the real cut, and --since takes its cut from the changes made in
its window, never from one folded with a bulk load. Same digits as a full recompute, whatever the
plan: these tests assert exact allocations (the reference FIFO and a full recompute into version 2),
never a time; the times are in `fifo-db bench` (docs/incremental.md)."""

from __future__ import annotations

from decimal import Decimal as D

import pytest
from psycopg.rows import dict_row

from tests.helpers import add_trades, assert_current, expected, stored

# the accumulating shape of issue 10/16 (55% buys, 8-decimal sizes and prices), one pool, in one
# INSERT ... SELECT: a bulk load
BULK = """
    INSERT INTO trade_records (order_id, account, symbol, side, size, price, total_fees, order_time)
    SELECT 'o' || i, 'default', %(symbol)s,
           CASE WHEN random() < 0.55 THEN 'buy' ELSE 'sell' END,
           round((random() * 10 + 0.001)::numeric, 8), round((random() * 100 + 1)::numeric, 8),
           round((random() * 0.1)::numeric, 8),
           timestamptz '2024-01-01' + i * interval '1 second' + (random() * interval '900 ms')
    FROM generate_series(1, %(n)s) i"""


def bulk_load(db, n: int = 1500, symbol: str = "S-USD", seed: float = 0.25) -> None:
    db.execute("SELECT setseed(%s)", (seed,))
    db.execute(BULK, {"symbol": symbol, "n": n})
    db.execute("ANALYZE trade_records")


def append(db, order_id: str, side: str, size, symbol: str = "S-USD") -> None:
    """One trade a second after the pool's last one."""
    db.execute("INSERT INTO trade_records (order_id, symbol, side, size, price, total_fees, order_time) "
               "SELECT %s, %s, %s, %s, 50.12345678, 0.00000001, max(order_time) + interval '1 second' "
               "FROM trade_records WHERE symbol = %s", (order_id, symbol, side, D(str(size)), symbol))


def run(db, query: str, params: tuple = ()) -> dict:
    with db.cursor(row_factory=dict_row) as cur:
        return cur.execute(f"SELECT mode, pools, buys, sells, status FROM {query}", params).fetchone()


def test_an_append_right_after_a_bulk_load_is_a_full_recompute_s_allocations(db):
    bulk_load(db)
    db.execute("SELECT compute_fifo_all()")              # the run that first computes the pool
    open_lots = db.execute("SELECT count(*) FROM fifo_open_lots").fetchone()[0]
    assert open_lots > 64                                # more than one page of the carry-in
    since = db.execute("SELECT clock_timestamp()").fetchone()[0]
    append(db, "a1", "sell", "0.1")
    assert run(db, "compute_fifo_since(%s)", (since,)) == {
        "mode": "since", "pools": 1, "buys": 0, "sells": 1, "status": "ok"}
    append(db, "a2", "sell", "0.12345678")
    assert run(db, "compute_fifo_incremental()") == {
        "mode": "incremental", "pools": 1, "buys": 0, "sells": 1, "status": "ok"}
    assert_current(db)


@pytest.mark.parametrize("sold", ["150.5", "100000"])   # many pages of open lots; more than all of them
def test_a_sell_reaching_past_many_pages_of_open_lots(db, sold):
    """300 open lots of 1: a sell of 150.5 carries in 151 of them (the 64-lot page, then the
    256-lot page); a sell of 100000 oversells, and every open lot is carried in."""
    add_trades(db, [{"order_id": f"b{i:03d}", "symbol": "L", "side": "buy", "size": 1, "price": 10 + i % 7,
                     "total_fees": D("0.03"), "order_time": f"2025-01-01 00:{i // 60:02d}:{i % 60:02d}"}
                    for i in range(300)]
                   + [{"order_id": "s0", "symbol": "L", "side": "sell", "size": D("0.25"), "price": 11,
                       "order_time": "2025-01-01 05:00"}])
    db.execute("SELECT compute_fifo_all()")
    add_trades(db, [{"order_id": "s1", "symbol": "L", "side": "sell", "size": D(sold), "price": 12,
                     "total_fees": D("0.5"), "order_time": "2025-01-02"}])
    assert run(db, "compute_fifo_incremental()")["sells"] == 1
    rows = db.execute("SELECT count(*), sum(allocated_size) FROM fifo_allocations "
                      "WHERE sell_trade_id = 's1' AND NOT unmatched").fetchone()
    assert rows == ((151, D("150.5")) if sold == "150.5" else (300, D("299.75")))
    assert_current(db)


def test_the_plan_does_not_change_a_digit(db):
    """The same appends and back-dated changes with index scans, then with sequential scans only
    (where the planner has a choice): the same allocations as a full recompute either way."""
    bulk_load(db, 800, "P-USD", 0.5)
    db.execute("SELECT compute_fifo_all()")
    for scans in ("on", "off"):
        db.execute(f"SET enable_indexscan = {scans}")
        db.execute(f"SET enable_indexonlyscan = {scans}")
        db.execute(f"SET enable_bitmapscan = {scans}")
        append(db, f"x-{scans}-1", "sell", "7.5", "P-USD")
        append(db, f"x-{scans}-2", "buy", "1.00000001", "P-USD")
        append(db, f"x-{scans}-3", "sell", "900", "P-USD")              # oversells
        db.execute("SELECT compute_fifo_incremental()")
        db.execute("UPDATE trade_records SET size = size + 0.5 WHERE order_id = 'o400'")   # back-dated
        db.execute("DELETE FROM trade_records WHERE order_id = 'o650'")
        db.execute("SELECT compute_fifo_incremental()")
        assert stored(db) == expected(db)
    for setting in ("enable_indexscan", "enable_indexonlyscan", "enable_bitmapscan"):
        db.execute(f"RESET {setting}")
    assert_current(db)


def test_since_takes_its_cut_from_the_changes_in_its_window_not_from_a_folded_bulk_load(db):
    """Issue 16: the bulk load's consumed change (from the pool's first trade) was folded with every
    later consumed change into one row, whose from_time then was the cut of every --since: the
    whole pool recomputed to pick up one appended sell."""
    bulk_load(db, 600)
    db.execute("SELECT compute_fifo_all()")
    # the load an hour ago
    db.execute("UPDATE trade_records SET recorded_at = recorded_at - interval '1 hour'")
    db.execute("UPDATE fifo.pool_changes SET changed_at = changed_at - interval '1 hour'")
    for i in range(5):                                   # appends, each computed (consumed) at once
        append(db, f"a{i}", "sell", "0.1")
        db.execute("SELECT compute_fifo_incremental()")
    first_append = db.execute("SELECT order_time FROM trade_records WHERE order_id = 'a0'").fetchone()[0]
    assert db.execute("SELECT min(from_time) FROM fifo.pool_changes WHERE changed_at >= now() - interval '1 minute'"
                      ).fetchone()[0] == first_append
    ids = db.execute("SELECT id FROM fifo_allocations WHERE sell_trade_id NOT LIKE 'a%' ORDER BY id").fetchall()

    # the five appends, not the 600 loaded trades; the loaded trades' allocations are kept
    assert run(db, "compute_fifo_since(now() - interval '10 minutes')") == {
        "mode": "since", "pools": 1, "buys": 0, "sells": 5, "status": "ok"}
    assert db.execute("SELECT id FROM fifo_allocations WHERE sell_trade_id NOT LIKE 'a%' ORDER BY id"
                      ).fetchall() == ids
    # a window that takes in the load recomputes from the pool's first trade
    assert run(db, "compute_fifo_since(now() - interval '2 hours')")["buys"] > 0
    assert_current(db)


def test_since_includes_a_pending_change_older_than_its_window(db):
    """The earliest change not yet computed is the cut, however old: here an update an hour
    ago that no run computed, with later appends computed since."""
    bulk_load(db, 300)
    db.execute("SELECT compute_fifo_all()")
    db.execute("UPDATE trade_records SET price = price + 1 WHERE order_id = 'o100'")
    db.execute("UPDATE trade_records SET recorded_at = recorded_at - interval '1 hour'")
    db.execute("UPDATE fifo.pool_changes SET changed_at = changed_at - interval '1 hour'")
    append(db, "a0", "sell", "0.1")
    since = run(db, "compute_fifo_since(now() - interval '1 minute')")
    assert (since["pools"], since["buys"] + since["sells"]) == (1, 202)    # o100 .. o300 and a0
    assert_current(db)
