"""Tax rules a filer relies on, worked by hand: the calendar long-term rule (anniversary, leap
year, the day after, the report time zone), quote currencies that are not the report currency,
oversold proceeds in the Form 8949 CSV, one rounding for table and CSV, boxes and parts."""

from __future__ import annotations

import csv
import io
from datetime import date
from decimal import Decimal as D

import pytest

from fifo_db.cli import main
from tests.helpers import add_trades


def report(dsn, capsys, *args):
    rc = main(["--dsn", dsn, "report", *args])
    out = capsys.readouterr()
    return rc, out.out, out.err


def lot_pair(tag, bought, sold, symbol="A-USD", size=1, buy=10, sell=11):
    return [{"order_id": f"{tag}-b", "symbol": symbol, "side": "buy", "size": size, "price": buy, "order_time": bought},
            {"order_id": f"{tag}-s", "symbol": symbol, "side": "sell", "size": size, "price": sell, "order_time": sold}]


def terms(db):
    return dict(db.execute("SELECT sell_trade_id, term FROM fifo_tax_lots WHERE NOT unmatched").fetchall())


def test_anniversary_rule_day_after_and_leap_year(db):
    # one pool per case so no sell takes another case's lot
    cases = {
        "on-anniversary": ("2023-01-05 10:00", "2024-01-05 10:00", "short"),  # sold on the anniversary
        "day-after": ("2023-01-05 10:00", "2024-01-06 00:01", "long"),        # sold the day after it
        "365-days": ("2024-01-05 10:00", "2025-01-04 10:00", "short"),        # 365 days (2024 is leap), before it
        "leap-feb28": ("2024-02-29 10:00", "2025-02-28 10:00", "short"),      # Feb 29 + 1 year = Feb 28
        "leap-mar1": ("2024-02-29 10:00", "2025-03-01 10:00", "long"),
        "next-day": ("2023-06-01 23:59", "2024-06-02 00:00", "long"),         # one minute into the day after
    }
    for i, (tag, (bought, sold, _)) in enumerate(cases.items()):
        add_trades(db, lot_pair(tag, bought, sold, symbol=f"L{i}-USD"))
    db.execute("SELECT compute_fifo_all(true)")
    assert terms(db) == {f"{tag}-s": want for tag, (_, _, want) in cases.items()}
    after = dict(db.execute("SELECT sell_trade_id, long_term_after FROM fifo_tax_lots").fetchall())
    assert after["leap-feb28-s"] == date(2025, 2, 28) and after["on-anniversary-s"] == date(2024, 1, 5)
    # the open-lots report gives the same date for a lot still held
    add_trades(db, [{"order_id": "held", "symbol": "H-USD", "side": "buy", "size": 1, "price": 1,
                     "order_time": "2024-02-29 12:00"}])
    db.execute("SELECT compute_fifo('H-USD')")
    assert db.execute("SELECT long_term_after FROM fifo_open_lots WHERE order_id = 'held'").fetchone()[0] \
        == date(2025, 2, 28)


def test_dates_are_taken_in_the_report_time_zone(db):
    # bought 2023-01-06 03:00Z (New York: 2023-01-05 22:00), sold 2024-01-06 12:00Z (New York: 07:00 the same day)
    add_trades(db, lot_pair("tz", "2023-01-06 03:00", "2024-01-06 12:00"))
    db.execute("SELECT compute_fifo('A-USD')")
    assert terms(db) == {"tz-s": "short"}                 # UTC: acquired 01-06, sold on the anniversary
    db.execute("SELECT fifo_set_setting('report_timezone', 'America/New_York')")
    assert terms(db) == {"tz-s": "long"}                  # New York: acquired 01-05, sold the day after
    assert db.execute("SELECT date_acquired, date_sold FROM fifo_tax_lots").fetchone() == \
        (date(2023, 1, 5), date(2024, 1, 6))


def test_days_rule_and_setting_validation(db):
    add_trades(db, lot_pair("d", "2024-01-05 10:00", "2025-01-04 10:00"))     # dates 365 days apart
    db.execute("SELECT compute_fifo('A-USD')")
    db.execute("SELECT fifo_set_setting('long_term_rule', 'days')")
    db.execute("SELECT fifo_set_setting('long_term_days', '364')")
    assert terms(db) == {"d-s": "long"}
    db.execute("SELECT fifo_set_setting('long_term_days', '365')")
    assert terms(db) == {"d-s": "short"}
    import psycopg
    for name, value in (("long_term_rule", "months"), ("report_currency", "US D"),
                        ("report_currency_aliases", "USDC, USDT"), ("report_currency_aliases", "USDC,")):
        with pytest.raises(psycopg.errors.InvalidParameterValue) as info:
            db.execute("SELECT fifo_set_setting(%s, %s)", (name, value))
        assert info.value.diag.message_hint
    db.execute("SELECT fifo_set_setting('report_currency_aliases', 'USDC,USDT')")
    db.execute("SELECT fifo_set_setting('report_currency_aliases', '')")


@pytest.fixture
def mixed(db):
    """BTC-USD in dollars, ETH-BTC in bitcoin, ETH-USDC in a stablecoin.

    BTC-USD: buy 1 @ 20,000 fee 10, sell 1 @ 30,000 fee 15: proceeds 29,985, cost 20,010, P&L 9,975
    ETH-BTC: buy 1 @ 0.05 fee 0, sell 0.8 @ 0.09 fee 0.0002: proceeds 0.0718, cost 0.04, P&L 0.0318 (BTC)
    ETH-USDC: buy 2 @ 1,000, sell 2 @ 1,100: P&L 200 (USDC)
    """
    add_trades(db, [
        {"order_id": "u-b", "symbol": "BTC-USD", "side": "buy", "size": 1, "price": 20000, "total_fees": 10,
         "order_time": "2025-02-01"},
        {"order_id": "u-s", "symbol": "BTC-USD", "side": "sell", "size": 1, "price": 30000, "total_fees": 15,
         "order_time": "2025-03-01"},
        {"order_id": "x-b", "symbol": "ETH-BTC", "side": "buy", "size": 1, "price": "0.05",
         "order_time": "2025-02-02"},
        {"order_id": "x-s", "symbol": "ETH-BTC", "side": "sell", "size": "0.8", "price": "0.09",
         "total_fees": "0.0002", "order_time": "2025-03-02"},
        {"order_id": "c-b", "symbol": "ETH-USDC", "side": "buy", "size": 2, "price": 1000, "order_time": "2025-02-03"},
        {"order_id": "c-s", "symbol": "ETH-USDC", "side": "sell", "size": 2, "price": 1100, "order_time": "2025-03-03"},
    ])
    db.execute("SELECT compute_fifo_all(true)")
    return db


def test_other_quote_currencies_never_add_into_dollar_totals(mixed, dsn, capsys, tmp_path):
    totals = {r[0]: (r[1], r[2]) for r in mixed.execute("SELECT currency, pnl_amount, fees_paid FROM fifo_pnl_summary()")}
    assert totals == {"USD": (D("9975"), D("25")), "BTC": (D("0.0318"), D("0.0002")), "USDC": (D("200"), D(0))}
    rc, out, err = report(dsn, capsys, "pnl")
    total_lines = [line.split() for line in out.splitlines() if line.startswith("TOTAL")]
    assert [(t[1], t[-1]) for t in total_lines] == [("BTC", "0.0318"), ("USD", "9,975.00"), ("USDC", "200.00")]
    # the chart: one panel per currency, each total in its own currency
    import xml.etree.ElementTree as ET
    rc, _, _ = report(dsn, capsys, "--chart", str(tmp_path / "c.svg"), "--html", str(tmp_path / "r.html"))
    assert rc == 0
    svg = [t.text for t in ET.parse(tmp_path / "c.svg").getroot().iter("{http://www.w3.org/2000/svg}text")]
    assert [t for t in svg if t.startswith("Cumulative realized P&L in")] == [
        "Cumulative realized P&L in BTC", "Cumulative realized P&L in USD", "Cumulative realized P&L in USDC"]
    assert "total USD 9,975.00" in svg and "total BTC 0.0318" in svg and "P&L (BTC)" in svg
    html = (tmp_path / "r.html").read_text()
    assert "Realized P&amp;L (USD)</div><div class=\"v pos\">9,975.00" in html
    assert "Realized P&amp;L (BTC)</div><div class=\"v pos\">0.0318<" in html


def test_tax_export_keeps_report_currency_rows_and_names_the_rest(mixed, dsn, capsys):
    rc, out, err = report(dsn, capsys, "tax", "--year", "2025")
    assert rc == 0
    rows = list(csv.DictReader(io.StringIO(out)))
    assert [(r["Description of property"], r["Proceeds"], r["Cost or other basis"], r["Gain or (loss)"],
             r["Currency"]) for r in rows] == [("1 BTC", "29985.00", "20010.00", "9975.00", "USD")]
    lines = err.splitlines()
    assert lines[0] == "Form 8949 rows: all symbols, sold from 2025-01-01 to before 2026-01-01 (UTC)"
    assert lines[1].startswith("tax (2025; USD; long-term rule anniversary; broker reported none): "
                               "Part I (short-term, box I): 1 row(s), proceeds 29,985.00, cost 20,010.00, "
                               "gain 9,975.00; Part II (long-term, box -): 0 row(s)")
    assert lines[-1].startswith("left out, not in USD (USD): ETH-BTC (1 lot(s) in BTC), ETH-USDC (1 lot(s) in USDC)")
    # USDC counted as dollars once the setting says so; BTC never
    mixed.execute("SELECT fifo_set_setting('report_currency_aliases', 'USDC')")
    rc, out, err = report(dsn, capsys, "tax", "--year", "2025")
    assert [(r["Description of property"], r["Gain or (loss)"], r["Currency"])
            for r in csv.DictReader(io.StringIO(out))] == [("1 BTC", "9975.00", "USD"), ("2 ETH", "200.00", "USDC")]
    assert "left out, not in USD (USD, USDC): ETH-BTC (1 lot(s) in BTC)" in err


def test_oversold_proceeds_are_in_the_8949_flagged(db, dsn, capsys):
    # buy 1 @ 100; sell 1.5 @ 120 fee 0.30: matched 1 (fee 0.20): proceeds 119.80, cost 100, gain 19.80;
    # unmatched 0.5 (fee 0.10): proceeds 59.90, no basis, gain counted as 59.90
    add_trades(db, lot_pair("o", "2025-05-01", "2025-06-01", size=1, buy=100, sell=0)[:1] + [
        {"order_id": "o-s", "symbol": "A-USD", "side": "sell", "size": "1.5", "price": 120, "total_fees": "0.30",
         "order_time": "2025-06-01"}])
    db.execute("SELECT compute_fifo('A-USD')")
    rc, out, err = report(dsn, capsys, "tax")
    rows = list(csv.DictReader(io.StringIO(out)))
    assert [(r["Description of property"], r["Date acquired"], r["Proceeds"], r["Cost or other basis"],
             r["Gain or (loss)"], r["Part"], r["No cost basis (oversold)"]) for r in rows] == [
        ("1 A", "05/01/2025", "119.80", "100.00", "19.80", "I", ""),
        ("0.5 A", "", "59.90", "", "59.90", "I", "yes")]
    assert "Part I (short-term, box I): 2 row(s), proceeds 179.70, cost 100.00, gain 79.70" in err
    assert "1 oversold row(s) with no cost basis are in Part I" in err and "proceeds 59.90" in err


def test_table_and_csv_round_once_the_same_way(db, dsn, capsys):
    # proceeds 3 * 33.335 - 0 = 100.005 -> 100.01; cost 3 * 19.998 = 59.994 -> 59.99
    # gain = 100.01 - 59.99 = 40.02 (the exact gain 40.011 would round to 40.01)
    add_trades(db, lot_pair("r", "2025-01-01", "2025-01-02", size=3, buy="19.998", sell="33.335"))
    db.execute("SELECT compute_fifo('A-USD')")
    assert db.execute("SELECT gain_or_loss FROM fifo_tax_lots").fetchone()[0] == D("40.011")
    rc, out, _ = report(dsn, capsys, "tax")
    [row] = list(csv.DictReader(io.StringIO(out)))
    csv_cents = (row["Proceeds"], row["Cost or other basis"], row["Gain or (loss)"])
    rc, out, _ = report(dsn, capsys, "tax", "--format", "table")
    cells = out.splitlines()[3].split()      # (scope line, header, rule) I I 3 A 2025-01-01 2025-01-02 100.01 59.99 40.02 no USD
    assert csv_cents == ("100.01", "59.99", "40.02") == tuple(cells[6:9])
    rc, out, _ = report(dsn, capsys, "tax", "--format", "json")
    import json
    [j] = json.loads(out)
    assert (j["proceeds"], j["cost_basis"], j["gain_or_loss"]) == csv_cents


def test_boxes_parts_years_and_term_filter(db, dsn, capsys):
    add_trades(db, lot_pair("a", "2023-03-01", "2024-06-01", symbol="P1-USD")       # 2024, long: F
               + lot_pair("b", "2024-05-01", "2024-06-01", symbol="P2-USD")       # 2024, short: C
               + lot_pair("c", "2024-05-01", "2025-06-01", symbol="P3-USD")       # 2025, long: L
               + lot_pair("d", "2025-05-01", "2025-06-01", symbol="P4-USD"))      # 2025, short: I
    db.execute("SELECT compute_fifo_all(true)")

    def boxes(*args):
        rc, out, _ = report(dsn, capsys, "tax", *args)
        return [(r["Description of property"], r["Date sold or disposed of"], r["Part"], r["Box"], r["Term"])
                for r in csv.DictReader(io.StringIO(out))]

    assert [b[3] for b in boxes("--year", "2024")] == ["C", "F"]
    assert [b[3] for b in boxes("--year", "2025")] == ["I", "L"]
    assert [b[3] for b in boxes("--year", "2025", "--reported", "proceeds")] == ["H", "K"]
    assert [b[3] for b in boxes("--year", "2024", "--reported", "basis")] == ["A", "D"]
    # Part I rows first, then Part II; --term keeps one part
    assert [(b[2], b[4]) for b in boxes()] == [("I", "Short-term"), ("I", "Short-term"), ("II", "Long-term"),
                                               ("II", "Long-term")]
    assert [b[1] for b in boxes("--term", "long")] == ["06/01/2024", "06/01/2025"]


def test_explain_shows_a_btc_quoted_sell_in_btc(mixed, dsn, capsys):
    assert main(["--dsn", dsn, "explain", "x-s"]) == 0
    out = capsys.readouterr().out.splitlines()
    # lot x-b: 0.8 of it, cost 0.8 * 0.05 = 0.04, proceeds 0.8 * 0.09 - 0.0002 = 0.0718, P&L 0.0318 (not "0.03")
    assert out[3].split()[-3:] == ["0.04", "0.0718", "0.0318"]
    assert out[-1] == "prices, fees, cost, proceeds and P&L are in BTC"
