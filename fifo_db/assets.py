"""The asset (tax) view from the command line (issue 18; docs/engine.md "The asset (tax) view").

`fifo-db assets compute`               recompute it (compute_fifo_assets()) and say what is flagged
`fifo-db assets prices FILE.csv`       import prices: asset,currency,price,time[,source]
`fifo-db assets transfers FILE.csv`    import transfers: transfer_id,asset,from_account,to_account,quantity,fee,time
`fifo-db report tax --view asset`      Form 8949 rows from the asset view, per wallet, in the filer's currency
`fifo-db report positions --mark [T]`  open lots marked to the latest price at or before T (default now)

The numbers come from sql/400-440 (asset view); this module reads files and formats.
Imports are all or nothing and idempotent (a row already present is skipped).
"""

from __future__ import annotations

import csv
import io
import sys
from datetime import datetime, timezone
from decimal import Decimal, InvalidOperation
from pathlib import Path

import psycopg
from psycopg.rows import dict_row

from fifo_db.csvsafe import SafeWriter
from fifo_db.errors import FifoError

PRICE_COLUMNS = ("asset", "currency", "price", "time")
TRANSFER_COLUMNS = ("transfer_id", "asset", "from_account", "to_account", "quantity", "time")


def _number(text: str, what: str, line: int, path: Path) -> Decimal:
    try:
        value = Decimal(text.strip())
    except InvalidOperation:
        raise FifoError(f"{path}: line {line}: {what} {text!r} is not a number") from None
    if not value.is_finite():
        raise FifoError(f"{path}: line {line}: {what} {text!r} is not a finite number")
    return value


def _time(text: str, line: int, path: Path) -> datetime:
    try:
        value = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise FifoError(f"{path}: line {line}: time {text!r} is not an ISO 8601 time "
                        f"(e.g. 2025-03-01 10:00:00+00:00)") from None
    return value if value.tzinfo else value.replace(tzinfo=timezone.utc)   # no zone: UTC


def _rows(path: Path, required: tuple[str, ...]) -> list[tuple[int, dict]]:
    try:
        text = path.read_text(encoding="utf-8-sig")
    except OSError as exc:
        raise FifoError(f"{path}: cannot read: {exc.strerror or exc}") from None
    reader = csv.DictReader(io.StringIO(text))
    header = [h.strip().lower() for h in (reader.fieldnames or [])]
    missing = [c for c in required if c not in header]
    if missing:
        raise FifoError(f"{path}: missing column(s) {', '.join(missing)}; the header must name "
                        f"{','.join(required)}")
    reader.fieldnames = header
    return [(i + 2, {k: (v or "").strip() for k, v in r.items() if k}) for i, r in enumerate(reader)]


def import_prices(conn: psycopg.Connection, path: Path) -> tuple[int, int]:
    """Load prices; returns (rows read, rows inserted)."""
    rows = []
    for line, r in _rows(path, PRICE_COLUMNS):
        price = _number(r["price"], "price", line, path)
        if price < 0:
            raise FifoError(f"{path}: line {line}: price {r['price']} is negative")
        rows.append((r["asset"], r["currency"], price, _time(r["time"], line, path), r.get("source") or "import"))
    with conn.transaction(), conn.cursor() as cur:
        inserted = 0
        for row in rows:
            cur.execute("INSERT INTO fifo.prices (asset, currency, price, at, source) VALUES (%s, %s, %s, %s, %s) "
                        "ON CONFLICT DO NOTHING", row)
            inserted += cur.rowcount
    return len(rows), inserted


def import_transfers(conn: psycopg.Connection, path: Path) -> tuple[int, int]:
    """Load transfers; returns (rows read, rows inserted). A transfer id already present is skipped."""
    rows = []
    for line, r in _rows(path, TRANSFER_COLUMNS):
        quantity = _number(r["quantity"], "quantity", line, path)
        fee = _number(r.get("fee") or "0", "fee", line, path)
        if quantity <= 0 or fee < 0:
            raise FifoError(f"{path}: line {line}: quantity must be > 0 and fee >= 0")
        rows.append((r["transfer_id"], r["asset"], r["from_account"], r["to_account"], quantity, fee,
                     _time(r["time"], line, path)))
    with conn.transaction(), conn.cursor() as cur:
        inserted = 0
        for row in rows:
            cur.execute("INSERT INTO fifo.transfers (transfer_id, asset, from_account, to_account, quantity, fee, at) "
                        "VALUES (%s, %s, %s, %s, %s, %s, %s) ON CONFLICT (transfer_id) DO NOTHING", row)
            inserted += cur.rowcount
    return len(rows), inserted


def compute(conn: psycopg.Connection) -> dict:
    with conn.cursor(row_factory=dict_row) as cur:
        return cur.execute("SELECT * FROM compute_fifo_assets()").fetchone()


def warnings(conn: psycopg.Connection, run: dict) -> list[str]:
    """One line per kind of flag a filer must look at: unpriced legs, oversold disposals, unsplit symbols."""
    lines = []
    if run["unpriced"]:
        legs = conn.execute("SELECT leg_id, unpriced FROM fifo.asset_legs WHERE value IS NULL "
                            "ORDER BY at, leg_id LIMIT 5").fetchall()
        lines.append(f"warning: {run['unpriced']:,} leg(s) have no price and are left out of every total "
                     f"(never valued at zero): " + "; ".join(f"{leg}: {why}" for leg, why in legs)
                     + ("; ..." if run["unpriced"] > len(legs) else "")
                     + "; import prices with `fifo-db assets prices FILE.csv` or widen the price_window setting")
    if run["unmatched"]:
        lines.append(f"warning: {run['unmatched']:,} disposal(s) or transfer(s) took more than the wallet held "
                     f"(rows flagged unmatched, no basis): a missing buy or transfer in")
    if run["unsplit"]:
        lines.append(f"warning: {run['unsplit']:,} trade(s) have a symbol with no BASE-QUOTE split and no legs; "
                     f"map it: SELECT fifo_set_setting('symbol_map', 'BTCUSDT=BTC/USDT')")
    return lines


# --- reports -------------------------------------------------------------------------------------
# The money comes rounded from SQL (fifo_asset_form_8949, fifo_asset_position_totals: fifo._money,
# docs/reports.md "Rounding"); the writers are fifo_db.report's, as for the pair view.

TAX_COLUMNS = (("wallet", "text"), ("part", "text"), ("box", "text"), ("description", "text"),
               ("date_acquired", "date"), ("date_sold", "date"), ("proceeds", "money"), ("cost_basis", "money"),
               ("gain_or_loss", "money"), ("no_basis", "bool"), ("unpriced", "bool"), ("currency", "text"))
POSITION_COLUMNS = (("wallet", "text"), ("asset", "text"), ("lots", "int"), ("quantity", "qty"), ("price", "price"),
                    ("price_at", "time"), ("cost_basis", "money"), ("market_value", "money"),
                    ("unrealized", "money"), ("left_out", "int"), ("currency", "text"))
TAX_ORDER = ('wallet, date_sold, disposed_at, disposal_id COLLATE "C", acquired_at NULLS LAST, '
             'lot_id COLLATE "C"')


def form_8949(conn: psycopg.Connection, start, end, reported: str, term: str | None) -> list[dict]:
    """Asset-view Form 8949 rows (fifo_asset_form_8949): per wallet, cents rounded once in SQL."""
    with conn.cursor(row_factory=dict_row) as cur:
        rows = cur.execute(f"SELECT * FROM fifo_asset_form_8949(%s, %s, %s) ORDER BY {TAX_ORDER}",
                           (start, end, reported)).fetchall()
    return [r for r in rows if term is None or r["term"] == term]


def tax_summary(conn: psycopg.Connection, rows: list[dict], reported: str) -> list[str]:
    """The stderr lines of `report tax --view asset`: per wallet, Part I / Part II totals of the rows
    with a value (report.part_totals, as the pair view's); the unpriced rows named and left out."""
    from fifo_db.report import money, part_totals

    currency, rule = conn.execute("SELECT report_currency, long_term_rule FROM fifo_report_context()").fetchone()
    years = sorted({r["tax_year"] for r in rows})
    span = ", ".join(str(y) for y in years) if years else "no sales"
    lines = [f"tax, asset view ({span}; {currency}; long-term rule {rule}; broker reported {reported}; "
             f"{len({r['wallet'] for r in rows}):,} wallet(s))"]
    for wallet in sorted({r["wallet"] for r in rows}):
        lines.append(f"wallet {wallet}: " + part_totals([r for r in rows if r["wallet"] == wallet]))
    oversold = [r for r in rows if r["no_basis"] and r["gain_or_loss"] is not None]
    if oversold:
        lines.append(f"{len(oversold):,} oversold row(s) with no cost basis are in Part I (column 'No cost basis'), "
                     f"proceeds {money(sum((r['proceeds'] for r in oversold), Decimal(0)))}, counted as gain: "
                     f"a missing buy or transfer in")
    unpriced = [r for r in rows if r["unpriced"]]
    if unpriced:
        ids = sorted({r["disposal_id"] for r in unpriced})
        lines.append(f"warning: {len(unpriced):,} row(s) have no price (column 'No price'): left out of the totals "
                     f"above, never valued at zero: " + ", ".join(ids[:5]) + (", ..." if len(ids) > 5 else "")
                     + "; import prices with `fifo-db assets prices FILE.csv` or widen the price_window setting")
    return lines


def position_rows(conn: psycopg.Connection, mark, places: int | None = 0) -> list[dict]:
    """fifo_asset_position_totals(mark, places): per (wallet, asset), per asset ('(all)'), total."""
    with conn.cursor(row_factory=dict_row) as cur:
        return cur.execute("SELECT * FROM fifo_asset_position_totals(%s, %s)", (mark, places)).fetchall()


def position_notes(rows: list[dict]) -> list[str]:
    total = next((r for r in rows if r["asset"] == "(total)"), None)
    if total and total["left_out"]:
        return [f"warning: {total['left_out']:,} open lot(s) have no mark price or no basis (column left_out): "
                f"left out of cost, market value and unrealized P&L, never valued at zero"]
    return []


def scope_line(title: str, span: str, tz: str) -> str:
    return f"{title} (asset view): all wallets, {span} ({tz})"


def cli_report(args, conn, bounds) -> int:
    """`report tax --view asset` and `report positions --mark [TIME]` (called from fifo_db.report):
    recompute the asset view, then the scope line and warnings, and the rows through report's writers."""
    from fifo_db import report

    tz = conn.execute("SELECT current_setting('TimeZone')").fetchone()[0]
    run = compute(conn)
    for line in warnings(conn, run):
        print(line, file=sys.stderr)
    if args.kind == "tax":
        fmt = args.format or "csv"
        rows = form_8949(conn, bounds.start, bounds.end, args.reported, args.term)
        start, end = bounds.start, bounds.end
        if start and end:
            span = f"sold from {report._when(start)} to before {report._when(end)}"
        elif start or end:
            span = f"sold from {report._when(start)} on" if start else f"sold before {report._when(end)}"
        else:
            span = "all disposals"
        scope = scope_line("Form 8949 rows", span, tz)
        if fmt == "csv":
            text = report.tax_csv(rows, asset_view=True)
        elif fmt == "json":
            text = report.to_json(rows, rounded=True)
        else:
            text = scope + "\n" + report.table(TAX_COLUMNS, rows) + "\n"
        notes = tax_summary(conn, rows, args.reported)
    elif args.kind == "positions":
        fmt = args.format or "table"
        mark = None
        if args.mark not in (None, "now"):
            mark = report.parse_bound(conn, args.mark)
        places = args.round_places if fmt != "table" else 0
        rows = position_rows(conn, mark, places)
        scope = scope_line("Open lots marked to market", f"as of {report._when(mark)}" if mark else "as of now", tz)
        if fmt == "csv":
            text = report.to_csv([c for c, _ in POSITION_COLUMNS], rows, places is not None)
        elif fmt == "json":
            text = report.to_json(rows, places is not None)
        else:
            text = scope + "\n" + report.table(POSITION_COLUMNS, rows) + "\n"
        notes = position_notes(rows)
    else:
        raise FifoError(f"report {args.kind}: the asset view has `report tax --view asset` and "
                        f"`report positions --mark [TIME]`")
    if fmt != "table":
        print(scope, file=sys.stderr)
    if args.output:
        report.write_output(args.output, text, "-o")
    else:
        sys.stdout.write(text)
    for line in notes:
        print(line, file=sys.stderr)
    return 0


# --- command -------------------------------------------------------------------------------------

def register(sub) -> None:
    p = sub.add_parser("assets", help="the asset (tax) view: compute it, import prices and transfers",
                       description="The asset view pools lots by wallet and asset across every pair, in the "
                                   "filer's currency (docs/rules.md, 'The asset view').")
    a = p.add_subparsers(dest="action", required=True, metavar="ACTION")
    c = a.add_parser("compute", help="recompute the asset view and list what is flagged")
    c.set_defaults(func=_cli_compute)
    pr = a.add_parser("prices", help="import prices from CSV: asset,currency,price,time[,source]")
    pr.add_argument("file", type=Path, metavar="FILE.csv")
    pr.set_defaults(func=_cli_prices)
    tr = a.add_parser("transfers", help="import transfers from CSV: "
                                        "transfer_id,asset,from_account,to_account,quantity,fee,time")
    tr.add_argument("file", type=Path, metavar="FILE.csv")
    tr.set_defaults(func=_cli_transfers)
    ex = a.add_parser("explain", help="how the asset view treats one trade (ORDER_ID) or transfer (TRANSFER_ID)")
    ex.add_argument("id", metavar="ID")
    ex.set_defaults(func=_cli_explain)
    ve = a.add_parser("verify", help="recompute the asset view in plain Python (fifo_db/asset_reference.py) "
                                     "and compare every row with the stored one")
    ve.set_defaults(func=_cli_verify)


def _cli_compute(args, conn) -> int:
    run = compute(conn)
    print(f"asset view computed ({run['pooling']} pools): {run['legs']:,} legs, {run['rounds']} round(s), "
          f"{run['unpriced']:,} unpriced, {run['unmatched']:,} oversold, {run['unsplit']:,} unsplit symbol trades")
    for line in warnings(conn, run):
        print(line, file=sys.stderr)
    return 0


def explain(conn: psycopg.Connection, ident: str) -> str:
    with conn.cursor(row_factory=dict_row) as cur:
        rows = cur.execute("SELECT * FROM explain_fifo_asset(%s)", (ident,)).fetchall()
    cols = ("step", "kind", "wallet", "asset", "lot_id", "quantity", "cost_basis", "proceeds", "gain")
    cells = [list(cols)] + [["" if r[c] is None else _shown(r[c]) for c in cols] for r in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(cols))]
    lines = ["  ".join(v.ljust(w) for v, w in zip(row, widths)).rstrip() for row in cells]
    lines += [""] + [f"{r['step']:>3}  {r['note']}" for r in rows]
    return "\n".join(lines) + "\n"


def _cli_explain(args, conn) -> int:
    from fifo_db.report import use_report_timezone
    use_report_timezone(conn)
    sys.stdout.write(explain(conn, args.id))
    return 0


def reference_rows(conn: psycopg.Connection) -> list:
    """What fifo_db.asset_reference makes of the database's trades, transfers, prices and settings
    (fifo-db's own trade_records; an adopted table is read through fifo.trades)."""
    from fifo_db import asset_reference as ar

    settings = dict(conn.execute("SELECT name, value FROM fifo.settings").fetchall())
    fiat = [settings["report_currency"]] + [c for c in settings["report_currency_aliases"].split(",") if c]
    trades = [ar.TradeIn(*r) for r in conn.execute(
        "SELECT order_id, account, symbol, side, size, price, total_fees, fee_currency, order_time "
        "FROM fifo.trades WHERE problem IS NULL")]
    transfers = [ar.TransferIn(*r) for r in conn.execute(
        "SELECT transfer_id, asset, from_account, to_account, quantity, fee, at FROM fifo.transfers")]
    prices = [ar.PriceIn(*r) for r in conn.execute("SELECT asset, currency, price, at, source FROM fifo.prices")]
    window = conn.execute("SELECT %s::interval", (settings["price_window"],)).fetchone()[0]
    return ar.compute(trades, transfers, prices, fiat=fiat, pooling=settings["tax_pooling"], window=window,
                      symbol_map=settings["symbol_map"])


def stored_rows(conn: psycopg.Connection) -> list:
    from fifo_db import asset_reference as ar

    return sorted((ar.Row(*r) for r in conn.execute(
        "SELECT wallet, asset, disposal_id, kind, lot_id, quantity, acquired_at, disposed_at, cost_basis, "
        "proceeds, unmatched FROM fifo.asset_allocations")), key=ar.Row.key)


def _shown(value) -> str:
    return format(value.normalize(), "f") if isinstance(value, Decimal) else str(value)


def verify(conn: psycopg.Connection) -> list[str]:
    """Differences between the stored asset view and the plain-Python reference, one line each."""
    want = {r.key(): r for r in reference_rows(conn)}
    got = {r.key(): r for r in stored_rows(conn)}
    out = []
    for key in sorted(want.keys() | got.keys()):
        w, g = want.get(key), got.get(key)
        if w != g:
            what = "missing" if g is None else "unexpected" if w is None else ", ".join(
                f"{f} {_shown(getattr(g, f))} (reference: {_shown(getattr(w, f))})" for f in w.__dataclass_fields__
                if getattr(w, f) != getattr(g, f))
            out.append(f"{key[0]}/{key[1]} disposal {key[2]} lot {key[3] or '(unmatched)'}: {what}")
    return out


def _cli_verify(args, conn) -> int:
    if not conn.execute("SELECT EXISTS (SELECT 1 FROM fifo.asset_runs WHERE finished_at IS NOT NULL)").fetchone()[0]:
        raise FifoError("assets verify: the asset view has not been computed; run `fifo-db assets compute` first")
    problems = verify(conn)
    rows = conn.execute("SELECT count(*) FROM fifo.asset_allocations").fetchone()[0]
    for line in problems[:50]:
        print(line)
    if problems:
        print(f"asset view: {len(problems):,} row(s) differ from the plain-Python reference", file=sys.stderr)
        return 1
    print(f"asset view: all {rows:,} rows equal the plain-Python reference")
    return 0


def _cli_prices(args, conn) -> int:
    read, inserted = import_prices(conn, args.file)
    print(f"imported {inserted:,} of {read:,} prices from {args.file} ({read - inserted:,} already present)")
    return 0


def _cli_transfers(args, conn) -> int:
    read, inserted = import_transfers(conn, args.file)
    print(f"imported {inserted:,} of {read:,} transfers from {args.file} ({read - inserted:,} already present)")
    return 0
