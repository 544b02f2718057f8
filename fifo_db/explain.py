"""`fifo-db explain ORDER_ID`: how the current allocations treat one trade (explain_fifo() in SQL)."""

from __future__ import annotations

import psycopg
from psycopg.rows import dict_row

from fifo_db.errors import from_db_error
from fifo_db.report import table, use_report_timezone

COLUMNS = (("step", "int"), ("kind", "text"), ("order_id", "text"), ("order_time", "time"),
           ("quantity", "qty"), ("price", "price"), ("buy_fees", "price"), ("sell_fees", "price"),
           ("cost_basis", "money"), ("proceeds", "money"), ("pnl_amount", "money"))


def explain(conn: psycopg.Connection, order_id: str) -> list[dict]:
    """explain_fifo()'s steps, each with the trade's quote currency (`currency`) for the money columns."""
    try:
        with conn.cursor(row_factory=dict_row) as cur:
            rows = cur.execute("SELECT * FROM explain_fifo(%s)", (order_id,)).fetchall()
            currency = cur.execute("SELECT order_currency FROM fifo_report_context(NULL, %s)",
                                   (order_id,)).fetchone()["order_currency"]
    except psycopg.Error as exc:
        raise from_db_error(exc) from None
    return [{**r, "currency": currency} for r in rows]


def render(rows: list[dict]) -> str:
    """The steps as a table, then each step's note on its own line."""
    currency = rows[0]["currency"] if rows else None
    lines = [table(COLUMNS, rows), ""]
    lines += [f"{r['step']:>3}  {r['kind']:<11}  {r['note']}" for r in rows]
    if currency and currency != "USD":
        lines += ["", f"prices, fees, cost, proceeds and P&L are in {currency}"]
    return "\n".join(lines)


def register(sub) -> None:
    p = sub.add_parser("explain", help="explain how FIFO matched one trade",
                       description="For a sell: the lots it consumed (quantities, prices, fee shares, P&L) "
                                   "and any unmatched part with the reason. For a buy: the sells that "
                                   "consumed it and what remains open. Current version.")
    p.add_argument("order_id", metavar="ORDER_ID")
    p.set_defaults(func=_cli_explain)


def _cli_explain(args, conn) -> int:
    use_report_timezone(conn)
    print(render(explain(conn, args.order_id)))
    return 0

