"""Reports: `fifo-db report pnl|trades|daily|monthly|yearly|lots|positions|unmatched|tax`.

The numbers, filters and rounding included, come from the report functions in
sql/2xx (fifo_pnl_by_symbol(symbol, from, to, round), ...); this module only
formats them. Every money figure is in the symbol's quote currency, shown beside
it, and totals are per currency, never across. One rounding rule (fifo._money,
docs/reports.md "Rounding"): tables, the HTML page and the tax rows ask SQL for
money rounded to each currency's precision (cents for USD, 8 decimals for BTC),
csv and json for the exact values or, with --round N, for N places but never
fewer than the currency's; SQL rounds each allocation's and trade's amounts once
and adds up the rounded figures, so every row, total and running sum adds up.
Rounded money keeps its scale in csv/json (3896.10, 0.00346000); exact values,
sizes and prices are written trimmed (4, never 4.00000000).

Every report says what it covers (a header line on tables, a line on stderr for
csv/json, the page title in HTML) and warns, on stderr or on the page, when the
pools it reads are not computed, stale, or have trades changed since computed.
"""

from __future__ import annotations

import io
import json
import os
import sys
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path

import psycopg
from psycopg import sql
from psycopg.rows import dict_row

from fifo_db.csvsafe import SafeWriter
from fifo_db.errors import FifoError, from_db_error


@dataclass(frozen=True)
class Kind:
    function: str
    columns: tuple[tuple[str, str], ...]  # (column, display type)
    order: str
    total: bool = False        # add the fifo_pnl_summary rows (one per currency)
    as_of: bool = False        # (symbol, as_of) instead of (symbol, from, to)
    title: str = ""


_MEASURES = (("sells", "int"), ("trades", "int"), ("wins", "int"), ("losses", "int"), ("win_rate", "pct"),
             ("sell_volume", "money"), ("realized_fees", "money"), ("fees_paid", "money"),
             ("unmatched_size", "qty"), ("pnl_amount", "money"))

KINDS = {
    "pnl": Kind("fifo_pnl_by_symbol", (("symbol", "text"), ("currency", "text")) + _MEASURES, "currency, symbol",
                total=True, title="Realized P&L by symbol"),
    "trades": Kind("fifo_trade_pnl", (
        ("order_time", "time"), ("symbol", "text"), ("currency", "text"), ("order_id", "text"), ("size", "qty"),
        ("price", "price"), ("matched_size", "qty"), ("unmatched_size", "qty"), ("cost_basis", "money"),
        ("sale_proceeds", "money"), ("pnl_amount", "money"), ("longest_holding", "interval"), ("status", "text")),
        "order_time, order_id", title="Realized P&L per sell"),
    "daily": Kind("fifo_pnl_by_day", (("day", "date"), ("currency", "text")) + _MEASURES
                  + (("cumulative_pnl", "money"),), "currency, day", total=True, title="Realized P&L by day"),
    "monthly": Kind("fifo_pnl_by_month", (("month", "month"), ("currency", "text")) + _MEASURES
                    + (("cumulative_pnl", "money"),), "currency, month", total=True, title="Realized P&L by month"),
    "yearly": Kind("fifo_pnl_by_year", (("year", "year"), ("currency", "text")) + _MEASURES, "currency, year",
                   total=True, title="Realized P&L by year"),
    "lots": Kind("fifo_open_lots", (
        ("order_time", "time"), ("account", "text"), ("symbol", "text"), ("currency", "text"), ("order_id", "text"),
        ("size", "qty"), ("price", "price"), ("remaining_size", "qty"), ("remaining_fees", "money"),
        ("remaining_cost", "money"), ("long_term_after", "date"), ("computed", "bool")),
        "symbol, account, order_time, order_id", title="Open lots"),
    "positions": Kind("fifo_positions", (
        ("account", "text"), ("symbol", "text"), ("currency", "text"), ("lots", "int"), ("open_quantity", "qty"),
        ("open_cost", "money"), ("average_cost", "price"), ("first_lot_time", "time"), ("computed", "bool")),
        "symbol, account", as_of=True, title="Open positions"),
    "unmatched": Kind("fifo_unmatched_sells", (
        ("order_time", "time"), ("account", "text"), ("symbol", "text"), ("currency", "text"), ("order_id", "text"),
        ("size", "qty"), ("unmatched_size", "qty"), ("unmatched_proceeds", "money"), ("reason", "text")),
        "order_time, order_id", title="Unmatched (oversold) sells"),
    "tax": Kind("fifo_form_8949", (
        ("part", "text"), ("box", "text"), ("description", "text"), ("date_acquired", "date"), ("date_sold", "date"),
        ("proceeds", "money"), ("cost_basis", "money"), ("gain_or_loss", "money"), ("no_basis", "bool"),
        ("currency", "text")),
        "part, date_sold, sell_time, sell_trade_id COLLATE \"C\", buy_time NULLS LAST, buy_trade_id COLLATE \"C\"",
        title="Form 8949 rows"),
}

# Column titles a reader understands (the HTML page); csv, json and the CLI tables keep the column names.
TITLES = {
    "symbol": "Symbol", "currency": "Currency", "sells": "Sells", "trades": "Closed trades", "wins": "Wins",
    "losses": "Losses", "win_rate": "Win rate", "sell_volume": "Sell volume", "realized_fees": "Fees in P&L",
    "fees_paid": "Fees paid", "unmatched_size": "Oversold quantity", "pnl_amount": "Realized P&L",
    "cumulative_pnl": "Cumulative P&L", "day": "Day", "month": "Month", "year": "Year", "account": "Account",
    "lots": "Open lots", "open_quantity": "Open quantity", "open_cost": "Cost of open quantity",
    "average_cost": "Average cost", "first_lot_time": "Oldest lot", "computed": "Computed",
    "order_time": "Time", "order_id": "Order", "size": "Size", "unmatched_proceeds": "Proceeds without basis",
    "reason": "Why no inventory",
}

# Form 8949 columns (a)-(h), then what a filer needs to place each row
TAX_HEADER = ("Description of property", "Date acquired", "Date sold or disposed of", "Proceeds",
              "Cost or other basis", "Code(s) from instructions", "Amount of adjustment", "Gain or (loss)",
              "Term", "Part", "Box", "No cost basis (oversold)", "Currency")
ASSET_TAX_COLUMNS = ("Wallet", "No price (left out)")
CENT = Decimal("0.01")
REPORTED = ("none", "proceeds", "basis")


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
        tz = conn.execute("SELECT report_timezone FROM fifo_report_context()").fetchone()[0]
        conn.execute("SELECT set_config('TimeZone', %s, false)", (tz,))
    except psycopg.Error as exc:
        raise from_db_error(exc) from None
    return tz


FIX = "fifo-db compute --all-symbols"


def check_scope(conn: psycopg.Connection, symbol: str | None) -> list[str]:
    """Refuse a report that would show nothing true; the warnings when what it shows is partial or stale.

    No trades (for --symbol: the error compute gives), or none of the pools computed in the
    current version: FifoError. Otherwise one warning line per problem, each naming the fix
    (FIX): pools not computed in the current version, pools with trades changed since they
    were computed (fifo._pending_pools, what verify reports as 'stale'), and pools stale
    because another version consumed their changes.
    """
    try:
        pools, computed, version, example, stale, stale_example, pending, pending_example = conn.execute(
            "SELECT pools, computed, version, not_computed_example, stale, stale_example, pending, "
            "pending_example FROM fifo_report_context(%s)", (symbol,)).fetchone()
    except psycopg.Error as exc:
        raise from_db_error(exc) from None
    if pools == 0:
        raise FifoError("no trades in this database: load some with `fifo-db import FILE.csv` "
                        "(or try `fifo-db demo`)")
    if computed == 0:
        what = f"symbol {symbol!r}" if symbol else f"none of the {pools:,} pool(s) with trades"
        raise FifoError(f"not computed: {what} {'is not' if symbol else 'is'} computed in version {version}, "
                        f"so there is no P&L to report yet: run `{FIX}`")
    warnings = []
    if computed < pools:
        warnings.append(f"warning: partial: {pools - computed:,} of {pools:,} pool(s) are not computed in version "
                        f"{version} (e.g. {example}); their sells show as 'not computed' and add nothing: "
                        f"run `{FIX}`")
    if pending:
        warnings.append(f"warning: stale: {pending:,} of {pools:,} pool(s) have trades changed since they were "
                        f"computed (e.g. {pending_example}); their figures may lag their trades: run `{FIX}`")
    if stale:
        warnings.append(f"warning: stale: {stale:,} pool(s) of version {version} are stale (e.g. {stale_example}: "
                        f"another version consumed their changes); their later sells show as 'stale': run `{FIX}`")
    return warnings


def _when(t: datetime) -> str:
    """A bound as the scope line shows it: the date alone at midnight (report time zone)."""
    return t.strftime("%Y-%m-%d") if t.time() == datetime.min.time() else t.strftime("%Y-%m-%d %H:%M")


def scope_line(name: str, bounds: Bounds, tz: str) -> str:
    """What a report covers, in one line: its title, the symbol(s), the range [from, to) or the
    as-of time, in the report time zone (a table's first line; stderr for csv and json)."""
    kind = KINDS[name]
    what = bounds.symbol or "all symbols"
    start, end = bounds.start, bounds.end
    if kind.as_of:
        span = f"as of {_when(end)}" if end else "as of now"
    else:
        what_time = "bought" if name == "lots" else "sold" if name in ("trades", "unmatched", "tax") else "traded"
        if start and end:
            span = f"{what_time} from {_when(start)} to before {_when(end)}"
        elif start:
            span = f"{what_time} from {_when(start)} on"
        elif end:
            span = f"{what_time} before {_when(end)}"
        else:
            span = "all trades" if name not in ("lots",) else "all buys"
        if name == "lots":
            span += f", as of {_when(end)}" if end else ", as of now"
    return f"{kind.title}: {what}, {span} ({tz})"


def _call(name: str, kind: Kind, bounds: Bounds, reported: str = "none", places: int | None = 0):
    params = {"symbol": bounds.symbol, "start": bounds.start, "end": bounds.end, "reported": reported,
              "round": places}
    if kind.as_of:
        return sql.SQL("{}(%(symbol)s, %(end)s, %(round)s)").format(sql.Identifier(kind.function)), params
    if name == "tax":
        return sql.SQL("{}(%(symbol)s, %(start)s, %(end)s, %(reported)s)").format(
            sql.Identifier(kind.function)), params
    return sql.SQL("{}(%(symbol)s, %(start)s, %(end)s, %(round)s)").format(
        sql.Identifier(kind.function)), params


def fetch(conn: psycopg.Connection, name: str, bounds: Bounds, all_columns: bool = False,
          reported: str = "none", places: int | None = 0) -> list[dict]:
    """The rows of report `name`; places: 0 (default) money to each currency's precision,
    N: to N places but never fewer than the currency's, None: exact (fifo._money)."""
    kind = KINDS[name]
    call, params = _call(name, kind, bounds, reported, places)
    cols = sql.SQL("*") if all_columns else sql.SQL(", ").join(sql.Identifier(c) for c, _ in kind.columns)
    query = sql.SQL("SELECT {} FROM {} ORDER BY {}").format(cols, call, sql.SQL(kind.order))
    try:
        with conn.cursor(row_factory=dict_row) as cur:
            return cur.execute(query, params).fetchall()
    except psycopg.Error as exc:
        raise from_db_error(exc) from None


def fetch_totals(conn: psycopg.Connection, bounds: Bounds, places: int | None = 0) -> list[dict]:
    """The totals row of each currency (fifo_pnl_summary): sums of the rounded rows when rounded."""
    with conn.cursor(row_factory=dict_row) as cur:
        return cur.execute("SELECT * FROM fifo_pnl_summary(%s, %s, %s, %s) ORDER BY currency",
                           (bounds.symbol, bounds.start, bounds.end, places)).fetchall()


def fetch_curve(conn: psycopg.Connection, bounds: Bounds) -> dict[str | None, dict[str | None, list]]:
    """Cumulative realized P&L per day: {currency: {None: the currency's total, symbol: ...}},
    rounded like the tables (so the chart's last point is the TOTAL line's P&L)."""
    series: dict = {}
    rows = conn.execute("SELECT currency, symbol, day, cumulative_pnl FROM fifo_pnl_curve(%s, %s, %s, 0) "
                        "ORDER BY currency, symbol NULLS FIRST, day", (bounds.symbol, bounds.start, bounds.end))
    for currency, symbol, day, cum in rows:
        series.setdefault(currency, {}).setdefault(symbol, []).append((day, cum))
    return series


# --- formatting ------------------------------------------------------------------------------------

def plain(value: Decimal) -> str:
    """An exact Decimal without exponent notation or trailing zeros."""
    text = format(value, "f")
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return "0" if text in ("-0", "") else text


# The currencies whose amounts are rounded to the cent; any other quote (BTC, ETH, ...) to 8
# decimals, so 0.0179 BTC does not read as 0.02. The rounding itself is SQL's
# (fifo._currency_places, sql/200, holds the same list); this copy only picks the layout.
CENT_CURRENCIES = frozenset({
    "USD", "EUR", "GBP", "CHF", "CAD", "AUD", "NZD", "JPY", "SGD", "HKD", "SEK", "NOK", "DKK", "PLN", "CZK",
    "MXN", "BRL", "ZAR", "TRY", "INR", "KRW", "USDC", "USDT", "DAI", "PYUSD", "EURC", "BUSD", "TUSD", "USDP"})


def money(value: Decimal, currency: str | None = None) -> str:
    """Money for reading, with thousands separators: cents for fiat and stablecoins (or no currency
    given), else 8 decimals with trailing zeros after the second dropped. The value is already rounded
    by SQL (fifo._money) or a sum of rounded values: the quantize only pads, it never rounds here."""
    if currency is None or currency.upper() in CENT_CURRENCIES:
        return f"{value.quantize(CENT, rounding=ROUND_HALF_UP):,.2f}"
    text = f"{value.quantize(Decimal('1e-8'), rounding=ROUND_HALF_UP):,.8f}".rstrip("0")
    return text + "00" if text.endswith(".") else text + "0" if len(text.split(".")[1]) < 2 else text


def interval(value: timedelta) -> str:
    days, rest = value.days, value.seconds
    hours, minutes = rest // 3600, rest % 3600 // 60
    return f"{days}d {hours:02d}:{minutes:02d}" if days else f"{hours:02d}:{minutes:02d}"


def display(value, kind: str, currency: str | None = None) -> str:
    """A value as a table shows it (rounded for reading; storage never is); money in `currency`."""
    if value is None:
        return ""
    if kind == "money":
        return money(value, currency or "USD")
    if kind in ("qty", "price"):
        return plain(value)   # sizes and prices as stored (trimmed); average_cost rounded in SQL
    if kind == "pct":
        return f"{(value * 100).quantize(Decimal('0.1'), rounding=ROUND_HALF_UP)}%"
    if kind == "time":
        return value.strftime("%Y-%m-%d %H:%M")
    if kind == "month":
        return value.strftime("%Y-%m")
    if kind == "interval":
        return interval(value)
    if kind == "bool":
        return "yes" if value else "no"
    if kind == "text" and value == "":
        return ""
    return str(value)


# Columns that are trades' own sizes and prices or exact sums of sizes: never rounded, always
# written trimmed, so "4" and "4.00000000" of the same trade read the same.
UNROUNDED = frozenset({"size", "price", "matched_size", "unmatched_size", "remaining_size", "consumed_size",
                       "open_quantity", "quantity"})


def exact(value, keep_scale: bool = False) -> str | None:
    """A value as csv/json carry it: decimals trimmed (exact values), or with the scale SQL gave them
    (keep_scale: rounded money, 3896.10 and 0.00346000), ISO times."""
    if value is None:
        return None
    if isinstance(value, Decimal):
        return format(value, "f") if keep_scale else plain(value)
    if isinstance(value, (datetime, date)):
        return value.isoformat()
    if isinstance(value, timedelta):
        return str(value.total_seconds())
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def table(columns, rows: list[dict], totals: list[dict] | None = None) -> str:
    """A plain-text table; one TOTAL line per currency when `totals` is given."""
    numeric = {"money", "qty", "price", "pct", "int"}
    head = [c for c, _ in columns]
    body = [[display(r.get(c), k, r.get("currency")) for c, k in columns] for r in rows]
    foot = []
    for total in totals or []:
        line = [display(total.get(c), k, total.get("currency")) if c in total else "" for c, k in columns]
        line[0] = "TOTAL"
        foot.append(line)
    widths = [max(len(x) for x in col) for col in zip(head, *body, *foot)]

    def line(cells):
        return "  ".join(c.rjust(w) if k in numeric else c.ljust(w)
                         for c, w, (_, k) in zip(cells, widths, columns)).rstrip()

    out = [line(head), line(["-" * w for w in widths])]
    out += [line(r) for r in body]
    if foot:
        out.append(line(["-" * w for w in widths]))
        out += [line(f) for f in foot]
    if not rows:
        out.append("(no rows)")
    return "\n".join(out)


def to_csv(columns: list[str], rows: list[dict], rounded: bool = False) -> str:
    """rounded: the rows' money was rounded in SQL and keeps its scale; sizes and prices stay trimmed."""
    buf = io.StringIO()
    w = SafeWriter(buf, lineterminator="\n")
    w.writerow(columns)
    for r in rows:
        cells = (exact(r[c], rounded and c not in UNROUNDED) for c in columns)
        w.writerow(["" if v is None else v for v in cells])
    return buf.getvalue()


def _json_value(value, keep_scale: bool = False):
    """JSON keeps integers and booleans; decimals travel as strings (exact, or rounded with their scale)."""
    if value is None or isinstance(value, (bool, int)):
        return value
    return exact(value, keep_scale)


def to_json(rows: list[dict], rounded: bool = False) -> str:
    return json.dumps([{k: _json_value(v, rounded and k not in UNROUNDED) for k, v in r.items()} for r in rows],
                      indent=2) + "\n"


def _cents(value: Decimal | None) -> str:
    return "" if value is None else f"{value:.2f}"


def tax_csv(rows: list[dict], asset_view: bool = False) -> str:
    """Form 8949 rows from fifo_form_8949 or fifo_asset_form_8949 (already rounded to cents there):
    dates MM/DD/YYYY; the asset view adds the wallet and its 'no price' flag."""
    buf = io.StringIO()
    w = SafeWriter(buf, lineterminator="\n")
    w.writerow(TAX_HEADER + (ASSET_TAX_COLUMNS if asset_view else ()))
    for r in rows:
        w.writerow([r["description"], r["date_acquired"].strftime("%m/%d/%Y") if r["date_acquired"] else "",
                    r["date_sold"].strftime("%m/%d/%Y"), _cents(r["proceeds"]), _cents(r["cost_basis"]),
                    r["adjustment_code"] or "", _cents(r["adjustment"]), _cents(r["gain_or_loss"]),
                    "Long-term" if r["term"] == "long" else "Short-term", r["part"], r["box"],
                    "yes" if r["no_basis"] else "", r["currency"]]
                   + ([r["wallet"], "yes" if r["unpriced"] else ""] if asset_view else []))
    return buf.getvalue()


def part_totals(rows: list[dict]) -> str:
    """'Part I (short-term, box I): 2 row(s), proceeds 1,234.00, cost ..., gain ...; Part II ...' over
    rows that have a value (an unpriced row, gain NULL, is left out: the caller warns about it)."""
    parts = []
    for part, term in (("I", "short-term"), ("II", "long-term")):
        mine = [r for r in rows if r["part"] == part and r["gain_or_loss"] is not None]
        proceeds = sum((r["proceeds"] for r in mine), Decimal(0))
        cost = sum((r["cost_basis"] or Decimal(0) for r in mine), Decimal(0))
        gain = sum((r["gain_or_loss"] for r in mine), Decimal(0))
        boxes = ",".join(sorted({r["box"] for r in mine})) or "-"
        parts.append(f"Part {part} ({term}, box {boxes}): {len(mine):,} row(s), proceeds {money(proceeds)}, "
                     f"cost {money(cost)}, gain {money(gain)}")
    return "; ".join(parts)


def tax_summary(conn: psycopg.Connection, rows: list[dict], bounds: Bounds, reported: str) -> list[str]:
    """The stderr lines of `report tax`: Part I / Part II totals, oversold rows, symbols left out and why."""
    currency, accepted, rule = conn.execute(
        "SELECT report_currency, report_currencies, long_term_rule FROM fifo_report_context()").fetchone()
    lines = []
    years = sorted({r["tax_year"] for r in rows})
    span = ", ".join(str(y) for y in years) if years else "no sales"
    lines.append(f"tax ({span}; {currency}; long-term rule {rule}; broker reported {reported}): " + part_totals(rows))
    oversold = [r for r in rows if r["no_basis"]]
    if oversold:
        lines.append(f"{len(oversold):,} oversold row(s) with no cost basis are in Part I (column 'No cost basis'), "
                     f"proceeds {money(sum((r['proceeds'] for r in oversold), Decimal(0)))}, counted as gain: "
                     f"see `fifo-db report unmatched` for the missing buys")
    left = conn.execute(
        "SELECT symbol, currency, count(*) FROM fifo_tax_lots(%s, %s, %s) WHERE NOT in_report_currency "
        "GROUP BY symbol, currency ORDER BY symbol", (bounds.symbol, bounds.start, bounds.end)).fetchall()
    if left:
        why = [f"{s} ({n:,} lot(s) in {c})" if c else f"{s} ({n:,} lot(s), no quote currency after a '-')"
               for s, c, n in left]
        lines.append(f"left out, not in {currency} ({', '.join(accepted)}): {', '.join(why)}; "
                     f"to count a quote as {currency}: SELECT fifo_set_setting('report_currency_aliases', 'USDC')")
    return lines


# --- command ---------------------------------------------------------------------------------------

def register(sub) -> None:
    p = sub.add_parser("report", help="P&L, lots, positions, unmatched sells, Form 8949 rows; chart and HTML",
                       description="Print a report from the fifo_* report views (current version). "
                                   "--from/--to: [from, to); 2025-03-01 (midnight in the report time zone), "
                                   "2025-03-01 14:30, 2025-03-01T14:30:00Z or +01:00, today, yesterday, now, "
                                   "7 days ago; 03/01/2025 is refused (ambiguous).")
    p.add_argument("kind", nargs="?", choices=list(KINDS),
                   help="pnl (by symbol), trades (per sell), daily, monthly, yearly, lots, positions, "
                        "unmatched, tax (Form 8949 CSV)")
    p.add_argument("--symbol", help="only this symbol")
    p.add_argument("--from", dest="start", metavar="TIME", help="trades (lots: buys) at or after TIME")
    p.add_argument("--to", dest="end", metavar="TIME",
                   help="before TIME (lots and positions: as of TIME)")
    p.add_argument("--year", type=int, metavar="YYYY", help="the calendar year YYYY (report time zone): "
                                                            "--from YYYY-01-01 --to YYYY+1-01-01")
    p.add_argument("--format", choices=("table", "csv", "json"),
                   help="table (rounded for reading; default), csv or json (exact); tax defaults to csv")
    p.add_argument("--round", type=int, metavar="N", dest="round_places",
                   help="csv/json: round money half away from zero to N places, but never below its "
                        "currency's precision (2 for USD, 8 for BTC: --round 0 is each currency's own); "
                        "each allocation once, totals from the rounded rows (default: exact)")
    p.add_argument("--term", choices=("short", "long"), help="tax: only Part I (short) or Part II (long) rows")
    p.add_argument("--reported", choices=REPORTED, default="none",
                   help="tax: what your broker reported on Form 1099-B/1099-DA, which picks the Form 8949 box: "
                        "none (default: C/F, or I/L for digital assets from 2025), proceeds (B/E, H/K), "
                        "basis (A/D, G/J)")
    p.add_argument("--view", choices=("pair", "asset"), default="pair",
                   help="tax: pair (default: per trading pair, in its quote currency) or asset (lots by wallet "
                        "and asset across pairs, in the filer's currency; fifo_db/assets.py)")
    p.add_argument("--mark", nargs="?", const="now", metavar="TIME",
                   help="positions: the asset view's open lots marked to the latest price at or before TIME "
                        "(default now), with unrealized P&L per wallet, asset and in total")
    p.add_argument("-o", "--output", type=Path, metavar="FILE", help="write the report to FILE, not stdout")
    p.add_argument("--chart", type=Path, metavar="FILE.svg", help="write a cumulative realized P&L chart (SVG)")
    p.add_argument("--html", type=Path, metavar="FILE.html", help="write an HTML report: headline, chart, tables")
    p.set_defaults(func=_cli_report)


def check_output(path: Path | None, flag: str) -> None:
    """Refuse, before any work, an output path that cannot be written: one line that says why."""
    if path is None:
        return
    if path.is_dir():
        raise FifoError(f"{flag} {path}: is a directory; give a file name inside it")
    folder = path.parent
    if not folder.exists():
        raise FifoError(f"{flag} {path}: folder {folder} does not exist (create it first: mkdir -p {folder})")
    if not folder.is_dir():
        raise FifoError(f"{flag} {path}: {folder} is not a folder")
    if not os.access(folder, os.W_OK | os.X_OK) or (path.exists() and not os.access(path, os.W_OK)):
        raise FifoError(f"{flag} {path}: not writable by this user")


def to_stdout(text: str) -> None:
    """Write text to stdout in 64 KiB pieces. One large write to a pipe whose reader has gone
    (`| head -1`) comes back as a success on Python 3.11 (the first piece was taken), so the
    command would end 0 with its output cut; pieces raise BrokenPipeError, which cli.main ends
    with 141 like any command killed by SIGPIPE."""
    for start in range(0, len(text), 65536):
        sys.stdout.write(text[start:start + 65536])


def write_output(path: Path, text: str, flag: str) -> None:
    try:
        path.write_text(text, encoding="utf-8")
    except OSError as exc:
        raise FifoError(f"{flag} {path}: cannot write: {exc.strerror or exc}") from None


def _check_args(args) -> None:
    if not (args.kind or args.chart or args.html):
        raise FifoError("report: give a report (pnl, trades, daily, monthly, yearly, lots, positions, unmatched, "
                        "tax), --chart FILE.svg or --html FILE.html")
    if args.kind == "positions" and (args.start or args.year):
        raise FifoError("report positions: --from/--year do not apply (positions are as of --to, default now)")
    if args.year is not None and (args.start or args.end):
        raise FifoError("report: --year replaces --from/--to; give one or the other")
    if args.year is not None and not 1970 <= args.year <= 2199:
        raise FifoError(f"report: --year {args.year} is outside 1970..2199")
    if args.round_places is not None:
        if args.round_places < 0 or args.round_places > 20:
            raise FifoError("report: --round N takes 0 to 20 decimal places (money is never rounded below "
                            "its currency's precision: 2 for USD, 8 for BTC)")
        if args.kind == "tax" or (args.format or "table") == "table":
            raise FifoError("report: --round applies to --format csv or json (tables and the tax rows are "
                            "already rounded)")
    if args.term and args.kind != "tax":
        raise FifoError("report: --term applies to `report tax`")
    if args.output and not args.kind:
        raise FifoError("report: -o FILE needs a report kind (pnl, trades, ...)")
    check_output(args.output, "-o")
    check_output(args.chart, "--chart")
    check_output(args.html, "--html")


def resolve_bounds(conn: psycopg.Connection, args) -> Bounds:
    """--symbol/--from/--to/--year as timestamps in the report time zone; --from must come before --to."""
    start_text, end_text = args.start, args.end
    if args.year is not None:
        start_text, end_text = f"{args.year}-01-01", f"{args.year + 1}-01-01"
    bounds = Bounds(args.symbol, parse_bound(conn, start_text), parse_bound(conn, end_text))
    if bounds.start is not None and bounds.end is not None and bounds.start >= bounds.end:
        raise FifoError(f"report: --from {args.start} is not before --to {args.end}: the range [from, to) is empty")
    return bounds


def _cli_report(args, conn) -> int:
    _check_args(args)
    tz = use_report_timezone(conn)
    bounds = resolve_bounds(conn, args)
    if args.view == "asset" or args.mark is not None:
        if not ((args.kind == "tax" and args.mark is None) or (args.kind == "positions" and args.view == "pair")):
            raise FifoError("report: --view asset goes with `report tax`, --mark with `report positions`")
        if args.symbol or args.chart or args.html:
            raise FifoError("report: --symbol, --chart and --html are the pair view's; the asset view pools "
                            "every pair of an asset (filter its rows by wallet and asset in the output)")
        from fifo_db import assets

        return assets.cli_report(args, conn, bounds)
    warnings = check_scope(conn, args.symbol)
    for line in warnings:
        print(line, file=sys.stderr)
    if args.kind:
        kind = KINDS[args.kind]
        fmt = args.format or ("csv" if args.kind == "tax" else "table")
        scope = scope_line(args.kind, bounds, tz)
        summary: list[str] = []
        if args.kind == "tax":
            rows = fetch(conn, "tax", bounds, all_columns=True, reported=args.reported)
            if args.term:
                rows = [r for r in rows if r["term"] == args.term]
            text = (tax_csv(rows) if fmt == "csv" else to_json(rows, rounded=True) if fmt == "json"
                    else scope + "\n" + table(kind.columns, rows) + "\n")
            summary = tax_summary(conn, rows, bounds, args.reported)
        elif fmt == "table":
            rows = fetch(conn, args.kind, bounds)
            text = scope + "\n" + table(kind.columns, rows, fetch_totals(conn, bounds) if kind.total else None) + "\n"
        else:
            rows = fetch(conn, args.kind, bounds, all_columns=True, places=args.round_places)
            rounded = args.round_places is not None
            if fmt == "json":
                text = to_json(rows, rounded)
            else:
                text = to_csv(list(rows[0].keys()) if rows else [c for c, _ in kind.columns], rows, rounded)
        if fmt != "table":
            print(scope, file=sys.stderr)
        if args.output:
            write_output(args.output, text, "-o")
            print(f"wrote {kind.title.lower()} to {args.output}", file=sys.stderr)
        else:
            to_stdout(text)
        for line in summary:
            print(line, file=sys.stderr)
    if args.chart or args.html:
        from fifo_db import charts

        curve = fetch_curve(conn, bounds)
        # the connection's TimeZone is the report time zone, so these are report-zone dates
        first = bounds.start.date() if bounds.start else None
        last = (bounds.end - timedelta(microseconds=1)).date() if bounds.end else None
        today = conn.execute("SELECT current_date").fetchone()[0]   # the axis never runs past today
        svg = charts.pnl_chart(curve, title=_title(bounds, tz), start=first, end=last, today=today)
        if args.chart:
            write_output(args.chart, svg, "--chart")
            print(f"wrote chart to {args.chart}", file=sys.stderr)
        if args.html:
            write_output(args.html, html_page(conn, bounds, tz, svg, warnings), "--html")
            print(f"wrote HTML report to {args.html}", file=sys.stderr)
    return 0


def html_page(conn: psycopg.Connection, bounds: Bounds, tz: str, svg: str, warnings: list[str] = ()) -> str:
    """The HTML report: the warnings of check_scope, headline per currency and year, the chart, then the
    tables (money rounded to each currency's precision by SQL, like the CLI's tables)."""
    from fifo_db import charts

    totals = fetch_totals(conn, bounds)
    years = fetch(conn, "yearly", bounds, all_columns=True)
    sections = []
    for name in ("pnl", "monthly", "positions", "unmatched"):
        kind = KINDS[name]
        rows = fetch(conn, name, bounds if not kind.as_of else Bounds(bounds.symbol, None, bounds.end))
        columns = tuple((c, k) for c, k in kind.columns if name != "monthly" or c != "unmatched_size")
        sections.append((kind.title, columns, rows, fetch_totals(conn, bounds) if kind.total else None))
    return charts.html_report(_title(bounds, tz), svg, totals, years, sections, display, TITLES,
                              warnings=[w.removeprefix("warning: ") for w in warnings])


def _title(bounds: Bounds, tz: str) -> str:
    what = bounds.symbol or "all symbols"
    span = ""
    if bounds.start or bounds.end:
        a = bounds.start.strftime("%Y-%m-%d") if bounds.start else "start"
        b = bounds.end.strftime("%Y-%m-%d") if bounds.end else "now"
        span = f", {a} to {b}"
    return f"Cumulative realized P&L, {what}{span} ({tz})"
