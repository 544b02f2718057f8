"""The demo: the seed's story end to end on a scratch database.

It creates (or re-creates) the database `fifo_demo` on the embedded server
(or on the server of --dsn), installs fifo-db there, loads the seed's
SAPIEN-USD trades in the order they reached the bot (the Dec 3 sell before
its buy) plus a seed-sized synthetic history (171 symbols, 4,513 trades),
computes, prints the SAPIEN-USD matching and the statistics, and verifies.
Nothing outside `fifo_demo` is touched.
"""

from __future__ import annotations

import time
import psycopg
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from fifo_db.compute import compute_all, compute_symbol, format_stats, money
from fifo_db.connection import resolve_dsn
from fifo_db.errors import from_db_error
from fifo_db.install import install
from fifo_db.sample import SAPIEN_SELL, SAPIEN_SEPT10_BUY, copy_rows, sapien_story, synthetic_rows
from fifo_db.verify import verify

DEMO_DB = "fifo_demo"


def _recreate(dsn: str) -> str:
    """Drop and create DEMO_DB on the server of `dsn`; returns a DSN for it."""
    params = conninfo_to_dict(dsn)
    with psycopg.connect(make_conninfo(**{**params, "dbname": "postgres"}), autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(DEMO_DB)))
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(DEMO_DB)))
    return make_conninfo(**{**params, "dbname": DEMO_DB})


def _sapien_table(conn) -> list[str]:
    rows = conn.execute(
        "SELECT a.sell_trade_id, a.buy_trade_id, a.allocated_size, a.buy_price, a.sell_price, "
        "       a.buy_fees + a.sell_fees, a.pnl_amount, a.buy_time, a.sell_time "
        "FROM fifo_allocations a WHERE a.symbol = 'SAPIEN-USD' AND a.version = fifo._current_version() "
        "ORDER BY a.sell_time").fetchall()
    out = [f"  {'sell':<10} {'sold at':<17} {'lot':<10} {'bought at':<17} {'size':>6} "
           f"{'buy':>8} {'sell':>8} {'fees':>8} {'P&L':>9}"]
    for sell, buy, q, bp, sp, fees, pnl, bt, st in rows:
        out.append(f"  {sell[:8]:<10} {st:%Y-%m-%d %H:%M} {(buy or 'unmatched')[:8]:<10} "
                    f"{bt:%Y-%m-%d %H:%M} {q:>6} {bp:>8} {sp:>8} {fees:>8} {money(pnl):>9}")
    return out


def run_demo(dsn: str | None = None, out=print) -> int:
    started = time.perf_counter()
    target = resolve_dsn(dsn)
    out(f"server: {target}" + ("" if dsn else "  (embedded; `fifo-db db stop` stops it)"))
    demo_dsn = _recreate(target)
    try:
        with psycopg.connect(demo_dsn, autocommit=True) as conn:
            result = install(conn)
            out(f"installed fifo-db into database {DEMO_DB!r} "
                f"(migrations: {', '.join(result.migrations_applied)}; {result.sql_files} SQL files)")
            story = sapien_story()
            copy_rows(conn, story)
            n = copy_rows(conn, synthetic_rows(symbols=171, trades=4513, seed=7))
            out(f"loaded the seed's SAPIEN-USD story ({len(story)} trades, the Dec 3 sell recorded "
                f"before its buy) and {n:,} synthetic trades over 171 symbols")
            out("")
            out("SELECT compute_fifo('SAPIEN-USD'):")
            compute_symbol(conn, "SAPIEN-USD")
            for line in _sapien_table(conn):
                out(line)
            right = conn.execute("SELECT pnl_amount FROM fifo_allocations WHERE sell_trade_id = %s",
                                 (SAPIEN_SELL,)).fetchone()[0]
            # what the seed's inline FIFO did: the same sell charged to the Sept 10 lot
            sept10 = next(t for t in story if t[0] == SAPIEN_SEPT10_BUY)
            sell = next(t for t in story if t[0] == SAPIEN_SELL)
            wrong = sell[4] * (sell[5] - sept10[5]) - sell[6] - sept10[6]
            out(f"  The Dec 3 sell is matched to the Dec 3 lot: {money(right)} (exactly {right}). The seed's "
                f"inline FIFO\n  charged it to the Sept 10 lot, consumed on Sept 11: {money(wrong)} with these "
                f"trades (the seed reported -$14.91).")
            out("")
            out("fifo-db compute --all-symbols --force:")
            run = compute_all(conn, force=True)
            out(format_stats(run))
            out("")
            findings = verify(conn)
            if findings:
                for f in findings:
                    out(str(f))
                out(f"verify: {len(findings)} finding(s)")
                return 1
            pools = conn.execute("SELECT count(*) FROM fifo.pool_state").fetchone()[0]
            out(f"verify: clean ({pools} pools: SQL invariants hold and every allocation equals "
                f"the reference FIFO)")
    except psycopg.Error as exc:
        raise from_db_error(exc) from None
    out("")
    out(f"demo done in {time.perf_counter() - started:.1f}s. Look around: psql \"{demo_dsn}\"")
    return 0


def register(sub) -> None:
    p = sub.add_parser("demo", help="run the seed's story end to end on a scratch database",
                       description="Create database fifo_demo (dropping an old one), install, load the "
                                   "seed's SAPIEN-USD story and 4,513 synthetic trades, compute, verify.")
    p.set_defaults(func=lambda args: run_demo(args.dsn), needs_db=False)
