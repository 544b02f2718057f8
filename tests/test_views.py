"""Every report view against numbers worked out by hand (tests/data/views_trades.csv).

The trades (all UTC):
  pool default/AAA-USD
    b1 buy  10 @ 2.00 fee 1.00  2025-01-01 10:00
    b2 buy  10 @ 3.00 fee 0.50  2025-03-01 10:00
    s1 sell 15 @ 4.00 fee 0.60  2025-03-10 10:00   takes b1 10 and b2 5
    s2 sell  8 @ 1.00 fee 0.08  2026-03-02 10:00   takes b2 5, 3 unmatched
    b3 buy   4 @ 5.00 fee 0.40  2026-03-03 10:00
    s3 sell  1 @ 6.00 fee 0.03  2026-03-04 10:00   takes b3 1
  pool acct2/AAA-USD
    f1 buy   1 @ 7.00 fee 0.07  2025-02-01 10:00   never sold
  pool default/BBB-USD
    c1 buy   2 @ 100  fee 0.30  2025-03-10 23:30
    d1 sell  2 @ 90   fee 0.20  2025-03-10 23:50   takes c1 2
    e1 sell  1 @ 50   fee 0     2025-03-11 01:00   no inventory: unmatched
"""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal as D

import pytest
from psycopg.rows import dict_row

from tests.helpers import ts




def rows(conn, query, params=()):
    with conn.cursor(row_factory=dict_row) as cur:
        return cur.execute(query, params).fetchall()


def by(rows_, key):
    return {r[key]: r for r in rows_}


def test_trade_pnl_per_sell(worked):
    t = by(rows(worked, "SELECT * FROM fifo_trade_pnl"), "order_id")
    assert set(t) == {"s1", "s2", "s3", "d1", "e1"}
    s1 = t["s1"]
    # s1/b1: q 10, buy fee 1.00 (all of b1), sell fee 0.60*10/15 = 0.40
    #        cost 10*2 + 1 = 21, proceeds 10*4 - 0.40 = 39.60
    # s1/b2: q 5, buy fee 0.50*5/10 = 0.25, sell fee 0.60 - 0.40 = 0.20
    #        cost 5*3 + 0.25 = 15.25, proceeds 5*4 - 0.20 = 19.80
    assert (s1["matched_size"], s1["unmatched_size"], s1["lots"]) == (D(15), D(0), 2)
    assert s1["cost_basis"] == D("36.25")          # 21 + 15.25
    assert s1["sale_proceeds"] == D("59.40")       # 39.60 + 19.80
    assert (s1["buy_fees"], s1["sell_fees"]) == (D("1.25"), D("0.60"))
    assert s1["pnl_amount"] == D("23.15")          # 59.40 - 36.25
    assert s1["shortest_holding"] == timedelta(days=9)    # 03-10 - 03-01 (b2)
    assert s1["longest_holding"] == timedelta(days=68)    # 03-10 - 01-01 (b1): 30 + 28 + 10
    assert s1["status"] == "matched"
    s2 = t["s2"]
    # s2/b2: q 5, buy fee 0.50 - 0.25 = 0.25, sell fee 0.08*5/8 = 0.05
    #        cost 15 + 0.25 = 15.25, proceeds 5 - 0.05 = 4.95, P&L -10.30
    # unmatched 3: sell fee 0.03, proceeds 3 - 0.03 = 2.97
    assert (s2["matched_size"], s2["unmatched_size"]) == (D(5), D(3))
    assert (s2["cost_basis"], s2["sale_proceeds"], s2["pnl_amount"]) == (D("15.25"), D("4.95"), D("-10.30"))
    assert (s2["sell_fees"], s2["unmatched_proceeds"]) == (D("0.05"), D("2.97"))
    assert s2["status"] == "partly unmatched"
    # s3/b3: q 1, buy fee 0.40/4 = 0.10, cost 5.10, proceeds 6 - 0.03 = 5.97, P&L 0.87
    assert (t["s3"]["cost_basis"], t["s3"]["sale_proceeds"], t["s3"]["pnl_amount"]) == (D("5.10"), D("5.97"), D("0.87"))
    # d1/c1: cost 200 + 0.30, proceeds 180 - 0.20, P&L 179.80 - 200.30 = -20.50
    assert t["d1"]["pnl_amount"] == D("-20.50")
    e1 = t["e1"]
    assert (e1["matched_size"], e1["unmatched_size"], e1["pnl_amount"], e1["cost_basis"]) == (D(0), D(1), None, None)
    assert (e1["unmatched_proceeds"], e1["status"]) == (D(50), "unmatched")


def test_trade_pnl_filters_and_not_computed(worked):
    assert [r["order_id"] for r in rows(worked, "SELECT * FROM fifo_trade_pnl('BBB-USD') ORDER BY order_time")] \
        == ["d1", "e1"]
    # [from, to): s1 at the lower bound is in, e1 at the upper bound is out
    assert sorted(r["order_id"] for r in rows(worked, "SELECT * FROM fifo_trade_pnl(NULL, %s, %s)",
                                              (ts("2025-03-10 10:00"), ts("2025-03-11 01:00")))) == ["d1", "s1"]
    worked.execute("INSERT INTO trade_records (order_id, symbol, side, size, price, order_time) "
                   "VALUES ('late', 'BBB-USD', 'sell', 1, 1, '2025-04-01Z')")
    late = rows(worked, "SELECT * FROM fifo_trade_pnl WHERE order_id = 'late'")[0]
    assert (late["status"], late["matched_size"], late["pnl_amount"]) == ("not computed", None, None)
    assert rows(worked, "SELECT not_computed FROM fifo_pnl_by_symbol WHERE symbol = 'BBB-USD'")[0]["not_computed"] == 1


def test_pnl_by_symbol(worked):
    s = by(rows(worked, "SELECT * FROM fifo_pnl_by_symbol"), "symbol")
    aaa = s["AAA-USD"]
    assert (aaa["currency"], aaa["sells"], aaa["trades"], aaa["wins"], aaa["losses"]) == ("USD", 3, 3, 2, 1)
    assert aaa["win_rate"] == D("0.66666666666666666667")          # 2/3 at numeric's division scale
    assert aaa["sell_volume"] == D("74")                            # 15*4 + 8*1 + 1*6
    assert aaa["buy_volume"] == D("77")                             # 10*2 + 10*3 + 4*5 + 1*7 (f1, acct2)
    assert aaa["realized_fees"] == D("2.28")                        # buy 1.25+0.25+0.10, sell 0.60+0.05+0.03
    # every fee paid: buys b1 1.00 + b2 0.50 + b3 0.40 + f1 0.07, sells 0.60 + 0.08 + 0.03
    assert (aaa["fees_paid"], aaa["buys"]) == (D("2.68"), 4)
    assert (aaa["unmatched_size"], aaa["pnl_amount"]) == (D(3), D("13.72"))   # 23.15 - 10.30 + 0.87
    bbb = s["BBB-USD"]
    assert (bbb["sells"], bbb["trades"], bbb["wins"], bbb["losses"], bbb["win_rate"]) == (2, 1, 0, 1, D(0))
    assert (bbb["sell_volume"], bbb["realized_fees"], bbb["fees_paid"], bbb["unmatched_size"], bbb["pnl_amount"]) == \
        (D(230), D("0.50"), D("0.50"), D(1), D("-20.50"))           # 180 + 50; 0.30 + 0.20; c1 0.30 + d1 0.20
    [total] = rows(worked, "SELECT * FROM fifo_pnl_summary()")
    assert (total["currency"], total["sells"], total["trades"], total["wins"], total["losses"], total["win_rate"]) \
        == ("USD", 5, 4, 2, 2, D("0.5"))
    assert (total["sell_volume"], total["realized_fees"], total["fees_paid"], total["pnl_amount"]) == \
        (D(304), D("2.78"), D("3.18"), D("-6.78"))


def test_pnl_by_day_utc_and_report_timezone(worked):
    d = rows(worked, "SELECT day, sells, trades, win_rate, fees_paid, pnl_amount, cumulative_pnl "
                     "FROM fifo_pnl_by_day ORDER BY day")
    assert [(r["day"], r["sells"], r["pnl_amount"], r["cumulative_pnl"]) for r in d if r["sells"]] == [
        (date(2025, 3, 10), 2, D("2.65"), D("2.65")),      # s1 23.15 + d1 -20.50
        (date(2025, 3, 11), 1, D("0"), D("2.65")),         # e1: unmatched, no P&L
        (date(2026, 3, 2), 1, D("-10.30"), D("-7.65")),
        (date(2026, 3, 4), 1, D("0.87"), D("-6.78")),
    ]
    # days with buys only carry the fees paid on them: b1 01-01, f1 02-01, b2 03-01, b3 2026-03-03
    assert [(r["day"], r["fees_paid"]) for r in d if not r["sells"]] == [
        (date(2025, 1, 1), D("1.00")), (date(2025, 2, 1), D("0.07")), (date(2025, 3, 1), D("0.50")),
        (date(2026, 3, 3), D("0.40"))]
    e1 = next(r for r in d if r["day"] == date(2025, 3, 11))
    assert e1["win_rate"] is None and e1["trades"] == 0
    # 03-10: s1 0.60 + c1 0.30 + d1 0.20
    assert next(r for r in d if r["day"] == date(2025, 3, 10))["fees_paid"] == D("1.10")
    # Tokyo is UTC+9: s1 (10:00Z) is 19:00 on 03-10; d1 (23:50Z) and e1 (01:00Z) fall on 03-11
    worked.execute("SELECT fifo_set_setting('report_timezone', 'Asia/Tokyo')")
    d = rows(worked, "SELECT day, sells, pnl_amount FROM fifo_pnl_by_day(NULL, NULL, %s) ORDER BY day",
             (ts("2026-01-01 00:00"),))
    assert [(r["day"], r["sells"], r["pnl_amount"]) for r in d if r["sells"]] == [
        (date(2025, 3, 10), 1, D("23.15")), (date(2025, 3, 11), 2, D("-20.50"))]


def test_pnl_by_month_and_year(worked):
    m = rows(worked, "SELECT month, sells, pnl_amount, fees_paid, cumulative_pnl FROM fifo_pnl_by_month ORDER BY month")
    assert [(r["month"], r["sells"], r["pnl_amount"], r["cumulative_pnl"]) for r in m] == [
        (date(2025, 1, 1), 0, D(0), D(0)), (date(2025, 2, 1), 0, D(0), D(0)),
        (date(2025, 3, 1), 3, D("2.65"), D("2.65")),       # s1, d1, e1
        (date(2026, 3, 1), 2, D("-9.43"), D("-6.78"))]     # s2 -10.30 + s3 0.87
    y = by(rows(worked, "SELECT * FROM fifo_pnl_by_year"), "year")
    # 2025 fees: b1 1.00, f1 0.07, b2 0.50, s1 0.60, c1 0.30, d1 0.20; 2026: s2 0.08, b3 0.40, s3 0.03
    assert (y[2025]["pnl_amount"], y[2025]["fees_paid"], y[2025]["trades"]) == (D("2.65"), D("2.67"), 2)
    assert (y[2026]["pnl_amount"], y[2026]["fees_paid"], y[2026]["trades"]) == (D("-9.43"), D("0.51"), 2)


def test_open_lots_remaining_derived_from_allocations(worked):
    lots = by(rows(worked, "SELECT * FROM fifo_open_lots"), "order_id")
    assert set(lots) == {"b3", "f1"}
    b3 = lots["b3"]
    # 4 - 1 consumed by s3; fee left 0.40 - fee_point(0.40, 4, 1) = 0.40 - 0.10; cost 3*5 + 0.30
    assert (b3["consumed_size"], b3["remaining_size"], b3["remaining_fees"], b3["remaining_cost"]) == \
        (D(1), D(3), D("0.3"), D("15.30"))
    # bought 2026-03-03: still short-term when sold on the anniversary 2027-03-03, long-term after it
    assert (b3["date_acquired"], b3["long_term_after"], b3["computed"]) == (date(2026, 3, 3), date(2027, 3, 3), True)
    assert b3["currency"] == "USD"
    f1 = lots["f1"]
    assert (f1["account"], f1["remaining_size"], f1["remaining_fees"], f1["remaining_cost"]) == \
        ("acct2", D(1), D("0.07"), D("7.07"))
    # as of 2025-03-10 10:00 (exclusive): s1 has not happened, b1 and b2 are whole
    asof = by(rows(worked, "SELECT * FROM fifo_open_lots(NULL, NULL, %s)", (ts("2025-03-10 10:00"),)), "order_id")
    assert set(asof) == {"b1", "b2", "f1"}
    assert (asof["b2"]["remaining_size"], asof["b2"]["remaining_cost"]) == (D(10), D("30.50"))
    # as of 2025-06-01: b1 gone, b2 has 5 left with 0.50 - 0.25 of its fee
    mid = by(rows(worked, "SELECT * FROM fifo_open_lots('AAA-USD', NULL, %s)", (ts("2025-06-01 00:00"),)), "order_id")
    assert (mid["b2"]["remaining_size"], mid["b2"]["remaining_fees"], mid["b2"]["remaining_cost"]) == \
        (D(5), D("0.25"), D("15.25"))


def test_positions(worked):
    p = {(r["account"], r["symbol"]): r for r in rows(worked, "SELECT * FROM fifo_positions")}
    assert set(p) == {("default", "AAA-USD"), ("acct2", "AAA-USD")}
    mine = p[("default", "AAA-USD")]
    assert (mine["lots"], mine["open_quantity"], mine["open_cost"], mine["average_cost"]) == \
        (1, D(3), D("15.30"), D("5.1"))                              # 15.30 / 3
    # as of 2025-06-01: b2 5 left (15.25) + f1 in its own pool
    asof = {(r["account"], r["symbol"]): r for r in rows(worked, "SELECT * FROM fifo_positions(NULL, %s)",
                                                           (ts("2025-06-01 00:00"),))}
    assert (asof[("default", "AAA-USD")]["open_quantity"], asof[("default", "AAA-USD")]["average_cost"]) == \
        (D(5), D("3.05"))                                           # 15.25 / 5
    assert asof[("acct2", "AAA-USD")]["average_cost"] == D("7.07")


def test_unmatched_sells_with_reasons(worked):
    u = by(rows(worked, "SELECT * FROM fifo_unmatched_sells"), "order_id")
    assert set(u) == {"s2", "e1"}
    assert (u["s2"]["matched_size"], u["s2"]["unmatched_size"], u["s2"]["unmatched_proceeds"], u["s2"]["unmatched_fees"]) \
        == (D(5), D(3), D("2.97"), D("0.03"))
    assert u["s2"]["reason"] == ("inventory at 2026-03-02 10:00 was 5: the sell was 3 larger than what was left; "
                                 "next buy b3 at 2026-03-03 10:00")
    assert u["e1"]["reason"] == "inventory at 2025-03-11 01:00 was 0: all earlier buys consumed by earlier sells"
    assert [r["order_id"] for r in rows(worked, "SELECT * FROM fifo_unmatched_sells('AAA-USD')")] == ["s2"]


def test_tax_lots_form_8949(worked):
    t = rows(worked, "SELECT * FROM fifo_tax_lots ORDER BY sell_time, buy_time NULLS LAST")
    got = [(r["description"], r["date_acquired"], r["date_sold"], r["proceeds"], r["cost_basis"],
            r["gain_or_loss"], r["term"], r["unmatched"]) for r in t]
    assert got == [
        ("10 AAA", date(2025, 1, 1), date(2025, 3, 10), D("39.60"), D("21.00"), D("18.60"), "short", False),
        ("5 AAA", date(2025, 3, 1), date(2025, 3, 10), D("19.80"), D("15.25"), D("4.55"), "short", False),
        ("2 BBB", date(2025, 3, 10), date(2025, 3, 10), D("179.80"), D("200.30"), D("-20.50"), "short", False),
        # e1 found no inventory: proceeds 50, no basis, no term
        ("1 BBB", None, date(2025, 3, 11), D("50"), None, None, None, True),
        # bought 2025-03-01, anniversary 2026-03-01, sold 2026-03-02: long
        ("5 AAA", date(2025, 3, 1), date(2026, 3, 2), D("4.95"), D("15.25"), D("-10.30"), "long", False),
        ("3 AAA", None, date(2026, 3, 2), D("2.97"), None, None, None, True),
        ("1 AAA", date(2026, 3, 3), date(2026, 3, 4), D("5.97"), D("5.10"), D("0.87"), "short", False),
    ]
    assert {(r["currency"], r["in_report_currency"]) for r in t} == {("USD", True)}
    assert t[4]["holding_period"] == timedelta(days=366) and t[4]["long_term_after"] == date(2026, 3, 1)
    # the 'days' rule: long only when the sell date is MORE than long_term_days after the acquisition date
    worked.execute("SELECT fifo_set_setting('long_term_rule', 'days')")
    worked.execute("SELECT fifo_set_setting('long_term_days', '366')")
    assert rows(worked, "SELECT term FROM fifo_tax_lots WHERE sell_trade_id = 's2' AND NOT unmatched")[0]["term"] \
        == "short"                                             # 2026-03-02 - 2025-03-01 = 366 days, not more
    worked.execute("SELECT fifo_set_setting('long_term_days', '365')")
    assert rows(worked, "SELECT term FROM fifo_tax_lots WHERE sell_trade_id = 's2' AND NOT unmatched")[0]["term"] \
        == "long"
    assert len(rows(worked, "SELECT * FROM fifo_tax_lots(NULL, %s, %s)",
                    (ts("2026-01-01 00:00"), ts("2027-01-01 00:00")))) == 3


def test_views_read_the_current_version(worked):
    worked.execute("SELECT compute_fifo_all(true, 2)")
    worked.execute("DELETE FROM fifo.allocations WHERE version = 2 AND sell_trade_id = 's1'")
    assert rows(worked, "SELECT pnl_amount FROM fifo_pnl_summary()")[0]["pnl_amount"] == D("-6.78")
    worked.execute("SELECT fifo_set_setting('current_version', '2')")
    assert rows(worked, "SELECT pnl_amount FROM fifo_pnl_summary()")[0]["pnl_amount"] == D("-29.93")  # -6.78 - 23.15


def test_views_are_commented(worked):
    names = ["fifo_trade_pnl", "fifo_pnl_by_symbol", "fifo_pnl_by_day", "fifo_pnl_by_month", "fifo_pnl_by_year",
             "fifo_open_lots", "fifo_positions", "fifo_unmatched_sells", "fifo_tax_lots"]
    got = rows(worked, "SELECT c.relname, obj_description(c.oid, 'pg_class') AS comment FROM pg_class c "
                       "WHERE c.relname = ANY(%s) AND c.relkind = 'v' AND c.relnamespace = 'public'::regnamespace",
               (names,))
    assert sorted(r["relname"] for r in got) == sorted(names)
    assert all(r["comment"] for r in got)


def test_seed_spot_check_query_runs_as_written(db):
    # the seed's "Spot Check Recent Trades" query, minus the dropped tr.pnl_usd column
    db.execute("INSERT INTO trade_records (order_id, symbol, side, size, price, total_fees, order_time) VALUES "
               "('spot-b', 'SAPIEN-USD', 'buy', 188.9, 0.17477, 0.04126, now() - interval '2 hours'), "
               "('spot-s', 'SAPIEN-USD', 'sell', 188.9, 0.17357, 0.04099, now() - interval '1 hour')")
    db.execute("SELECT compute_fifo('SAPIEN-USD')")
    got = db.execute("""
        SELECT
            tr.symbol,
            tr.order_id,
            tr.side,
            tr.order_time,
            fa.pnl_amount as fifo_pnl  -- Should have value
        FROM trade_records tr
        LEFT JOIN fifo_allocations fa ON tr.order_id = fa.sell_trade_id
        WHERE tr.side = 'sell'
          AND tr.order_time >= NOW() - INTERVAL '24 hours'
        ORDER BY tr.order_time DESC
        LIMIT 20""").fetchall()
    # 188.9 * 0.17357 - 0.04099 - (188.9 * 0.17477 + 0.04126) = 32.746383 - 33.055313
    assert [(r[1], r[4]) for r in got] == [("spot-s", D("-0.308930"))]


def test_report_time_parses_in_report_timezone(db):
    db.execute("SELECT fifo_set_setting('report_timezone', 'America/New_York')")
    assert db.execute("SELECT fifo_report_time('2025-12-01')").fetchone()[0] == ts("2025-12-01 05:00")
    assert db.execute("SELECT fifo_report_time('2025-12-01T00:00:00Z')").fetchone()[0] == ts("2025-12-01 00:00")
    import psycopg
    with pytest.raises(psycopg.errors.InvalidDatetimeFormat) as info:
        db.execute("SELECT fifo_report_time('yesterdayish')")
    assert info.value.diag.message_hint
