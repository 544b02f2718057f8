"""Verify: verify_fifo() in SQL, plus, on small data, the plain-Python reference.

verify_fifo() recomputes FIFO over the current trades of every computed pool,
set-based and independently of the engine, and compares every stored row
exactly (sql/100_verify_fifo.sql): it is the check that scales, and the one
the command always runs. The plain-Python FIFO in reference.py is a second,
independent opinion; it reads every trade into this process, so by default it
runs only up to REFERENCE_LIMIT computed trades (--reference on|off overrides).

From PROGRESS_TRADES computed trades, `fifo-db verify` says on stderr which step it is in, over
how many trades and pools, every PROGRESS_EVERY seconds while a step runs, and how long it
took; stdout keeps only the findings and the verdict.
"""

from __future__ import annotations

import sys
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass

import psycopg

from fifo_db.compute import version_arg
from fifo_db.errors import FifoError, from_db_error
from fifo_db.reference import Allocation, Trade, match_all

# verify's statements stop after this long unless --timeout says otherwise (a verify that never
# ends blocks nothing, but a nightly job should end with a line that says why)
DEFAULT_TIMEOUT = "30min"

_ALLOC_COLUMNS = ("a.account, a.symbol, a.sell_trade_id, a.buy_trade_id, a.allocated_size, a.buy_price, "
                  "a.sell_price, a.buy_fees, a.sell_fees, a.cost_basis, a.sale_proceeds, a.pnl_amount, "
                  "a.buy_time, a.sell_time")


@dataclass(frozen=True)
class Finding:
    check: str
    symbol: str | None
    account: str | None
    trade_id: str | None
    detail: str

    def __str__(self) -> str:
        where = "/".join(x for x in (self.symbol, self.account) if x)
        trade = f" {self.trade_id}" if self.trade_id else ""
        return f"{self.check}: {where}{trade}: {self.detail}"


def sql_findings(conn, symbol: str | None = None, version: int | None = None) -> list[Finding]:
    rows = conn.execute("SELECT * FROM verify_fifo(%s, %s) ORDER BY 1, 2, 3, 4",
                        (symbol, version)).fetchall()
    return [Finding(*r) for r in rows]


def reference_findings(conn, symbol: str | None = None, version: int | None = None) -> list[Finding]:
    """Differences between stored allocations and the Python reference, per computed pool."""
    params = {"s": symbol, "v": version}
    trades = [Trade(*r) for r in conn.execute(
        "SELECT order_id, account, symbol, side, size, price, total_fees, order_time "
        "FROM fifo_computed_trades(%(s)s, %(v)s)", params)]
    stored = [Allocation(*r) for r in conn.execute(
        f"SELECT {_ALLOC_COLUMNS} FROM fifo_allocations a "
        f"JOIN fifo_computed_pools(%(s)s, %(v)s) p USING (version, symbol, account)", params)]
    want = {a.key(): a for a in match_all(trades)}
    have = {a.key(): a for a in stored}
    findings = []
    for key in sorted(set(want) | set(have)):
        w, h = want.get(key), have.get(key)
        account, sym, sell, buy = key
        if w != h:
            if h is None:
                detail = f"missing allocation to lot {buy or '(unmatched)'}: expected {w}"
            elif w is None:
                detail = f"unexpected allocation to lot {buy or '(unmatched)'}: {h}"
            else:
                diffs = [f"{f} {getattr(h, f)} != expected {getattr(w, f)}"
                         for f in Allocation.__dataclass_fields__ if getattr(h, f) != getattr(w, f)]
                detail = f"lot {buy or '(unmatched)'}: " + "; ".join(diffs)
            findings.append(Finding("reference", sym, account, sell, detail))
    return findings


def asset_reference_findings(conn) -> list[Finding]:
    """The asset view against the plain-Python reference (fifo_db/asset_reference.py), row for row,
    when it has been computed and is current (a stale view is verify_fifo()'s asset_stale finding).
    It reads fifo-db's tables: a role without the owner's rights there (a reader) gets verify_fifo()'s
    SQL checks of the asset view only."""
    if not conn.execute("SELECT has_schema_privilege('fifo', 'USAGE')").fetchone()[0]:
        return []   # (the names below cannot even be looked up without it)
    if not conn.execute(
            "SELECT has_function_privilege('fifo._asset_staleness()', 'EXECUTE') "
            "AND bool_and(has_table_privilege(t, 'SELECT')) FROM unnest(ARRAY['fifo.asset_allocations', "
            "'fifo.asset_legs', 'fifo.transfers', 'fifo.prices', 'fifo.settings', 'fifo.trades']) AS t").fetchone()[0]:
        return []
    computed, stale = conn.execute("SELECT computed, stale FROM fifo._asset_staleness()").fetchone()
    if not computed or stale:
        return []
    from fifo_db import assets
    return [Finding("asset_reference", "asset view", None, None, line) for line in assets.verify(conn)]


REFERENCE_LIMIT = 50_000   # computed trades the Python reference reads by default


def computed_trades(conn, symbol: str | None = None, version: int | None = None) -> int:
    return conn.execute("SELECT count(*) FROM fifo_computed_trades(%s, %s)", (symbol, version)).fetchone()[0]


def verify(conn, symbol: str | None = None, version: int | None = None,
           reference: bool | None = None) -> list[Finding]:
    """verify_fifo()'s findings, then the Python reference's (reference=None: only up to
    REFERENCE_LIMIT computed trades; True: always; False: never)."""
    try:
        found = sql_findings(conn, symbol, version)
        if reference is None:
            reference = computed_trades(conn, symbol, version) <= REFERENCE_LIMIT
        if reference:
            found += reference_findings(conn, symbol, version)
            if symbol is None:
                found += asset_reference_findings(conn)
        return found
    except psycopg.Error as exc:
        raise from_db_error(exc) from None


def register(sub) -> None:
    p = sub.add_parser("verify", help="check every allocation against FIFO recomputed from the trades",
                       description="Recompute FIFO over the current trades of every computed pool in SQL "
                                   "(verify_fifo()) and compare every allocation exactly, plus the invariants; "
                                   f"up to {REFERENCE_LIMIT:,} computed trades also with the plain-Python "
                                   "reference FIFO. Exit 1 on any finding.")
    p.add_argument("--symbol", help="only this symbol")
    p.add_argument("--reference", choices=("auto", "on", "off"), default="auto",
                   help=f"the plain-Python reference check: auto (up to {REFERENCE_LIMIT:,} computed trades, "
                        "the default), on (any size: reads every trade into this process), off")
    p.add_argument("--version", type=version_arg, help="allocation version (default: the current one)")
    p.add_argument("--timeout", default=DEFAULT_TIMEOUT, metavar="DURATION",
                   help=f"stop each statement after DURATION (PostgreSQL's statement_timeout: 90s, 30min, 2h; "
                        f"0 = no limit; default {DEFAULT_TIMEOUT})")
    p.set_defaults(func=_cli_verify)


def bound_statements(conn, timeout: str) -> None:
    """statement_timeout for this session (verify's queries), or one line saying what is wrong with it."""
    try:
        with conn.transaction():
            conn.execute("SELECT set_config('statement_timeout', %s, false)", (timeout,))
    except psycopg.Error:
        raise FifoError(f"verify: --timeout {timeout!r} is not a duration PostgreSQL reads "
                        f"(e.g. 90s, 30min, 2h; 0 = no limit)") from None


def unfinished_runs(conn, limit: int = 5) -> list[str]:
    """Runs that failed or were cut off since the last forced full recompute that succeeded:
    fifo_runs rows (failed, partial, or recorded by the client as interrupted) and, when pg_cron
    runs in this database, this database's fifo-db jobs whose run failed or was killed."""
    since = conn.execute("SELECT max(started_at) FROM fifo_runs WHERE mode = 'all' AND status = 'ok'"
                         ).fetchone()[0]
    notes = [f"run {run_id} ({mode}, version {version}) at {started:%Y-%m-%d %H:%M:%S%z} {status}: "
             f"{(error or '').splitlines()[0] if error else ''}".rstrip(": ")
             for run_id, mode, version, started, status, error in conn.execute(
                 "SELECT run_id, mode, version, started_at, status, error FROM fifo_runs "
                 "WHERE status IN ('failed', 'partial') AND started_at > coalesce(%s::timestamptz, '-infinity') "
                 "ORDER BY run_id DESC LIMIT %s",
                 (since, limit))]
    rows = _failed_job_runs(conn, since, limit)
    notes += [f"pg_cron run {runid} of {name!r} at {f'{start:%Y-%m-%d %H:%M:%S%z}' if start else '-'} {status}: "
              f"{(message or '').strip().splitlines()[0] if message else 'no message'}"
              for runid, name, start, status, message in rows]
    return notes


FAILED_JOB_RUNS = (
    "SELECT d.runid, coalesce(j.jobname, d.command), d.start_time, d.status, d.return_message "
    "FROM cron.job_run_details d LEFT JOIN cron.job j USING (jobid) "
    "WHERE d.database = %s AND d.command IN ('SELECT public.compute_fifo_incremental()', "
    "                                        'SELECT public.compute_fifo_all(true)') "
    # a run pg_cron could not even connect for has no start time
    "AND d.status IN ('failed', 'running') AND coalesce(d.start_time, 'infinity') > coalesce(%s::timestamptz, '-infinity') "
    "AND NOT EXISTS (SELECT 1 FROM pg_stat_activity a WHERE a.pid = d.job_pid "
    "                AND a.state <> 'idle' AND d.status = 'running') "
    "ORDER BY d.runid DESC LIMIT %s")


def _failed_job_runs(conn, since, limit: int) -> list[tuple]:
    """This database's fifo-db pg_cron runs that failed (newest first), read in the cron database
    (this one or another on the server); none when pg_cron is absent or not readable by this role."""
    from psycopg.conninfo import make_conninfo

    try:
        cron_db = conn.execute("SELECT cron_database FROM fifo._cron_status() WHERE preloaded").fetchone()
        if cron_db is None:
            return []
        if cron_db[0] == conn.info.dbname:
            with conn.transaction():
                return conn.execute(FAILED_JOB_RUNS, (conn.info.dbname, since, limit)).fetchall()
        with psycopg.connect(make_conninfo(conn.info.dsn, dbname=cron_db[0], password=conn.info.password or None),
                             autocommit=True, connect_timeout=10) as cron:
            return cron.execute(FAILED_JOB_RUNS, (conn.info.dbname, since, limit)).fetchall()
    except psycopg.Error:
        return []   # pg_cron not created there, or not visible to this role


def _cli_verify(args, conn) -> int:
    bound_statements(conn, args.timeout)
    stopped = (f"verify: stopped after --timeout {args.timeout} (statement_timeout), nothing was concluded: "
               f"give it more time (--timeout 2h) or verify one symbol at a time (--symbol)")
    try:
        return _verify_and_print(args, conn)
    except FifoError as exc:
        if getattr(exc, "sqlstate", None) == "57014":
            raise FifoError(stopped) from None
        raise
    except psycopg.errors.QueryCanceled:
        raise FifoError(stopped) from None


PROGRESS_TRADES = 100_000   # from this many computed trades, verify says on stderr what it is doing
PROGRESS_EVERY = 15.0       # seconds between its "still ..." lines during one long step


@contextmanager
def _step(shown: bool, what: str):
    """Say on stderr (never stdout: its lines are verify's result) that `what` starts, every
    PROGRESS_EVERY seconds that it still runs, and when it is done."""
    if not shown:
        yield
        return
    started = time.monotonic()
    done = threading.Event()

    def ticker() -> None:
        while not done.wait(PROGRESS_EVERY):
            print(f"verify: ... still {what} ({time.monotonic() - started:.0f} s)", file=sys.stderr, flush=True)

    print(f"verify: {what} ...", file=sys.stderr, flush=True)
    thread = threading.Thread(target=ticker, daemon=True)
    thread.start()
    try:
        yield
    finally:
        done.set()
        thread.join()
    print(f"verify: {what}: done in {time.monotonic() - started:.1f} s", file=sys.stderr, flush=True)


def _verify_and_print(args, conn) -> int:
    if args.symbol:
        from fifo_db.report import check_scope
        check_scope(conn, args.symbol)   # a symbol with no trades: the error compute gives
    trades = computed_trades(conn, args.symbol, args.version)
    pools = conn.execute("SELECT count(*) FROM fifo_computed_pools(%s, %s)",
                         (args.symbol, args.version)).fetchone()[0]
    reference = {"auto": None, "on": True, "off": False}[args.reference]
    if reference is None:
        reference = trades <= REFERENCE_LIMIT
    shown = trades >= PROGRESS_TRADES
    try:
        with _step(shown, f"recomputing FIFO in SQL over {trades:,} trades of {pools:,} computed pool(s) "
                          f"and comparing every allocation (verify_fifo())"):
            findings = sql_findings(conn, args.symbol, args.version)
        if reference:
            with _step(shown, f"matching the {trades:,} trades again with the Python reference FIFO"):
                findings += reference_findings(conn, args.symbol, args.version)
                if not args.symbol:
                    findings += asset_reference_findings(conn)
    except psycopg.errors.QueryCanceled:
        raise
    except psycopg.Error as exc:
        raise from_db_error(exc) from None
    for f in findings:
        print(f)
    for note in unfinished_runs(conn):
        print(f"note: {note}")
    if findings:
        print(f"verify: {len(findings)} finding(s) in {pools} computed pool(s)")
        return 1
    also = " and to the Python reference FIFO" if reference else ""
    print(f"verify: clean ({pools} computed pool(s): every allocation equal to FIFO recomputed in SQL{also})")
    return 0
