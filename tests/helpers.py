"""Small helpers shared by tests: write trades, read allocations, as exact Decimals."""

from __future__ import annotations

from datetime import datetime, timezone
from decimal import Decimal

import psycopg
from psycopg.rows import dict_row

TRADE_COLUMNS = ("order_id", "account", "symbol", "side", "size", "price", "total_fees", "order_time")


def ts(text: str) -> datetime:
    """'2025-09-10 04:46' -> an aware UTC datetime."""
    return datetime.fromisoformat(text).replace(tzinfo=timezone.utc)


def add_trades(conn: psycopg.Connection, trades) -> None:
    """Insert trades given as dicts (missing account -> 'default', fees -> 0)."""
    rows = []
    for t in trades:
        t = {"account": "default", "total_fees": Decimal(0), **t}
        if isinstance(t["order_time"], str):
            t["order_time"] = ts(t["order_time"])
        rows.append(tuple(Decimal(str(t[c])) if c in ("size", "price", "total_fees") else t[c]
                          for c in TRADE_COLUMNS))
    with conn.cursor() as cur:
        cur.executemany(f"INSERT INTO trade_records ({', '.join(TRADE_COLUMNS)}) "
                        f"VALUES ({', '.join(['%s'] * len(TRADE_COLUMNS))})", rows)


def allocations(conn: psycopg.Connection, symbol: str | None = None, version: int = 1) -> list[dict]:
    """Allocations in (sell_time, sell_trade_id, buy_time) order."""
    with conn.cursor(row_factory=dict_row) as cur:
        cur.execute(
            "SELECT account, symbol, sell_trade_id, buy_trade_id, allocated_size, buy_price, sell_price, "
            "buy_fees, sell_fees, cost_basis, sale_proceeds, pnl_amount, buy_time, sell_time, unmatched "
            "FROM fifo_allocations WHERE version = %s AND (%s::text IS NULL OR symbol = %s) "
            "ORDER BY account, symbol, sell_time, sell_trade_id COLLATE \"C\", buy_time NULLS LAST, "
            "buy_trade_id COLLATE \"C\"", (version, symbol, symbol))
        return cur.fetchall()
