"""A run whose session is killed leaves a trace (issue 8, item 7): the client that started it
records a failed run from a new session, its changes stay pending, and `fifo-db verify` shows
it as not finished."""

from __future__ import annotations

import threading
import time

import psycopg
import pytest

from fifo_db.cli import main
from fifo_db.compute import compute_symbol
from fifo_db.errors import FifoError
from tests.helpers import add_trades


def test_a_killed_run_is_recorded_as_failed_and_shown_by_verify(db, connect, dsn, capsys):
    add_trades(db, [{"order_id": "b1", "symbol": "X", "side": "buy", "size": 2, "price": 10,
                     "order_time": "2025-01-01"},
                    {"order_id": "s1", "symbol": "X", "side": "sell", "size": 1, "price": 12,
                     "order_time": "2025-01-02"}])
    holder = connect(autocommit=False)                    # holds the pool: the run waits on it
    holder.execute("SELECT compute_fifo('X')")
    runner = connect()
    pid = runner.info.backend_pid
    outcome: dict = {}

    def run():
        try:
            compute_symbol(runner, "X")
        except FifoError as exc:
            outcome["error"] = str(exc)

    thread = threading.Thread(target=run)
    thread.start()
    deadline = time.monotonic() + 30
    while not db.execute("SELECT EXISTS (SELECT 1 FROM pg_locks WHERE pid = %s AND NOT granted)",
                         (pid,)).fetchone()[0]:
        assert time.monotonic() < deadline, "the run never waited for the pool lock"
        time.sleep(0.05)
    db.execute("SELECT pg_terminate_backend(%s)", (pid,))
    thread.join(30)
    holder.rollback()

    assert outcome["error"].startswith("the symbol run was interrupted before it finished and changed nothing "
                                       "(terminating connection due to administrator command")
    run_id, status, error = db.execute("SELECT run_id, status, error FROM fifo_runs").fetchone()
    assert f"recorded as failed run {run_id}" in outcome["error"]
    assert status == "failed" and error.startswith("interrupted before it finished: ")
    assert db.execute("SELECT count(*) FROM fifo.allocations").fetchone()[0] == 0
    assert db.execute("SELECT count(*) FROM fifo.pool_changes WHERE processed_at IS NULL").fetchone()[0] == 1

    assert main(["--dsn", dsn, "verify"]) == 1            # the pool is stale, and the run is shown
    out, err = capsys.readouterr()
    assert err == ""
    assert f"note: run {run_id} (symbol, version 1) at " in out and " failed: interrupted before it finished" in out
    assert "stale: X/default" in out

    assert main(["--dsn", dsn, "compute", "--all-symbols"]) == 0
    capsys.readouterr()
    assert main(["--dsn", dsn, "verify"]) == 0            # the failure is history, not a finding
    assert "note: run" in capsys.readouterr().out
    assert main(["--dsn", dsn, "compute", "--all-symbols", "--force"]) == 0
    capsys.readouterr()
    assert main(["--dsn", dsn, "verify"]) == 0            # a forced full run that succeeded resolves it
    assert "note:" not in capsys.readouterr().out


def test_a_cancelled_run_is_recorded_too(db, connect):
    add_trades(db, [{"order_id": "b1", "symbol": "X", "side": "buy", "size": 2, "price": 10,
                     "order_time": "2025-01-01"}])
    runner = connect()
    runner.execute("SET statement_timeout = '200ms'")
    holder = connect(autocommit=False)
    holder.execute("SELECT compute_fifo('X')")
    with pytest.raises(FifoError, match="canceling statement due to statement timeout"):
        compute_symbol(runner, "X")
    holder.rollback()
    assert db.execute("SELECT mode, status FROM fifo_runs").fetchall() == [("symbol", "failed")]
    assert isinstance(runner, psycopg.Connection)
