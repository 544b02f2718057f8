"""verify_fifo() (SQL invariants) and fifo_db.verify (plus the reference FIFO): clean on
correct allocations, and each kind of damage is reported by the check meant for it."""

from __future__ import annotations

import pytest

from fifo_db.sample import copy_rows, synthetic_rows
from fifo_db.verify import verify
from tests.helpers import add_trades, findings

TRADES = [
    # b1 3 @ 10 fee 1, b2 2 @ 11 fee 0.5; s1 sells 4 (3 of b1, 1 of b2), s2 sells 2
    # (the last 1 of b2, and 1 unmatched: 5 bought, 6 sold)
    {"order_id": "b1", "symbol": "X", "side": "buy", "size": 3, "price": 10, "total_fees": 1,
     "order_time": "2025-01-01"},
    {"order_id": "b2", "symbol": "X", "side": "buy", "size": 2, "price": 11, "total_fees": "0.5",
     "order_time": "2025-01-02"},
    {"order_id": "s1", "symbol": "X", "side": "sell", "size": 4, "price": 12, "total_fees": "0.4",
     "order_time": "2025-01-03"},
    {"order_id": "s2", "symbol": "X", "side": "sell", "size": 2, "price": 13, "order_time": "2025-01-04"},
]


@pytest.fixture
def computed(db):
    add_trades(db, TRADES)
    db.execute("SELECT compute_fifo('X')")
    assert findings(db) == [] and verify(db) == []
    return db


def checks(db) -> set[tuple[str, str | None]]:
    return {(r[0], r[3]) for r in findings(db)}


def test_clean_on_a_synthetic_history(db):
    copy_rows(db, synthetic_rows(symbols=12, trades=600, seed=5, accounts=3))
    db.execute("SELECT compute_fifo_all(true)")
    assert db.execute("SELECT count(*) FROM fifo_allocations WHERE unmatched").fetchone()[0] > 0
    assert findings(db) == []
    assert verify(db) == []


def test_missing_row_breaks_sell_size(computed):
    computed.execute("DELETE FROM fifo.allocations WHERE sell_trade_id = 's2' AND unmatched")
    assert checks(computed) == {("not_fifo", "s2"), ("sell_size", "s2")}


def test_sell_fee_share_off(computed):
    # moved 0.1 of fee into s1's first row, proceeds and pnl kept consistent with it
    computed.execute("UPDATE fifo.allocations SET sell_fees = sell_fees + 0.1, sale_proceeds = sale_proceeds - 0.1, "
                     "pnl_amount = pnl_amount - 0.1 WHERE sell_trade_id = 's1' AND buy_trade_id = 'b1'")
    assert checks(computed) == {("not_fifo", "s1"), ("sell_fees", "s1")}


def test_buy_over_allocated(computed):
    # s2's unmatched unit charged to b2 instead (consistent money; b2 now gives 3 of its 2)
    computed.execute("UPDATE fifo.allocations SET buy_trade_id = 'b2', buy_price = 11, buy_fees = 0, "
                     "buy_time = '2025-01-02', cost_basis = 11, pnl_amount = sale_proceeds - 11, unmatched = false "
                     "WHERE sell_trade_id = 's2' AND unmatched")
    assert checks(computed) == {("not_fifo", "s2"), ("buy_over_allocated", "b2")}


def test_buy_fee_share_off(computed):
    computed.execute("UPDATE fifo.allocations SET buy_fees = buy_fees + 0.1, cost_basis = cost_basis + 0.1, "
                     "pnl_amount = pnl_amount - 0.1 WHERE sell_trade_id = 's1' AND buy_trade_id = 'b1'")
    assert checks(computed) == {("not_fifo", "s1"), ("buy_fees", "b1")}


def test_price_not_copied_from_the_trade(computed):
    computed.execute("UPDATE fifo.allocations SET sell_price = sell_price + 1, "
                     "sale_proceeds = sale_proceeds + allocated_size, pnl_amount = pnl_amount + allocated_size "
                     "WHERE sell_trade_id = 's2' AND buy_trade_id = 'b2'")
    assert checks(computed) == {("not_fifo", "s2"), ("allocation_trades", "s2")}


def test_later_buy(computed):
    # the table's own CHECK forbids this; drop it to show verify catches it independently
    computed.execute("ALTER TABLE fifo.allocations DROP CONSTRAINT lot_is_not_later_than_sale")
    computed.execute("UPDATE fifo.allocations SET buy_time = '2025-02-01' "
                     "WHERE sell_trade_id = 's1' AND buy_trade_id = 'b1'")
    # the buy time no longer matches b1 either
    assert checks(computed) == {("not_fifo", "s1"), ("later_buy", "s1"), ("allocation_trades", "s1")}


def test_pnl_not_proceeds_minus_cost(computed):
    computed.execute("UPDATE fifo.allocations SET pnl_amount = pnl_amount + 1 WHERE sell_trade_id = 's1' "
                     "AND buy_trade_id = 'b2'")
    assert checks(computed) == {("not_fifo", "s1"), ("money", "s1")}
    assert [f.check for f in verify(computed)] == ["money", "not_fifo", "reference"]
    assert [f.check for f in verify(computed, reference=False)] == ["money", "not_fifo"]


def test_allocations_of_an_uncomputed_pool(computed):
    computed.execute("DELETE FROM fifo.pool_state")
    assert checks(computed) == {("orphan_allocations", None)}


def test_trades_changed_since_the_computation(computed):
    add_trades(computed, [{"order_id": "b3", "symbol": "X", "side": "buy", "size": 1, "price": 9,
                           "order_time": "2025-01-05"}])
    assert checks(computed) == {("stale", None)}


def test_a_wrong_lot_the_invariants_cannot_see_is_found_by_both_verifies(db):
    """Two identical lots; the sell charged to the second one breaks no invariant (same
    price, no fees, neither over-allocated), only FIFO order: verify_fifo()'s recomputation
    and the Python reference both see it."""
    add_trades(db, [
        {"order_id": "c1", "symbol": "Z", "side": "buy", "size": 1, "price": 5, "order_time": "2025-01-01"},
        {"order_id": "c2", "symbol": "Z", "side": "buy", "size": 1, "price": 5, "order_time": "2025-01-02"},
        {"order_id": "c3", "symbol": "Z", "side": "sell", "size": 1, "price": 6, "order_time": "2025-01-03"},
    ])
    db.execute("SELECT compute_fifo('Z')")
    db.execute("UPDATE fifo.allocations SET buy_trade_id = 'c2', buy_time = '2025-01-02' WHERE sell_trade_id = 'c3'")
    rows = sorted(findings(db), key=lambda r: r[4])
    assert [(r[0], r[1], r[2], r[3]) for r in rows] == [("not_fifo", "Z", "default", "c3")] * 2
    assert rows[0][4] == "missing allocation of sell c3 to lot c1: expected 1 at 5, pnl 1"
    assert rows[1][4].startswith("unexpected allocation ")
    assert rows[1][4].endswith(" of sell c3 to lot c2: 1, pnl 1; FIFO gives this sell no such row")
    found = verify(db)
    assert [(f.check, f.trade_id) for f in found if f.check == "reference"] == [("reference", "c3")] * 2
    assert "missing allocation to lot c1" in found[2].detail
    assert "unexpected allocation to lot c2" in found[3].detail


def test_a_planted_pnl_names_the_column_and_the_expected_value(computed):
    computed.execute("UPDATE fifo.allocations SET pnl_amount = 99 WHERE sell_trade_id = 's1' AND buy_trade_id = 'b1'")
    row = next(r for r in findings(computed) if r[0] == "not_fifo")
    assert row[1:4] == ("X", "default", "s1")
    assert row[4].endswith("of sell s1 to lot b1: pnl_amount 99, expected 4.7")   # 3 x 12 - 0.3 - (3 x 10 + 1)


def test_a_stale_pool_is_reported_once_not_row_by_row(computed):
    computed.execute("UPDATE trade_records SET size = 1 WHERE order_id = 'b1'")   # every row of X now differs
    assert findings(computed) == [("stale", "X", "default", None,
                                   "trades changed since the last computation; run compute_fifo_incremental()")]
    computed.execute("SELECT compute_fifo_incremental()")
    assert findings(computed) == []


def test_symbol_and_version_filters(computed):
    computed.execute("UPDATE fifo.allocations SET pnl_amount = pnl_amount + 1 WHERE sell_trade_id = 's1' "
                     "AND buy_trade_id = 'b2'")
    assert findings(computed, "OTHER") == []
    assert findings(computed, "X", 2) == []          # nothing computed for version 2
    assert [f.check for f in verify(computed, "X", 1)] == ["money", "not_fifo", "reference"]
