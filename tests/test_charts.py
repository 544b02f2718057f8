"""The P&L chart and the HTML page as a reader sees them (issue 17, "Pictures"): every line carried
to the right edge at its final total, symbols drawn above the total, value axes that hug the data,
5 to 8 date labels for one sale and for years, small symbols on their own scale when one line
dwarfs them, thousands separators and no wrapped cells on the page.

The chart tests read SVGs written by `fifo-db report --chart` from a real database; the axis
rules are also tested as pure functions. Money is compared as exact Decimals; only pixel
positions (floats in the SVG) get a tolerance of a tenth of a pixel, the SVG's own rounding.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from datetime import date, timedelta
from decimal import Decimal as D

from fifo_db.charts import date_range, date_ticks, grouped, symbol_style, symbol_styles, value_axis
from fifo_db.cli import main
from tests.helpers import add_trades

SVG = "{http://www.w3.org/2000/svg}"
DAY = re.compile(r"\d{4}-\d\d-\d\d")


def chart(dsn, capsys, tmp_path, *args):
    path = tmp_path / "chart.svg"
    rc = main(["--dsn", dsn, "report", "--chart", str(path), *args])
    err = capsys.readouterr().err
    assert rc == 0, err
    return ET.parse(path).getroot()


def panels(root) -> list[dict]:
    """Each panel of the SVG, in order: heading, plot rectangle, value ticks (value, y), date labels,
    polylines (title, [(x, y)], stroke) in drawing order, legend texts."""
    out: list[dict] = []
    for el in root:
        tag, cls = el.tag.removeprefix(SVG), el.get("class")
        if tag == "text" and el.get("font-size") == "13":
            out.append({"heading": el.text, "ticks": [], "dates": [], "lines": [], "legend": []})
        elif tag == "rect" and cls == "plot":
            out[-1]["plot"] = tuple(float(el.get(k)) for k in ("x", "y", "width", "height"))
        elif tag == "text" and cls == "value":
            out[-1]["ticks"].append((D(el.text.replace(",", "")), float(el.get("y")) - 4))
        elif tag == "text" and cls == "date":
            out[-1]["dates"].append(el.text)
        elif tag == "polyline":
            pts = [tuple(map(float, p.split(","))) for p in el.get("points").split()]
            out[-1]["lines"].append((el.find(f"{SVG}title").text, pts, el.get("stroke")))
        elif tag == "text" and cls == "legend":
            out[-1]["legend"].append(el.text)
    return out


def y_of(panel, value: D) -> float:
    """The y of a value on a panel's axis, from two of its ticks."""
    (t0, y0), (t1, y1) = panel["ticks"][0], panel["ticks"][-1]
    return y0 + float((value - t0) / (t1 - t0)) * (y1 - y0)


def test_every_line_is_carried_to_the_right_edge_at_its_final_total(worked, dsn, capsys, tmp_path):
    # AAA-USD's last sale (2026-03-04) ends the range; BBB-USD's (2025-03-11) is a year earlier and its
    # line used to stop there. Every line starts at 0 on the left edge and ends on the right edge.
    [panel] = panels(chart(dsn, capsys, tmp_path))
    x0, _, width, _ = panel["plot"]
    finals = {"total USD": D("-6.78"), "AAA-USD": D("13.72"), "BBB-USD": D("-20.50")}
    assert {title for title, _, _ in panel["lines"]} == set(finals)
    for title, pts, _ in panel["lines"]:
        assert pts[0][0] == x0 and abs(pts[0][1] - y_of(panel, D(0))) <= 0.1, title
        assert pts[-1][0] == x0 + width, title
        assert abs(pts[-1][1] - y_of(panel, finals[title])) <= 0.1, (title, pts[-1])
        assert pts[-2][1] == pts[-1][1], title           # a flat carry from the last sale to the edge
    assert panel["legend"] == ["total USD -6.78", "AAA-USD 13.72", "BBB-USD -20.50"]


def test_symbols_are_drawn_above_the_total(worked, dsn, capsys, tmp_path):
    [panel] = panels(chart(dsn, capsys, tmp_path))
    order = [title for title, _, _ in panel["lines"]]
    assert order[0] == "total USD" and sorted(order[1:]) == ["AAA-USD", "BBB-USD"]
    # a currency with one symbol: the symbol's line (its colour) lies on the black total, not under it
    [panel] = panels(chart(dsn, capsys, tmp_path, "--symbol", "BBB-USD"))
    assert [(t, s) for t, _, s in panel["lines"]] == [("total USD", "#000000"), ("BBB-USD", symbol_style("BBB-USD")[0])]


def test_value_ticks_stay_within_one_step_of_the_data():
    bottom, top, ticks = value_axis(D("-69.56"), D("120"))
    assert (bottom, top, ticks) == (D("-79.0380"), D("129.4780"), [D(-50), D(0), D(50), D(100)])
    # the USD axis ran to -2,000 under a lowest value of -69.56
    bottom, top, ticks = value_axis(D("-69.56"), D("14000"))
    assert (bottom, top) == (D("-773.0380"), D("14703.4780"))
    assert ticks == [D(0), D(2500), D(5000), D(7500), D(10000), D(12500)]
    for lo, hi in ((D("-69.56"), D(120)), (D(0), D("0.017825")), (D("-165635.65"), D(0)), (D(-3), D(5)),
                   (D("-0.00000001"), D("0.00000003")), (D(0), D(0)), (D(-7), D(-7))):
        bottom, top, ticks = value_axis(lo, hi)
        step = ticks[1] - ticks[0]
        assert 3 <= len(ticks) <= 7, (lo, hi, ticks)
        assert bottom <= lo and hi <= top, (lo, hi)
        assert lo - step < bottom and top < hi + step or lo == hi, (lo, hi, bottom, top, step)
        assert all(bottom <= t <= top for t in ticks), (lo, hi, ticks)


def test_date_labels_are_5_to_8_for_any_span():
    for first in (date(2024, 2, 29), date(2025, 1, 17), date(2025, 12, 31)):
        for days in [*range(1, 400), *range(400, 8000, 11)]:
            labels = date_ticks(first, first + timedelta(days=days))
            assert 5 <= len(labels) <= 8, (first, days, labels)
            assert labels[0] == (0, first.isoformat()), (first, days)
            assert labels[-1][0] == days, (first, days)
            if days >= 4:   # no two labels closer than a tenth of the axis (they would overlap)
                assert min(b[0] - a[0] for a, b in zip(labels, labels[1:])) >= days / 10, (first, days, labels)
    assert [t for _, t in date_ticks(date(2025, 3, 10), date(2025, 3, 11))] == \
        ["2025-03-10", "04:00", "08:00", "12:00", "16:00", "20:00", "2025-03-11"]


def test_a_lone_sale_gets_a_week_up_to_today():
    sale = date(2025, 11, 20)
    assert date_range([sale], None, None, today=date(2026, 12, 5)) == (date(2025, 11, 17), date(2025, 11, 24))
    # never past today; with --from, only forward; with --from and --to, exactly [from, to)
    assert date_range([sale], None, None, today=date(2025, 11, 21)) == (date(2025, 11, 15), date(2025, 11, 22))
    assert date_range([sale], date(2025, 11, 19), None, today=date(2026, 1, 1)) == \
        (date(2025, 11, 19), date(2025, 11, 26))
    assert date_range([sale], date(2025, 11, 20), date(2025, 11, 20)) == (date(2025, 11, 20), date(2025, 11, 21))


def test_a_currency_with_one_sale_is_a_step_with_5_to_8_dates(db, dsn, capsys, tmp_path):
    add_trades(db, [
        {"order_id": "b", "symbol": "ETH-BTC", "side": "buy", "size": 2, "price": "0.05", "order_time": "2025-02-10"},
        {"order_id": "s", "symbol": "ETH-BTC", "side": "sell", "size": "1.5", "price": "0.062",
         "order_time": "2025-11-20 12:00"},
        {"order_id": "ub", "symbol": "BTC-USD", "side": "buy", "size": 1, "price": 80000, "order_time": "2021-01-04"},
        {"order_id": "us1", "symbol": "BTC-USD", "side": "sell", "size": "0.5", "price": 90000,
         "order_time": "2021-06-01"},
        {"order_id": "us2", "symbol": "BTC-USD", "side": "sell", "size": "0.5", "price": 60000,
         "order_time": "2025-12-30"}])
    db.execute("SELECT compute_fifo_all(true)")
    # alone: a week around the sale, a step from 0 to 0.018 BTC in the middle of its day
    [panel] = panels(chart(dsn, capsys, tmp_path, "--symbol", "ETH-BTC"))
    assert panel["dates"] == ["2025-11-17", "2025-11-18", "2025-11-19", "2025-11-20", "2025-11-21", "2025-11-22",
                              "2025-11-23", "2025-11-24"]
    x0, _, width, _ = panel["plot"]
    for _, pts, _ in panel["lines"]:
        assert [x for x, _ in pts] == [x0, x0 + width * 3.5 / 7, x0 + width * 3.5 / 7, x0 + width]
        assert abs(pts[-1][1] - y_of(panel, D("0.018"))) <= 0.1
    assert [v for v, _ in panel["ticks"]] == [D(0), D("0.005"), D("0.010"), D("0.015")]
    # beside a multi-year USD history: both panels share the years-long axis, 5 to 8 labels each
    btc, usd = panels(chart(dsn, capsys, tmp_path))
    assert btc["dates"] == usd["dates"] and 5 <= len(btc["dates"]) <= 8
    assert btc["dates"][0] == "2021-06-01" and btc["dates"][-1] == "2025-12-31"
    assert all(DAY.fullmatch(d) for d in btc["dates"])
    assert usd["legend"] == ["total USD -5,000.00", "BTC-USD -5,000.00"]


def test_small_symbols_get_their_own_scale_when_one_line_dwarfs_them(db, dsn, capsys, tmp_path):
    trades = [{"order_id": "big-b", "symbol": "BIG-USD", "side": "buy", "size": 1, "price": 1000,
               "order_time": "2025-01-02"},
              {"order_id": "big-s", "symbol": "BIG-USD", "side": "sell", "size": 1, "price": 101000,
               "order_time": "2025-03-03"}]
    for i, (sym, gain) in enumerate((("ALFA-USD", 120), ("BRAVO-USD", -80), ("CHARLIE-USD", 40))):
        trades += [{"order_id": f"{sym}-b", "symbol": sym, "side": "buy", "size": 1, "price": 100,
                    "order_time": f"2025-01-1{i}"},
                   {"order_id": f"{sym}-s", "symbol": sym, "side": "sell", "size": 1, "price": 100 + gain,
                    "order_time": f"2025-02-1{i}"}]
    add_trades(db, trades)
    db.execute("SELECT compute_fifo_all(true)")
    big, small = panels(chart(dsn, capsys, tmp_path))
    assert big["heading"] == "Cumulative realized P&L in USD, largest symbols"
    assert big["legend"] == ["total USD 100,080.00", "BIG-USD 100,000.00"]
    assert small["heading"] == ("Cumulative realized P&L in USD: 3 smaller symbols on their own scale "
                                "(each under 1/5 of the largest line)")
    assert small["legend"] == ["ALFA-USD 120.00", "CHARLIE-USD 40.00", "BRAVO-USD -80.00"]
    assert [v for v, _ in small["ticks"]] == [D(-50), D(0), D(50), D(100)]
    assert [title for title, _, _ in small["lines"]] == ["CHARLIE-USD", "BRAVO-USD", "ALFA-USD"]  # largest on top
    assert big["dates"] == small["dates"]


def test_symbols_of_a_currency_never_share_a_style():
    names = [f"SYN{i:04d}-USD" for i in range(30)]
    styles = symbol_styles(names)
    assert len(set(styles.values())) == 30
    # the first keeps its own style (the one it has in every chart)
    assert styles[names[0]] == symbol_style(names[0])


# --- the HTML page -----------------------------------------------------------------------------------

def html(dsn, capsys, tmp_path, *args) -> str:
    path = tmp_path / "report.html"
    rc = main(["--dsn", dsn, "report", "--html", str(path), *args])
    assert rc == 0, capsys.readouterr().err
    return path.read_text()


def test_counts_and_prices_have_thousands_separators(db, dsn, capsys, tmp_path):
    # 1,001 sells of 1 out of one lot of 1,500 at 61,305.5 (fee 0): the counts and the average cost
    db.execute("INSERT INTO trade_records (order_id, account, symbol, side, size, price, total_fees, order_time) "
               "VALUES ('b', 'default', 'BTC-USD', 'buy', 1500, 61305.5, 0, '2025-01-01')")
    db.execute("INSERT INTO trade_records (order_id, account, symbol, side, size, price, total_fees, order_time) "
               "SELECT 's' || i, 'default', 'BTC-USD', 'sell', 1, 61306.5, 0, "
               "       '2025-01-02'::timestamptz + i * interval '1 minute' FROM generate_series(1, 1001) i")
    db.execute("SELECT compute_fifo_all(true)")
    page = html(dsn, capsys, tmp_path)
    assert '<div class="v">1,001</div>' in page and "1,001 sells, 1 buy</div>" in page and "1,001 wins, 0 losses</div>" in page  # headline, singular where 1
    assert '<td>2025</td><td>USD</td><td class="n">1,001.00</td>' in page              # P&L per year
    assert '<td class="n">1,001</td>' in page                                         # sells, trades, wins
    assert '<td class="n">61,305.5</td>' in page                                      # average cost
    assert '<td class="n">499</td>' in page                                           # open quantity
    assert not re.search(r'<td class="n[^"]*">-?\d{4,}', page)                        # no ungrouped number


def test_grouped_numbers():
    assert [grouped(t) for t in ("1822", "-61305.5", "0.00001", "12,345.5", "", "1000000")] == \
        ["1,822", "-61,305.5", "0.00001", "12,345.5", "", "1,000,000"]


def test_unmatched_and_every_table_keep_cells_on_one_line(worked, dsn, capsys, tmp_path):
    page = html(dsn, capsys, tmp_path)
    css = page[page.index("<style>"):page.index("</style>")]
    assert "th,td{padding:3px 8px;border-bottom:1px solid #ddd;white-space:nowrap;" in css
    assert "td.wrap{white-space:normal;" in css
    unmatched = page[page.index("<h2>Unmatched (oversold) sells</h2>"):]
    unmatched = unmatched[:unmatched.index("</table>")]
    rows = re.findall(r"<tr>(.*?)</tr>", unmatched)
    assert len(rows) == 3   # the head and 2 sells
    for row in rows[1:]:
        cells = re.findall(r"<td( class=\"[^\"]*\")?>(.*?)</td>", row)
        assert [c for c, _ in cells].count(' class="wrap"') == 1       # only the reason may wrap
        assert cells[-1][0] == ' class="wrap"' and cells[-1][1].startswith("inventory at ")
    # and it wraps between words only: a date, time or id inside the sentence stays whole
    assert rows[2].endswith('next buy b3 at <span class="nb">2026-03-03</span> <span class="nb">10:00</span></td>')
    # every table scrolls sideways in its own box rather than squeezing its cells
    assert page.count('<div class="scroll"><table>') == page.count("<table>") == 4
