"""The seed's bug, reproduced and fixed: the Dec 3 SAPIEN-USD sell was recorded
before the Dec 3 buy it consumed, and the seed's inline FIFO matched it to the
Sept 10 lot that the Sept 11 sell had already used up."""

from decimal import Decimal

from fifo_db.sample import SAPIEN_DEC3_BUY, SAPIEN_SELL, SAPIEN_SEPT10_BUY, copy_rows, sapien_story
from tests.helpers import allocations, expected, findings, stored, ts

SEPT11_SELL = "7c1e9a52-3f6d-4b80-9e27-a4d5c8f01b63"


def test_story_is_recorded_out_of_order(db):
    copy_rows(db, sapien_story())
    recorded = [r[0] for r in db.execute("SELECT order_id FROM trade_records ORDER BY id")]
    assert recorded.index(SAPIEN_SELL) < recorded.index(SAPIEN_DEC3_BUY)


def test_out_of_order_sell_is_matched_to_the_dec3_buy(db):
    copy_rows(db, sapien_story())
    db.execute("SELECT compute_fifo('SAPIEN-USD')")

    rows = {r["sell_trade_id"]: r for r in allocations(db, "SAPIEN-USD")}
    assert len(allocations(db, "SAPIEN-USD")) == 2

    dec3 = rows[SAPIEN_SELL]
    assert dec3["buy_trade_id"] == SAPIEN_DEC3_BUY
    assert dec3["allocated_size"] == Decimal("188.9")
    assert (dec3["buy_time"], dec3["sell_time"]) == (ts("2025-12-03 23:11"), ts("2025-12-03 23:40"))
    # cost     = 188.9 * 0.17477 + 0.04126 = 33.014053 + 0.04126 = 33.055313
    # proceeds = 188.9 * 0.17357 - 0.04099 = 32.787373 - 0.04099 = 32.746383
    # pnl      = 32.746383 - 33.055313 = -0.30893 = 188.9*(0.17357-0.17477) - 0.04099 - 0.04126
    assert dec3["buy_fees"] == Decimal("0.04126")
    assert dec3["sell_fees"] == Decimal("0.04099")
    assert dec3["cost_basis"] == Decimal("33.055313")
    assert dec3["sale_proceeds"] == Decimal("32.746383")
    assert dec3["pnl_amount"] == Decimal("-0.30893")
    assert dec3["unmatched"] is False

    # the Sept 10 lot went to the Sept 11 sell only
    sept = rows[SEPT11_SELL]
    assert sept["buy_trade_id"] == SAPIEN_SEPT10_BUY
    # cost     = 188.9 * 0.2349 + 0.05546 = 44.37261 + 0.05546 = 44.42807
    # proceeds = 188.9 * 0.2401 - 0.05669 = 45.35489 - 0.05669 = 45.2982
    # pnl      = 45.2982 - 44.42807 = 0.87013
    assert (sept["cost_basis"], sept["sale_proceeds"], sept["pnl_amount"]) == (
        Decimal("44.42807"), Decimal("45.2982"), Decimal("0.87013"))
    lots_of_sept10 = db.execute(
        "SELECT sell_trade_id FROM fifo_allocations WHERE buy_trade_id = %s", (SAPIEN_SEPT10_BUY,)).fetchall()
    assert lots_of_sept10 == [(SEPT11_SELL,)]


def test_run_row_and_total_pnl(db):
    copy_rows(db, sapien_story())
    run = db.execute("SELECT version, mode, symbols, pools, buys, sells, allocations, unmatched, total_pnl, "
                     "status FROM compute_fifo('SAPIEN-USD')").fetchone()
    # total = 0.87013 + (-0.30893) = 0.5612
    assert run == (1, "symbol", ["SAPIEN-USD"], 1, 2, 2, 2, 0, Decimal("0.5612"), "ok")
    assert db.execute("SELECT count(*) FROM fifo_runs").fetchone()[0] == 1


def test_story_agrees_with_reference_and_invariants(db):
    copy_rows(db, sapien_story())
    db.execute("SELECT compute_fifo('SAPIEN-USD')")
    assert stored(db) == expected(db)
    assert findings(db) == []


def test_recompute_after_the_late_buy_fixes_the_match(db):
    """Computed while the Dec 3 buy is missing, the Dec 3 sell is unmatched (never charged to
    the consumed Sept 10 lot); once the buy arrives, a recompute matches it to the Dec 3 buy."""
    story = sapien_story()
    copy_rows(db, story[:3])
    db.execute("SELECT compute_fifo('SAPIEN-USD')")
    early = {r["sell_trade_id"]: r for r in allocations(db, "SAPIEN-USD")}
    assert early[SAPIEN_SELL]["buy_trade_id"] is None
    assert early[SAPIEN_SELL]["pnl_amount"] is None
    assert early[SAPIEN_SELL]["unmatched"] is True

    copy_rows(db, story[3:])
    db.execute("SELECT compute_fifo('SAPIEN-USD')")
    late = {r["sell_trade_id"]: r for r in allocations(db, "SAPIEN-USD")}
    assert late[SAPIEN_SELL]["buy_trade_id"] == SAPIEN_DEC3_BUY
    assert late[SAPIEN_SELL]["pnl_amount"] == Decimal("-0.30893")
