"""`fifo-db worker` (fifo_db/worker.py, sql/120_worker.sql): real subprocesses against the real
test server, no pg_cron involved (so these run on 15, 16 and 18). Waits are bounded polls for
an outcome (up to 15 s), never assertions about speed."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from datetime import datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

import psycopg
import pytest

from fifo_db.schedule import crontab_lines
from fifo_db.worker import next_full, parse_full_at
from tests.helpers import add_trades, allocations

BOUND = 15.0     # seconds: how long an outcome may take before the test calls it missing


class WorkerProcess:
    """`python -m fifo_db --dsn DSN worker ARGS` with its output lines collected."""

    def __init__(self, dsn: str, *args: str):
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "fifo_db", "--dsn", dsn, "worker", "--tick", "2", "--standby-poll", "0.5",
             *args],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env={**os.environ, "PYTHONUNBUFFERED": "1"})
        self.lines: list[str] = []
        self._cond = threading.Condition()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        for line in self.proc.stdout:
            with self._cond:
                self.lines.append(line.rstrip("\n"))
                self._cond.notify_all()

    def wait_for(self, pattern: str, after: int = 0) -> str:
        """The first line from index `after` on matching `pattern`; fails after BOUND seconds."""
        deadline = time.monotonic() + BOUND
        with self._cond:
            while True:
                for line in self.lines[after:]:
                    if re.search(pattern, line):
                        return line
                left = deadline - time.monotonic()
                if left <= 0:
                    pytest.fail(f"no line matching {pattern!r} within {BOUND} s; output: {self.lines}")
                self._cond.wait(left)

    def stop(self, sig=signal.SIGTERM) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            rc = self.proc.wait(BOUND)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            pytest.fail(f"the worker did not end within {BOUND} s of {sig!r}; output: {self.lines}")
        self.close()
        return rc

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self._reader.join(5)
        self.proc.stdout.close()


@pytest.fixture
def workers(dsn):
    started: list[WorkerProcess] = []

    def start(*args: str) -> WorkerProcess:
        w = WorkerProcess(dsn, *args)
        started.append(w)
        return w

    yield start
    for w in started:
        w.close()


def wait_allocations(conn, count: int) -> list[dict]:
    """Poll (bounded) until the pool BTC-USD has `count` allocations; return them."""
    deadline = time.monotonic() + BOUND
    while True:
        rows = allocations(conn, "BTC-USD")
        if len(rows) >= count or time.monotonic() > deadline:
            return rows
        time.sleep(0.1)


def brief(rows: list[dict]) -> list[tuple]:
    return [(r["sell_trade_id"], r["buy_trade_id"], r["allocated_size"], r["pnl_amount"]) for r in rows]


BUY = {"order_id": "b1", "symbol": "BTC-USD", "side": "buy", "size": "1", "price": "100", "total_fees": "1",
       "order_time": "2025-01-01 10:00"}
SELL = {"order_id": "s1", "symbol": "BTC-USD", "side": "sell", "size": "0.4", "price": "150", "total_fees": "0.6",
        "order_time": "2025-01-02 10:00"}
SELL2 = {"order_id": "s2", "symbol": "BTC-USD", "side": "sell", "size": "0.6", "price": "90",
         "order_time": "2025-01-03 10:00"}


def test_a_committed_trade_is_allocated_and_sigterm_exits_0(db, connect, workers):
    w = workers()
    w.wait_for(r"fifo-db worker: active \(pid \d+")
    bot = connect()
    with bot.transaction():                  # the bot's commit: nothing computes it but the worker
        add_trades(bot, [BUY, SELL])
    rows = wait_allocations(db, 1)
    # 0.4 of b1 at 100 (+0.4 of its 1.00 fee) against s1 at 150 less its 0.6 fee: 60 - 0.4 - 0.6 - 40 = 19.0
    assert brief(rows) == [("s1", "b1", Decimal("0.4"), Decimal("19.0"))]
    line = w.wait_for(r"run \d+ incremental: 1 pool, 1 allocation, \d+ ms, ok$")
    run_id = int(re.search(r"run (\d+)", line).group(1))
    assert db.execute("SELECT mode, status, pools, allocations FROM fifo_runs WHERE run_id = %s",
                      (run_id,)).fetchone() == ("incremental", "ok", 1, 1)
    before = len(w.lines)
    assert w.stop(signal.SIGTERM) == 0
    assert len(w.lines) == before + 1, w.lines
    assert re.fullmatch(r"\S+ \S+ fifo-db worker: stopped on SIGTERM after 1 run", w.lines[-1]), w.lines[-1]
    # a clean stop gives the row up: the capture triggers stop notifying (sql/080)
    assert db.execute("SELECT pid FROM fifo.workers").fetchone() == (None,)


def test_nothing_to_do_is_quiet_and_sigint_exits_0(db, workers):
    w = workers("--tick", "0.5")
    w.wait_for(r"active")
    time.sleep(2)        # four safety ticks with nothing pending
    assert w.stop(signal.SIGINT) == 0
    assert [re.sub(r"^\S+ \S+ ", "", line) for line in w.lines[1:]] == \
        ["fifo-db worker: stopped on SIGINT after 0 runs"]
    assert db.execute("SELECT count(*) FROM fifo_runs").fetchone()[0] == 0


def test_a_second_worker_waits_and_takes_over(db, connect, workers):
    first = workers()
    first.wait_for(r"active")
    pid = db.execute("SELECT pid FROM fifo.workers").fetchone()[0]
    second = workers()
    second.wait_for(rf"standby: pid {pid} \(fifo-db worker ")
    bot = connect()
    add_trades(bot, [BUY, SELL])
    assert len(wait_allocations(db, 1)) == 1
    first.wait_for(r"run \d+ incremental: 1 pool")
    time.sleep(1)        # two standby polls: the second still only waits
    assert not [line for line in second.lines if " run " in line or "active" in line], second.lines
    assert first.stop() == 0
    second.wait_for(r"active \(pid \d+")
    assert db.execute("SELECT pid <> %s FROM fifo.workers", (pid,)).fetchone()[0]
    add_trades(bot, [SELL2])
    rows = wait_allocations(db, 2)
    # s2: the remaining 0.6 of b1 at 100 (+0.6 fee) against 0.6 at 90: 54 - 60 - 0.6 = -6.6
    assert brief(rows) == [("s1", "b1", Decimal("0.4"), Decimal("19.0")),
                           ("s2", "b1", Decimal("0.6"), Decimal("-6.6"))]
    second.wait_for(r"run \d+ incremental: 1 pool")
    assert second.stop() == 0


def test_survives_a_terminated_connection(db, connect, workers):
    w = workers()
    w.wait_for(r"active")
    assert db.execute("SELECT pg_terminate_backend(pid) FROM fifo.workers").fetchone()[0] is True
    mark = len(w.lines)
    w.wait_for(r"lost the connection \(.*\); reconnecting$")
    w.wait_for(r"reconnected after \d+ s$", mark)
    w.wait_for(r"active \(pid \d+", mark)
    add_trades(connect(), [BUY, SELL])
    assert brief(wait_allocations(db, 1)) == [("s1", "b1", Decimal("0.4"), Decimal("19.0"))]
    assert w.stop() == 0


def test_the_nightly_full_run_fires_at_full_at(db, connect, workers):
    add_trades(db, [BUY, SELL])
    db.execute("SELECT compute_fifo_all(true)")
    berlin = ZoneInfo("Europe/Berlin")
    at = (datetime.now(berlin) + timedelta(seconds=8)).strftime("%H:%M:%S")   # the worker starts well before
    w = workers("--full-at", at, "--timezone", "Europe/Berlin")
    line = w.wait_for(r"active")
    shown = at.removesuffix(":00")       # HH:MM when the seconds are 0
    assert f"nightly full recompute at {shown} Europe/Berlin" in line
    run = w.wait_for(r"run \d+ all: 1 pool, 1 allocation, \d+ ms, ok$")
    run_id = int(re.search(r"run (\d+)", run).group(1))
    assert db.execute("SELECT mode, status FROM fifo_runs WHERE run_id = %s", (run_id,)).fetchone() == ("all", "ok")
    assert db.execute("SELECT count(*) FROM fifo_runs WHERE mode = 'all'").fetchone()[0] == 2
    assert w.stop() == 0


def test_next_full_is_the_next_local_time():
    tz = ZoneInfo("Europe/Berlin")
    at = parse_full_at("01:50")
    utc = ZoneInfo("UTC")
    # 2026-03-29: Berlin moves from UTC+1 to UTC+2 at 01:00 UTC (02:00 local), after 01:50 local
    assert next_full(datetime(2026, 3, 28, 0, 0, tzinfo=utc), at, tz) == datetime(2026, 3, 28, 0, 50, tzinfo=utc)
    assert next_full(datetime(2026, 3, 28, 0, 50, tzinfo=utc), at, tz) == datetime(2026, 3, 29, 0, 50, tzinfo=utc)
    assert next_full(datetime(2026, 3, 29, 0, 50, tzinfo=utc), at, tz) == datetime(2026, 3, 29, 23, 50, tzinfo=utc)
    assert next_full(datetime(2026, 3, 30, 12, 0, tzinfo=utc), parse_full_at("none") or at, ZoneInfo("UTC")) == \
        datetime(2026, 3, 31, 1, 50, tzinfo=utc)
    assert parse_full_at("none") is None and parse_full_at("7:05:09").isoformat() == "07:05:09"


@pytest.mark.parametrize("args, message", [
    (["--full-at", "25:00"], "fifo-db: error: --full-at: cannot read '25:00' as a time of day; use HH:MM"),
    (["--timezone", "Mars/Olympus"], "fifo-db: error: --timezone: unknown time zone 'Mars/Olympus'"),
    (["--tick", "0"], "fifo-db: error: --tick: must be between 0.1 and 86400 seconds, got 0"),
])
def test_bad_options_give_one_line(dsn, args, message):
    done = subprocess.run([sys.executable, "-m", "fifo_db", "--dsn", dsn, "worker", *args],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 1
    assert done.stdout == ""
    assert done.stderr.startswith(message) and done.stderr.count("\n") == 1, done.stderr


def test_an_unreachable_server_gives_one_line():
    done = subprocess.run([sys.executable, "-m", "fifo_db", "--dsn", "host=127.0.0.1 port=1 dbname=x connect_timeout=5",
                           "worker"], capture_output=True, text=True, timeout=60)
    assert done.returncode == 1
    assert done.stderr.startswith("fifo-db: error: cannot reach PostgreSQL") and done.stderr.count("\n") == 1


def test_a_role_without_the_operator_grant_is_refused(db, dsn, connect):
    db.execute("DROP ROLE IF EXISTS worker_reader")
    db.execute("CREATE ROLE worker_reader LOGIN")
    try:
        db.execute("SELECT fifo_grant('reader', 'worker_reader')")
        done = subprocess.run([sys.executable, "-m", "fifo_db", "--dsn", f"{dsn} user=worker_reader", "worker"],
                              capture_output=True, text=True, timeout=60)
        assert done.returncode == 1
        assert done.stderr.startswith("fifo-db: error: permission denied for function fifo_worker_claim"), done.stderr
        assert done.stderr.count("\n") == 1
    finally:
        db.execute("SELECT fifo_revoke('reader', 'worker_reader')")
        db.execute("DROP ROLE worker_reader")


def test_an_operator_runs_the_worker_for_a_bot_with_only_its_grant(db, dsn, connect):
    db.execute("DROP ROLE IF EXISTS worker_op")
    db.execute("DROP ROLE IF EXISTS worker_bot")
    db.execute("CREATE ROLE worker_op LOGIN")
    db.execute("CREATE ROLE worker_bot LOGIN")
    w = None
    try:
        db.execute("SELECT fifo_grant('operator', 'worker_op')")
        db.execute("SELECT fifo_grant('bot', 'worker_bot')")
        w = WorkerProcess(f"{dsn} user=worker_op")
        w.wait_for(r"active \(pid \d+, database '\w+', user 'worker_op'\)")
        bot = connect(user="worker_bot")
        with bot.transaction():
            add_trades(bot, [BUY, SELL])
        assert brief(wait_allocations(db, 1)) == [("s1", "b1", Decimal("0.4"), Decimal("19.0"))]
        assert w.stop() == 0
    finally:
        if w:
            w.close()
        db.execute("SELECT fifo_revoke('operator', 'worker_op')")
        db.execute("SELECT fifo_revoke('bot', 'worker_bot')")
        db.execute("DROP ROLE worker_op")
        db.execute("DROP ROLE worker_bot")


def test_claim_is_only_for_a_worker_session(db):
    with pytest.raises(Exception, match="fifo_worker_claim\\(\\) is for `fifo-db worker`"):
        db.execute("SELECT * FROM fifo_worker_claim()")


def test_crontab_lines_carry_no_password(db, dsn):
    db.execute("ALTER ROLE CURRENT_USER PASSWORD 'sekrit-pw'")
    try:
        with psycopg.connect(f"{dsn} password=sekrit-pw") as conn:
            text = crontab_lines(conn, "* * * * *", "50 1 * * *")
    finally:
        db.execute("ALTER ROLE CURRENT_USER PASSWORD NULL")
    assert "sekrit" not in text
    lines = [line for line in text.splitlines() if not line.startswith("#")]
    assert lines[0].startswith("FIFO_DB_DSN=")
    printed = psycopg.conninfo.conninfo_to_dict(lines[0].removeprefix("FIFO_DB_DSN="))
    given = psycopg.conninfo.conninfo_to_dict(dsn)
    assert "password" not in printed
    assert {k: printed.get(k) for k in ("host", "user", "dbname")} == {k: given[k] for k in ("host", "user", "dbname")}
    assert printed.get("port", "5432") == given["port"]
    assert re.fullmatch(r"\* \* \* \* \* \S.* compute --incremental > /dev/null", lines[1]), lines[1]
    assert re.fullmatch(r"50 1 \* \* \* \S.* compute --all-symbols --force > /dev/null", lines[2]), lines[2]
    assert re.fullmatch(r"\* \* \* \* \* \S.* assets compute --incremental > /dev/null", lines[3]), lines[3]
    assert len(lines) == 4


def test_compute_incremental_is_quiet_when_idle(dsn, db):
    run = [sys.executable, "-m", "fifo_db", "--dsn", dsn, "compute", "--incremental"]
    idle = subprocess.run(run, capture_output=True, text=True, timeout=60)
    assert (idle.returncode, idle.stdout, idle.stderr) == (0, "", "")
    add_trades(db, [BUY, SELL])
    busy = subprocess.run(run, capture_output=True, text=True, timeout=60)
    assert busy.returncode == 0 and "  - Mode: incremental" in busy.stdout and "  - Allocations created: 1" in busy.stdout
    assert brief(allocations(db, "BTC-USD")) == [("s1", "b1", Decimal("0.4"), Decimal("19.0"))]


def test_capture_notifies_once_per_transaction_only_while_a_worker_holds_the_row(db, connect, workers):
    listener = connect()
    listener.execute("LISTEN fifo_db_changes")
    bot = connect()

    def notified(seconds: float) -> int:
        return sum(1 for _ in listener.notifies(timeout=seconds, stop_after=10))

    add_trades(bot, [BUY])                      # no worker: no notification
    assert notified(1) == 0
    w = workers()
    w.wait_for(r"active")
    with bot.transaction():                     # two statements, two pools, one commit: one notification
        add_trades(bot, [SELL])
        add_trades(bot, [{**BUY, "order_id": "e1", "symbol": "ETH-USD"}])
    assert notified(3) == 1
    with bot.transaction():                     # a rolled-back transaction notifies nothing
        add_trades(bot, [SELL2])
        raise psycopg.Rollback()
    assert notified(1) == 0
    assert w.stop() == 0
    add_trades(bot, [{**BUY, "order_id": "b9"}])   # the row released: no notification
    assert notified(1) == 0
