"""Incremental (suffix) recompute equals a full recompute, for every kind of change.

Property: random histories (several pools, ties, oversells, fees, 8- and
18-decimal sizes) are computed, then changed by random batches of
back-dated inserts, appends, updates and deletes, each followed by
compute_fifo_incremental(). After every step the allocations equal the
plain-Python reference on the current trades and a fresh full recompute into
version 2, and verify_fifo() is clean. Hand-written cases pin the shapes
that matter most.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from decimal import Decimal as D

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from psycopg.rows import dict_row

from tests.helpers import add_trades, allocations, assert_current, expected, findings, reset, stored

BASE = datetime(2025, 1, 1, tzinfo=timezone.utc)
SYMBOLS = ["X", "Y"]
ACCOUNTS = ["a", "B"]


def incremental(db) -> dict | None:
    with db.cursor(row_factory=dict_row) as cur:
        row = cur.execute("SELECT * FROM compute_fifo_incremental()").fetchone()
    return row if row["batch_id"] is not None else None


def pending(db) -> list[tuple]:
    return db.execute("SELECT symbol, account, nullif(from_time, '-infinity') FROM fifo.pool_changes "
                      "WHERE processed_at IS NULL ORDER BY 1, 2, 3").fetchall()


# -- strategies ---------------------------------------------------------------

def scaled(places: int, top: int):
    return st.integers(1, top * 10 ** places).map(lambda n: D(n).scaleb(-places))


sizes = st.one_of(st.integers(1, 5).map(D), scaled(8, 5), scaled(18, 5))
prices = st.one_of(st.integers(0, 100).map(D), scaled(8, 100))
fees = st.one_of(st.just(D(0)), st.integers(1, 9).map(D), scaled(8, 1), scaled(18, 1))


class History:
    """The trades as the test believes them to be; each change is applied to the database too."""

    def __init__(self, db, data):
        self.db, self.data = db, data
        self.trades: dict[str, dict] = {}
        self.serial = 0

    def draw(self, strategy):
        return self.data.draw(strategy)

    def new_trade(self, minute: int) -> dict:
        self.serial += 1
        prefix = self.draw(st.sampled_from(["t", "T", "_"]))  # bytewise tie order differs from locale order
        return {"order_id": f"{prefix}{self.serial:03d}", "symbol": self.draw(st.sampled_from(SYMBOLS)),
                "account": self.draw(st.sampled_from(ACCOUNTS)),
                "side": self.draw(st.sampled_from(["buy", "buy", "sell"])),
                "size": self.draw(sizes), "price": self.draw(prices), "total_fees": self.draw(fees),
                "order_time": BASE + timedelta(minutes=minute)}

    def last_minute(self) -> int:
        times = [t["order_time"] for t in self.trades.values()] or [BASE]
        return int((max(times) - BASE).total_seconds() // 60)

    def insert(self, minutes: list[int]) -> None:
        rows = [self.new_trade(m) for m in minutes]
        add_trades(self.db, rows)
        self.trades.update((r["order_id"], r) for r in rows)

    def pick(self) -> str:
        ids = sorted(self.trades)
        return ids[self.draw(st.integers(0, len(ids) - 1))]

    def update(self) -> None:
        order_id = self.pick()
        field = self.draw(st.sampled_from(
            ["size", "price", "total_fees", "order_time", "symbol", "account", "side"]))
        value = {"size": sizes, "price": prices, "total_fees": fees,
                 "order_time": st.integers(0, self.last_minute() + 2).map(lambda m: BASE + timedelta(minutes=m)),
                 "symbol": st.sampled_from(SYMBOLS), "account": st.sampled_from(ACCOUNTS),
                 "side": st.sampled_from(["buy", "sell"])}[field]
        new = self.draw(value)
        self.db.execute(f"UPDATE trade_records SET {field} = %s WHERE order_id = %s", (new, order_id))
        self.trades[order_id][field] = new

    def shift(self) -> None:
        """One statement moving several trades (of any pools) in time."""
        ids = sorted({self.pick() for _ in range(self.draw(st.integers(1, 4)))})
        minutes = self.draw(st.integers(-3, 3))
        self.db.execute("UPDATE trade_records SET order_time = order_time + %s WHERE order_id = ANY(%s)",
                        (timedelta(minutes=minutes), ids))
        for i in ids:
            self.trades[i]["order_time"] += timedelta(minutes=minutes)

    def delete(self) -> None:
        order_id = self.pick()
        self.db.execute("DELETE FROM trade_records WHERE order_id = %s", (order_id,))
        del self.trades[order_id]

    def step(self) -> str:
        kind = self.draw(st.sampled_from(["backdated", "append", "update", "shift", "delete", "mixed"]))
        if not self.trades and kind not in ("backdated", "append"):
            kind = "append"
        if kind == "backdated":
            self.insert(self.draw(st.lists(st.integers(0, self.last_minute()), min_size=1, max_size=4)))
        elif kind == "append":
            last = self.last_minute()
            self.insert(self.draw(st.lists(st.integers(last, last + 3), min_size=1, max_size=4)))
        elif kind == "update":
            self.update()
        elif kind == "shift":
            self.shift()
        elif kind == "delete":
            self.delete()
        else:
            with self.db.transaction():
                self.insert([self.draw(st.integers(0, self.last_minute() + 1))])
                self.update()
                self.delete()
        return kind


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_incremental_equals_full_after_random_changes(db, data):
    reset(db)
    history = History(db, data)
    history.insert(data.draw(st.lists(st.integers(0, 20), min_size=1, max_size=14), label="initial minutes"))
    db.execute("SELECT compute_fifo_all()")
    assert_current(db)
    for _ in range(data.draw(st.integers(1, 4), label="steps")):
        kind = history.step()
        run = incremental(db)
        assert run is None or run["status"] == "ok", (kind, run)
        assert pending(db) == []
        assert incremental(db) is None   # idle once current
        assert_current(db)


# -- hand-written cases ------------------------------------------------------------

def buy(order_id, size, price, when, symbol="X", fee=0):
    return {"order_id": order_id, "symbol": symbol, "side": "buy", "size": size, "price": price,
            "total_fees": fee, "order_time": when}


def sell(order_id, size, price, when, symbol="X", fee=0):
    return {**buy(order_id, size, price, when, symbol, fee), "side": "sell"}


def pairs(db, symbol="X"):
    return [(r["sell_trade_id"], r["buy_trade_id"], r["allocated_size"], r["pnl_amount"])
            for r in allocations(db, symbol)]


def test_backdated_buy_before_a_partially_consumed_lot(db):
    add_trades(db, [buy("b1", 10, 10, "2025-01-01 10:00"), sell("s1", 4, 12, "2025-01-03")])
    db.execute("SELECT compute_fifo('X')")
    assert pairs(db) == [("s1", "b1", 4, 8)]
    add_trades(db, [buy("b0", 3, 5, "2024-12-01")])   # recorded now, before everything
    assert pending(db) == [("X", "default", datetime(2024, 12, 1, tzinfo=timezone.utc))]
    run = incremental(db)
    assert (run["mode"], run["pools"], run["buys"], run["sells"]) == ("incremental", 1, 2, 1)
    # s1 now takes all of b0 (3 @ 5) and 1 of b1 (@ 10)
    assert pairs(db) == [("s1", "b0", 3, 21), ("s1", "b1", 1, 2)]
    assert_current(db)


def test_suffix_keeps_earlier_sells_and_carries_the_open_lot(db):
    add_trades(db, [buy("b1", 10, 10, "2025-01-01", fee=1), sell("s1", 4, 12, "2025-01-03"),
                    sell("s2", 3, 13, "2025-01-05")])
    db.execute("SELECT compute_fifo('X')")
    s1_rows = db.execute("SELECT id, batch_id FROM fifo_allocations WHERE sell_trade_id = 's1'").fetchall()
    add_trades(db, [buy("b2", 5, 11, "2025-01-04")])   # between s1 and s2
    run = incremental(db)
    # only the suffix from 2025-01-04 was read: b2 and s2, plus b1's open 6 carried in
    assert (run["buys"], run["sells"]) == (1, 1)
    assert db.execute("SELECT id, batch_id FROM fifo_allocations "
                      "WHERE sell_trade_id = 's1'").fetchall() == s1_rows
    # s2 still takes the carried remainder of b1 first, its fee share continuing at offset 4
    row = allocations(db)[1]
    assert (row["sell_trade_id"], row["buy_trade_id"], row["allocated_size"], row["buy_fees"]) == \
        ("s2", "b1", 3, D("0.3"))
    assert_current(db)


def test_delete_of_a_buy_that_a_later_sell_consumed(db):
    add_trades(db, [buy("b1", 5, 10, "2025-01-01"), buy("b2", 5, 20, "2025-01-02"),
                    sell("s1", 7, 30, "2025-01-03")])
    db.execute("SELECT compute_fifo('X')")
    assert pairs(db) == [("s1", "b1", 5, 100), ("s1", "b2", 2, 20)]
    db.execute("DELETE FROM trade_records WHERE order_id = 'b1'")
    incremental(db)
    # s1 now finds only b2's 5; the other 2 are unmatched, never charged to a later buy
    assert pairs(db) == [("s1", "b2", 5, 50), ("s1", None, 2, None)]
    assert_current(db)


def test_update_moving_a_trade_to_another_symbol_recomputes_both_pools(db):
    add_trades(db, [buy("b1", 5, 10, "2025-01-01"), sell("s1", 2, 12, "2025-01-02"),
                    buy("y1", 5, 100, "2025-01-01", symbol="Y"), sell("y2", 1, 90, "2025-01-03", symbol="Y")])
    db.execute("SELECT compute_fifo_all()")
    db.execute("UPDATE trade_records SET symbol = 'Y' WHERE order_id = 's1'")
    assert [p[:2] for p in pending(db)] == [("X", "default"), ("Y", "default")]
    run = incremental(db)
    assert (run["symbols"], run["pools"]) == (["X", "Y"], 2)
    assert pairs(db, "X") == []
    assert pairs(db, "Y") == [("s1", "y1", 2, 24 - 200), ("y2", "y1", 1, -10)]
    assert_current(db)


def test_truncate_empties_every_computed_pool(db):
    add_trades(db, [buy("b1", 5, 10, "2025-01-01"), sell("s1", 2, 12, "2025-01-02"),
                    buy("y1", 5, 100, "2025-01-01", symbol="Y"), sell("y2", 1, 90, "2025-01-03", symbol="Y")])
    db.execute("SELECT compute_fifo_all()")
    db.execute("TRUNCATE trade_records")
    assert [p[:2] for p in pending(db)] == [("X", "default"), ("Y", "default")]
    run = incremental(db)
    assert (run["pools"], run["allocations"]) == (2, 0)
    assert allocations(db) == []
    assert_current(db)


def test_update_of_source_only_queues_nothing(db):
    add_trades(db, [buy("b1", 5, 10, "2025-01-01"), sell("s1", 2, 12, "2025-01-02")])
    db.execute("SELECT compute_fifo('X')")
    assert pending(db) == []
    db.execute("UPDATE trade_records SET source = 'reimport'")
    assert pending(db) == []
    assert incremental(db) is None


def test_update_to_the_same_values_queues_nothing(db):
    add_trades(db, [buy("b1", 5, 10, "2025-01-01")])
    db.execute("SELECT compute_fifo('X')")
    db.execute("UPDATE trade_records SET size = size, price = price")
    assert pending(db) == []


def test_update_queues_from_the_earlier_of_old_and_new_time(db):
    add_trades(db, [buy("b1", 5, 10, "2025-01-01"), sell("s1", 2, 12, "2025-03-01")])
    db.execute("SELECT compute_fifo('X')")
    db.execute("UPDATE trade_records SET order_time = '2025-05-01' WHERE order_id = 's1'")
    assert pending(db) == [("X", "default", datetime(2025, 3, 1, tzinfo=timezone.utc))]
    incremental(db)
    assert_current(db)


def test_forced_recompute_of_another_version_drops_a_pool_that_lost_its_trades(db):
    add_trades(db, [buy("b1", 5, 10, "2025-01-01"), sell("s1", 2, 12, "2025-01-02")])
    db.execute("SELECT compute_fifo_all(true, 1)")
    db.execute("SELECT compute_fifo_all(true, 2)")
    db.execute("UPDATE trade_records SET symbol = 'Y'")
    incremental(db)                                  # version 1 current; X's version 2 state dropped
    db.execute("SELECT compute_fifo_all(true, 2)")   # X has no trades, no state, nothing pending
    assert stored(db, 2) == expected(db)             # X's old version 2 row is still there
    assert findings(db, None, 2) == []


# -- the carried lots: only the open lots the suffix can reach ----------------------

def open_remainders(db, symbol: str, account: str) -> list[D]:
    """Remaining sizes of the pool's open lots, oldest first (matching order)."""
    return [r[0] for r in db.execute(
        "SELECT remaining_size FROM fifo_open_lots(%s) WHERE account = %s "
        "ORDER BY order_time, order_id COLLATE \"C\"", (symbol, account))]


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_suffix_over_many_open_lots_equals_full_and_reference(db, data):
    """Accumulating pools (mostly buys, many lots open): a suffix recompute carries in only
    the open lots its sells can reach. Sells sized exactly to a cumulative lot boundary,
    just below or above it (dust), beyond the whole inventory, back-dated into the open
    lots or appended, ties included: always the reference and a full recompute."""
    reset(db)
    history = History(db, data)
    serial = 0
    rows = []
    for minute in sorted(data.draw(st.lists(st.integers(0, 30), min_size=4, max_size=30), label="minutes")):
        serial += 1
        rows.append({**history.new_trade(minute), "order_id": f"h{serial:03d}", "symbol": "X", "account": "a",
                     "side": data.draw(st.sampled_from(["buy", "buy", "buy", "sell"]))})
    add_trades(db, rows)
    history.trades.update((r["order_id"], r) for r in rows)
    db.execute("SELECT compute_fifo_all()")
    assert_current(db)
    for _ in range(data.draw(st.integers(1, 3), label="batches")):
        lots = open_remainders(db, "X", "a")
        covered = [sum(lots[:i + 1], D(0)) for i in range(len(lots))]
        last = history.last_minute()
        batch = []
        for _ in range(data.draw(st.integers(1, 3))):
            trade = history.new_trade(data.draw(st.integers(max(0, last - 10), last + 2)))
            trade.update(symbol="X", account="a", side=data.draw(st.sampled_from(["buy", "sell", "sell"])))
            if trade["side"] == "sell" and covered:
                exact = covered[data.draw(st.integers(0, len(covered) - 1))]
                trade["size"] = data.draw(st.sampled_from(
                    [exact, exact + D("1E-18"), max(exact - D("1E-18"), D("1E-18")), covered[-1] + 1,
                     trade["size"]]))
            batch.append(trade)
        add_trades(db, batch)
        history.trades.update((t["order_id"], t) for t in batch)
        run = incremental(db)
        assert run is not None and run["status"] == "ok"
        assert_current(db)


def test_suffix_reads_only_the_lots_it_reaches(db):
    """Ten open lots; a sell appended after them takes 4.5 units: b1..b4 and half of b5
    are what it reaches. The rest stay open, and the result is the full recompute's."""
    add_trades(db, [buy(f"b{i}", 1, 10 + i, f"2025-01-{i:02d}") for i in range(1, 11)])
    db.execute("SELECT compute_fifo('X')")
    add_trades(db, [sell("s1", D("4.5"), 30, "2025-02-01", fee=D("0.9"))])
    incremental(db)
    assert pairs(db) == [("s1", f"b{i}", 1, 30 - 10 - i - D("0.2")) for i in range(1, 5)] + \
        [("s1", "b5", D("0.5"), D("0.5") * (30 - 15) - D("0.1"))]
    assert open_remainders(db, "X", "default") == [D("0.5")] + [D(1)] * 5
    add_trades(db, [sell("s2", 1, 30, "2025-02-02")])          # continues inside b5, then b6
    incremental(db)
    assert pairs(db)[-2:] == [("s2", "b5", D("0.5"), D("0.5") * 15), ("s2", "b6", D("0.5"), D("0.5") * 14)]
    assert_current(db)


def test_suffix_delete_over_few_and_many_pools(db):
    """fifo._delete_suffixes deletes pool by pool up to 64 pools and with one join beyond:
    both keep each pool's rows before its cut and replace the rest exactly."""
    for n in (3, 70):
        reset(db)
        symbols = [f"P{i:03d}" for i in range(n)]
        add_trades(db, [t for s in symbols for t in (
            buy(f"{s}-b1", 4, 10, "2025-01-01", s), sell(f"{s}-s1", 1, 12, "2025-01-02", s),
            sell(f"{s}-s2", 1, 13, "2025-01-04", s))])
        db.execute("SELECT compute_fifo_all()")
        kept = db.execute("SELECT id FROM fifo_allocations WHERE sell_trade_id LIKE '%-s1' ORDER BY id").fetchall()
        # a back-dated buy between s1 and s2 in every pool (s2 stays on b1), and a sell after s2
        add_trades(db, [t for s in symbols for t in (
            buy(f"{s}-b0", 2, 9, "2025-01-03", s), sell(f"{s}-s3", 3, 14, "2025-01-05", s))])
        run = incremental(db)
        assert (run["pools"], run["sells"]) == (n, 2 * n)
        assert db.execute("SELECT id FROM fifo_allocations WHERE sell_trade_id LIKE '%-s1' "
                          "ORDER BY id").fetchall() == kept
        assert pairs(db, "P002") == [("P002-s1", "P002-b1", 1, 2), ("P002-s2", "P002-b1", 1, 3),
                                     ("P002-s3", "P002-b1", 2, 8), ("P002-s3", "P002-b0", 1, 5)]
        assert_current(db)
