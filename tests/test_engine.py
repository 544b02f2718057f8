"""Hand-worked cases of the matching rules (docs/rules.md), with exact Decimal expectations.

Each case writes its arithmetic in a comment; D("0." + "3" * 40) is 1/3 rounded
half-up at 40 decimals, the engine's fee point (fifo._fee_point).
"""

from decimal import Decimal as D

import psycopg
import pytest
from psycopg.rows import namedtuple_row

from tests.helpers import add_trades, allocations, expected, findings, stored

THIRD = D("0." + "3" * 40)             # round(1/3, 40)
TWO_THIRDS = D("0." + "6" * 39 + "7")  # round(2/3, 40)


def buy(order_id, size, price, when, fee=0, symbol="X", account="default"):
    return {"order_id": order_id, "symbol": symbol, "account": account, "side": "buy", "size": size,
            "price": price, "total_fees": fee, "order_time": when}


def sell(order_id, size, price, when, fee=0, symbol="X", account="default"):
    return {**buy(order_id, size, price, when, fee, symbol, account), "side": "sell"}


def compute(db, symbol="X", version=None):
    """compute_fifo(symbol, version); returns its fifo_runs row as a named tuple."""
    with db.cursor(row_factory=namedtuple_row) as cur:
        return cur.execute("SELECT * FROM compute_fifo(%s, %s)", (symbol, version)).fetchone()


def money(db, symbol="X"):
    """(sell, buy, size, buy_fees, sell_fees, cost_basis, sale_proceeds, pnl) per allocation."""
    return [(r["sell_trade_id"], r["buy_trade_id"], r["allocated_size"], r["buy_fees"], r["sell_fees"],
             r["cost_basis"], r["sale_proceeds"], r["pnl_amount"]) for r in allocations(db, symbol)]


def assert_consistent(db):
    """Every hand-worked case also agrees with the reference FIFO and the SQL invariants."""
    assert stored(db) == expected(db)
    assert findings(db) == []


# -- fees -------------------------------------------------------------------

def test_one_third_fee_split_sums_exactly(db):
    add_trades(db, [buy("b1", 3, 10, "2025-01-01 10:00", fee=1),
                    sell("s1", 1, 12, "2025-01-02"), sell("s2", 1, 12, "2025-01-03"),
                    sell("s3", 1, 12, "2025-01-04")])
    compute(db)
    # buy fee points: 0, round(1/3) = 0.3..3, round(2/3) = 0.6..67, 1
    # shares: 0.3..3 (40 threes), 0.6..67 - 0.3..33 = 0.3..34, 1 - 0.6..67 = 0.3..33
    s2_fee = D("0." + "3" * 39 + "4")
    # cost = 1 * 10 + fee share; proceeds = 1 * 12; pnl = 2 - fee share (2 - 0.3..33 = 1.6..67)
    assert money(db) == [
        ("s1", "b1", 1, THIRD, 0, D("10." + "3" * 40), 12, D("1." + "6" * 39 + "7")),
        ("s2", "b1", 1, s2_fee, 0, D("10." + "3" * 39 + "4"), 12, D("1." + "6" * 39 + "6")),
        ("s3", "b1", 1, THIRD, 0, D("10." + "3" * 40), 12, D("1." + "6" * 39 + "7")),
    ]
    assert THIRD + s2_fee + THIRD == 1   # 0.3..33 + 0.3..34 + 0.3..33 (exact in 41 digits)
    assert db.execute("SELECT sum(buy_fees) FROM fifo_allocations").fetchone()[0] == 1
    assert_consistent(db)


def test_sell_fee_is_shared_with_its_unmatched_row(db):
    add_trades(db, [buy("b1", 2, 10, "2025-01-01"), sell("s1", 3, 12, "2025-01-02", fee=1)])
    run = compute(db)
    # matched q=2: sell fee = round(1*2/3) = 0.6..67; proceeds = 24 - 0.6..67; cost = 20
    # unmatched q=1: sell fee = 1 - 0.6..67 = 0.3..33 (40 threes); proceeds = 12 - 0.3..33
    # pnl = 23.3..33 - 20 = 3.3..33
    assert money(db) == [
        ("s1", "b1", 2, 0, TWO_THIRDS, 20, D("23." + "3" * 40), D("3." + "3" * 40)),
        ("s1", None, 1, None, THIRD, None, D("11." + "6" * 39 + "7"), None),
    ]
    assert TWO_THIRDS + THIRD == 1
    assert db.execute("SELECT sum(sell_fees) FROM fifo_allocations").fetchone()[0] == 1
    assert (run.allocations, run.unmatched) == (2, 1)
    assert_consistent(db)


def test_buy_fee_rows_plus_open_remainder_equal_the_fee(db):
    add_trades(db, [buy("b1", 3, 10, "2025-01-01", fee=1),
                    sell("s1", 1, 11, "2025-01-02"), sell("s2", 1, 11, "2025-01-03")])
    compute(db)
    # 2 of 3 used: rows 0.3..33 + 0.3..34 = round(2/3) = 0.6..67 = _fee_point(1, 3, 2);
    # the open remainder (1 unit) carries 1 - 0.6..67 = 0.3..33; together exactly 1
    used = db.execute("SELECT sum(buy_fees) FROM fifo_allocations WHERE buy_trade_id = 'b1'").fetchone()[0]
    point = db.execute("SELECT fifo._fee_point(1, 3, 2)").fetchone()[0]
    assert used == point == TWO_THIRDS
    assert used + THIRD == 1
    assert_consistent(db)


def test_fee_point_is_the_half_up_rounding_at_40_places(db):
    # fifo._fee_point rounds fee * x / size half-up at 40 places with one division
    # (issue 16). Checked against the rounding written out the long way, as it was
    # computed before (div of fee*x*2e40 + size by 2*size): same value and scale 40 on
    # points exactly half-way at the 41st digit, just below and above it, tiny and huge
    # quantities, and 2,000 random 8- and 18-decimal points.
    cases = db.execute("""
        WITH p(fee, size, x) AS (
            VALUES (1::numeric, 3::numeric, 2::numeric),
                   (1, 8, 1e-40 * 4),                 -- 0.5e-40: exactly half-way, rounds up
                   (1, 1, 5e-41),                     -- half-way at the 41st digit
                   (1, 1, 4.9999999999e-41),          -- just below: rounds down to 0
                   (1, 1, 5.0000000001e-41),          -- just above
                   (0.00000001, 1e18, 0.000000000000000001),
                   (123456789012345678901234567890, 7, 3),
                   (0.1, 3, 0.000000000000000000000000000000000000000000000001),
                   (2.5, 0.000000000000000003, 0.000000000000000001)
            UNION ALL
            SELECT round((random() * 0.1)::numeric, 8), s, round((random() * s)::numeric, d)
            FROM (SELECT round((random() * 10 + 0.001)::numeric, d) AS s, d
                  FROM generate_series(1, 2000) i, LATERAL (SELECT CASE WHEN i % 2 = 0 THEN 8 ELSE 18 END AS d) dd) r
        )
        SELECT fee, size, x, fifo._fee_point(fee, size, x) AS now,
               CASE WHEN x <= 0 OR fee = 0 THEN 0::numeric WHEN x >= size THEN fee
                    ELSE div(fee * x * 2e40 + size, 2 * size) * 1e-40 END AS long_way
        FROM p""").fetchall()
    assert len(cases) == 2009
    assert [c for c in cases if c[3] != c[4] or str(c[3]) != str(c[4])] == []
    assert cases[0][3] == TWO_THIRDS
    assert cases[1][3] == D("1e-40") and cases[1][3].as_tuple().exponent == -40
    assert cases[3][3] == 0 and cases[3][3].as_tuple().exponent == -40


# -- order and ties ------------------------------------------------------------

def test_buy_before_sell_at_the_same_time(db):
    # the sell's order_id sorts first, but buys come before sells at one order_time
    add_trades(db, [sell("a-sell", 1, 12, "2025-01-01 10:00"), buy("z-buy", 1, 10, "2025-01-01 10:00")])
    compute(db)
    # q=1: cost 10, proceeds 12, pnl 2
    assert money(db) == [("a-sell", "z-buy", 1, 0, 0, 10, 12, 2)]
    assert_consistent(db)


TIED_BUYS = [buy("a1", 1, 10, "2025-01-01 10:00"), buy("B1", 1, 20, "2025-01-01 10:00"),
             sell("s1", 1, 25, "2025-01-02")]


def test_tied_buys_ordered_by_order_id_bytewise(db):
    add_trades(db, TIED_BUYS)
    compute(db)
    # 'B' (0x42) < 'a' (0x61): lot B1 at 20 goes first; pnl = 25 - 20 = 5
    assert money(db) == [("s1", "B1", 1, 0, 0, 20, 25, 5)]
    assert_consistent(db)


def icu_order_ids(db) -> None:
    """Give trade_records.order_id an ICU collation. fifo.trades reads the column, so the view
    is dropped for the ALTER and re-created the way install does."""
    db.execute("DROP VIEW fifo.trades")
    db.execute('ALTER TABLE trade_records ALTER COLUMN order_id TYPE text COLLATE "und-x-icu"')
    db.execute("SELECT fifo._create_trades_view()")


def test_tie_order_ignores_the_column_collation(db):
    """Under ICU ordering 'a1' < 'B1'; the engine must still compare order_id bytewise."""
    if not db.execute("SELECT 1 FROM pg_collation WHERE collname = 'und-x-icu'").fetchone():
        pytest.skip("this server has no ICU collations")
    icu_order_ids(db)
    assert db.execute("SELECT 'a1' < 'B1' COLLATE \"und-x-icu\"").fetchone()[0] is True
    add_trades(db, TIED_BUYS)
    compute(db)
    assert money(db) == [("s1", "B1", 1, 0, 0, 20, 25, 5)]


def test_suffix_recompute_ignores_the_column_collation_too(db):
    """The suffix recompute finds the last consumed lot and the lots after it bytewise as well."""
    if not db.execute("SELECT 1 FROM pg_collation WHERE collname = 'und-x-icu'").fetchone():
        pytest.skip("this server has no ICU collations")
    icu_order_ids(db)
    add_trades(db, TIED_BUYS + [buy("c1", 1, 30, "2025-01-01 10:00")])
    db.execute("SELECT compute_fifo_all(false)")             # first time: full
    add_trades(db, [sell("s2", 2, 40, "2025-01-03")])
    db.execute("SELECT compute_fifo_all(false)")             # now: the suffix from Jan 3
    assert db.execute("SELECT mode, pools FROM fifo_runs ORDER BY run_id DESC LIMIT 1").fetchone() == (
        "incremental", 1)
    # bytewise lot order B1 (20), a1 (10), c1 (30): s1 took B1; s2 takes a1 then c1
    # pnl: s1 25 - 20 = 5; s2 (40 - 10) + (40 - 30) = 30 + 10
    assert [m[:3] + m[-1:] for m in money(db)] == [
        ("s1", "B1", 1, 5), ("s2", "a1", 1, 30), ("s2", "c1", 1, 10)]


def test_tied_sells_take_lots_in_order_id_order(db):
    add_trades(db, [buy("b1", 1, 10, "2025-01-01"), buy("b2", 1, 20, "2025-01-02"),
                    sell("s-b", 1, 30, "2025-01-03"), sell("s-A", 1, 30, "2025-01-03")])
    compute(db)
    # 's-A' < 's-b' bytewise: s-A takes b1 (pnl 30 - 10 = 20), s-b takes b2 (pnl 30 - 20 = 10)
    assert money(db) == [("s-A", "b1", 1, 0, 0, 10, 30, 20), ("s-b", "b2", 1, 0, 0, 20, 30, 10)]
    assert_consistent(db)


# -- oversold and later buys ---------------------------------------------------

def test_oversold_part_is_unmatched_and_never_charged_to_a_later_buy(db):
    add_trades(db, [buy("b1", 1, 10, "2025-01-01"), sell("s1", 3, 12, "2025-01-02"),
                    buy("b2", 5, 11, "2025-01-03"), sell("s2", 1, 13, "2025-01-04")])
    run = compute(db)
    assert money(db) == [
        ("s1", "b1", 1, 0, 0, 10, 12, 2),            # 1 * (12 - 10)
        ("s1", None, 2, None, 0, None, 24, None),   # 2 * 12 proceeds, no cost, no pnl
        ("s2", "b2", 1, 0, 0, 11, 13, 2),           # 1 * (13 - 11); b2 keeps 4 open
    ]
    unmatched = [r for r in allocations(db, "X") if r["unmatched"]]
    assert [(r["buy_price"], r["buy_fees"], r["buy_time"]) for r in unmatched] == [(None, None, None)]
    assert db.execute("SELECT sum(allocated_size) FROM fifo_allocations WHERE buy_trade_id = 'b2'"
                      ).fetchone()[0] == 1
    assert (run.buys, run.sells, run.allocations, run.unmatched, run.total_pnl) == (2, 2, 3, 1, 4)
    assert_consistent(db)


def test_sell_is_never_matched_to_a_later_buy(db):
    add_trades(db, [sell("s1", 2, 10, "2025-01-01"), buy("b1", 2, 8, "2025-01-02"),
                    sell("s2", 1, 9, "2025-01-03")])
    compute(db)
    assert money(db) == [
        ("s1", None, 2, None, 0, None, 20, None),   # nothing held on Jan 1: 2 * 10 unmatched
        ("s2", "b1", 1, 0, 0, 8, 9, 1),             # 1 * (9 - 8)
    ]
    assert_consistent(db)


def test_sell_that_empties_the_inventory_exactly_then_oversells(db):
    """On the sold-quantity axis a sell that leaves nothing also ends a gap: empty when it
    used the inventory up exactly (the lot ending at the same point wins), its unmatched
    part when it oversold. Lots bought after a gap start where it ends."""
    add_trades(db, [buy("b1", 2, 10, "2025-01-01"), sell("s1", 2, 12, "2025-01-02", fee="0.2"),  # exactly
                    sell("s2", 1, 13, "2025-01-03", fee="0.1"),                                  # nothing held
                    buy("b2", 3, 11, "2025-01-04", fee="0.3"), sell("s3", 4, 14, "2025-01-05", fee="0.4"),
                    buy("b3", 1, 9, "2025-01-06"), sell("s4", 1, 8, "2025-01-07")])
    compute(db)
    assert money(db) == [
        ("s1", "b1", 2, 0, D("0.2"), 20, D("23.8"), D("3.8")),
        ("s2", None, 1, None, D("0.1"), None, D("12.9"), None),
        ("s3", "b2", 3, D("0.3"), D("0.3"), D("33.3"), D("41.7"), D("8.4")),   # 3 of the 4 ...
        ("s3", None, 1, None, D("0.1"), None, D("13.9"), None),               # ... the 4th unmatched
        ("s4", "b3", 1, 0, 0, 9, 8, -1),
    ]
    assert_consistent(db)


# -- partial fills and dust ------------------------------------------------------

def test_partial_fills_across_several_lots(db):
    add_trades(db, [buy("b1", "1.5", 10, "2025-01-01", fee="0.3"), buy("b2", 2, 11, "2025-01-02"),
                    buy("b3", "0.7", 12, "2025-01-03", fee="0.07"),
                    sell("s1", 3, 13, "2025-01-04", fee="0.6"), sell("s2", 1, 14, "2025-01-05")])
    compute(db)
    assert money(db) == [
        # 1.5 of b1: cost 15 + 0.3 = 15.3; sell fee 0.6 * 1.5/3 = 0.3; proceeds 19.5 - 0.3 = 19.2
        ("s1", "b1", D("1.5"), D("0.3"), D("0.3"), D("15.3"), D("19.2"), D("3.9")),
        # 1.5 of b2: cost 16.5; sell fee 0.6 - 0.3 = 0.3; proceeds 19.2; pnl 2.7
        ("s1", "b2", D("1.5"), 0, D("0.3"), D("16.5"), D("19.2"), D("2.7")),
        # last 0.5 of b2: cost 5.5, proceeds 7, pnl 1.5
        ("s2", "b2", D("0.5"), 0, 0, D("5.5"), 7, D("1.5")),
        # 0.5 of b3: fee share 0.07 * 0.5/0.7 = 0.05; cost 6 + 0.05 = 6.05; pnl 0.95 (0.2 stays open)
        ("s2", "b3", D("0.5"), D("0.05"), 0, D("6.05"), 7, D("0.95")),
    ]
    assert_consistent(db)


def test_dust_and_18_decimal_quantities(db):
    add_trades(db, [buy("b1", "0.00000001", 50000, "2025-01-01", fee="0.00000001"),
                    buy("b2", "0.000000000000000001", 1, "2025-01-02"),
                    sell("s1", "0.000000010000000001", 60000, "2025-01-03"),
                    buy("b3", "1.000000000000000003", 2, "2025-01-04", fee="0.000000000000000003"),
                    sell("s2", "0.000000000000000001", 3, "2025-01-05")])
    compute(db)
    assert money(db) == [
        # 1e-8 of b1: cost 1e-8 * 50000 + 1e-8 = 0.00050001; proceeds 1e-8 * 60000 = 0.0006
        ("s1", "b1", D("0.00000001"), D("0.00000001"), 0, D("0.00050001"), D("0.0006"), D("0.00009999")),
        # 1e-18 of b2: cost 1e-18; proceeds 6e-14; pnl 6e-14 - 1e-18 = 5.9999e-14
        ("s1", "b2", D("1E-18"), 0, 0, D("1E-18"), D("6E-14"), D("5.9999E-14")),
        # 1e-18 of b3: fee share 3e-18 * 1e-18 / 1.000000000000000003 = 3e-36 - 9e-54,
        # half-up at 40 decimals = 3e-36; cost 2e-18 + 3e-36; proceeds 3e-18
        ("s2", "b3", D("1E-18"), D("3E-36"), 0, D("2.000000000000000003E-18"), D("3E-18"),
         D("0.999999999999999997E-18")),
    ]
    assert_consistent(db)


# -- pools ---------------------------------------------------------------------

def test_accounts_of_one_symbol_are_independent_pools(db):
    add_trades(db, [buy("bob-b", 1, 9, "2025-01-01", account="bob"),
                    buy("alice-b", 1, 10, "2025-01-02", account="alice"),
                    sell("bob-s", 2, 12, "2025-01-03", account="bob"),
                    sell("alice-s", 1, 11, "2025-01-04", account="alice")])
    run = compute(db)
    rows = [(r["account"],) + m for r, m in zip(allocations(db, "X"), money(db))]
    assert rows == [
        ("alice", "alice-s", "alice-b", 1, 0, 0, 10, 11, 1),   # 11 - 10
        ("bob", "bob-s", "bob-b", 1, 0, 0, 9, 12, 3),          # 12 - 9; alice's lot is not bob's
        ("bob", "bob-s", None, 1, None, 0, None, 12, None),    # bob had only 1
    ]
    assert run.pools == 2
    assert_consistent(db)


def test_compute_fifo_touches_only_its_symbol(db):
    add_trades(db, [buy("x1", 1, 1, "2025-01-01"), sell("x2", 1, 2, "2025-01-02"),
                    buy("y1", 1, 1, "2025-01-01", symbol="Y"), sell("y2", 1, 3, "2025-01-02", symbol="Y")])
    compute(db, "X")
    assert [r["symbol"] for r in allocations(db)] == ["X"]


# -- runs, errors, versions, atomicity -------------------------------------------

def test_every_call_records_a_run(db):
    add_trades(db, [buy("b1", 1, 10, "2025-01-01"), sell("s1", 1, 12, "2025-01-02")])
    first, second = compute(db), compute(db)
    runs = db.execute("SELECT batch_id, mode, status, allocations, total_pnl FROM fifo_runs ORDER BY run_id"
                      ).fetchall()
    assert runs == [(first.batch_id, "symbol", "ok", 1, 2), (second.batch_id, "symbol", "ok", 1, 2)]
    assert {r["sell_trade_id"] for r in allocations(db)} == {"s1"}
    # nothing changed: the second run confirms the pool (pool_state) and keeps the row the first wrote
    assert db.execute("SELECT DISTINCT batch_id FROM fifo_allocations").fetchall() == [(first.batch_id,)]
    assert db.execute("SELECT batch_id FROM fifo.pool_state").fetchall() == [(second.batch_id,)]


def test_unknown_symbol_raises_no_data_found(db):
    with pytest.raises(psycopg.errors.NoDataFound, match="NOPE"):
        compute(db, "NOPE")


def test_version_must_be_positive(db):
    add_trades(db, [buy("b1", 1, 10, "2025-01-01")])
    with pytest.raises(psycopg.errors.InvalidParameterValue):
        compute(db, "X", 0)


def _snapshot(db, version):
    return db.execute("SELECT * FROM fifo_allocations WHERE version = %s ORDER BY id", (version,)).fetchall()


def test_computing_version_2_leaves_version_1_untouched(db):
    add_trades(db, [buy("b1", 2, 10, "2025-01-01"), sell("s1", 1, 12, "2025-01-02")])
    compute(db)
    v1 = _snapshot(db, 1)
    add_trades(db, [sell("s2", 1, 15, "2025-01-03")])
    run = compute(db, "X", 2)
    assert run.version == 2
    assert _snapshot(db, 1) == v1     # ids, batch ids and timestamps too
    assert [m[:3] + m[-1:] for m in money(db)] == [("s1", "b1", 1, 2)]
    v2 = [(r["sell_trade_id"], r["buy_trade_id"], r["pnl_amount"]) for r in allocations(db, "X", version=2)]
    assert v2 == [("s1", "b1", 2), ("s2", "b1", 5)]   # 12 - 10, 15 - 10


def test_failing_compute_keeps_previous_allocations_and_records_the_failure(db):
    add_trades(db, [buy("b1", 2, 10, "2025-01-01"), sell("s1", 1, 12, "2025-01-02"),
                    buy("y1", 1, 1, "2025-01-01", symbol="Y"), sell("y2", 1, 2, "2025-01-02", symbol="Y")])
    compute(db, "X")
    compute(db, "Y")
    before = db.execute("SELECT * FROM fifo_allocations ORDER BY id").fetchall()
    runs_before = db.execute("SELECT count(*) FROM fifo_runs").fetchone()[0]
    add_trades(db, [sell("s2", 1, 15, "2025-01-03")])
    # existing rows stay valid (NOT VALID); any new row of symbol X is rejected
    db.execute("ALTER TABLE fifo.allocations ADD CONSTRAINT test_rejects_x CHECK (symbol <> 'X') NOT VALID")

    with db.cursor(row_factory=namedtuple_row) as cur:
        run = cur.execute("SELECT * FROM compute_fifo('X')").fetchone()
    assert (run.mode, run.status, run.pools, run.failed_pools, run.allocations) == ("symbol", "failed", 1, 1, 0)
    assert "test_rejects_x" in run.error
    assert db.execute("SELECT * FROM fifo_allocations ORDER BY id").fetchall() == before
    assert db.execute("SELECT count(*) FROM fifo_runs").fetchone()[0] == runs_before + 1
    # what the run consumed stays pending, so the next incremental run retries it
    assert db.execute("SELECT count(*) FROM fifo.pool_changes WHERE symbol = 'X' AND processed_at IS NULL"
                      ).fetchone()[0] == 1


@pytest.mark.parametrize("in_place", [False, True], ids=["fresh-table", "in-place"])
def test_failing_pool_in_compute_all_is_isolated(db, in_place):
    add_trades(db, [buy("b1", 2, 10, "2025-01-01"), sell("s1", 1, 12, "2025-01-02"),
                    buy("y1", 1, 1, "2025-01-01", symbol="Y"), sell("y2", 1, 2, "2025-01-02", symbol="Y")])
    compute(db, "X")
    if in_place:
        # below forced_in_place_below the forced run writes only what differs: X's rows must change
        db.execute("UPDATE trade_records SET price = 11 WHERE order_id = 'b1'")
    else:
        db.execute("SELECT fifo_set_setting('forced_in_place_below', '0')")   # the fresh table
    x_before = db.execute("SELECT * FROM fifo_allocations WHERE symbol = 'X' ORDER BY id").fetchall()
    db.execute("ALTER TABLE fifo.allocations ADD CONSTRAINT test_rejects_x CHECK (symbol <> 'X') NOT VALID")

    with db.cursor(row_factory=namedtuple_row) as cur:
        run = cur.execute("SELECT * FROM compute_fifo_all(true)").fetchone()
    assert (run.status, run.pools, run.failed_pools) == ("partial", 2, 1)
    assert "X/default" in run.error and "test_rejects_x" in run.error
    assert db.execute("SELECT * FROM fifo_allocations WHERE symbol = 'X' ORDER BY id").fetchall() == x_before
    assert [(r["sell_trade_id"], r["pnl_amount"]) for r in allocations(db, "Y")] == [("y2", 1)]
    # the failed pool is queued again for the next run
    assert db.execute("SELECT count(*) FROM fifo.pool_changes WHERE symbol = 'X' AND processed_at IS NULL"
                      ).fetchone()[0] == 1
