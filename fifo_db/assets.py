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
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from pathlib import Path

import psycopg
from psycopg.rows import dict_row

from fifo_db.csvsafe import SafeWriter
from fifo_db.errors import FifoError

PRICE_COLUMNS = ("asset", "currency", "price", "time")
TRANSFER_COLUMNS = ("transfer_id", "asset", "from_account", "to_account", "quantity", "time")
CENT = Decimal("0.01")


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

TAX_HEADER = ("Description of property", "Date acquired", "Date sold or disposed of", "Proceeds",
              "Cost or other basis", "Code(s) from instructions", "Amount of adjustment", "Gain or (loss)",
              "Term", "Part", "Box", "No cost basis (oversold)", "Currency", "Wallet", "No price (left out)")


def _cents(value: Decimal | None) -> Decimal | None:
    return None if value is None else value.quantize(CENT, rounding=ROUND_HALF_UP)


def _box(year: int, long: bool, reported: str) -> str:
    """Form 8949 check box, as fifo._form_8949_box: G-L for digital assets from 2025, A-F before."""
    letters = "ABCDEFGHIJKL"
    return letters[(6 if year >= 2025 else 0) + (3 if long else 0) + {"basis": 0, "proceeds": 1}.get(reported, 2)]


def form_8949(conn: psycopg.Connection, start, end, reported: str, term: str | None) -> list[dict]:
    """Asset-view Form 8949 rows: proceeds and cost rounded to cents once, gain = their difference;
    an oversold row has no basis and counts its proceeds as gain (like the pair view's export);
    an unpriced row has no proceeds and no gain."""
    with conn.cursor(row_factory=dict_row) as cur:
        rows = cur.execute(
            "SELECT * FROM fifo_asset_disposals WHERE (%(s)s::timestamptz IS NULL OR disposed_at >= %(s)s) "
            "AND (%(e)s::timestamptz IS NULL OR disposed_at < %(e)s) "
            "ORDER BY wallet, date_sold, disposed_at, disposal_id COLLATE \"C\", acquired_at NULLS LAST, "
            "lot_id COLLATE \"C\"", {"s": start, "e": end}).fetchall()
    out = []
    for r in rows:
        long = r["term"] == "long"
        proceeds, cost = _cents(r["proceeds"]), _cents(r["cost_basis"])
        gain = None if proceeds is None else proceeds - (cost or Decimal(0))
        row = {"part": "II" if long else "I", "box": _box(r["date_sold"].year, long, reported),
               "description": r["description"], "date_acquired": r["date_acquired"], "date_sold": r["date_sold"],
               "proceeds": proceeds, "cost_basis": cost, "gain_or_loss": gain, "term": "long" if long else "short",
               "no_basis": r["unmatched"], "unpriced": r["unpriced"], "currency": r["currency"],
               "wallet": r["wallet"], "kind": r["kind"], "disposal_id": r["disposal_id"], "lot_id": r["lot_id"]}
        if term is None or row["term"] == term:
            out.append(row)
    return out


def _d(value) -> str:
    return "" if value is None else str(value)


def tax_csv(rows: list[dict]) -> str:
    buf = io.StringIO()
    w = SafeWriter(buf, lineterminator="\n")
    w.writerow(TAX_HEADER)
    for r in rows:
        w.writerow([r["description"], r["date_acquired"].strftime("%m/%d/%Y") if r["date_acquired"] else "",
                    r["date_sold"].strftime("%m/%d/%Y"), _d(r["proceeds"]), _d(r["cost_basis"]), "", "",
                    _d(r["gain_or_loss"]), "Long-term" if r["term"] == "long" else "Short-term", r["part"], r["box"],
                    "yes" if r["no_basis"] else "", r["currency"], r["wallet"], "yes" if r["unpriced"] else ""])
    return buf.getvalue()


def tax_table(rows: list[dict]) -> str:
    cols = ("wallet", "part", "box", "description", "date_acquired", "date_sold", "proceeds", "cost_basis",
            "gain_or_loss", "no_basis", "unpriced")
    cells = [[c for c in cols]] + [[("yes" if r[c] else "") if c in ("no_basis", "unpriced") else _d(r[c])
                                    for c in cols] for r in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(cols))]
    return "\n".join("  ".join(v.ljust(w) for v, w in zip(row, widths)).rstrip() for row in cells) + "\n"


def tax_summary(rows: list[dict]) -> list[str]:
    lines = []
    currency = rows[0]["currency"] if rows else ""
    for wallet in sorted({r["wallet"] for r in rows}):
        parts = []
        for part, name in (("I", "short-term"), ("II", "long-term")):
            mine = [r for r in rows if r["wallet"] == wallet and r["part"] == part and not r["unpriced"]]
            parts.append(f"Part {part} ({name}): {len(mine):,} row(s), proceeds "
                         f"{sum((r['proceeds'] for r in mine), Decimal(0))}, cost "
                         f"{sum((r['cost_basis'] or Decimal(0) for r in mine), Decimal(0))}, gain "
                         f"{sum((r['gain_or_loss'] for r in mine), Decimal(0))}")
        lines.append(f"tax, asset view, wallet {wallet} ({currency}): " + "; ".join(parts))
    unpriced = [r for r in rows if r["unpriced"]]
    if unpriced:
        lines.append(f"warning: {len(unpriced):,} row(s) have no price (column 'No price'): left out of the totals "
                     f"above, never valued at zero: " + ", ".join(sorted({r['disposal_id'] for r in unpriced})))
    oversold = [r for r in rows if r["no_basis"]]
    if oversold:
        lines.append(f"warning: {len(oversold):,} oversold row(s) with no cost basis, proceeds counted as gain")
    return lines


def positions(conn: psycopg.Connection, mark) -> tuple[str, list[str]]:
    """Open lots marked to the latest price at or before `mark`: per (wallet, asset), per asset, total."""
    with conn.cursor(row_factory=dict_row) as cur:
        lots = cur.execute("SELECT * FROM fifo_asset_positions(%s)", (mark,)).fetchall()
    groups: dict[tuple, dict] = {}
    for lot in lots:
        for key in ((lot["wallet"], lot["asset"]), ("(all)", lot["asset"]), ("(all)", "(total)")):
            g = groups.setdefault(key, {"quantity": Decimal(0), "cost": Decimal(0), "value": Decimal(0),
                                        "unrealized": Decimal(0), "lots": 0, "left_out": 0, "price": None,
                                        "price_at": None})
            g["lots"] += 1
            if key[1] != "(total)":
                g["quantity"] += lot["quantity"]
                g["price"], g["price_at"] = lot["price"], lot["price_at"]
            if lot["unrealized"] is None:
                g["left_out"] += 1
                continue
            g["cost"] += lot["cost_basis"]
            g["value"] += lot["market_value"]
            g["unrealized"] += lot["unrealized"]
    cols = ("wallet", "asset", "lots", "quantity", "price", "price_at", "cost_basis", "market_value",
            "unrealized", "left_out")
    order = sorted(groups, key=lambda k: (k[0] == "(all)", k[1] == "(total)", k[0], k[1]))
    cells = [list(cols)]
    for key in order:
        g = groups[key]
        total = key[1] == "(total)"
        cells.append([key[0], key[1], str(g["lots"]), "" if total else str(g["quantity"].normalize()),
                      "" if total or g["price"] is None else str(g["price"]),
                      "" if total or g["price_at"] is None else g["price_at"].strftime("%Y-%m-%d %H:%M"),
                      str(_cents(g["cost"])), str(_cents(g["value"])), str(_cents(g["unrealized"])),
                      str(g["left_out"]) if g["left_out"] else ""])
    widths = [max(len(row[i]) for row in cells) for i in range(len(cols))]
    text = "\n".join("  ".join(v.ljust(w) for v, w in zip(row, widths)).rstrip() for row in cells) + "\n"
    notes = []
    left = sum(1 for lot in lots if lot["unrealized"] is None)
    if left:
        notes.append(f"warning: {left:,} open lot(s) have no mark price or no basis (column left_out): "
                     f"left out of cost, market value and unrealized P&L, never valued at zero")
    return text, notes


def cli_report(args, conn, bounds) -> int:
    """`report tax --view asset` and `report positions --mark [TIME]` (called from fifo_db.report)."""
    run = compute(conn)
    for line in warnings(conn, run):
        print(line, file=sys.stderr)
    if args.kind == "tax":
        rows = form_8949(conn, bounds.start, bounds.end, args.reported, args.term)
        fmt = args.format or "csv"
        if fmt == "csv":
            text = tax_csv(rows)
        elif fmt == "json":
            import json
            text = json.dumps(rows, default=str, indent=1) + "\n"
        else:
            text = tax_table(rows)
        notes = tax_summary(rows)
    elif args.kind == "positions":
        mark = None
        if args.mark not in (None, "now"):
            from fifo_db.report import parse_bound
            mark = parse_bound(conn, args.mark)
        text, notes = positions(conn, mark)
    else:
        raise FifoError(f"report {args.kind}: the asset view has `report tax --view asset` and "
                        f"`report positions --mark [TIME]`")
    if args.output:
        from fifo_db.report import write_output
        write_output(args.output, text, "-o")
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
