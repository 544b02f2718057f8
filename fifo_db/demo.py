"""The demo: the seed's story end to end, in the database every other command uses.

It loads into the default target, the embedded server's database `fifo` (or the
database of --dsn / FIFO_DB_DSN), so the commands the README shows next
(`fifo-db compute --symbol SAPIEN-USD`, `fifo-db report pnl ...`, `fifo-db explain ...`)
work as printed. It never destroys a user's data: it runs only in a database that
holds no trades or only the demo's own (source 'fifo-db demo', which a re-run
replaces), and otherwise refuses with the one-line fix (a database of its own).

It installs fifo-db, loads the seed's SAPIEN-USD trades in the order they reached
the bot (the Dec 3 sell before its buy) plus a seed-sized synthetic history (171
symbols, 4,513 trades), computes, prints the SAPIEN-USD matching and the
statistics, and verifies.
"""

from __future__ import annotations

import time

import psycopg

from fifo_db.compute import compute_all, compute_symbol, format_stats, money
from fifo_db.connection import connect, resolve_dsn
from fifo_db.errors import FifoError, from_db_error
from fifo_db.install import install
from fifo_db.masking import has_password, mask_dsn
from fifo_db.sample import SAPIEN_SELL, SAPIEN_SEPT10_BUY, copy_rows, sapien_story, synthetic_rows
from fifo_db.verify import verify

DEMO_SOURCE = "fifo-db demo"   # trade_records.source of every demo trade


def _demo_rows(rows):
    """The sample trades, marked as the demo's own."""
    for row in rows:
        yield (*row[:-1], DEMO_SOURCE)


def _check_room(conn: psycopg.Connection) -> int:
    """Trades the demo may replace (its own); refuses when the database holds anyone else's."""
    exists = conn.execute("SELECT to_regclass('public.trade_records') IS NOT NULL").fetchone()[0]
    if not exists:
        return 0
    has_source = conn.execute(
        "SELECT EXISTS (SELECT 1 FROM pg_attribute WHERE attrelid = 'public.trade_records'::regclass "
        "AND attname = 'source' AND NOT attisdropped)").fetchone()[0]
    others = conn.execute(
        "SELECT count(*) FROM public.trade_records WHERE source IS DISTINCT FROM %s" if has_source
        else "SELECT count(*) FROM public.trade_records", (DEMO_SOURCE,) if has_source else ()).fetchone()[0]
    if others:
        db = conn.info.dbname
        raise FifoError(f"database {db!r} already holds {others:,} trade(s) that are not the demo's, and the demo "
                        f"never touches them: run it in a database of its own: `fifo-db db create fifo_demo` "
                        f"then `fifo-db --dsn '<the DSN it prints>' demo`")
    return conn.execute("SELECT count(*) FROM public.trade_records").fetchone()[0]


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
    embedded = not (dsn or _env_dsn())
    conn = connect(target)
    try:
        with conn:
            db = conn.info.dbname
            out(f"server: {mask_dsn(target)}" + ("  (embedded; `fifo-db db stop` stops it)" if embedded else ""))
            replaced = _check_room(conn)
            result = install(conn)
            where = (f"database {db!r}, the embedded server's default: every fifo-db command uses it"
                     if embedded else f"database {db!r}")
            out(f"installed fifo-db into {where} "
                f"(migrations: {', '.join(result.migrations_applied) or 'none pending'}; {result.sql_files} SQL files)")
            if replaced:
                conn.execute("DELETE FROM trade_records WHERE source = %s", (DEMO_SOURCE,))
                out(f"replaced the {replaced:,} trades of an earlier demo run")
            story = sapien_story()
            copy_rows(conn, _demo_rows(story))
            n = copy_rows(conn, _demo_rows(synthetic_rows(symbols=171, trades=4513, seed=7)))
            out(f"loaded the seed's SAPIEN-USD story ({len(story)} trades, the Dec 3 sell recorded "
                f"before its buy) and {n:,} synthetic trades over 171 symbols")
            out("")
            out("SELECT compute_fifo('SAPIEN-USD'):")
            compute_symbol(conn, "SAPIEN-USD")
            for line in _sapien_table(conn):
                out(line)
            right = conn.execute("SELECT pnl_amount FROM fifo_allocations WHERE sell_trade_id = %s "
                                 "AND version = fifo._current_version()", (SAPIEN_SELL,)).fetchone()[0]
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
            pools = conn.execute("SELECT count(*) FROM fifo.pool_state "
                                 "WHERE version = fifo._current_version()").fetchone()[0]
            out(f"verify: clean ({pools} pools: every allocation equal to FIFO recomputed in SQL "
                f"and to the Python reference FIFO)")
    except psycopg.Error as exc:
        raise from_db_error(exc, target) from None
    out("")
    out(f"demo done in {time.perf_counter() - started:.1f}s. Next, as the README shows:")
    command = _command()
    prefix = f"{command} --dsn '{mask_dsn(target)}'" if dsn and not embedded else command
    for command in ("compute --symbol SAPIEN-USD", "report pnl --symbol SAPIEN-USD", f"explain {SAPIEN_SELL}"):
        out(f"  {prefix} {command}")
    out(f"or look around in psql: psql \"{mask_dsn(target)}\"")
    if has_password(target):
        out("(**** stands for the password of your DSN, which fifo-db never prints)")
    return 0


def _command() -> str:
    """How a new shell runs this fifo-db: `fifo-db` when PATH finds this one (scripts/bootstrap links
    it), else its absolute path (e.g. /home/me/fifo-db/.venv/bin/fifo-db)."""
    import os
    import shutil
    import sys

    me = sys.argv[0] if os.path.basename(sys.argv[0]) == "fifo-db" else None
    on_path = shutil.which("fifo-db")
    if me is None or (on_path and os.path.realpath(on_path) == os.path.realpath(me)):
        return "fifo-db"
    return os.path.abspath(me)


def _env_dsn() -> str | None:
    import os

    return os.environ.get("FIFO_DB_DSN") or None


def register(sub) -> None:
    p = sub.add_parser("demo", help="run the seed's story end to end in the default database",
                       description="Install fifo-db into the default database (the embedded server's `fifo`, "
                                   "or --dsn), load the seed's SAPIEN-USD story and 4,513 synthetic trades, "
                                   "compute, verify. Runs only where the database holds no trades or only an "
                                   "earlier demo's; never touches other data.")
    p.set_defaults(func=lambda args: run_demo(args.dsn), needs_db=False)
