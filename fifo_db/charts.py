"""The cumulative realized P&L chart (hand-written SVG) and the one-page HTML report.

No plotting dependency: a line chart is a few polylines, two axes and a
legend. Values arrive as exact Decimals; only pixel positions are floats.

One panel per quote currency (P&L in USD and in BTC never share an axis),
all panels on one date axis: the range [--from, --to), else from the first
to the day after the last sale, widened to at least a week when no bound
says otherwise, with 5 to 8 date labels. Every line (the currency's total and
each symbol) starts at 0 at the left edge, steps in the middle of each day
with sales and is carried at its final value to the right edge; symbols are drawn above the
total. The value axis spans the data plus 5% and carries 3 to 7 round ticks.
When the total (or one symbol) dwarfs the rest, so that a symbol's swing is
under a fifth of the largest, those smaller symbols get a second panel of the
same currency on their own scale instead of a blob at 0. A symbol's colour and
dash come from a hash of its name, so it keeps them in every chart (unless a
bigger symbol of the same currency already has them: then the next free style).
"""

from __future__ import annotations

import re
import zlib
from calendar import monthrange
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal
from html import escape

WIDTH = 960
PANEL_HEIGHT = 380
LEFT, RIGHT = 100, 230          # plot margins: value labels left, legend right
TITLE_SPACE = 40                # the chart title above the first panel
PANEL_TOP, PANEL_BOTTOM = 30, 50  # inside a panel: its heading above the plot, date labels below
MAX_SYMBOLS = 8  # named lines per currency besides the total; the rest are in the total only (the legend counts them)
MIN_DAYS = 7     # the shortest date axis when --from/--to do not fix it
PAD = Decimal("0.05")  # the value axis spans the data plus this share of its span on each side
DWARF = 5        # a symbol whose swing is under 1/DWARF of the largest line's goes to the second panel
PALETTE = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#17becf",
           "#bcbd22", "#7f7f7f")
DASHES = ("", "6,3", "2,2")
STYLES = len(PALETTE) * len(DASHES)


def _style(i: int) -> tuple[str, str]:
    return PALETTE[i % len(PALETTE)], DASHES[(i // len(PALETTE)) % len(DASHES)]


def symbol_style(symbol: str) -> tuple[str, str]:
    """(colour, dash pattern) of a symbol: the same in every chart (a hash of its name)."""
    return _style(zlib.crc32(symbol.encode("utf-8")) % STYLES)


def symbol_styles(symbols: list[str]) -> dict[str, tuple[str, str]]:
    """The style of each symbol of one currency, in order of importance: its own (symbol_style),
    unless a symbol before it already has that style; then the next free one, so no two lines of
    a currency look alike."""
    taken: set[int] = set()
    out = {}
    for s in symbols:
        i = zlib.crc32(s.encode("utf-8")) % STYLES
        while i in taken and len(taken) < STYLES:
            i = (i + 1) % STYLES
        taken.add(i)
        out[s] = _style(i)
    return out


# --- the value axis --------------------------------------------------------------------------------

def value_axis(lo: Decimal, hi: Decimal, max_ticks: int = 7) -> tuple[Decimal, Decimal, list[Decimal]]:
    """(bottom, top, ticks) of a value axis showing [lo, hi].

    The axis is the data plus PAD of its span on each side (a flat line at 0 gets +-1), so it hugs
    the data; the ticks are the multiples of the finest round step (1, 2, 2.5 or 5 times a power of
    ten) of which at most max_ticks fall inside it. Every tick is inside the axis, so no tick is
    more than one step beyond the data.
    """
    if hi < lo:
        lo, hi = hi, lo
    span = hi - lo
    pad = span * PAD if span else (abs(hi) / 2 or Decimal(1))
    bottom, top = lo - pad, hi + pad
    mag = Decimal(10) ** ((top - bottom) / max_ticks).adjusted()
    for step in (m * mag for m in (Decimal(1), Decimal(2), Decimal("2.5"), Decimal(5), Decimal(10), Decimal(20))):
        first = (bottom / step).to_integral_value(rounding=ROUND_CEILING)
        last = (top / step).to_integral_value(rounding=ROUND_FLOOR)
        if last - first + 1 <= max_ticks:
            break
    return bottom, top, [(first + i) * step for i in range(int(last - first) + 1)]


def tick_label(value: Decimal, ticks: list[Decimal]) -> str:
    """A tick value with thousands separators and as many decimals as the step needs (2,500; 0.005)."""
    places = max([0] + [-t.normalize().as_tuple().exponent for t in ticks if t])
    text = f"{value:,.{places}f}"
    return "0" if text.lstrip("-").strip("0.,") == "" else text


# --- the date axis ---------------------------------------------------------------------------------

def date_range(days: list[date], start: date | None, end: date | None, today: date | None = None) -> tuple[date, date]:
    """[first, stop) of the date axis: stop is the day after the last one shown.

    start/end: the first and last day of the report's range (--from, --to minus an instant), when given.
    Otherwise the first and last day with a sale. A range under MIN_DAYS days is widened on the sides
    no bound fixes (after the last sale only up to today), so a single sale is a step, not a dot.
    """
    first = start or (min(days) if days else end or today or date.today())
    last = end or (max(days) if days else first)
    last = max(last, first)
    short = MIN_DAYS - ((last - first).days + 1)
    if short > 0:
        room = max(0, ((today or date.today()) - last).days) if end is None else 0
        if start is None:
            after = min(short // 2, room)
            first, last = first - timedelta(days=short - after), last + timedelta(days=after)
        else:
            last += timedelta(days=min(short, room))
    return first, last + timedelta(days=1)


def _add_months(d: date, months: int) -> date:
    m = d.month - 1 + months
    y, m = d.year + m // 12, m % 12 + 1
    return date(y, m, min(d.day, monthrange(y, m)[1]))


def date_ticks(first: date, stop: date) -> list[tuple[float, str]]:
    """5 to 8 labels on the date axis [first, stop]: (days after first, text), both ends included.

    Every n days, or month starts every n months for long spans; an inner label closer than 12% of
    the axis (about one label's width) to an end is dropped. Under 4 days: hours (every 4, 8, 12).
    """
    span = (stop - first).days
    if span < 4:
        hours = (4, 8, 12)[span - 1] if span >= 1 else 4
        out = []
        for h in range(0, max(span, 1) * 24 + 1, hours):
            t = datetime.combine(first, datetime.min.time()) + timedelta(hours=h)
            out.append((h / 24, t.date().isoformat() if t.hour == 0 else t.strftime("%H:%M")))
        return out
    near = span * 0.12
    candidates: list[tuple[float, list[date]]] = []   # (spacing in days, inner labels)
    for days in (1, 2, 3, 4, 5, 7, 10, 14, 21):
        if days >= near or span < 2 * days:
            candidates.append((days, [first + timedelta(days=i) for i in range(days, span, days)]))
    for months in (1, 2, 3, 4, 6, 12, 24, 36, 60, 120, 240):
        if 28 * months < near:
            continue
        t, inner = date(first.year, first.month, 1), []
        while t <= first or (t.year * 12 + t.month - 1) % months:
            t = _add_months(t, 1)
        while t < stop:
            inner.append(t)
            t = _add_months(t, months)
        candidates.append((28 * months, inner))
    best: list[date] = [first, stop]
    for spacing, inner in candidates:
        if spacing < near and len(inner) > 1:
            continue   # labels would overlap
        ticks = [first] + [t for t in inner if (t - first).days >= near and (stop - t).days >= near] + [stop]
        if 5 <= len(ticks) <= 8:
            best = ticks
            break
    if len(best) < 5:   # no round step fits: evenly spaced days
        best = sorted({first + timedelta(days=round(span * i / 6)) for i in range(7)})
    return [((t - first).days, t.isoformat()) for t in best]


# --- the panels ------------------------------------------------------------------------------------

@dataclass
class Line:
    label: str
    points: list[tuple[date, Decimal]]   # (day, cumulative P&L after that day), days with sales only
    color: str
    dash: str = ""
    width: float = 1.6
    total: bool = False

    @property
    def final(self) -> Decimal:
        return self.points[-1][1] if self.points else Decimal(0)

    @property
    def swing(self) -> Decimal:
        """The largest |value| on the line, its start at 0 included."""
        return max([abs(v) for _, v in self.points] + [Decimal(0)])


def plan_panels(currency: str | None, series: dict) -> list[tuple[str, list[Line], str]]:
    """(heading, lines, legend note) of each panel of one currency.

    The total first, then at most MAX_SYMBOLS symbols by |final P&L|, listed by final P&L (highest
    first, as their line ends stack). Symbols whose swing is under 1/DWARF of the largest line's
    (the total's or a dominant symbol's) move to a second panel with its own value axis, so they
    are lines, not a blob at 0.
    """
    name = currency or "?"
    symbols = sorted((k for k in series if k is not None), key=lambda k: (-abs(series[k][-1][1]), k))
    named, hidden = symbols[:MAX_SYMBOLS], len(symbols) - min(len(symbols), MAX_SYMBOLS)
    more = f"+{hidden:,} more symbol{'s' if hidden > 1 else ''} (in the total)" if hidden else ""
    total = Line(f"total {name}", series.get(None, []), "#000000", "", 3.0, True)
    styles = symbol_styles(named)
    lines = sorted((Line(s, series[s], *styles[s]) for s in named), key=lambda line: -line.final)
    largest = max([total.swing] + [line.swing for line in lines])
    big = [line for line in lines if line.swing * DWARF >= largest]
    small = [line for line in lines if line.swing * DWARF < largest]
    heading = f"Cumulative realized P&L in {name}"
    if not small or not largest:
        return [(heading, [total] + lines, more)]
    n = f"{len(small)} smaller symbol{'s' if len(small) > 1 else ''}"
    own = "their own scale (each" if len(small) > 1 else "its own scale ("
    return [(heading + (", largest symbols" if big else ""), [total] + big, f"{n}: the panel below"),
            (f"{heading}: {n} on {own} under 1/{DWARF} of the largest line)", small, more)]


def _path(points: list[tuple[date, Decimal]], first: date, stop: date) -> list[tuple[float, Decimal]]:
    """The step line of one series: 0 at the left edge, a step in the middle of each day with sales
    (the curve is per day: the sales happened during it), its final value carried to the right edge.
    (days after first, value) pairs."""
    span = (stop - first).days
    out: list[tuple[float, Decimal]] = [(0.0, Decimal(0))]
    for d, v in points:
        at = min(max((d - first).days, 0), span - 1) + 0.5
        out += [(at, out[-1][1]), (at, v)]
    out.append((float(span), out[-1][1]))
    return [p for i, p in enumerate(out) if i == 0 or p != out[i - 1]]


def _panel(out: list[str], top: float, heading: str, currency: str | None, lines: list[Line], note: str,
           first: date, stop: date) -> None:
    """One plot: grid, axes, lines (the total below the symbols) and legend, in the band starting at y = top."""
    name = currency or "?"
    plot_top, plot_bottom = top + PANEL_TOP, top + PANEL_HEIGHT - PANEL_BOTTOM
    plot_left, plot_right = LEFT, WIDTH - RIGHT
    out.append(f'<text x="{plot_left}" y="{top + 18:.1f}" font-size="13" font-weight="bold">{escape(heading)}</text>')
    paths = [_path(line.points, first, stop) for line in lines]
    values = [v for p in paths for _, v in p]
    v0, v1, ticks = value_axis(min(values), max(values))
    span = (stop - first).days
    out.append(f'<rect class="plot" x="{plot_left}" y="{plot_top:.1f}" width="{plot_right - plot_left}" '
               f'height="{plot_bottom - plot_top:.1f}" fill="#ffffff" stroke="none"/>')

    def x(days: float) -> float:
        return plot_left + (plot_right - plot_left) * days / span

    def y(v: Decimal) -> float:
        return plot_bottom - (plot_bottom - plot_top) * float((v - v0) / (v1 - v0))

    for t in ticks:
        out.append(f'<line x1="{plot_left}" y1="{y(t):.1f}" x2="{plot_right}" y2="{y(t):.1f}" '
                   f'stroke="{"#888888" if t == 0 else "#e5e5e5"}" stroke-width="1"/>')
        out.append(f'<text class="value" x="{plot_left - 8}" y="{y(t) + 4:.1f}" text-anchor="end">'
                   f'{tick_label(t, ticks)}</text>')
    out.append(f'<text transform="translate(18 {(plot_top + plot_bottom) / 2:.1f}) rotate(-90)" '
               f'text-anchor="middle">P&amp;L ({escape(name)})</text>')
    for at, text in date_ticks(first, stop):
        out.append(f'<line x1="{x(at):.1f}" y1="{plot_bottom:.1f}" x2="{x(at):.1f}" y2="{plot_bottom + 5:.1f}" '
                   f'stroke="#444444"/>')
        out.append(f'<text class="date" x="{x(at):.1f}" y="{plot_bottom + 19:.1f}" text-anchor="middle">'
                   f'{text}</text>')
    out.append(f'<line x1="{plot_left}" y1="{plot_top:.1f}" x2="{plot_left}" y2="{plot_bottom:.1f}" stroke="#444444"/>')
    out.append(f'<line x1="{plot_left}" y1="{plot_bottom:.1f}" x2="{plot_right}" y2="{plot_bottom:.1f}" '
               f'stroke="#444444"/>')

    # the total first, so every symbol is drawn above it; among symbols the largest |P&L| last (on top)
    order = sorted(zip(lines, paths), key=lambda lp: (not lp[0].total, abs(lp[0].final)))
    for line, path in order:
        dash_attr = f' stroke-dasharray="{line.dash}"' if line.dash else ""
        coords = " ".join(f"{x(d):.1f},{y(v):.1f}" for d, v in path)
        out.append(f'<polyline fill="none" stroke="{line.color}" stroke-width="{line.width}"{dash_attr} '
                   f'stroke-linejoin="round" points="{coords}"><title>{escape(line.label)}</title></polyline>')

    ly = plot_top + 6
    for line in lines:
        dash_attr = f' stroke-dasharray="{line.dash}"' if line.dash else ""
        out.append(f'<line x1="{plot_right + 15}" y1="{ly:.1f}" x2="{plot_right + 40}" y2="{ly:.1f}" '
                   f'stroke="{line.color}" stroke-width="{line.width}"{dash_attr}/>')
        out.append(f'<text class="legend" x="{plot_right + 46}" y="{ly + 4:.1f}">{escape(line.label)} '
                   f'{_label(line.final, currency)}</text>')
        ly += 18
    if note:
        out.append(f'<text x="{plot_right + 15}" y="{ly + 4:.1f}" fill="#666666">{escape(note)}</text>')


def _label(value: Decimal, currency: str | None = None) -> str:
    from fifo_db.report import money

    return money(value, currency or "USD")


def pnl_chart(series: dict[str | None, dict[str | None, list[tuple[date, Decimal]]]], title: str,
              start: date | None = None, end: date | None = None, today: date | None = None) -> str:
    """An SVG: per currency, the total (key None) and the biggest symbols by |final cumulative P&L|.

    start/end: the first and last day of the report's range, when --from/--to give them.
    """
    currencies = sorted(series, key=lambda c: (c is None, c or ""))
    panels = [(c, *p) for c in currencies for p in plan_panels(c, series[c])]
    days = [d for per in series.values() for pts in per.values() for d, _ in pts]
    first, stop = date_range(days, start, end, today)
    height = TITLE_SPACE + PANEL_HEIGHT * max(1, len(panels))
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{height}" '
           f'viewBox="0 0 {WIDTH} {height}" font-family="sans-serif" font-size="12">',
           f'<title>{escape(title)}</title>',
           f'<rect width="{WIDTH}" height="{height}" fill="#ffffff"/>',
           f'<text x="{LEFT}" y="24" font-size="15" font-weight="bold">{escape(title)}</text>']
    if not panels:
        out.append(f'<text x="{WIDTH / 2}" y="{height / 2}" text-anchor="middle">'
                   f'no realized P&amp;L in this range</text>')
    for i, (currency, heading, lines, note) in enumerate(panels):
        _panel(out, TITLE_SPACE + i * PANEL_HEIGHT, heading, currency, lines, note, first, stop)
    out.append("</svg>")
    return "\n".join(out) + "\n"


_CSS = """body{font-family:sans-serif;margin:2em;color:#222;max-width:1200px}
table{border-collapse:collapse;margin:0 0 2em 0;font-size:13px}
th,td{padding:3px 8px;border-bottom:1px solid #ddd;white-space:nowrap;vertical-align:top}
th{background:#f3f3f3;text-align:left}td.wrap{white-space:normal;min-width:24em}.nb{white-space:nowrap}
.scroll{overflow-x:auto;max-width:100%}
th.n{text-align:right}td.n{text-align:right;font-variant-numeric:tabular-nums}
tr.total td{font-weight:bold;border-top:2px solid #888}
.neg{color:#b00020}.pos{color:#0a6b2d}
.headline{display:flex;flex-wrap:wrap;gap:1em;margin:1em 0 1.5em 0}
.card{border:1px solid #ccc;border-radius:6px;padding:.6em 1em;min-width:11em}
.card .v{font-size:1.6em;font-weight:bold;font-variant-numeric:tabular-nums}.card .k{color:#555;font-size:.9em}"""

_NUMERIC = {"money", "qty", "price", "pct", "int"}
_WRAP = {"reason"}   # sentences may wrap; every other cell (times, symbols, numbers) stays on one line


def _count(n: int, one: str, many: str | None = None) -> str:
    """1 sell, 2 sells, 1,001 sells, 1 loss, 0 losses."""
    return f"{n:,} {one if n == 1 else many or one + 's'}"


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
                   f'<div class="k">{_count(t["sells"], "sell")}, {_count(t["buys"], "buy")}</div></div>')
        rate = display(t["win_rate"], "pct") or "-"
        out.append(f'<div class="card"><div class="k">Win rate</div><div class="v">{escape(rate)}</div>'
                   f'<div class="k">{_count(t["wins"], "win")}, {_count(t["losses"], "loss", "losses")}</div></div>')
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
        out.append('<div class="scroll"><table><thead><tr>' + "".join(
            f'<th{" class=n" if k in _NUMERIC else ""}>{escape(titles.get(c, c))}</th>' for c, k in columns)
            + "</tr></thead><tbody>")
        for r in rows:
            out.append("<tr>" + "".join(_cell(r.get(c), k, display, r.get("currency"), c in _WRAP)
                                        for c, k in columns) + "</tr>")
        for total in section_totals or []:
            cells = [_cell(total.get(c), k, display, total.get("currency")) if c in total else "<td></td>"
                     for c, k in columns]
            cells[0] = "<td>TOTAL</td>"
            out.append('<tr class="total">' + "".join(cells) + "</tr>")
        out.append("</tbody></table></div>")
    out.append("</body></html>")
    return "\n".join(out) + "\n"


def grouped(text: str) -> str:
    """Thousands separators in a plain number's integer part: 1822 -> 1,822, 61305.5 -> 61,305.5."""
    sign, body = ("-", text[1:]) if text.startswith("-") else ("", text)
    whole, dot, frac = body.partition(".")
    if not whole.isdigit():
        return text      # already grouped, or not a plain number
    return f"{sign}{int(whole):,}{dot}{frac}"


def _cell(value, kind: str, display, currency: str | None = None, wrap: bool = False) -> str:
    text = display(value, kind, currency)
    if kind in ("int", "qty", "price"):
        text = grouped(text)
    text = escape(text)
    if wrap:   # a sentence may wrap between words, never inside an id, time or symbol (SYN0101-USD-7-0000002)
        text = re.sub(r"\S*[-:]\S*", lambda m: f'<span class="nb">{m.group(0)}</span>', text)
    classes = []
    if kind in _NUMERIC:
        classes.append("n")
    if wrap:
        classes.append("wrap")
    if kind == "money" and isinstance(value, Decimal) and value < 0:
        classes.append("neg")
    cls = f' class="{" ".join(classes)}"' if classes else ""
    return f"<td{cls}>{text}</td>"
