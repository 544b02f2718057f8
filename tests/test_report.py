"""`fifo-db report`: tables, csv/json, the Form 8949 CSV round trip, the SVG chart and the HTML page."""

from __future__ import annotations

import csv
import io
import json
import xml.etree.ElementTree as ET
from decimal import Decimal as D
from pathlib import Path

import pytest

from fifo_db.cli import main
from fifo_db.importer import import_csv

DATA = Path(__file__).parent / "data"
SVG = "{http://www.w3.org/2000/svg}"


@pytest.fixture
def worked(db):
    import_csv(db, DATA / "views_trades.csv")
    db.execute("SELECT compute_fifo_all(true)")
    return db


def run(dsn, capsys, *args):
    rc = main(["--dsn", dsn, "report", *args])
    out = capsys.readouterr()
    return rc, out.out, out.err


def test_pnl_table_rounds_for_display_with_total(worked, dsn, capsys):
    rc, out, _ = run(dsn, capsys, "pnl")
    assert rc == 0
    lines = out.splitlines()
    assert lines[0].split() == ["symbol", "sells", "trades", "wins", "losses", "win_rate", "volume", "fees",
                                "unmatched_size", "pnl_amount"]
    assert lines[2].split() == ["AAA-USD", "3", "3", "2", "1", "66.7%", "74.00", "2.28", "3", "13.72"]
    assert lines[-1].split() == ["TOTAL", "5", "4", "2", "2", "50.0%", "304.00", "2.78", "4", "-6.78"]


def test_filters_reach_the_sql(worked, dsn, capsys):
    rc, out, _ = run(dsn, capsys, "trades", "--symbol", "AAA-USD", "--from", "2026-01-01", "--format", "csv")
    rows = list(csv.DictReader(io.StringIO(out)))
    assert [r["order_id"] for r in rows] == ["s2", "s3"]
    assert D(rows[0]["pnl_amount"]) == D("-10.30") and rows[0]["status"] == "partly unmatched"
    rc, out, _ = run(dsn, capsys, "daily", "--to", "2025-03-11", "--format", "json")
    days = json.loads(out)
    assert [(d["day"], d["sells"], D(d["pnl_amount"])) for d in days] == [("2025-03-10", 2, D("2.65"))]


def test_every_kind_renders(worked, dsn, capsys):
    for kind in ("pnl", "trades", "daily", "lots", "positions", "unmatched", "tax"):
        for fmt in ("table", "csv", "json"):
            rc, out, _ = run(dsn, capsys, kind, "--format", fmt)
            assert rc == 0 and out.strip(), (kind, fmt)
    rc, out, _ = run(dsn, capsys, "positions", "--format", "json")
    assert {(p["account"], D(p["average_cost"])) for p in json.loads(out)} == {("default", D("5.1")), ("acct2", D("7.07"))}
    rc, _, err = run(dsn, capsys, "positions", "--from", "2025-01-01")
    assert rc == 1 and "--from does not apply" in err


def test_tax_csv_round_trips(worked, dsn, capsys, tmp_path):
    target = tmp_path / "8949.csv"
    rc, _, err = run(dsn, capsys, "tax", "--from", "2025-01-01", "--to", "2026-01-01", "-o", str(target))
    assert rc == 0
    assert "1 oversold sell(s)" in err          # e1 has no cost basis and is not a tax lot
    with open(target, newline="") as f:
        rows = list(csv.DictReader(f))
    assert list(rows[0]) == ["Description of property", "Date acquired", "Date sold or disposed of", "Proceeds",
                             "Cost or other basis", "Code(s) from instructions", "Amount of adjustment",
                             "Gain or (loss)", "Term"]
    got = sorted((r["Description of property"], r["Date acquired"], r["Date sold or disposed of"],
                  D(r["Proceeds"]), D(r["Cost or other basis"]), D(r["Gain or (loss)"]), r["Term"]) for r in rows)
    want = sorted((r[0], r[1].strftime("%m/%d/%Y"), r[2].strftime("%m/%d/%Y"), r[3], r[4], r[5],
                   "Long-term" if r[6] == "long" else "Short-term")
                  for r in worked.execute("SELECT description, date_acquired, date_sold, proceeds, cost_basis, "
                                          "gain_or_loss, term FROM fifo_tax_lots(NULL, '2025-01-01Z', '2026-01-01Z')"))
    assert got == want
    assert sum(D(r["Gain or (loss)"]) for r in rows) == D("2.65")   # 18.60 + 4.55 - 20.50


def test_tax_csv_rounds_to_cents_and_keeps_rows_consistent(db, dsn, capsys):
    # proceeds 3 * 0.333 - 0.0015 = 0.9975 -> 1.00; cost 3 * 0.1111 = 0.3333 -> 0.33; gain 1.00 - 0.33
    db.execute("INSERT INTO trade_records (order_id, symbol, side, size, price, total_fees, order_time) VALUES "
               "('rb', 'R-USD', 'buy', 3, 0.1111, 0, '2025-01-01Z'), "
               "('rs', 'R-USD', 'sell', 3, 0.333, 0.0015, '2025-01-02Z')")
    db.execute("SELECT compute_fifo('R-USD')")
    rc, out, _ = run(dsn, capsys, "tax")
    [row] = list(csv.DictReader(io.StringIO(out)))
    assert (D(row["Proceeds"]), D(row["Cost or other basis"]), D(row["Gain or (loss)"])) == (D("1.00"), D("0.33"), D("0.67"))


def test_chart_and_html(worked, dsn, capsys, tmp_path):
    chart, page = tmp_path / "pnl.svg", tmp_path / "report.html"
    rc, _, err = run(dsn, capsys, "--chart", str(chart), "--html", str(page))
    assert rc == 0 and "wrote chart" in err
    root = ET.parse(chart).getroot()
    assert root.tag == f"{SVG}svg"
    lines = {p.find(f"{SVG}title").text for p in root.iter(f"{SVG}polyline")}
    assert lines == {"total", "AAA-USD", "BBB-USD"}
    legend = " ".join(t.text or "" for t in root.iter(f"{SVG}text"))
    assert "total -6.78" in legend and "AAA-USD 13.72" in legend and "BBB-USD -20.50" in legend
    html = page.read_text()
    assert html.startswith("<!DOCTYPE html>") and "<svg" in html
    for heading in ("Realized P&amp;L by symbol", "Realized P&amp;L by day", "Open positions",
                    "Unmatched (oversold) sells"):
        assert f"<h2>{heading}</h2>" in html
    assert '<td class="n neg">-20.50</td>' in html


def test_chart_without_sales_is_still_an_svg(db, dsn, capsys, tmp_path):
    chart = tmp_path / "empty.svg"
    assert run(dsn, capsys, "--chart", str(chart))[0] == 0
    root = ET.parse(chart).getroot()
    assert "no realized P&L" in " ".join(t.text or "" for t in root.iter(f"{SVG}text"))


def test_report_needs_something_to_do(db, dsn, capsys):
    rc, _, err = run(dsn, capsys)
    assert rc == 1 and "give a report" in err
    rc, _, err = run(dsn, capsys, "pnl", "--from", "someday")
    assert rc == 1 and 'cannot read "someday" as a time' in err
