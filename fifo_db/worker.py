"""`fifo-db worker`: keep allocations current on a server without pg_cron.

A long-running foreground process (a container beside the bot, a systemd
service). It LISTENs on channel fifo_db_changes, which the change-capture
triggers notify at the writer's commit (sql/080), and on each notification,
and on a safety tick (default every 30 s) in case one was missed, runs
compute_fifo_incremental(). It runs the nightly forced recompute
compute_fifo_all(true) at a local time in a time zone (--full-at,
--timezone). Between runs it blocks in select() on the connection's socket:
an idle worker costs nothing.

Only one worker per database computes: the row fifo.workers 'worker' records
the computing session (fifo_worker_claim(), sql/120_worker.sql); another
worker finds that session alive and waits as a standby, asking again every
--standby-poll seconds, and takes over once it is gone. No transaction stays
open and no advisory lock is taken.

A lost connection (server restart, pg_terminate_backend) is logged in one line
and retried with backoff (1 s doubling to 30 s); SIGTERM and SIGINT end the
worker with exit 0 and one line (a run in progress is cancelled: it rolls
back and its changes stay queued).
"""

from __future__ import annotations

import os
import re
import secrets
import select
import signal
import socket
import time
from datetime import datetime, time as dtime, timedelta, timezone
from typing import Callable
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import psycopg
from psycopg.pq import ConnStatus

from fifo_db.connection import bad_dsn, resolve_dsn
from fifo_db.errors import FifoError, from_db_error
from fifo_db.masking import scrub

CHANNEL = "fifo_db_changes"
DEFAULT_FULL_AT = "01:50"          # like the pg_cron job '50 1 * * *' (GMT)
DEFAULT_TIMEZONE = "UTC"
DEFAULT_TICK = 30.0
DEFAULT_STANDBY_POLL = 5.0
MAX_BACKOFF = 30.0

_RUN_COLUMNS = "run_id, mode, pools, allocations, duration_ms, status, skipped_pools, error"
# errors that no retry fixes: the role may not run the worker, or fifo-db is not installed
_FATAL_SQLSTATES = {"42501", "42883", "42P01", "3F000", "55000"}


def parse_full_at(text: str) -> dtime | None:
    """--full-at: HH:MM or HH:MM:SS (24-hour clock), or 'none'."""
    if text.strip().lower() == "none":
        return None
    m = re.fullmatch(r"(\d{1,2}):(\d{2})(?::(\d{2}))?", text.strip())
    if not m or int(m.group(1)) > 23 or int(m.group(2)) > 59 or int(m.group(3) or 0) > 59:
        raise FifoError(f"--full-at: cannot read {text!r} as a time of day; use HH:MM (e.g. 01:50), "
                        f"HH:MM:SS, or none for no nightly full recompute")
    return dtime(int(m.group(1)), int(m.group(2)), int(m.group(3) or 0))


def parse_timezone(text: str) -> ZoneInfo:
    try:
        return ZoneInfo(text)
    except (ZoneInfoNotFoundError, ValueError):
        raise FifoError(f"--timezone: unknown time zone {text!r}; use an IANA name such as UTC, "
                        f"Europe/Berlin or America/Los_Angeles") from None


def next_full(after: datetime, at: dtime, tz: ZoneInfo) -> datetime:
    """The first moment strictly after `after` when the clock in `tz` shows `at` (in UTC)."""
    local = after.astimezone(tz)
    candidate = datetime.combine(local.date(), at, tzinfo=tz)
    if candidate <= local:
        candidate = datetime.combine(local.date() + timedelta(days=1), at, tzinfo=tz)
    return candidate.astimezone(timezone.utc)


def _stamp(now: datetime | None = None) -> str:
    return (now or datetime.now(timezone.utc)).strftime("%Y-%m-%d %H:%M:%SZ")


def _plural(n: int, word: str) -> str:
    return f"{n:,} {word}" if n == 1 else f"{n:,} {word}s"


class _Lost(Exception):
    """The connection is gone (server restart, pg_terminate_backend, network)."""


class Worker:
    """The worker loop; run() returns 0 after stop(). Usable in a thread (tests, bench)."""

    def __init__(self, dsn: str, full_at: dtime | None = dtime(1, 50), tz: ZoneInfo = ZoneInfo("UTC"),
                 tick: float = DEFAULT_TICK, standby_poll: float = DEFAULT_STANDBY_POLL,
                 out: Callable[[str], None] | None = None):
        self.dsn = dsn
        self.full_at = full_at
        self.tz = tz
        self.tick = tick
        self.standby_poll = standby_poll
        self.out = out or (lambda line: print(line, flush=True))
        self.client = f"fifo-db worker {socket.gethostname()[:40]}:{os.getpid()} {secrets.token_hex(4)}"
        self._stopping = False
        self.stop_reason = "asked to stop"
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_w, False)
        self._conn: psycopg.Connection | None = None
        self._in_run = False
        self._notified = False
        self.runs = 0

    # -- control ------------------------------------------------------------------------------
    def stop(self, reason: str = "asked to stop") -> None:
        """Ask the worker to end (signal-handler and thread safe): a run in progress is cancelled."""
        self.stop_reason = reason
        self._stopping = True
        try:
            os.write(self._wake_w, b"x")
        except OSError:
            pass
        conn = self._conn
        if self._in_run and conn is not None:
            try:
                conn.cancel_safe(timeout=5)
            except Exception:
                pass

    def log(self, text: str) -> None:
        self.out(f"{_stamp()} fifo-db worker: {scrub(text, self.dsn)}")

    # -- connection ---------------------------------------------------------------------------
    def _connect(self) -> psycopg.Connection:
        try:
            conn = psycopg.connect(self.dsn, autocommit=True, application_name=self.client, connect_timeout=10)
        except psycopg.OperationalError as exc:
            raise from_db_error(exc, self.dsn) from None
        except psycopg.ProgrammingError as exc:   # libpq cannot parse the DSN
            raise FifoError(bad_dsn(self.dsn, exc)) from None
        except psycopg.Error as exc:
            raise from_db_error(exc, self.dsn) from None
        except Exception as exc:   # a malformed DSN
            raise FifoError(bad_dsn(self.dsn, exc)) from None
        conn.add_notify_handler(self._on_notify)
        return conn

    def _on_notify(self, _notify) -> None:
        self._notified = True

    def _reconnect(self, reason: str) -> psycopg.Connection | None:
        self.log(f"lost the connection ({reason}); reconnecting")
        delay = 1.0
        while not self._stopping:
            self._sleep(delay)
            if self._stopping:
                break
            try:
                return self._connect()
            except FifoError:
                delay = min(delay * 2, MAX_BACKOFF)
        return None

    def _sleep(self, seconds: float) -> None:
        if seconds > 0 and not self._stopping:
            ready, _, _ = select.select([self._wake_r], [], [], seconds)
            if ready:
                os.read(self._wake_r, 64)

    def _wait(self, conn: psycopg.Connection, seconds: float) -> None:
        """Block until a notification, stop() or `seconds` (the idle state: no query, no wake-up)."""
        if self._notified or self._stopping:
            return
        ready, _, _ = select.select([conn.fileno(), self._wake_r], [], [], max(seconds, 0))
        if self._wake_r in ready:
            os.read(self._wake_r, 64)
        if conn.fileno() in ready:
            pgconn = conn.pgconn
            try:
                pgconn.consume_input()
            except psycopg.Error as exc:
                raise _Lost(" ".join(str(exc).split()) or "the server closed it") from None
            while (n := pgconn.notifies()) is not None:
                if n.relname.decode() == CHANNEL:
                    self._notified = True
            if pgconn.status != ConnStatus.OK:
                raise _Lost(pgconn.get_error_message().decode(errors="replace").strip() or "the server closed it")

    # -- runs ---------------------------------------------------------------------------------
    def _call(self, conn: psycopg.Connection, sql: str) -> tuple | None:
        self._in_run = True
        try:
            if self._stopping:
                return None
            return conn.execute(sql).fetchone()
        finally:
            self._in_run = False

    def _run(self, conn: psycopg.Connection, full: bool) -> dict | None:
        sql = (f"SELECT {_RUN_COLUMNS} FROM compute_fifo_all(true)" if full
               else f"SELECT {_RUN_COLUMNS} FROM compute_fifo_incremental()")
        try:
            row = self._call(conn, sql)
        except psycopg.errors.QueryCanceled:
            if self._stopping:
                self.log(f"{'full' if full else 'incremental'} run cancelled by the stop; it changed nothing, "
                         f"pending changes stay queued")
                return None
            raise
        if row is None or row[0] is None:
            return None       # nothing to do: quiet
        run = dict(zip(("run_id", "mode", "pools", "allocations", "duration_ms", "status", "skipped_pools",
                        "error"), row))
        self.runs += 1
        line = (f"run {run['run_id']} {run['mode']}: {_plural(run['pools'], 'pool')}, "
                f"{_plural(run['allocations'], 'allocation')}, {float(run['duration_ms'] or 0):.0f} ms, "
                f"{run['status']}")
        if run["skipped_pools"]:
            line += f" ({_plural(run['skipped_pools'], 'pool')} held by another run, retried)"
        if run["status"] in ("failed", "partial") and run["error"]:
            line += f": {' '.join(run['error'].split())[:300]}"
        self.log(line)
        return run

    def _assets(self, conn: psycopg.Connection) -> None:
        """Keep the asset (tax) view current too, once it has been computed: an incremental asset run
        (compute_fifo_assets_incremental(true): nothing while it never was, and nothing recorded when
        no trade, price or transfer changed). Quiet unless it ran."""
        row = self._call(conn, "SELECT run_id, kind, pools, rounds FROM compute_fifo_assets_incremental(true)")
        if row is None or row[0] is None:
            return
        self.log(f"asset run {row[0]} {row[1]}: {_plural(row[2], 'pool')} recomputed in "
                 f"{_plural(row[3], 'round')}")

    def _claim(self, conn: psycopg.Connection) -> tuple:
        return conn.execute("SELECT active, holder_pid, holder_client, holder_since FROM fifo_worker_claim()").fetchone()

    # -- the loop -----------------------------------------------------------------------------
    def _serve(self, conn: psycopg.Connection) -> None:
        """Standby until this session holds the row, then compute on notifications and ticks."""
        active = False
        standby_logged = False
        next_tick = 0.0
        due_full = next_full(datetime.now(timezone.utc), self.full_at, self.tz) if self.full_at else None
        while not self._stopping:
            now = datetime.now(timezone.utc)
            mono = _monotonic()
            if not active or mono >= next_tick:
                claim = self._claim(conn)
                if not claim[0]:
                    if active:
                        conn.execute(f"UNLISTEN {CHANNEL}")
                        active = False
                    if not standby_logged:
                        self.log(f"standby: pid {claim[1]} ({claim[2]}) computes since {_stamp(claim[3])}; "
                                 f"asking again every {self.standby_poll:g} s")
                        standby_logged = True
                    self._notified = False
                    self._sleep(self.standby_poll)
                    continue
                if not active:
                    conn.execute(f"LISTEN {CHANNEL}")   # before the first run: nothing committed after it is missed
                    active = True
                    standby_logged = False
                    full = (f"nightly full recompute at {self.full_at.strftime('%H:%M:%S').removesuffix(':00')} "
                            f"{self.tz.key} (next {_stamp(due_full)})" if due_full else "no nightly full recompute")
                    self.log(f"active (pid {conn.info.backend_pid}, database {conn.info.dbname!r}, "
                             f"user {conn.info.user!r}); {full}; safety tick {self.tick:g} s")
                    self._notified = True
                else:
                    self._notified = True      # the safety tick
                next_tick = mono + self.tick
            if due_full is not None and now >= due_full:
                self._notified = False
                self._run(conn, full=True)
                self._assets(conn)
                due_full = next_full(max(now, datetime.now(timezone.utc)), self.full_at, self.tz)
                continue
            if self._notified:
                self._notified = False
                run = self._run(conn, full=False)
                self._assets(conn)
                if run and run["skipped_pools"] and not self._stopping:
                    self._sleep(1.0)           # held by another run: try again shortly, not at the next tick
                    self._notified = True
                continue
            until = next_tick - _monotonic()
            if due_full is not None:
                until = min(until, (due_full - datetime.now(timezone.utc)).total_seconds())
            self._wait(conn, until)

    def run(self) -> int:
        """Connect (a failure here is fatal: one line), then serve until stop()."""
        conn = self._connect()
        try:
            while not self._stopping:
                self._conn = conn
                try:
                    self._serve(conn)
                except (_Lost, psycopg.OperationalError, psycopg.InterfaceError) as exc:
                    if self._stopping:
                        break
                    reason = str(exc) if isinstance(exc, _Lost) else str(from_db_error(exc))
                    self._conn = None
                    conn.close()
                    started = _monotonic()
                    new = self._reconnect(" ".join(reason.split())[:300])
                    if new is None:
                        break
                    conn = new
                    self.log(f"reconnected after {_monotonic() - started:.0f} s")
                except psycopg.Error as exc:
                    err = from_db_error(exc)
                    if getattr(err, "sqlstate", "") in _FATAL_SQLSTATES:
                        raise err from None
                    self.log(f"run failed: {err}; retrying at the next tick")
                    self._sleep(min(self.tick, 5.0))
        finally:
            self._conn = None
            try:   # give the row up: the capture triggers stop notifying until a worker claims it again
                conn.execute("SELECT fifo_worker_release()")
            except psycopg.Error:
                pass   # a lost connection: its session is gone, the row frees itself (sql/120)
            conn.close()
        self.log(f"stopped on {self.stop_reason} after {_plural(self.runs, 'run')}")
        return 0

    def close(self) -> None:
        for fd in (self._wake_r, self._wake_w):
            try:
                os.close(fd)
            except OSError:
                pass


def _monotonic() -> float:
    return time.monotonic()


def register(sub) -> None:
    p = sub.add_parser("worker", help="keep allocations current without pg_cron (foreground process)",
                       description="Listen for the bot's commits and bring changed pools current within a "
                                   "second; run the nightly forced full recompute; reconnect after a server "
                                   "restart. One worker per database computes, others wait as standbys. "
                                   "Stop it with SIGTERM or Ctrl-C. See docs/worker.md.")
    p.add_argument("--full-at", default=DEFAULT_FULL_AT, metavar="HH:MM",
                   help=f"local time of the nightly forced full recompute (default {DEFAULT_FULL_AT}; "
                        f"HH:MM:SS accepted; 'none': no nightly run)")
    p.add_argument("--timezone", default=DEFAULT_TIMEZONE, metavar="ZONE",
                   help=f"time zone of --full-at, an IANA name (default {DEFAULT_TIMEZONE})")
    p.add_argument("--tick", default=DEFAULT_TICK, type=float, metavar="SECONDS",
                   help=f"safety tick: run compute_fifo_incremental() at least this often, in case a "
                        f"notification was missed (default {DEFAULT_TICK:g})")
    p.add_argument("--standby-poll", default=DEFAULT_STANDBY_POLL, type=float, metavar="SECONDS",
                   help=f"a standby asks this often whether the computing worker is gone "
                        f"(default {DEFAULT_STANDBY_POLL:g})")
    p.set_defaults(func=_cli_worker, needs_db=False)


def _cli_worker(args) -> int:
    full_at = parse_full_at(args.full_at)
    tz = parse_timezone(args.timezone)
    for name, value in (("--tick", args.tick), ("--standby-poll", args.standby_poll)):
        if not 0.1 <= value <= 86_400:
            raise FifoError(f"{name}: must be between 0.1 and 86400 seconds, got {value:g}")
    worker = Worker(resolve_dsn(args.dsn), full_at, tz, args.tick, args.standby_poll)

    def on_signal(signum, _frame):
        worker.stop(signal.Signals(signum).name)

    previous = {s: signal.signal(s, on_signal) for s in (signal.SIGTERM, signal.SIGINT)}
    try:
        return worker.run()
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
        worker.close()
