"""Reports: `fifo-db report pnl|trades|daily|lots|positions|unmatched|tax`.

The numbers, filters included, come from the report functions in sql/2xx
(fifo_pnl_by_symbol(symbol, from, to), ...); this module only formats them.
Tables round for display (money to cents, quantities and prices to 8
decimals); csv and json carry the exact numerics. `tax` writes Form 8949
rows as CSV rounded to cents, the way tax software imports them.
"""

from __future__ import annotations

import csv
import io
import json
import sys
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path

import psycopg
from psycopg import sql
from psycopg.rows import dict_row

from fifo_db.errors import FifoError, from_db_error


@dataclass(frozen=True)
class Kind:
    function: str
    columns: tuple[tuple[str, str], ...]  # (column, display type)
    order: str
    total: bool = False        # add the fifo_pnl_summary row
    as_of: bool = False        # (symbol, as_of) instead of (symbol, from, to)
    title: str = ""


_MEASURES = (("sells", "int"), ("trades", "int"), ("wins", "int"), ("losses", "int"), ("win_rate", "pct"),
             ("volume", "money"), ("fees", "money"), ("unmatched_size", "qty"), ("pnl_amount", "money"))

KINDS = {
    "pnl": Kind("fifo_pnl_by_symbol", (("symbol", "text"),) + _MEASURES, "symbol", total=True,
                title="Realized P&L by symbol"),
    "trades": Kind("fifo_trade_pnl", (
        ("order_time", "time"), ("symbol", "text"), ("order_id", "text"), ("size", "qty"), ("price", "price"),
        ("matched_size", "qty"), ("unmatched_size", "qty"), ("cost_basis", "money"), ("sale_proceeds", "money"),
        ("pnl_amount", "money"), ("longest_holding", "interval"), ("status", "text")),
        "order_time, order_id", title="Realized P&L per sell"),
    "daily": Kind("fifo_pnl_by_day", (("day", "date"),) + _MEASURES + (("cumulative_pnl", "money"),), "day",
                  total=True, title="Realized P&L by day"),
    "lots": Kind("fifo_open_lots", (
        ("order_time", "time"), ("account", "text"), ("symbol", "text"), ("order_id", "text"), ("size", "qty"),
        ("price", "price"), ("remaining_size", "qty"), ("remaining_fees", "money"), ("remaining_cost", "money"),
        ("computed", "bool")), "symbol, account, order_time, order_id", title="Open lots"),
    "positions": Kind("fifo_positions", (
        ("account", "text"), ("symbol", "text"), ("lots", "int"), ("open_quantity", "qty"), ("open_cost", "money"),
        ("average_cost", "price"), ("first_lot_time", "time"), ("computed", "bool")),
        "symbol, account", as_of=True, title="Open positions"),
    "unmatched": Kind("fifo_unmatched_sells", (
        ("order_time", "time"), ("account", "text"), ("symbol", "text"), ("order_id", "text"), ("size", "qty"),
        ("unmatched_size", "qty"), ("unmatched_proceeds", "money"), ("reason", "text")),
        "order_time, order_id", title="Unmatched (oversold) sells"),
    "tax": Kind("fifo_tax_lots", (
        ("description", "text"), ("date_acquired", "date"), ("date_sold", "date"), ("proceeds", "money"),
        ("cost_basis", "money"), ("gain_or_loss", "money"), ("term", "text")),
        "sell_time, sell_trade_id, buy_time, buy_trade_id", title="Tax lots (Form 8949)"),
}

# Form 8949 columns (a)-(h), plus the part they belong on
TAX_HEADER = ("Description of property", "Date acquired", "Date sold or disposed of", "Proceeds",
              "Cost or other basis", "Code(s) from instructions", "Amount of adjustment", "Gain or (loss)",
              "Term")
CENT = Decimal("0.01")


@dataclass
class Bounds:
    symbol: str | None = None
    start: datetime | None = None
    end: datetime | None = None


# --- reading ---------------------------------------------------------------------------------------

def parse_bound(conn: psycopg.Connection, text: str | None) -> datetime | None:
    """--from/--to text through fifo_report_time() (dates are midnight in the report time zone)."""
    if text is None:
        return None
    try:
        return conn.execute("SELECT fifo_report_time(%s)", (text,)).fetchone()[0]
    except psycopg.Error as exc:
        raise from_db_error(exc) from None


def use_report_timezone(conn: psycopg.Connection) -> str:
    """Show times in the report time zone (setting report_timezone)."""
    try:
        tz = conn.execute("SELECT fifo._report_tz()").fetchone()[0]
        conn.execute("SELECT set_config('TimeZone', %s, false)", (tz,))
    except psycopg.Error as exc:
        raise from_db_error(exc) from None
    return tz


def _call(kind: Kind, bounds: Bounds):
    if kind.as_of:
        return sql.SQL("{}(%(symbol)s, %(end)s)").format(sql.Identifier(kind.function)), \
            {"symbol": bounds.symbol, "end": bounds.end}
    return sql.SQL("{}(%(symbol)s, %(start)s, %(end)s)").format(sql.Identifier(kind.function)), \
        {"symbol": bounds.symbol, "start": bounds.start, "end": bounds.end}


def fetch(conn: psycopg.Connection, name: str, bounds: Bounds, all_columns: bool = False) -> list[dict]:
    kind = KINDS[name]
    call, params = _call(kind, bounds)
    cols = sql.SQL("*") if all_columns else sql.SQL(", ").join(sql.Identifier(c) for c, _ in kind.columns)
    query = sql.SQL("SELECT {} FROM {} ORDER BY {}").format(cols, call, sql.SQL(kind.order))
    try:
        with conn.cursor(row_factory=dict_row) as cur:
            return cur.execute(query, params).fetchall()
    except psycopg.Error as exc:
        raise from_db_error(exc) from None


def fetch_total(conn: psycopg.Connection, bounds: Bounds) -> dict:
    with conn.cursor(row_factory=dict_row) as cur:
        return cur.execute("SELECT * FROM fifo_pnl_summary(%s, %s, %s)",
                           (bounds.symbol, bounds.start, bounds.end)).fetchone()


def fetch_curve(conn: psycopg.Connection, bounds: Bounds) -> dict[str | None, list[tuple[date, Decimal]]]:
    """Cumulative realized P&L per day: {None: total, symbol: ...}."""
    series: dict[str | None, list[tuple[date, Decimal]]] = {}
    rows = conn.execute("SELECT symbol, day, cumulative_pnl FROM fifo._pnl_curve(%s, %s, %s) "
                        "ORDER BY symbol NULLS FIRST, day", (bounds.symbol, bounds.start, bounds.end))
    for symbol, day, cum in rows:
        series.setdefault(symbol, []).append((day, cum))
    return series


# --- formatting ------------------------------------------------------------------------------------

def plain(value: Decimal) -> str:
    """An exact Decimal without exponent notation or trailing zeros."""
    text = format(value, "f")
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return "0" if text in ("-0", "") else text


def money(value: Decimal) -> str:
    return f"{value.quantize(CENT, rounding=ROUND_HALF_UP):,.2f}"


def interval(value: timedelta) -> str:
    days, rest = value.days, value.seconds
    hours, minutes = rest // 3600, rest % 3600 // 60
    return f"{days}d {hours:02d}:{minutes:02d}" if days else f"{hours:02d}:{minutes:02d}"


def display(value, kind: str) -> str:
    """A value as a table shows it (rounded for reading; storage never is)."""
    if value is None:
        return ""
    if kind == "money":
        return money(value)
    if kind in ("qty", "price"):
        return plain(value.quantize(Decimal("1e-8"), rounding=ROUND_HALF_UP))
    if kind == "pct":
        return f"{(value * 100).quantize(Decimal('0.1'), rounding=ROUND_HALF_UP)}%"
    if kind == "time":
        return value.strftime("%Y-%m-%d %H:%M")
    if kind == "interval":
        return interval(value)
    if kind == "bool":
        return "yes" if value else "no"
    return str(value)


def exact(value) -> str | None:
    """A value as csv/json carry it: exact decimals, ISO times."""
    if value is None:
        return None
    if isinstance(value, Decimal):
        return plain(value)
    if isinstance(value, (datetime, date)):
        return value.isoformat()
    if isinstance(value, timedelta):
        return str(value.total_seconds())
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def table(columns, rows: list[dict], total: dict | None = None) -> str:
    numeric = {"money", "qty", "price", "pct", "int"}
    head = [c for c, _ in columns]
    body = [[display(r.get(c), k) for c, k in columns] for r in rows]
    foot = [[display(total.get(c), k) if c in total else "" for c, k in columns]] if total else []
    if foot:
        foot[0][0] = "TOTAL"
    widths = [max(len(x) for x in col) for col in zip(head, *body, *foot)]

    def line(cells):
        return "  ".join(c.rjust(w) if k in numeric else c.ljust(w)
                         for c, w, (_, k) in zip(cells, widths, columns)).rstrip()

    out = [line(head), line(["-" * w for w in widths])]
    out += [line(r) for r in body]
    if foot:
        out += [line(["-" * w for w in widths]), line(foot[0])]
    if not rows:
        out.append("(no rows)")
    return "\n".join(out)


def to_csv(columns: list[str], rows: list[dict]) -> str:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(columns)
    for r in rows:
        w.writerow(["" if exact(r[c]) is None else exact(r[c]) for c in columns])
    return buf.getvalue()


def _json_value(value):
    """JSON keeps integers and booleans; decimals travel as exact strings."""
    if value is None or isinstance(value, (bool, int)):
        return value
    return exact(value)


def to_json(rows: list[dict]) -> str:
    return json.dumps([{k: _json_value(v) for k, v in r.items()} for r in rows], indent=2) + "\n"


def tax_csv(rows: list[dict]) -> str:
    """Form 8949 rows: dates MM/DD/YYYY, money rounded half-up to cents, gain = proceeds - cost as rounded."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(TAX_HEADER)
    for r in rows:
        proceeds = r["proceeds"].quantize(CENT, rounding=ROUND_HALF_UP)
        cost = r["cost_basis"].quantize(CENT, rounding=ROUND_HALF_UP)
        w.writerow([r["description"], r["date_acquired"].strftime("%m/%d/%Y"),
                    r["date_sold"].strftime("%m/%d/%Y"), f"{proceeds:.2f}", f"{cost:.2f}", "", "",
                    f"{proceeds - cost:.2f}", "Long-term" if r["term"] == "long" else "Short-term"])
    return buf.getvalue()


def render(conn: psycopg.Connection, name: str, bounds: Bounds, fmt: str) -> str:
    kind = KINDS[name]
    if name == "tax" and fmt == "csv":
        return tax_csv(fetch(conn, name, bounds))
    if fmt == "table":
        rows = fetch(conn, name, bounds)
        total = fetch_total(conn, bounds) if kind.total else None
        return table(kind.columns, rows, total) + "\n"
    rows = fetch(conn, name, bounds, all_columns=True)
    if fmt == "json":
        return to_json(rows)
    columns = list(rows[0].keys()) if rows else [c for c, _ in kind.columns]
    return to_csv(columns, rows)


# --- command ---------------------------------------------------------------------------------------

def register(sub) -> None:
    p = sub.add_parser("report", help="P&L, lots, positions, unmatched sells, tax lots; chart and HTML",
                       description="Print a report from the fifo_* report views (current version). "
                                   "--from/--to: dates are midnight in the report time zone; [from, to).")
    p.add_argument("kind", nargs="?", choices=list(KINDS),
                   help="pnl (by symbol), trades (per sell), daily, lots, positions, unmatched, tax (Form 8949 CSV)")
    p.add_argument("--symbol", help="only this symbol")
    p.add_argument("--from", dest="start", metavar="TIME", help="sells (lots: buys) at or after TIME")
    p.add_argument("--to", dest="end", metavar="TIME",
                   help="before TIME (lots and positions: as of TIME)")
    p.add_argument("--format", choices=("table", "csv", "json"),
                   help="table (rounded for reading; default), csv or json (exact); tax defaults to csv")
    p.add_argument("-o", "--output", type=Path, metavar="FILE", help="write the report to FILE, not stdout")
    p.add_argument("--chart", type=Path, metavar="FILE.svg", help="write a cumulative realized P&L chart (SVG)")
    p.add_argument("--html", type=Path, metavar="FILE.html", help="write an HTML report: tables and the chart")
    p.set_defaults(func=_cli_report)


def _cli_report(args, conn) -> int:
    if not (args.kind or args.chart or args.html):
        raise FifoError("report: give a report (pnl, trades, daily, lots, positions, unmatched, tax), "
                        "--chart FILE.svg or --html FILE.html")
    if args.kind == "positions" and args.start:
        raise FifoError("report positions: --from does not apply (positions are as of --to, default now)")
    tz = use_report_timezone(conn)
    bounds = Bounds(args.symbol, parse_bound(conn, args.start), parse_bound(conn, args.end))
    if args.kind:
        fmt = args.format or ("csv" if args.kind == "tax" else "table")
        text = render(conn, args.kind, bounds, fmt)
        if args.output:
            args.output.write_text(text, encoding="utf-8")
            print(f"wrote {KINDS[args.kind].title.lower()} to {args.output}", file=sys.stderr)
        else:
            sys.stdout.write(text)
        if args.kind == "tax":
            _warn_unmatched(conn, bounds)
    if args.chart or args.html:
        from fifo_db import charts

        curve = fetch_curve(conn, bounds)
        svg = charts.pnl_chart(curve, title=_title(bounds, tz))
        if args.chart:
            args.chart.write_text(svg, encoding="utf-8")
            print(f"wrote chart to {args.chart}", file=sys.stderr)
        if args.html:
            sections = []
            for name in ("pnl", "daily", "positions", "unmatched"):
                kind = KINDS[name]
                rows = fetch(conn, name, bounds if not kind.as_of else Bounds(bounds.symbol, None, bounds.end))
                sections.append((kind.title, kind.columns, rows,
                                 fetch_total(conn, bounds) if kind.total else None))
            args.html.write_text(charts.html_report(_title(bounds, tz), svg, sections, display), encoding="utf-8")
            print(f"wrote HTML report to {args.html}", file=sys.stderr)
    return 0


def _title(bounds: Bounds, tz: str) -> str:
    what = bounds.symbol or "all symbols"
    span = ""
    if bounds.start or bounds.end:
        a = bounds.start.strftime("%Y-%m-%d %H:%M") if bounds.start else "start"
        b = bounds.end.strftime("%Y-%m-%d %H:%M") if bounds.end else "now"
        span = f", {a} to {b}"
    return f"Cumulative realized P&L, {what}{span} ({tz})"


def _warn_unmatched(conn, bounds: Bounds) -> None:
    n = conn.execute("SELECT count(*) FROM fifo_unmatched_sells(%s, %s, %s)",
                     (bounds.symbol, bounds.start, bounds.end)).fetchone()[0]
    if n:
        print(f"warning: {n:,} oversold sell(s) in this range have no cost basis and are not in the tax lots; "
              f"see `fifo-db report unmatched`", file=sys.stderr)
