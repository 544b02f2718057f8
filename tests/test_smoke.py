from decimal import Decimal

from tests.helpers import add_trades, allocations


def test_install_exposes_compute_fifo_unqualified(db):
    add_trades(db, [
        {"order_id": "b1", "symbol": "X", "side": "buy", "size": 5, "price": 10, "order_time": "2025-01-01"},
        {"order_id": "s1", "symbol": "X", "side": "sell", "size": 2, "price": 12, "order_time": "2025-01-02"},
    ])
    db.execute("SELECT compute_fifo('X')")
    rows = allocations(db, "X")
    assert [(r["sell_trade_id"], r["buy_trade_id"], r["pnl_amount"]) for r in rows] == [("s1", "b1", Decimal("4"))]
