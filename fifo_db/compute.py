"""Compute: thin calls to compute_fifo*(), the seed's statistics block, and progress.

Each function returns the fifo_runs row (as a dict) of the run it made.
"""

from __future__ import annotations

import json
import re
import sys
from functools import partial
from datetime import datetime, timezone
from decimal import ROUND_HALF_UP, Decimal

import psycopg
from psycopg.rows import dict_row
from psycopg.types.json import set_json_loads

from fifo_db.errors import FifoError, from_db_error, run_gave_up
from fifo_db.report import money as report_money

_exact_json = partial(json.loads, parse_float=Decimal, parse_int=Decimal)
_PROGRESS = re.compile(r"fifo-db progress: (\d+) of (\d+) pools")


class Progress:
    """A notice handler drawing a progress bar from the engine's progress notices."""

    def __init__(self, stream=None):
        self.stream = stream or sys.stderr
        self.shown = False

    def __call__(self, diag: psycopg.errors.Diagnostic) -> None:
        m = _PROGRESS.match(diag.message_primary or "")
        if not m:
            return
        done, total = int(m.group(1)), int(m.group(2))
        width = 30
        filled = width * done // total
        self.stream.write(f"\r[{'#' * filled}{'.' * (width - filled)}] {done}/{total} pools")
        self.stream.flush()
        self.shown = True

    def close(self) -> None:
        if self.shown:
            self.stream.write("\n")
            self.stream.flush()


def _call(conn: psycopg.Connection, sql: str, params: tuple, progress: Progress | None = None,
          mode: str = "symbol", version: int | None = None) -> dict | None:
    if progress:
        conn.add_notice_handler(progress)
    started = datetime.now(timezone.utc)
    try:
        with conn.cursor(row_factory=dict_row) as cur:
            set_json_loads(_exact_json, cur)   # pnl_by_currency: exact Decimals, not floats
            cur.execute(sql, params)
            row = cur.fetchone()
    except psycopg.OperationalError as exc:
        raise _interrupted(conn, exc, mode, version, started) from None
    except KeyboardInterrupt:   # psycopg cancelled the statement on the server: it rolled back
        print(f"fifo-db: {_interrupted(conn, None, mode, version, started)}", file=sys.stderr)
        raise
    except psycopg.Error as exc:
        raise from_db_error(exc) from None
    finally:
        if progress:
            conn.remove_notice_handler(progress)
            progress.close()
    return row if row and row.get("batch_id") is not None else None


def _interrupted(conn: psycopg.Connection, exc: psycopg.Error | None, mode: str, version: int | None,
                 started: datetime) -> FifoError:
    """The session running a computation was cut off: everything it did rolled back, its own
    fifo_runs row included. Record it as a failed run from a new session, so the history says so."""
    reason = from_db_error(exc) if exc is not None else "cancelled from the keyboard"
    try:
        with psycopg.connect(conn.info.dsn, password=conn.info.password or None, autocommit=True) as again:
            run_id = again.execute("SELECT fifo._record_interrupted_run(%s, %s, %s, %s)",
                                   (mode, version, started, str(reason))).fetchone()[0]
        recorded = f"recorded as failed run {run_id}"
    except psycopg.Error as exc2:
        recorded = f"not recorded ({from_db_error(exc2)})"
    return FifoError(f"the {mode} run was interrupted before it finished and changed nothing "
                     f"({reason}); {recorded}; pending changes stay queued for the next run")


def compute_symbol(conn, symbol: str, version: int | None = None) -> dict:
    return _call(conn, "SELECT * FROM compute_fifo(%s, %s)", (symbol, version), mode="symbol", version=version)


def compute_all(conn, force: bool = False, version: int | None = None,
                progress: Progress | None = None) -> dict:
    return _call(conn, "SELECT * FROM compute_fifo_all(%s, %s)", (force, version), progress,
                 mode="all" if force else "incremental", version=version)


def compute_incremental(conn, version: int | None = None) -> dict | None:
    """None when nothing was pending (or another incremental run was busy)."""
    return _call(conn, "SELECT * FROM compute_fifo_incremental(%s)", (version,), mode="incremental",
                 version=version)


def parse_since(conn, text: str) -> datetime:
    """'10 minutes ago', an ISO date or time, today, yesterday, now: the forms every report's
    --from/--to take, read by the same SQL function (fifo_report_time), so an ambiguous date
    such as 03/01/2025 is refused here too instead of being taken for March 1.

    An ISO date or time without a zone is read in the report time zone (setting report_timezone).
    """
    try:
        with conn.transaction():
            return conn.execute("SELECT public.fifo_report_time(%s)", (text,)).fetchone()[0]
    except psycopg.errors.InvalidDatetimeFormat as exc:
        hint = f" ({exc.diag.message_hint})" if exc.diag.message_hint else ""
        raise FifoError(f"--since: {exc.diag.message_primary}{hint}") from None


def compute_since(conn, since: datetime, version: int | None = None,
                  progress: Progress | None = None) -> dict:
    return _call(conn, "SELECT * FROM compute_fifo_since(%s, %s)", (since, version), progress,
                 mode="since", version=version)


def money(value: Decimal) -> str:
    """-$1,261.01 style, rounded half-up to cents for display only."""
    cents = Decimal(value).quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)
    sign = "-" if cents < 0 else ""
    return f"{sign}${abs(cents):,.2f}"


def total_pnl(run: dict) -> str:
    """The run's realized P&L per quote currency, never added across them: '-$0.31' for dollars
    (the seed's form), '0.0318 BTC', '-$820.20; 0.0318 BTC' for a run over both."""
    by_currency = run.get("pnl_by_currency") or {}
    if not by_currency:
        return money(run["total_pnl"])
    parts = []
    for currency in sorted(by_currency, key=lambda c: (c != "USD", c == "?", c)):
        value = Decimal(by_currency[currency])
        if currency == "USD":
            parts.append(money(value))
        elif currency == "?":
            parts.append(f"{report_money(value)} (symbols without a quote currency)")
        else:
            parts.append(f"{report_money(value, currency)} {currency}")
    return "; ".join(parts)


def format_stats(run: dict) -> str:
    """The seed's statistics block for one run."""
    ok = run["status"] in ("ok", "skipped")
    ms = Decimal(run["duration_ms"] or 0)
    head = "Computation SUCCESSFUL" if ok else f"Computation {run['status'].upper()}"
    lines = [
        head,
        "",
        "Statistics:",
        f"  - Version: {run['version']}",
        f"  - Batch ID: {run['batch_id']}",
        f"  - Mode: {run['mode']}",
        f"  - Symbols processed: {len(run['symbols']):,}",
        f"  - Pools processed: {run['pools']:,}",
        f"  - Buys processed: {run['buys']:,}",
        f"  - Sells processed: {run['sells']:,}",
        f"  - Allocations created: {run['allocations']:,}",
        f"  - Unmatched (oversold) rows: {run['unmatched']:,}",
        f"  - Total PnL: {total_pnl(run)}",
        f"  - Duration: {ms / 1000:.2f}s ({ms:,.0f}ms)",
    ]
    if run["skipped_pools"]:
        lines.append(f"  - Pools skipped (held by another run, still pending): {run['skipped_pools']:,}")
        if run["error"] and not run["failed_pools"]:
            lines.append(f"      {run['error']}")
    if run["failed_pools"]:
        lines.append(f"  - Pools failed (previous allocations kept): {run['failed_pools']:,}")
        lines.extend(f"      {line}" for line in (run["error"] or "").splitlines())
    return "\n".join(lines)


def version_arg(text: str) -> int:
    """--version: an allocation version, a whole number from 1 to 2147483647 (argparse type)."""
    import argparse

    if not text.strip().isdigit() or not 1 <= int(text) <= 2_147_483_647:
        raise argparse.ArgumentTypeError(f"must be a whole number from 1 to 2147483647, got {text!r}")
    return int(text)


def register(sub) -> None:
    p = sub.add_parser("compute", help="compute FIFO allocations",
                       description="Compute FIFO allocations for one symbol or all of them.")
    target = p.add_mutually_exclusive_group(required=True)
    target.add_argument("--symbol", help="recompute every pool of this symbol (full, atomic)")
    target.add_argument("--all-symbols", action="store_true",
                        help="bring every pool current (with --force: recompute every pool)")
    target.add_argument("--incremental", action="store_true",
                        help="recompute only the pools with pending changes (compute_fifo_incremental(), "
                             "the crontab form); prints nothing when nothing changed")
    p.add_argument("--force", action="store_true",
                   help="with --all-symbols: full recompute of every pool")
    p.add_argument("--since", metavar="TIME",
                   help="with --all-symbols: only pools with trades recorded or changed since "
                        "TIME ('10 minutes ago', '2025-12-04', '2025-12-04 10:00+00'; ISO, year first)")
    p.add_argument("--version", type=version_arg, help="allocation version (default: the current one)")
    p.set_defaults(func=_cli_compute)


def _cli_compute(args, conn) -> int:
    # compute --symbol is always a full recompute; --force is accepted there as the seed wrote it
    if args.symbol is not None and args.since:
        raise FifoError("--since goes with --all-symbols, not --symbol")
    if args.since and args.force:
        raise FifoError("--since and --force contradict each other: --force recomputes everything")
    progress = Progress() if sys.stderr.isatty() else None
    if args.incremental:
        if args.since or args.force:
            raise FifoError("--incremental computes the pending changes; it takes neither --since nor --force")
        run = compute_incremental(conn, args.version)
        if run is None:
            return 0          # nothing pending: quiet (a crontab line mails nothing)
    elif args.symbol is not None:
        run = compute_symbol(conn, args.symbol, args.version)
    elif args.since:
        run = compute_since(conn, parse_since(conn, args.since), args.version, progress)
    else:
        run = compute_all(conn, args.force, args.version, progress)
    gave_up = run_gave_up(run)
    if gave_up:
        raise gave_up
    print(format_stats(run))
    return 0 if run["status"] in ("ok", "skipped") else 1
