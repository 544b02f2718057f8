"""The cumulative realized P&L chart (hand-written SVG) and the one-page HTML report.

No plotting dependency: a line chart is a few polylines, two axes and a
legend. Values arrive as exact Decimals; only pixel positions are floats.
"""

from __future__ import annotations

from datetime import date, datetime, timezone
from decimal import ROUND_HALF_UP, Decimal
from html import escape

WIDTH, HEIGHT = 900, 420
LEFT, RIGHT, TOP, BOTTOM = 90, 190, 40, 50
MAX_SYMBOLS = 8  # lines besides the total; the rest are left out (named in the legend)
PALETTE = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#17becf")


def _ticks(lo: Decimal, hi: Decimal, n: int = 5) -> list[Decimal]:
    """About n round tick values covering [lo, hi]."""
    span = hi - lo
    if span <= 0:
        span = abs(hi) or Decimal(1)
    raw = span / n
    mag = Decimal(10) ** raw.adjusted()
    step = next(m * mag for m in (1, 2, 5, 10) if m * mag >= raw)
    first = (lo / step).to_integral_value(rounding="ROUND_FLOOR") * step
    ticks, t = [], first
    while t <= hi + step / 2:
        ticks.append(t)
        t += step
    return ticks


def _label(value: Decimal) -> str:
    return f"{value.quantize(Decimal('0.01'), rounding=ROUND_HALF_UP):,.2f}"


def pnl_chart(series: dict[str | None, list[tuple[date, Decimal]]], title: str) -> str:
    """An SVG line chart: the total (key None) and the biggest symbols by |final cumulative P&L|."""
    total = series.get(None, [])
    symbols = sorted((k for k in series if k is not None), key=lambda k: (-abs(series[k][-1][1]), k))
    shown, hidden = symbols[:MAX_SYMBOLS], symbols[MAX_SYMBOLS:]
    lines = [("total", total, "#000000", 2.5)] + [
        (s, series[s], PALETTE[i % len(PALETTE)], 1.3) for i, s in enumerate(shown)]

    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" '
           f'viewBox="0 0 {WIDTH} {HEIGHT}" font-family="sans-serif" font-size="12">',
           f'<title>{escape(title)}</title>',
           f'<rect width="{WIDTH}" height="{HEIGHT}" fill="#ffffff"/>',
           f'<text x="{LEFT}" y="22" font-size="15" font-weight="bold">{escape(title)}</text>']
    points = [p for _, pts, _, _ in lines for p in pts]
    if not points:
        out.append(f'<text x="{WIDTH / 2}" y="{HEIGHT / 2}" text-anchor="middle">no realized P&amp;L in this range</text>')
        out.append("</svg>")
        return "\n".join(out) + "\n"

    days = [p[0] for p in points]
    d0, d1 = min(days), max(days)
    values = [p[1] for p in points] + [Decimal(0)]
    ticks = _ticks(min(values), max(values))
    v0, v1 = ticks[0], ticks[-1]
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM

    def x(d: date) -> float:
        span = (d1 - d0).days or 1
        return LEFT + plot_w * ((d - d0).days / span if d1 != d0 else 0.5)

    def y(v: Decimal) -> float:
        return TOP + plot_h * float((v1 - v) / (v1 - v0 or 1))

    # grid and value axis
    for t in ticks:
        out.append(f'<line x1="{LEFT}" y1="{y(t):.1f}" x2="{LEFT + plot_w}" y2="{y(t):.1f}" '
                   f'stroke="{"#888888" if t == 0 else "#e5e5e5"}" stroke-width="1"/>')
        out.append(f'<text x="{LEFT - 8}" y="{y(t) + 4:.1f}" text-anchor="end">{_label(t)}</text>')
    # date axis: first, middle, last day
    for d in sorted({d0, d0 + (d1 - d0) / 2, d1}):
        out.append(f'<text x="{x(d):.1f}" y="{TOP + plot_h + 20}" text-anchor="middle">{d.isoformat()}</text>')
    out.append(f'<line x1="{LEFT}" y1="{TOP}" x2="{LEFT}" y2="{TOP + plot_h}" stroke="#444444"/>')
    out.append(f'<line x1="{LEFT}" y1="{TOP + plot_h}" x2="{LEFT + plot_w}" y2="{TOP + plot_h}" stroke="#444444"/>')

    # lines (a step after each day: cumulative P&L holds until the next realized sale)
    for name, pts, color, width in reversed(lines):
        if not pts:
            continue
        coords = []
        for i, (d, v) in enumerate(pts):
            if i:
                coords.append(f"{x(d):.1f},{y(pts[i - 1][1]):.1f}")
            coords.append(f"{x(d):.1f},{y(v):.1f}")
        if len(pts) == 1:
            out.append(f'<circle cx="{x(pts[0][0]):.1f}" cy="{y(pts[0][1]):.1f}" r="3" fill="{color}"/>')
        out.append(f'<polyline fill="none" stroke="{color}" stroke-width="{width}" '
                   f'points="{" ".join(coords)}"><title>{escape(name)}</title></polyline>')

    # legend with final values
    ly = TOP
    for name, pts, color, width in lines:
        if not pts:
            continue
        out.append(f'<line x1="{WIDTH - RIGHT + 15}" y1="{ly}" x2="{WIDTH - RIGHT + 35}" y2="{ly}" '
                   f'stroke="{color}" stroke-width="{width}"/>')
        out.append(f'<text x="{WIDTH - RIGHT + 40}" y="{ly + 4}">{escape(name)} {_label(pts[-1][1])}</text>')
        ly += 18
    if hidden:
        out.append(f'<text x="{WIDTH - RIGHT + 15}" y="{ly + 4}" fill="#666666">+{len(hidden)} more symbols '
                   f'(in total)</text>')
    out.append("</svg>")
    return "\n".join(out) + "\n"


_CSS = """body{font-family:sans-serif;margin:2em;color:#222}
table{border-collapse:collapse;margin:0 0 2em 0;font-size:13px}
th,td{padding:3px 8px;border-bottom:1px solid #ddd}th{background:#f3f3f3;text-align:left}
td.n{text-align:right;font-variant-numeric:tabular-nums}tr.total td{font-weight:bold;border-top:2px solid #888}
.neg{color:#b00020}"""

_NUMERIC = {"money", "qty", "price", "pct", "int"}


def html_report(title: str, svg: str, sections, display) -> str:
    """One page: the chart, then each (title, columns, rows, total) section as a table."""
    now = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    out = ["<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
           f"<title>fifo-db report</title><style>{_CSS}</style></head><body>",
           "<h1>fifo-db report</h1>", f"<p>{escape(title)}. Generated {now}. Amounts rounded to cents for "
           "reading; the views hold the exact values.</p>", svg]
    for heading, columns, rows, total in sections:
        out.append(f"<h2>{escape(heading)}</h2>")
        if not rows:
            out.append("<p>(no rows)</p>")
            continue
        out.append("<table><thead><tr>" + "".join(f"<th>{escape(c)}</th>" for c, _ in columns) + "</tr></thead><tbody>")
        for r in rows:
            out.append("<tr>" + "".join(_cell(r.get(c), k, display) for c, k in columns) + "</tr>")
        if total:
            cells = [_cell(total.get(c), k, display) if c in total else "<td></td>" for c, k in columns]
            cells[0] = "<td>TOTAL</td>"
            out.append('<tr class="total">' + "".join(cells) + "</tr>")
        out.append("</tbody></table>")
    out.append("</body></html>")
    return "\n".join(out) + "\n"


def _cell(value, kind: str, display) -> str:
    text = escape(display(value, kind))
    classes = []
    if kind in _NUMERIC:
        classes.append("n")
    if kind == "money" and isinstance(value, Decimal) and value < 0:
        classes.append("neg")
    cls = f' class="{" ".join(classes)}"' if classes else ""
    return f"<td{cls}>{text}</td>"
