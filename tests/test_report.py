"""`fifo-db report`: tables, csv/json, --round, the SVG chart's geometry, the HTML page, and every
one-line error (bad output path, empty range, unknown symbol, nothing computed)."""

from __future__ import annotations

import csv
import io
import json
import re
import xml.etree.ElementTree as ET
from decimal import Decimal as D
from pathlib import Path

import pytest

from fifo_db.charts import symbol_style
from fifo_db.cli import main
from tests.helpers import add_trades

SVG = "{http://www.w3.org/2000/svg}"


def run(dsn, capsys, *args):
    rc = main(["--dsn", dsn, "report", *args])
    out = capsys.readouterr()
    return rc, out.out, out.err


def one_error_line(rc, err, *needles):
    assert rc == 1
    assert len(err.splitlines()) == 1 and err.startswith("fifo-db: error: ") and "Traceback" not in err, err
    for needle in needles:
        assert needle in err, err


def test_pnl_table_rounds_for_display_with_total_per_currency(worked, dsn, capsys):
    rc, out, err = run(dsn, capsys, "pnl")
    assert (rc, err) == (0, "")
    lines = out.splitlines()
    assert lines[0] == "Realized P&L by symbol: all symbols, all trades (UTC)"
    assert lines[1].split() == ["symbol", "currency", "sells", "trades", "wins", "losses", "win_rate",
                                "sell_volume", "realized_fees", "fees_paid", "unmatched_size", "pnl_amount"]
    assert lines[3].split() == ["AAA-USD", "USD", "3", "3", "2", "1", "66.7%", "74.00", "2.28", "2.68", "3", "13.72"]
    assert lines[-1].split() == ["TOTAL", "USD", "5", "4", "2", "2", "50.0%", "304.00", "2.78", "3.18", "4", "-6.78"]


def test_filters_reach_the_sql(worked, dsn, capsys):
    rc, out, _ = run(dsn, capsys, "trades", "--symbol", "AAA-USD", "--from", "2026-01-01", "--format", "csv")
    rows = list(csv.DictReader(io.StringIO(out)))
    assert [r["order_id"] for r in rows] == ["s2", "s3"]
    assert D(rows[0]["pnl_amount"]) == D("-10.30") and rows[0]["status"] == "partly unmatched"
    assert rows[0]["currency"] == "USD"
    rc, out, _ = run(dsn, capsys, "daily", "--to", "2025-03-11", "--format", "json")
    days = [d for d in json.loads(out) if d["sells"]]
    assert [(d["day"], d["sells"], D(d["pnl_amount"])) for d in days] == [("2025-03-10", 2, D("2.65"))]


def test_every_kind_renders(worked, dsn, capsys):
    for kind in ("pnl", "trades", "daily", "monthly", "yearly", "lots", "positions", "unmatched", "tax"):
        for fmt in ("table", "csv", "json"):
            rc, out, _ = run(dsn, capsys, kind, "--format", fmt)
            assert rc == 0 and out.strip(), (kind, fmt)
    rc, out, _ = run(dsn, capsys, "positions", "--format", "json")
    assert {(p["account"], D(p["average_cost"])) for p in json.loads(out)} == {("default", D("5.1")), ("acct2", D("7.07"))}


def test_round_n_for_csv_and_json(worked, dsn, capsys):
    rc, out, _ = run(dsn, capsys, "pnl", "--format", "json")
    exact = {r["symbol"]: r for r in json.loads(out)}
    assert exact["AAA-USD"]["win_rate"] == "0.66666666666666666667"
    # ratios keep at least 4 places, money its currency's 2, prices (average cost) 8: --round never zeroes
    rc, out, _ = run(dsn, capsys, "pnl", "--format", "json", "--round", "2")
    assert {r["symbol"]: (r["win_rate"], r["pnl_amount"]) for r in json.loads(out)} == {
        "AAA-USD": ("0.6667", "13.72"), "BBB-USD": ("0.0000", "-20.50")}
    rc, out, _ = run(dsn, capsys, "positions", "--format", "csv", "--round", "1")
    assert {r["account"]: (r["open_cost"], r["average_cost"]) for r in csv.DictReader(io.StringIO(out))} == {
        "default": ("15.30", "5.10000000"), "acct2": ("7.07", "7.07000000")}
    one_error_line(*run(dsn, capsys, "pnl", "--round", "2")[::2], "--round applies to --format csv or json")


def test_fees_and_volume_say_what_they_count(worked, dsn, capsys):
    rc, out, _ = run(dsn, capsys, "pnl", "--symbol", "AAA-USD", "--format", "json")
    [aaa] = json.loads(out)
    # sells only: 15*4 + 8*1 + 1*6; buys 10*2 + 10*3 + 4*5 + 1*7
    assert (D(aaa["sell_volume"]), D(aaa["buy_volume"])) == (D(74), D(77))
    # fees inside realized P&L vs every fee paid (open lot b3's 0.30 and f1's 0.07, s2's unmatched 0.03 too)
    assert (D(aaa["realized_fees"]), D(aaa["fees_paid"])) == (D("2.28"), D("2.68"))


# --- errors: one line, exit 1 ----------------------------------------------------------------------

def test_output_into_a_missing_folder_or_onto_a_directory(worked, dsn, capsys, tmp_path):
    for flag, name in (("--chart", "pnl.svg"), ("--html", "r.html"), ("-o", "pnl.txt")):
        args = ("pnl",) if flag == "-o" else ()
        one_error_line(*run(dsn, capsys, *args, flag, str(tmp_path / "nope" / name))[::2],
                       f"{flag} {tmp_path / 'nope' / name}: folder {tmp_path / 'nope'} does not exist")
        one_error_line(*run(dsn, capsys, *args, flag, str(tmp_path))[::2], f"{flag} {tmp_path}: is a directory")
    assert list(tmp_path.iterdir()) == []


def test_from_after_to_is_refused(worked, dsn, capsys):
    one_error_line(*run(dsn, capsys, "pnl", "--from", "2026-01-01", "--to", "2025-01-01")[::2],
                   "--from 2026-01-01 is not before --to 2025-01-01")
    one_error_line(*run(dsn, capsys, "pnl", "--year", "2025", "--from", "2025-02-01")[::2],
                   "--year replaces --from/--to")


def test_unknown_symbol_says_so_with_the_compute_hint(worked, dsn, capsys):
    for kind in ("pnl", "trades", "tax", "lots"):
        one_error_line(*run(dsn, capsys, kind, "--symbol", "NOPE-USD")[::2], 'no trades for symbol "NOPE-USD"',
                       "SELECT DISTINCT symbol FROM trade_records")
    rc = main(["--dsn", dsn, "verify", "--symbol", "NOPE-USD"])
    one_error_line(rc, capsys.readouterr().err, 'no trades for symbol "NOPE-USD"')


def test_data_never_computed_is_said_to_be_not_computed(db, dsn, capsys):
    one_error_line(*run(dsn, capsys, "pnl")[::2], "no trades in this database")
    add_trades(db, [{"order_id": "b", "symbol": "X-USD", "side": "buy", "size": 1, "price": 1, "order_time": "2025-01-01"},
                    {"order_id": "s", "symbol": "X-USD", "side": "sell", "size": 1, "price": 2, "order_time": "2025-01-02"},
                    {"order_id": "y", "symbol": "Y-USD", "side": "buy", "size": 1, "price": 1, "order_time": "2025-01-01"}])
    one_error_line(*run(dsn, capsys, "pnl")[::2], "not computed: none of the 2 pool(s)", "version 1",
                   "fifo-db compute --all-symbols")
    one_error_line(*run(dsn, capsys, "tax", "--symbol", "X-USD")[::2], "symbol 'X-USD' is not computed",
                   "fifo-db compute --all-symbols")
    db.execute("SELECT compute_fifo('X-USD')")
    rc, out, err = run(dsn, capsys, "pnl")
    assert rc == 0 and "X-USD" in out
    assert err.startswith("warning: partial: 1 of 2 pool(s) are not computed in version 1 (e.g. Y-USD); their "
                          "sells show as 'not computed' and add nothing: run `fifo-db compute --all-symbols`\n")
    db.execute("SELECT compute_fifo_all(true)")
    db.execute("SELECT fifo_set_setting('current_version', '2')")
    one_error_line(*run(dsn, capsys, "daily")[::2], "computed in version 2")


# --- the chart ---------------------------------------------------------------------------------------

def plot_rects(root):
    return [tuple(float(r.get(k)) for k in ("x", "y", "width", "height"))
            for r in root.iter(f"{SVG}rect") if r.get("class") == "plot"]


def assert_every_point_inside(root):
    rects = plot_rects(root)
    assert rects
    lines = list(root.iter(f"{SVG}polyline"))
    assert lines
    for line in lines:
        pts = [tuple(map(float, p.split(","))) for p in line.get("points").split()]
        assert any(all(x0 <= px <= x0 + w and y0 <= py <= y0 + h for px, py in pts) for x0, y0, w, h in rects), \
            (line.find(f"{SVG}title").text, pts)
    for c in root.iter(f"{SVG}circle"):
        cx, cy = float(c.get("cx")), float(c.get("cy"))
        assert any(x0 <= cx <= x0 + w and y0 <= cy <= y0 + h for x0, y0, w, h in rects)


def texts(root):
    return [t.text or "" for t in root.iter(f"{SVG}text")]


def test_chart_geometry_axis_currency_and_legend(worked, dsn, capsys, tmp_path):
    chart = tmp_path / "pnl.svg"
    rc, _, err = run(dsn, capsys, "--chart", str(chart))
    assert rc == 0 and "wrote chart" in err
    root = ET.parse(chart).getroot()
    assert {p.find(f"{SVG}title").text for p in root.iter(f"{SVG}polyline")} == {"total USD", "AAA-USD", "BBB-USD"}
    assert_every_point_inside(root)
    labels = texts(root)
    assert "P&L (USD)" in labels and "Cumulative realized P&L in USD" in labels
    legend = " ".join(labels)
    assert "total USD -6.78" in legend and "AAA-USD 13.72" in legend and "BBB-USD -20.50" in legend
    # 5 to 8 date labels, from the first sale (2025-03-10) to the end of the last sale's day (2026-03-04)
    dates = [t for t in labels if re.fullmatch(r"\d{4}-\d\d-\d\d", t)]
    assert 5 <= len(dates) <= 8 and dates[0] == "2025-03-10" and dates[-1] == "2026-03-05"


def test_chart_value_axis_hugs_the_data_and_starts_at_from(db, dsn, capsys, tmp_path):
    # cumulative 12.40 then 12.45: a tick step of 5 used to stop at 10, and the line crossed the title
    add_trades(db, [
        {"order_id": "b", "symbol": "T-USD", "side": "buy", "size": 2, "price": 0, "order_time": "2025-01-01"},
        {"order_id": "s1", "symbol": "T-USD", "side": "sell", "size": 1, "price": "12.40", "order_time": "2025-01-02"},
        {"order_id": "s2", "symbol": "T-USD", "side": "sell", "size": 1, "price": "0.05", "order_time": "2025-01-09"}])
    db.execute("SELECT compute_fifo('T-USD')")
    chart = tmp_path / "t.svg"
    assert run(dsn, capsys, "--chart", str(chart), "--from", "2024-12-20")[0] == 0
    root = ET.parse(chart).getroot()
    assert_every_point_inside(root)
    ticks = [D(t.text.replace(",", "")) for t in root.iter(f"{SVG}text") if t.get("class") == "value"]
    assert ticks == [D(0), D(2), D(4), D(6), D(8), D(10), D(12)]   # within one step (2) of 0 and 12.45
    # the date axis starts at --from, not at the first sale, and ends with the last sale's day
    dates = [t for t in texts(root) if re.fullmatch(r"\d{4}-\d\d-\d\d", t)]
    assert dates[0] == "2024-12-20" and dates[-1] == "2025-01-10"


def test_symbol_keeps_its_colour_across_charts(worked, dsn, capsys, tmp_path):
    one, two = tmp_path / "all.svg", tmp_path / "bbb.svg"
    run(dsn, capsys, "--chart", str(one))
    run(dsn, capsys, "--chart", str(two), "--symbol", "BBB-USD")

    def strokes(path):
        return {p.find(f"{SVG}title").text: (p.get("stroke"), p.get("stroke-dasharray"))
                for p in ET.parse(path).getroot().iter(f"{SVG}polyline")}

    colour, dash = symbol_style("BBB-USD")
    assert strokes(one)["BBB-USD"] == strokes(two)["BBB-USD"] == (colour, dash or None)


def test_chart_without_sales_in_range_is_still_an_svg(worked, dsn, capsys, tmp_path):
    chart = tmp_path / "empty.svg"
    assert run(dsn, capsys, "--chart", str(chart), "--from", "2030-01-01")[0] == 0
    assert "no realized P&L in this range" in " ".join(texts(ET.parse(chart).getroot()))


# --- the HTML page -----------------------------------------------------------------------------------

def test_html_opens_with_the_headline(worked, dsn, capsys, tmp_path):
    page = tmp_path / "report.html"
    assert run(dsn, capsys, "--html", str(page))[0] == 0
    html = page.read_text()
    assert html.startswith("<!DOCTYPE html>") and "<svg" in html
    head = html[html.index('<section id="headline">'):html.index("</section>")]
    assert html.index('<section id="headline">') < html.index("<svg")
    assert "Realized P&amp;L (USD)" in head and '<div class="v neg">-6.78</div>' in head
    assert "Fees paid (USD)" in head and '<div class="v">3.18</div>' in head
    assert '<div class="v">50.0%</div>' in head and '<div class="v">4</div>' in head   # win rate, closed trades
    # per year: 2025 2.65 (fees 2.67), 2026 -9.43 (fees 0.51)
    assert re.search(r"<td>2025</td><td>USD</td><td class=\"n\">2.65</td><td class=\"n\">2.67</td>", head)
    assert re.search(r"<td>2026</td><td>USD</td><td class=\"n neg\">-9.43</td><td class=\"n\">0.51</td>", head)
    for heading in ("Realized P&amp;L by symbol", "Realized P&amp;L by month", "Open positions",
                    "Unmatched (oversold) sells"):
        assert f"<h2>{heading}</h2>" in html
    assert "<h2>Realized P&amp;L by day</h2>" not in html
    assert "<th class=n>Realized P&amp;L</th>" in html and "pnl_amount" not in html
    assert '<td class="n neg">-20.50</td>' in html


def test_stale_pools_are_warned_about(worked, dsn, capsys):
    # version 2 computed, then version 1 (current) consumes a back-dated change of AAA-USD: 2 is stale there
    worked.execute("SELECT compute_fifo_all(true, 2)")
    add_trades(worked, [{"order_id": "late-b", "symbol": "AAA-USD", "side": "buy", "size": 1, "price": 1,
                         "order_time": "2025-01-02"}])
    worked.execute("SELECT compute_fifo_incremental()")
    worked.execute("SELECT fifo_set_setting('current_version', '2')")
    rc, out, err = run(dsn, capsys, "pnl")
    assert rc == 0 and "AAA-USD" in out
    assert err == ("warning: stale: 1 pool(s) of version 2 are stale (e.g. AAA-USD: another version consumed "
                   "their changes); their later sells show as 'stale': run `fifo-db compute --all-symbols`\n"), err
