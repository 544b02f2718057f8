"""Issue 14, section 1: a buy or sell that moves to another pool (its symbol or account
updated, or deleted and its order_id re-used elsewhere) while the pool it left still holds
allocations of it: each pool's engine reads are of that pool alone, and verify_fifo()
finds any allocation that differs from FIFO over the current trades."""

from __future__ import annotations

from decimal import Decimal

from fifo_db.verify import verify
from tests.helpers import expected, findings, stored

MOVED_B = """
INSERT INTO trade_records (order_id, symbol, side, size, price, total_fees, order_time) VALUES
 ('B','Z-USD','buy',10,100,0,'2024-01-01 00:00+00'),
 ('sz','Z-USD','sell',4,110,0,'2024-01-02 00:00+00'),
 ('sa','A-USD','sell',3,120,0,'2024-01-03 00:00+00');
SELECT compute_fifo_all(true);
UPDATE trade_records SET symbol='A-USD' WHERE order_id='B';
SELECT compute_fifo('A-USD');
INSERT INTO trade_records (order_id, symbol, side, size, price, total_fees, order_time) VALUES
 ('sa2','A-USD','sell',7,130,0,'2024-01-04 00:00+00');
"""
# the issue's whole sequence: the moved buy, then 210 more pools so the tick runs in chunks
ISSUE_14 = MOVED_B + """
INSERT INTO trade_records (order_id, symbol, side, size, price, total_fees, order_time)
 SELECT 'f'||i, 'M'||lpad(i::text,3,'0'), 'buy',1,1,0,'2024-01-01 00:00+00' FROM generate_series(1,210) i;
"""


def sa2(db) -> list[tuple]:
    return db.execute("SELECT buy_trade_id, allocated_size, pnl_amount FROM fifo_allocations "
                      "WHERE sell_trade_id = 'sa2' ORDER BY buy_trade_id NULLS LAST").fetchall()


def test_the_issue_14_sequence_gives_sa2_all_seven_of_b(db):
    db.execute(ISSUE_14)
    # 212 pools: more than one chunk, A-USD's before Z-USD's, which still holds B's rows
    run = db.execute("SELECT pools, status FROM compute_fifo_incremental()").fetchone()
    assert run == (212, "ok")
    assert sa2(db) == [("B", Decimal(7), Decimal(210))]
    assert stored(db) == expected(db)
    assert findings(db) == []


def test_a_buy_moved_while_its_old_pool_is_held_by_another_session(db, connect):
    db.execute(MOVED_B)
    other = connect()
    other.execute("BEGIN")
    other.execute("SELECT compute_fifo('Z-USD')")   # holds Z-USD, which still has B's rows (sz 4 of B)
    run = db.execute("SELECT skipped_pools FROM compute_fifo_incremental()").fetchone()
    assert sa2(db) == [("B", Decimal(7), Decimal(210))]
    other.execute("ROLLBACK")
    other.close()
    db.execute("SELECT compute_fifo_incremental()")
    assert stored(db) == expected(db)
    assert findings(db) == []
    assert run is not None


def test_a_planted_wrong_lot_is_found_by_both_verifies(db):
    """What the unscoped lookup produced: sa2 takes 3 of B and 4 unmatched. Planted by hand,
    verify_fifo() and `fifo-db verify` both report it."""
    db.execute(ISSUE_14)
    db.execute("SELECT compute_fifo_incremental()")
    db.execute("UPDATE fifo.allocations SET allocated_size = 3, cost_basis = 300, sale_proceeds = 390, "
               "pnl_amount = 90 WHERE sell_trade_id = 'sa2'")
    db.execute("INSERT INTO fifo.allocations (version, batch_id, account, symbol, sell_trade_id, allocated_size, "
               "sell_price, sell_fees, sale_proceeds, sell_time, unmatched) VALUES (1, gen_random_uuid(), "
               "'default', 'A-USD', 'sa2', 4, 130, 0, 520, '2024-01-04 00:00+00', true)")
    rows = sorted(r for r in findings(db) if r[0] == "not_fifo")
    assert [r[1:4] for r in rows] == [("A-USD", "default", "sa2")] * 2
    details = sorted(r[4] for r in rows)
    assert details[0].endswith("of sell sa2 to lot B: allocated_size 3, expected 7; cost_basis 300, expected 700; "
                               "sale_proceeds 390, expected 910; pnl_amount 90, expected 210")
    assert details[1].startswith("unexpected allocation ") and "of sell sa2 to lot (unmatched): 4" in details[1]
    assert {f.check for f in verify(db)} == {"not_fifo", "reference"}


def test_reports_and_explain_read_the_trades_own_pool(db):
    """B moved from Z-USD to A-USD; Z-USD (not yet recomputed) still holds sz's rows of B:
    explain of B and the open lots show only A-USD's."""
    db.execute("""
        INSERT INTO trade_records (order_id, symbol, side, size, price, total_fees, order_time) VALUES
         ('B','Z-USD','buy',10,100,0,'2024-01-01 00:00+00'),
         ('sz','Z-USD','sell',4,110,0,'2024-01-02 00:00+00'),
         ('sa','A-USD','sell',3,120,0,'2024-01-03 00:00+00');
        SELECT compute_fifo_all(true);
        UPDATE trade_records SET symbol='A-USD' WHERE order_id='B';
        SELECT compute_fifo('A-USD');""")
    assert db.execute("SELECT count(*) FROM fifo_allocations WHERE symbol = 'Z-USD' AND buy_trade_id = 'B'"
                      ).fetchone()[0] == 1
    consumed = db.execute("SELECT kind, order_id, quantity FROM explain_fifo('B') WHERE kind IN ('consumed by', 'open')"
                          ).fetchall()
    assert consumed == [("consumed by", "sa", Decimal(3)), ("open", None, Decimal(7))]
    assert db.execute("SELECT remaining_size FROM fifo_open_lots WHERE order_id = 'B'").fetchall() == [(Decimal(7),)]
