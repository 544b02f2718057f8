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


# --- added for the engine test suite (tests/test_engine.py, test_property.py, ...) ---

def reset(conn: psycopg.Connection) -> None:
    """Empty every table fifo-db reads or writes, so a test (or a hypothesis example) starts clean."""
    conn.execute("TRUNCATE trade_records")
    conn.execute("DELETE FROM fifo.allocations")
    conn.execute("DELETE FROM fifo_runs")
    conn.execute("DELETE FROM fifo.pool_state")
    conn.execute("DELETE FROM fifo.pool_changes")


def stored(conn: psycopg.Connection, version: int = 1) -> list:
    """Every allocation of `version` as fifo_db.reference.Allocation, sorted by identity."""
    from fifo_db.reference import Allocation

    rows = conn.execute(
        "SELECT account, symbol, sell_trade_id, buy_trade_id, allocated_size, buy_price, sell_price, "
        "buy_fees, sell_fees, cost_basis, sale_proceeds, pnl_amount, buy_time, sell_time "
        "FROM fifo_allocations WHERE version = %s", (version,)).fetchall()
    return sorted((Allocation(*r) for r in rows), key=lambda a: a.key())


def expected(conn: psycopg.Connection) -> list:
    """What the plain-Python reference FIFO makes of every trade in the database, sorted like stored()."""
    from fifo_db.reference import Trade, match_all

    trades = [Trade(*r) for r in conn.execute(
        "SELECT order_id, account, symbol, side, size, price, total_fees, order_time FROM trade_records")]
    return sorted(match_all(trades), key=lambda a: a.key())


def findings(conn: psycopg.Connection, symbol: str | None = None, version: int | None = None) -> list[tuple]:
    """Rows of verify_fifo(): empty when the invariants hold."""
    return conn.execute("SELECT * FROM verify_fifo(%s, %s)", (symbol, version)).fetchall()


def assert_current(db) -> None:
    """Version 1 (incremental) == reference == a fresh full recompute into version 2; verify clean."""
    want = expected(db)
    assert stored(db) == want
    db.execute("DELETE FROM fifo.allocations WHERE version = 2")
    db.execute("DELETE FROM fifo.pool_state WHERE version = 2")
    db.execute("SELECT compute_fifo_all(true, 2)")
    assert stored(db, 2) == want
    assert findings(db) == []
    assert findings(db, None, 2) == []
