"""Issue 16: a per-pool run writes only the rows that differ from the stored ones
(fifo._write_allocations, sql/032). A stored row identical to the computed one, every digit and
scale included, stays as it is (same id, batch, computed_at, same tuple: xmin and ctid unchanged);
every other stored row of the recomputed sells goes and every other computed row comes. The result
equals a full recompute exactly (tests.helpers.assert_current: the reference FIFO and a forced run
into version 2)."""

from __future__ import annotations

from decimal import Decimal as D

import pytest

from tests.helpers import add_trades, assert_current

# every stored column as text, with the tuple's identity (a rewritten row gets a new xmin and ctid)
ROWS = ("SELECT a.id, a.xmin::text, a.ctid::text, a.batch_id, a.computed_at, a.sell_trade_id, "
        "a.buy_trade_id, a.allocated_size::text, a.buy_price::text, a.sell_price::text, a.buy_fees::text, "
        "a.sell_fees::text, a.cost_basis::text, a.sale_proceeds::text, a.pnl_amount::text, a.buy_time, "
        "a.sell_time, a.unmatched FROM fifo.allocations a WHERE a.symbol = %s ORDER BY a.id")


def trade(order_id, side, size, price, when, fee="0", symbol="X"):
    return {"order_id": order_id, "symbol": symbol, "side": side, "size": D(size), "price": D(price),
            "total_fees": D(fee), "order_time": when}


# one pool: three lots, sells that split them, an oversell (an unmatched row), fees that split
POOL = [
    trade("b1", "buy", "4", "10", "2025-01-01", "0.3"),
    trade("b2", "buy", "3", "11", "2025-01-02", "0.07"),
    trade("s1", "sell", "2.5", "12", "2025-01-03", "0.01"),
    trade("s2", "sell", "3", "13", "2025-01-04", "0.02"),
    trade("b3", "buy", "5", "9", "2025-01-05", "0.11"),
    trade("s3", "sell", "4", "14", "2025-01-06", "0.05"),
    trade("s4", "sell", "4", "15", "2025-01-07", "0.03"),   # 2.5 of b3 left after s3: 1.5 oversold
    trade("b4", "buy", "2", "8", "2025-01-08"),
    trade("s5", "sell", "1", "16", "2025-01-09", "0.01"),
]


def rows(db, symbol="X"):
    return db.execute(ROWS, (symbol,)).fetchall()


def run(db, sql, *params):
    return db.execute(sql, params).fetchone()


def test_recompute_of_an_unchanged_pool_writes_nothing(db):
    add_trades(db, POOL + [trade("y1", "buy", "1", "1", "2025-01-01", symbol="Y"),
                           trade("y2", "sell", "1", "2", "2025-01-02", symbol="Y")])
    first = run(db, "SELECT batch_id, allocations, unmatched, total_pnl FROM compute_fifo('X')")
    before = rows(db)
    assert len(before) == 8 and sum(r[-1] for r in before) == 1   # s4's 2.5 unmatched

    second = run(db, "SELECT batch_id, allocations, unmatched, total_pnl, status FROM compute_fifo('X')")
    # the run still reports every allocation of the sells it computed (nothing is hidden) ...
    assert second[1:] == first[1:] + ("ok",)
    # ... and every row is the tuple the first run wrote: nothing deleted, nothing inserted
    assert rows(db) == before
    assert run(db, "SELECT batch_id FROM fifo.pool_state WHERE symbol = 'X'")[0] == second[0]

    # the write path itself: zero rows out, zero in
    write = ("SELECT allocations, deleted, inserted FROM fifo._write_allocations("
             "1, gen_random_uuid(), ARRAY['X'], ARRAY['default'], ARRAY[%s::timestamptz])")
    assert run(db, write, "-infinity") == (8, 0, 0)
    assert rows(db) == before
    # and for a suffix of the pool, once it is stored as a suffix run computes it (a suffix run can
    # give a number another scale than a full one: s5's 1 of b4 is 1.0 in full, 1 from the cut;
    # the first call stores that, the second finds nothing to write)
    run(db, write, "2025-01-06")
    suffix = rows(db)
    assert run(db, write, "2025-01-06") == (5, 0, 0)
    assert rows(db) == suffix
    # a small forced run (below forced_in_place_below) writes in place too: after the suffix
    # run's rows, only the rows that differ from a full run's (s5's scale) ...
    run(db, "SELECT compute_fifo_all(true)")
    in_place = rows(db)
    assert {r[5] for r in in_place if r not in suffix} == {"s5"}
    assert sorted((r[5:] for r in in_place), key=str) == sorted((r[5:] for r in before), key=str)
    run(db, "SELECT compute_fifo_all(true)")
    assert rows(db) == in_place                        # ... and nothing at all when nothing changed
    # a forced run above it writes every row into a fresh table: new batch everywhere, same values
    db.execute("SELECT fifo_set_setting('forced_in_place_below', '0')")
    forced = run(db, "SELECT batch_id FROM compute_fifo_all(true)")[0]
    assert {r[3] for r in rows(db)} == {forced}
    assert sorted((r[5:] for r in rows(db)), key=str) == sorted((r[5:] for r in before), key=str)
    assert run(db, write, "-infinity") == (8, 0, 0)
    assert_current(db)


def test_a_change_in_the_middle_rewrites_only_the_rows_that_differ(db):
    add_trades(db, POOL)
    run(db, "SELECT compute_fifo('X')")
    before = {(r[5], r[6]): r for r in rows(db)}

    # b3's price changes: only the rows of b3's lot change (s3's and s4's pieces of it)
    db.execute("UPDATE trade_records SET price = 9.5 WHERE order_id = 'b3'")
    batch, allocations = run(db, "SELECT batch_id, allocations FROM compute_fifo('X')")
    assert allocations == 8
    after = {(r[5], r[6]): r for r in rows(db)}
    assert after.keys() == before.keys()
    changed = sorted(k for k in after if after[k] != before[k])
    assert changed == [("s3", "b3"), ("s4", "b3")]
    assert all(after[k][3] == batch and after[k][8] == "9.5" for k in changed)
    assert all(after[k] == before[k] for k in after if k not in changed)   # same tuple, id, batch
    assert_current(db)

    # a back-dated buy before s2 moves every later piece: those rows go, the earlier ones stay
    before = {(r[5], r[6]): r for r in rows(db)}
    add_trades(db, [trade("b0", "buy", "1", "7", "2025-01-03 12:00", "0.01")])
    run(db, "SELECT compute_fifo_incremental()")
    after = {(r[5], r[6]): r for r in rows(db)}
    assert after[("s1", "b1")] == before[("s1", "b1")]   # s1 is before the cut and unchanged
    assert ("s2", "b0") not in after                      # b0 comes after b1 and b2 in the queue
    assert after[("s2", "b1")] == before[("s2", "b1")]   # s2 still takes b1's last 1.5 first ...
    assert after[("s2", "b2")] == before[("s2", "b2")]   # ... and 1.5 of b2: its rows are untouched
    assert after[("s4", None)] != before[("s4", None)]   # the oversell shrinks by b0's 1
    assert_current(db)


def test_the_same_value_at_another_scale_is_rewritten(db):
    """10 and 10.0 are equal numbers but different digits: the stored row must show the new ones."""
    add_trades(db, POOL)
    run(db, "SELECT compute_fifo('X')")
    db.execute("UPDATE trade_records SET price = 10.00 WHERE order_id = 'b1'")
    run(db, "SELECT compute_fifo('X')")
    assert db.execute("SELECT DISTINCT buy_price::text FROM fifo_allocations WHERE buy_trade_id = 'b1'"
                      ).fetchall() == [("10.00",)]
    assert_current(db)


def test_stored_rows_that_are_wrong_or_doubled_are_replaced(db):
    """Rows not written by this engine (a doubled row, a wrong P&L, a row of a sell that is gone)
    never survive a recompute of their pool, even where a computed row has the same sell and lot."""
    add_trades(db, POOL)
    run(db, "SELECT compute_fifo('X')")
    cols = ("version, batch_id, account, symbol, sell_trade_id, buy_trade_id, allocated_size, buy_price, "
            "sell_price, buy_fees, sell_fees, cost_basis, sale_proceeds, pnl_amount, buy_time, sell_time, unmatched")
    db.execute(f"INSERT INTO fifo.allocations ({cols}) SELECT {cols} FROM fifo.allocations "
               "WHERE sell_trade_id = 's1'")                                           # doubled
    db.execute("UPDATE fifo.allocations SET pnl_amount = pnl_amount + 1, cost_basis = cost_basis - 1 "
               "WHERE sell_trade_id = 's3' AND buy_trade_id = 'b2'")                   # wrong
    db.execute(f"INSERT INTO fifo.allocations ({cols}) SELECT version, batch_id, account, symbol, 'gone', "
               "buy_trade_id, allocated_size, buy_price, sell_price, buy_fees, sell_fees, cost_basis, "
               "sale_proceeds, pnl_amount, buy_time, sell_time, unmatched FROM fifo.allocations "
               "WHERE sell_trade_id = 's5'")                                           # no such sell
    assert len(rows(db)) == 8 + 1 + 1
    assert run(db, "SELECT allocations, deleted, inserted FROM fifo._write_allocations("
                   "1, gen_random_uuid(), ARRAY['X'], ARRAY['default'], ARRAY['-infinity'::timestamptz])"
               ) == (8, 4, 2)   # both rows of the doubled pair, the wrong and the stray one out; s1/b1, s3/b2 in
    assert len(rows(db)) == 8
    assert_current(db)


@pytest.mark.parametrize("column", ["allocated_size", "buy_price", "sell_price", "buy_fees", "sell_fees",
                                    "cost_basis", "sale_proceeds", "pnl_amount"])
def test_a_stored_column_at_another_scale_is_rewritten_whichever_it_is(db, column):
    """The comparison covers every stored numeric, digit for digit: a stored value equal to the
    computed one but with one more trailing zero is replaced by the computed digits."""
    add_trades(db, POOL)
    run(db, "SELECT compute_fifo('X')")
    where = "symbol = 'X' AND sell_trade_id = 's3' AND buy_trade_id = 'b2'"
    computed = run(db, f"SELECT {column}::text FROM fifo.allocations WHERE {where}")[0]
    db.execute(f"UPDATE fifo.allocations SET {column} = round({column}, scale({column}) + 1) WHERE {where}")
    assert run(db, f"SELECT {column}::text FROM fifo.allocations WHERE {where}")[0] == computed + (
        "0" if "." in computed else ".0")
    assert run(db, "SELECT allocations, deleted, inserted FROM fifo._write_allocations("
                   "1, gen_random_uuid(), ARRAY['X'], ARRAY['default'], ARRAY['-infinity'::timestamptz])"
               ) == (8, 1, 1)
    assert run(db, f"SELECT {column}::text FROM fifo.allocations WHERE {where}")[0] == computed
    assert_current(db)
