"""The cumulative realized P&L chart (hand-written SVG) and the one-page HTML report.

No plotting dependency: a line chart is a few polylines, two axes and a
legend. Values arrive as exact Decimals; only pixel positions are floats.

One panel per quote currency (P&L in USD and in BTC never share an axis);
the value axis names its currency and its ticks always cover the lowest and
the highest value, so every line stays inside the plot rectangle; the date
axis starts at --from (else the first sale) and carries 5 to 8 labels; a
symbol's colour and dash come from a hash of its name, so it keeps them in
every chart.
"""

from __future__ import annotations

import zlib
from calendar import monthrange
from datetime import date, datetime, timedelta, timezone
from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal
from html import escape

WIDTH = 960
PANEL_HEIGHT = 380
LEFT, RIGHT = 100, 230          # plot margins: value labels left, legend right
TITLE_SPACE = 40                # the chart title above the first panel
PANEL_TOP, PANEL_BOTTOM = 30, 50  # inside a panel: its heading above the plot, date labels below
MAX_SYMBOLS = 8  # lines besides the total; the rest are left out (named in the legend)
PALETTE = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#17becf",
           "#bcbd22", "#7f7f7f")
DASHES = ("", "6,3", "2,2")


def symbol_style(symbol: str) -> tuple[str, str]:
    """(colour, dash pattern) of a symbol: the same in every chart (a hash of its name)."""
    h = zlib.crc32(symbol.encode("utf-8"))
    return PALETTE[h % len(PALETTE)], DASHES[(h // len(PALETTE)) % len(DASHES)]


def value_ticks(lo: Decimal, hi: Decimal, n: int = 5) -> list[Decimal]:
    """About n round tick values; the first <= lo and the last >= hi, so every value is inside."""
    if hi < lo:
        lo, hi = hi, lo
    span = hi - lo
    if span == 0:
        span = abs(hi) or Decimal(1)
        lo, hi = lo - span / 2, hi + span / 2
        span = hi - lo
    raw = span / n
    mag = Decimal(10) ** raw.adjusted()
    step = next(m * mag for m in (1, 2, 5, 10) if m * mag >= raw)
    first = (lo / step).to_integral_value(rounding=ROUND_FLOOR) * step
    last = (hi / step).to_integral_value(rounding=ROUND_CEILING) * step
    ticks, t = [], first
    while t <= last:
        ticks.append(t)
        t += step
    return ticks


def _add_months(d: date, months: int) -> date:
    m = d.month - 1 + months
    y, m = d.year + m // 12, m % 12 + 1
    return date(y, m, min(d.day, monthrange(y, m)[1]))


def date_ticks(d0: date, d1: date) -> list[date]:
    """5 to 8 dates from d0 to d1, both included: every n days, or month starts for long spans.

    Labels closer than 13% of the span (about 80 px, a label's width) to a neighbour are dropped,
    except d0 and d1 themselves.
    """
    span = (d1 - d0).days
    if span <= 0:
        return [d0]
    near = span * 0.13
    inner: list[date] = []
    for days in (1, 2, 3, 7, 14):
        if span / days <= 7:
            inner = [d0 + timedelta(days=i) for i in range(days, span, days)]
            break
    else:
        for months in (1, 2, 3, 6, 12, 24, 60, 120):
            if span / (30.44 * months) <= 7:
                break
        t = date(d0.year, d0.month, 1)
        while t <= d0 or (t.year * 12 + t.month - 1) % months:
            t = _add_months(t, 1)
        while t < d1:
            inner.append(t)
            t = _add_months(t, months)
    ticks = [d0]
    for t in inner:
        if (t - ticks[-1]).days >= near and (d1 - t).days >= near:
            ticks.append(t)
    return ticks + [d1]


def _label(value: Decimal, currency: str | None = None) -> str:
    from fifo_db.report import money

    return money(value, currency or "USD")


def _panel(out: list[str], top: float, currency: str | None, series: dict, start: date | None,
           end: date | None) -> None:
    """One currency's plot: grid, axes, lines and legend, in the band starting at y = top."""
    name = currency or "?"
    total = series.get(None, [])
    symbols = sorted((k for k in series if k is not None), key=lambda k: (-abs(series[k][-1][1]), k))
    shown, hidden = symbols[:MAX_SYMBOLS], symbols[MAX_SYMBOLS:]
    lines = [(f"total {name}", total, "#000000", "", 2.5)] + [
        (s, series[s], *symbol_style(s), 1.4) for s in shown]
    plot_top, plot_bottom = top + PANEL_TOP, top + PANEL_HEIGHT - PANEL_BOTTOM
    plot_left, plot_right = LEFT, WIDTH - RIGHT
    out.append(f'<text x="{plot_left}" y="{top + 18:.1f}" font-size="13" font-weight="bold">'
               f'Cumulative realized P&amp;L in {escape(name)}</text>')
    points = [p for _, pts, _, _, _ in lines for p in pts]
    days = [p[0] for p in points]
    d0 = start or min(days)
    d1 = max(end or max(days), max(days), d0)
    values = [p[1] for p in points] + [Decimal(0)]
    ticks = value_ticks(min(values), max(values))
    v0, v1 = ticks[0], ticks[-1]
    out.append(f'<rect class="plot" x="{plot_left}" y="{plot_top:.1f}" width="{plot_right - plot_left}" '
               f'height="{plot_bottom - plot_top:.1f}" fill="#ffffff" stroke="none"/>')

    def x(d: date) -> float:
        if d1 == d0:
            return (plot_left + plot_right) / 2
        return plot_left + (plot_right - plot_left) * (d - d0).days / (d1 - d0).days

    def y(v: Decimal) -> float:
        return plot_bottom - (plot_bottom - plot_top) * float((v - v0) / (v1 - v0))

    for t in ticks:
        out.append(f'<line x1="{plot_left}" y1="{y(t):.1f}" x2="{plot_right}" y2="{y(t):.1f}" '
                   f'stroke="{"#888888" if t == 0 else "#e5e5e5"}" stroke-width="1"/>')
        out.append(f'<text x="{plot_left - 8}" y="{y(t) + 4:.1f}" text-anchor="end">{_label(t, currency)}</text>')
    out.append(f'<text transform="translate(18 {(plot_top + plot_bottom) / 2:.1f}) rotate(-90)" '
               f'text-anchor="middle">P&amp;L ({escape(name)})</text>')
    for d in date_ticks(d0, d1):
        out.append(f'<line x1="{x(d):.1f}" y1="{plot_bottom:.1f}" x2="{x(d):.1f}" y2="{plot_bottom + 5:.1f}" '
                   f'stroke="#444444"/>')
        out.append(f'<text x="{x(d):.1f}" y="{plot_bottom + 19:.1f}" text-anchor="middle">{d.isoformat()}</text>')
    out.append(f'<line x1="{plot_left}" y1="{plot_top:.1f}" x2="{plot_left}" y2="{plot_bottom:.1f}" stroke="#444444"/>')
    out.append(f'<line x1="{plot_left}" y1="{plot_bottom:.1f}" x2="{plot_right}" y2="{plot_bottom:.1f}" '
               f'stroke="#444444"/>')

    # a step after each day: cumulative P&L holds until the next realized sale
    for label, pts, color, dash, width in reversed(lines):
        if not pts:
            continue
        coords = []
        for i, (d, v) in enumerate(pts):
            if i:
                coords.append(f"{x(d):.1f},{y(pts[i - 1][1]):.1f}")
            coords.append(f"{x(d):.1f},{y(v):.1f}")
        if len(pts) == 1:
            out.append(f'<circle cx="{x(pts[0][0]):.1f}" cy="{y(pts[0][1]):.1f}" r="3" fill="{color}"/>')
        dash_attr = f' stroke-dasharray="{dash}"' if dash else ""
        out.append(f'<polyline fill="none" stroke="{color}" stroke-width="{width}"{dash_attr} '
                   f'points="{" ".join(coords)}"><title>{escape(label)}</title></polyline>')

    ly = plot_top + 6
    for label, pts, color, dash, width in lines:
        if not pts:
            continue
        dash_attr = f' stroke-dasharray="{dash}"' if dash else ""
        out.append(f'<line x1="{plot_right + 15}" y1="{ly:.1f}" x2="{plot_right + 40}" y2="{ly:.1f}" '
                   f'stroke="{color}" stroke-width="{width}"{dash_attr}/>')
        out.append(f'<text x="{plot_right + 46}" y="{ly + 4:.1f}">{escape(label)} {_label(pts[-1][1], currency)}</text>')
        ly += 18
    if hidden:
        out.append(f'<text x="{plot_right + 15}" y="{ly + 4:.1f}" fill="#666666">+{len(hidden)} more symbols '
                   f'(in the total)</text>')


def pnl_chart(series: dict[str | None, dict[str | None, list[tuple[date, Decimal]]]], title: str,
              start: date | None = None, end: date | None = None) -> str:
    """An SVG: per currency, the total (key None) and the biggest symbols by |final cumulative P&L|."""
    currencies = sorted(series, key=lambda c: (c is None, c or ""))
    height = TITLE_SPACE + PANEL_HEIGHT * max(1, len(currencies))
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{height}" '
           f'viewBox="0 0 {WIDTH} {height}" font-family="sans-serif" font-size="12">',
           f'<title>{escape(title)}</title>',
           f'<rect width="{WIDTH}" height="{height}" fill="#ffffff"/>',
           f'<text x="{LEFT}" y="24" font-size="15" font-weight="bold">{escape(title)}</text>']
    if not currencies:
        out.append(f'<text x="{WIDTH / 2}" y="{height / 2}" text-anchor="middle">'
                   f'no realized P&amp;L in this range</text>')
    for i, currency in enumerate(currencies):
        _panel(out, TITLE_SPACE + i * PANEL_HEIGHT, currency, series[currency], start, end)
    out.append("</svg>")
    return "\n".join(out) + "\n"


_CSS = """body{font-family:sans-serif;margin:2em;color:#222;max-width:1200px}
table{border-collapse:collapse;margin:0 0 2em 0;font-size:13px}
th,td{padding:3px 8px;border-bottom:1px solid #ddd}th{background:#f3f3f3;text-align:left}
th.n{text-align:right}td.n{text-align:right;font-variant-numeric:tabular-nums}
tr.total td{font-weight:bold;border-top:2px solid #888}
.neg{color:#b00020}.pos{color:#0a6b2d}
.headline{display:flex;flex-wrap:wrap;gap:1em;margin:1em 0 1.5em 0}
.card{border:1px solid #ccc;border-radius:6px;padding:.6em 1em;min-width:11em}
.card .v{font-size:1.6em;font-weight:bold;font-variant-numeric:tabular-nums}.card .k{color:#555;font-size:.9em}"""

_NUMERIC = {"money", "qty", "price", "pct", "int"}


def _headline(totals: list[dict], years: list[dict], display) -> list[str]:
    """Per currency: realized P&L, fees paid, closed trades, win rate; then the same per year."""
    out = ['<section id="headline">']
    for t in totals:
        cur = escape(t["currency"] or "?")
        pnl = t["pnl_amount"]
        tone = "neg" if pnl < 0 else "pos"
        out.append(f'<div class="headline" data-currency="{cur}">')
        out.append(f'<div class="card"><div class="k">Realized P&amp;L ({cur})</div>'
                   f'<div class="v {tone}">{escape(display(pnl, "money", t["currency"]))}</div></div>')
        out.append(f'<div class="card"><div class="k">Fees paid ({cur})</div>'
                   f'<div class="v">{escape(display(t["fees_paid"], "money", t["currency"]))}</div>'
                   f'<div class="k">{escape(display(t["realized_fees"], "money", t["currency"]))} of them in realized '
                   f'P&amp;L</div></div>')
        out.append(f'<div class="card"><div class="k">Closed trades</div><div class="v">{t["trades"]:,}</div>'
                   f'<div class="k">{t["sells"]:,} sells, {t["buys"]:,} buys</div></div>')
        rate = display(t["win_rate"], "pct") or "-"
        out.append(f'<div class="card"><div class="k">Win rate</div><div class="v">{escape(rate)}</div>'
                   f'<div class="k">{t["wins"]:,} wins, {t["losses"]:,} losses</div></div>')
        out.append("</div>")
    if years:
        cols = (("year", "year"), ("currency", "text"), ("pnl_amount", "money"), ("fees_paid", "money"),
                ("trades", "int"), ("win_rate", "pct"), ("sells", "int"), ("buys", "int"))
        heads = ("Year", "Currency", "Realized P&amp;L", "Fees paid", "Closed trades", "Win rate", "Sells", "Buys")
        out.append('<table class="years"><thead><tr>' + "".join(
            f'<th{" class=n" if k in _NUMERIC else ""}>{h}</th>' for h, (_, k) in zip(heads, cols))
            + "</tr></thead><tbody>")
        for r in years:
            out.append("<tr>" + "".join(_cell(r.get(c), k, display, r.get("currency")) for c, k in cols) + "</tr>")
        out.append("</tbody></table>")
    out.append("</section>")
    return out


def html_report(title: str, svg: str, totals: list[dict], years: list[dict], sections, display,
                titles: dict, warnings=()) -> str:
    """One page: the headline, the chart, then each (title, columns, rows, totals) section as a table."""
    now = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    out = ["<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
           f"<title>fifo-db report</title><style>{_CSS}</style></head><body>",
           "<h1>fifo-db report</h1>",
           f"<p>{escape(title)}. Generated {now}. Every amount is in the quote currency of its symbol "
           f"(BTC-USD: USD) and totals never add currencies. Amounts are rounded for reading (to the cent; "
           f"8 decimals for quotes such as BTC); the views hold the exact values.</p>"]
    # what report.check_scope found partial or stale, and the command that fixes it
    out += [f'<p class="warning" style="color:#a00;font-weight:bold">{escape(w)}</p>' for w in warnings]
    out += _headline(totals, years, display)
    out.append(svg)
    for heading, columns, rows, section_totals in sections:
        out.append(f"<h2>{escape(heading)}</h2>")
        if not rows:
            out.append("<p>(no rows)</p>")
            continue
        out.append("<table><thead><tr>" + "".join(
            f'<th{" class=n" if k in _NUMERIC else ""}>{escape(titles.get(c, c))}</th>' for c, k in columns)
            + "</tr></thead><tbody>")
        for r in rows:
            out.append("<tr>" + "".join(_cell(r.get(c), k, display, r.get("currency")) for c, k in columns)
                       + "</tr>")
        for total in section_totals or []:
            cells = [_cell(total.get(c), k, display, total.get("currency")) if c in total else "<td></td>"
                     for c, k in columns]
            cells[0] = "<td>TOTAL</td>"
            out.append('<tr class="total">' + "".join(cells) + "</tr>")
        out.append("</tbody></table>")
    out.append("</body></html>")
    return "\n".join(out) + "\n"


def _cell(value, kind: str, display, currency: str | None = None) -> str:
    text = escape(display(value, kind, currency))
    classes = []
    if kind in _NUMERIC:
        classes.append("n")
    if kind == "money" and isinstance(value, Decimal) and value < 0:
        classes.append("neg")
    cls = f' class="{" ".join(classes)}"' if classes else ""
    return f"<td{cls}>{text}</td>"
