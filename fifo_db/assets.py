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

import sys
from decimal import Decimal
from pathlib import Path

import psycopg
from psycopg.rows import dict_row

from fifo_db import importer
from fifo_db.errors import FifoError

PRICE_COLUMNS = ("asset", "currency", "price", "time")
PRICE_OPTIONAL = ("source",)
TRANSFER_COLUMNS = ("transfer_id", "asset", "from_account", "to_account", "quantity", "time")
TRANSFER_OPTIONAL = ("fee",)

# --- imports: set-based ------------------------------------------------------------------------
# The file goes to the server through COPY into the trade importer's staging table (every
# column text, one line number per record: importer._stage), after importer.scan's bounds
# (line length, field length, NUL, UTF-8). Then, in one transaction, one statement finds every
# bad row (each field's problem named with its value), a second the conflicts (a key twice in
# the file with other values, or already stored with other values), and one
# INSERT ... SELECT ... ON CONFLICT DO NOTHING loads the rest. The first bad line is the error,
# one line naming line, field and value; nothing is imported.

# YYYY-MM-DD, optionally a clock, optionally a zone (without one: UTC, the transaction's TimeZone)
_WHEN = (r"^[0-9]{4}-(?:0[1-9]|1[0-2])-(?:0[1-9]|[12][0-9]|3[01])"
         r"(?:[Tt ](?:[01][0-9]|2[0-3]):[0-5][0-9](?::[0-5][0-9](?:\.[0-9]+)?)?)?"
         r"(?:\s*(?:[Zz]|[+-](?:0[0-9]|1[0-5])(?::?[0-5][0-9])?|UTC|GMT))?$")
_CODE = "^[A-Za-z0-9]{1,16}$"
_TRIM = "E' \\t\\r\\n'"


def _check_missing(col: str) -> str:
    return f"WHEN r.{col} IS NULL THEN '{col} is missing'"


def _check_code(col: str) -> str:
    return (f"CASE {_check_missing(col)} WHEN r.{col} !~ '{_CODE}' THEN format('{col} %s is not an asset or "
            f"currency code (1 to 16 letters and digits)', {_q(col)}) END")


def _check_number(col: str, rule: str, optional: bool = False) -> str:
    cond, text = {"positive": ("<= 0", "must be positive"), "not negative": ("< 0", "must not be negative")}[rule]
    return (f"CASE {'WHEN false THEN NULL' if optional else _check_missing(col)} "
            f"WHEN r.{col} !~ {_lit(importer._NUMBER)} THEN format('{col} %s is not a number', {_q(col)}) "
            f"WHEN abs(r.{col}::numeric) >= 1e{importer.NUMBER_DIGITS} OR scale(r.{col}::numeric) > "
            f"{importer.NUMBER_DIGITS} THEN format('{col} %s has more than {importer.NUMBER_DIGITS} digits before or "
            f"after the decimal point', {_q(col)}) "
            f"WHEN r.{col}::numeric {cond} THEN format('{col} %s {text}', {_q(col)}) END")


def _check_time(col: str) -> str:
    return (f"CASE {_check_missing(col)} "
            f"WHEN r.{col} !~ {_lit(_WHEN)} OR substr(r.{col}, 1, 4) = '0000' "
            f"  OR substr(r.{col}, 9, 2)::int > extract(day from make_date(substr(r.{col}, 1, 4)::int, "
            f"     substr(r.{col}, 6, 2)::int, 1) + interval '1 month - 1 day') "
            f"THEN format('{col} %s is not an ISO 8601 date or time: use 2025-03-01, 2025-03-01 10:00:00+00:00 "
            f"or 2025-03-01T10:00:00Z (without a zone: UTC)', {_q(col)}) "
            f"WHEN r.{col}::timestamptz < '1970-01-01 00:00+00' OR r.{col}::timestamptz >= '2200-01-01 00:00+00' "
            f"THEN format('{col} %s is outside 1970-01-01..2200-01-01 (UTC)', {_q(col)}) END")


def _check_text(col: str, pattern: str, what: str) -> str:
    what = what.replace("'", "''")
    return f"CASE {_check_missing(col)} WHEN r.{col} !~ {_lit(pattern)} THEN format('{col} %s {what}', {_q(col)}) END"


def _q(col: str) -> str:
    return importer._shown(f"r.{col}")


def _lit(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _stage_values(cur, path: Path, required: tuple[str, ...], optional: tuple[str, ...]) -> None:
    """COPY the file into pg_temp.fifo_import_stage, then pg_temp.fifo_asset_import_rows: the line and
    each known column trimmed (absent optional column: NULL), text. Refuses a header without the
    required columns or naming one twice, before anything is sent."""
    header = importer.read_header(path)
    dupes = sorted({h for h in header if header.count(h) > 1})
    if dupes:
        raise FifoError(f"{path}: line 1: column(s) {', '.join(dupes)} appear more than once")
    missing = [c for c in required if c not in header]
    if missing:
        raise FifoError(f"{path}: line 1: missing column(s) {', '.join(missing)}; the header must name "
                        f"{','.join(required)}" + (f" (optional: {','.join(optional)})" if optional else ""))
    importer.scan(path, header)
    importer._stage(cur, path, header)
    cols = ", ".join(f"nullif(btrim(s.{sql_ident(c)}, {_TRIM}), '') AS {c}" if c in header else f"NULL::text AS {c}"
                     for c in required + optional)
    cur.execute(f"CREATE TEMP TABLE fifo_asset_import_rows ON COMMIT DROP AS "
                f"SELECT s.line, {cols} FROM pg_temp.fifo_import_stage s")


def sql_ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _run_import(conn: psycopg.Connection, path: Path, load) -> tuple[int, int]:
    """load(cur) in one transaction (TimeZone UTC: a time without a zone is UTC); a record with the
    wrong number of fields is named by its line (PostgreSQL's COPY context), as the trade importer does."""
    import re

    from fifo_db.errors import from_db_error

    try:
        with conn.transaction(), conn.cursor() as cur:
            cur.execute("SET LOCAL TimeZone = 'UTC'")
            return load(cur)
    except psycopg.errors.BadCopyFileFormat as exc:
        where = re.search(r"line (\d+)", exc.diag.context or "")
        line = f"line {where.group(1)}: " if where else ""
        raise FifoError(f"{path}: {line}{exc.diag.message_primary}; nothing was imported") from None
    except psycopg.Error as exc:
        raise from_db_error(exc) from None


def _first_problem(cur, path: Path, checks: list[str], conflicts: str) -> None:
    """Raise the first bad line (field checks, then conflicts) as one line; nothing is imported."""
    row = cur.execute(f"""
        SELECT x.line, x.problems, count(*) OVER ()
        FROM (SELECT r.line, nullif(concat_ws('; ', {', '.join(checks)}), '') AS problems
              FROM pg_temp.fifo_asset_import_rows r) x
        WHERE x.problems IS NOT NULL ORDER BY x.line LIMIT 1""").fetchone()
    if row is None:
        row = cur.execute(f"SELECT c.line, c.problem, count(*) OVER () FROM ({conflicts}) c "
                          f"ORDER BY c.line LIMIT 1").fetchone()
    if row is not None:
        line, problem, n = row
        more = f" ({n - 1:,} more bad line(s) after it)" if n > 1 else ""
        raise FifoError(f"{path}: line {line}: {problem}; nothing was imported{more}")


def import_prices(conn: psycopg.Connection, path: Path) -> tuple[int, int]:
    """Load prices (set-based; all or nothing); returns (rows read, rows inserted). A row already
    stored with the same price is skipped; one stored with another price is refused."""
    path = Path(path)
    checks = [_check_code("asset"), _check_code("currency"), _check_number("price", "not negative"),
              _check_time("time")]
    typed = """SELECT r.line, r.asset, r.currency, r.price::numeric AS price, r.time::timestamptz AS at,
                      coalesce(r.source, 'import') AS source
               FROM pg_temp.fifo_asset_import_rows r"""
    conflicts = f"""
        SELECT t.line, format('the price of %s in %s at %s (source %s) is %s here but %s on line %s',
                              t.asset, t.currency, t.at, t.source, t.price, o.price, o.line) AS problem
        FROM ({typed}) t
        JOIN ({typed}) o ON (o.asset, o.currency, o.at, o.source) = (t.asset, t.currency, t.at, t.source)
                        AND o.line < t.line AND o.price <> t.price
        UNION ALL
        SELECT t.line, format('the price of %s in %s at %s (source %s) is stored as %s, not %s: an import never '
                              'changes a stored price', t.asset, t.currency, t.at, t.source, p.price, t.price)
        FROM ({typed}) t
        JOIN fifo.prices p ON (p.asset, p.currency, p.at, p.source) = (t.asset, t.currency, t.at, t.source)
                          AND p.price <> t.price"""

    def load(cur):
        _stage_values(cur, path, PRICE_COLUMNS, PRICE_OPTIONAL)
        _first_problem(cur, path, checks, conflicts)
        cur.execute(f"""INSERT INTO fifo.prices (asset, currency, price, at, source)
                        SELECT t.asset, t.currency, t.price, t.at, t.source FROM ({typed}) t ORDER BY t.line
                        ON CONFLICT DO NOTHING""")
        inserted = cur.rowcount
        read = cur.execute("SELECT count(*) FROM pg_temp.fifo_asset_import_rows").fetchone()[0]
        return read, inserted

    return _run_import(conn, path, load)


def import_transfers(conn: psycopg.Connection, path: Path) -> tuple[int, int]:
    """Load transfers (set-based; all or nothing); returns (rows read, rows inserted). A transfer_id
    already stored with the same data is skipped; with other data it is refused."""
    path = Path(path)
    account = "^[^[:space:]](.*[^[:space:]])?$"
    checks = [_check_text("transfer_id", "^[^[:space:]/]([^/]*[^[:space:]/])?$", "must not contain '/'"),
              _check_code("asset"),
              _check_text("from_account", account, "must not begin or end with a space"),
              _check_text("to_account", account, "must not begin or end with a space"),
              "CASE WHEN r.from_account = r.to_account THEN format('from_account and to_account are both %s: "
              "a transfer is between two wallets', " + _q("from_account") + ") END",
              _check_number("quantity", "positive"), _check_number("fee", "not negative", optional=True),
              _check_time("time")]
    typed = """SELECT r.line, r.transfer_id, r.asset, r.from_account, r.to_account, r.quantity::numeric AS quantity,
                      coalesce(r.fee, '0')::numeric AS fee, r.time::timestamptz AS at
               FROM pg_temp.fifo_asset_import_rows r"""
    conflicts = f"""
        SELECT t.line, format('transfer_id %s is on line %s too, with other values', t.transfer_id, o.line)
                           AS problem
        FROM ({typed}) t
        JOIN ({typed}) o ON o.transfer_id = t.transfer_id AND o.line < t.line
                        AND (o.asset, o.from_account, o.to_account, o.quantity, o.fee, o.at)
                            IS DISTINCT FROM (t.asset, t.from_account, t.to_account, t.quantity, t.fee, t.at)
        UNION ALL
        SELECT t.line, format('transfer_id %s is stored with other values (%s %s %s -> %s, fee %s, at %s): an import '
                              'never changes a stored transfer', t.transfer_id, x.quantity, x.asset,
                              x.from_account, x.to_account, x.fee, x.at)
        FROM ({typed}) t
        JOIN fifo.transfers x ON x.transfer_id = t.transfer_id
                             AND (x.asset, x.from_account, x.to_account, x.quantity, x.fee, x.at)
                                 IS DISTINCT FROM (t.asset, t.from_account, t.to_account, t.quantity, t.fee, t.at)"""

    def load(cur):
        _stage_values(cur, path, TRANSFER_COLUMNS, TRANSFER_OPTIONAL)
        _first_problem(cur, path, checks, conflicts)
        cur.execute(f"""INSERT INTO fifo.transfers (transfer_id, asset, from_account, to_account, quantity, fee, at)
                        SELECT t.transfer_id, t.asset, t.from_account, t.to_account, t.quantity, t.fee, t.at
                        FROM ({typed}) t ORDER BY t.line
                        ON CONFLICT (transfer_id) DO NOTHING""")
        inserted = cur.rowcount
        read = cur.execute("SELECT count(*) FROM pg_temp.fifo_asset_import_rows").fetchone()[0]
        return read, inserted

    return _run_import(conn, path, load)


def compute(conn: psycopg.Connection, incremental: bool = False, if_computed: bool = False) -> dict | None:
    """A full run (compute_fifo_assets()), or only what changed since the last run
    (compute_fifo_assets_incremental(): a full run when there is none, nothing recorded when
    nothing changed); the row has the whole view's counts either way. if_computed (incremental
    only): None, and nothing done, while the view was never computed (what the schedule runs)."""
    if not incremental:
        call = "compute_fifo_assets()"
    else:
        call = f"compute_fifo_assets_incremental({'true' if if_computed else ''})"
    with conn.cursor(row_factory=dict_row) as cur:
        run = cur.execute(f"SELECT * FROM {call}").fetchone()
    return None if run is None or run["kind"] is None else run


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
    bring the asset view up to date (an incremental run), then the scope line and warnings, and the rows through report's writers."""
    from fifo_db import report

    tz = conn.execute("SELECT current_setting('TimeZone')").fetchone()[0]
    run = compute(conn, incremental=True)
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
        report.to_stdout(text)
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
    c.add_argument("--incremental", action="store_true",
                   help="only the pools changed since the last run, and nothing while the view was never "
                        "computed (what the schedule runs)")
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
    run = compute(conn, incremental=args.incremental, if_computed=args.incremental)
    if run is None:
        print("asset view never computed: nothing to do (`fifo-db assets compute` computes it in full)")
        return 0
    if args.incremental and run["run_id"] is None:
        return 0   # nothing changed: quiet, like `compute --incremental`
    print(f"asset view computed ({run['pooling']} pools): {run['legs']:,} legs, {run['rounds']} round(s), "
          f"{run['unpriced']:,} unpriced, {run['unmatched']:,} oversold, {run['unsplit']:,} unsplit symbol trades")
    # the crontab line's stderr is cron's mail, for failures: there the flags go with the counts
    for line in warnings(conn, run):
        print(line, file=sys.stdout if args.incremental else sys.stderr)
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
    from fifo_db.report import to_stdout, use_report_timezone
    use_report_timezone(conn)
    to_stdout(explain(conn, args.id))
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
    transition = None
    if settings["tax_pooling"] == "universal-until-2025":
        from datetime import datetime
        from zoneinfo import ZoneInfo

        transition = datetime(2025, 1, 1, tzinfo=ZoneInfo(settings["report_timezone"]))
    return ar.compute(trades, transfers, prices, fiat=fiat, pooling=settings["tax_pooling"], window=window,
                      symbol_map=settings["symbol_map"], transition=transition)


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
