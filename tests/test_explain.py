"""explain_fifo() and `fifo-db explain` on the hand-worked trades of tests/data/views_trades.csv."""

from __future__ import annotations

from decimal import Decimal as D

import psycopg
import pytest
from psycopg.rows import dict_row

from fifo_db.cli import main
from fifo_db.sample import SAPIEN_DEC3_BUY, SAPIEN_SELL, copy_rows, sapien_story




def explain(conn, order_id):
    with conn.cursor(row_factory=dict_row) as cur:
        return cur.execute("SELECT * FROM explain_fifo(%s)", (order_id,)).fetchall()


def test_sell_lists_lots_and_unmatched_part_with_reason(worked):
    rows = explain(worked, "s2")
    assert [(r["step"], r["kind"], r["order_id"], r["quantity"]) for r in rows] == [
        (0, "sell", "s2", D(8)), (1, "lot", "b2", D(5)), (2, "unmatched", None, D(3)), (3, "total", None, D(8))]
    lot = rows[1]
    # b2's second half: buy fee 0.50 - 0.25, sell fee 0.08*5/8; cost 15.25, proceeds 4.95
    assert (lot["price"], lot["buy_fees"], lot["sell_fees"], lot["cost_basis"], lot["proceeds"], lot["pnl_amount"]) \
        == (D("3.00"), D("0.25"), D("0.05"), D("15.25"), D("4.95"), D("-10.30"))
    assert lot["note"] == "lot of 10 bought 2025-03-01 10:00; 5 of it taken by earlier sells, 5 here"
    assert rows[2]["note"] == ("inventory at 2026-03-02 10:00 was 5: the sell was 3 larger than what was left; "
                               "next buy b3 at 2026-03-03 10:00")
    assert (rows[2]["sell_fees"], rows[2]["proceeds"], rows[2]["pnl_amount"]) == (D("0.03"), D("2.97"), None)
    total = rows[3]
    # proceeds of the whole sell: 4.95 + 2.97; fees 0.05 + 0.03 = the sell's fee
    assert (total["sell_fees"], total["proceeds"], total["pnl_amount"]) == (D("0.08"), D("7.92"), D("-10.30"))
    assert total["note"] == "5 of 8 matched to 1 lot(s), 3 unmatched"


def test_fully_unmatched_sell(worked):
    rows = explain(worked, "e1")
    assert [r["kind"] for r in rows] == ["sell", "unmatched", "total"]
    assert rows[1]["note"] == "inventory at 2025-03-11 01:00 was 0: all earlier buys consumed by earlier sells"


def test_buy_lists_consuming_sells_and_open_rest(worked):
    rows = explain(worked, "b3")
    assert [(r["kind"], r["order_id"], r["quantity"]) for r in rows] == [
        ("buy", "b3", D(4)), ("consumed by", "s3", D(1)), ("open", None, D(3)), ("total", None, D(4))]
    # open rest: 3 * 5 + (0.40 - 0.10)
    assert (rows[2]["buy_fees"], rows[2]["cost_basis"]) == (D("0.3"), D("15.30"))
    assert rows[3]["note"] == "1 sold by 1 sell(s), 3 open; realized P&L on this lot 0.87"
    b2 = explain(worked, "b2")
    assert [(r["kind"], r["order_id"], r["quantity"], r["pnl_amount"]) for r in b2] == [
        ("buy", "b2", D(10), None), ("consumed by", "s1", D(5), D("4.55")),
        ("consumed by", "s2", D(5), D("-10.30")), ("total", None, D(10), D("-5.75"))]


def test_seed_sell_is_matched_to_the_dec3_lot(db):
    copy_rows(db, sapien_story())
    db.execute("SELECT compute_fifo('SAPIEN-USD')")
    rows = explain(db, SAPIEN_SELL)
    assert [(r["kind"], r["order_id"]) for r in rows][1] == ("lot", SAPIEN_DEC3_BUY)
    assert rows[-1]["pnl_amount"] == D("-0.308930")


def test_unknown_order_id_and_uncomputed_pool(worked):
    with pytest.raises(psycopg.errors.NoDataFound) as info:
        explain(worked, "nope")
    assert info.value.diag.message_primary == 'no trade with order_id "nope"'
    assert info.value.diag.message_hint
    worked.execute("INSERT INTO trade_records (order_id, symbol, side, size, price, order_time) "
                   "VALUES ('z1', 'ZZZ-USD', 'buy', 1, 1, '2025-01-01Z')")
    with pytest.raises(psycopg.errors.ObjectNotInPrerequisiteState) as info:
        explain(worked, "z1")
    assert "compute_fifo('ZZZ-USD')" in info.value.diag.message_hint


def test_cli_explain(worked, dsn, capsys):
    assert main(["--dsn", dsn, "explain", "s1"]) == 0
    out = capsys.readouterr().out
    assert "  1  lot          lot of 10 bought 2025-01-01 10:00; 0 of it taken by earlier sells, 10 here" in out
    assert "15 of 15 matched to 2 lot(s), 0 unmatched" in out
    assert main(["--dsn", dsn, "explain", "nope"]) == 1
    err = capsys.readouterr().err
    assert err.startswith('fifo-db: error: no trade with order_id "nope" (hint: ') and "[SQLSTATE P0002]" in err
