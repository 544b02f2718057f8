"""`fifo-db worker` keeping a BotTrader database current while the bot writes (issue 15 item 5),
on the second cluster (tests/owner_cluster.py): the database owner is no superuser and logs in
with a password (scram-sha-256) over TCP. Everything fifo-db runs is a subprocess given the DSN
without the password and the password in PGPASSWORD, as a container or a systemd unit would.
No pg_cron is involved (the cluster preloads it on 15 only; nothing here creates or uses it), so
this runs on 15, 16 and 18. Waits are bounded polls for an outcome, never assertions about speed.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time

import pytest

from tests import bottrader
from tests.helpers import stored
from tests.owner_cluster import OWNER_PASSWORD
from tests.test_adopt import reference
from tests.test_owner import Owned, _cluster
from tests.test_worker import BOUND, WorkerProcess


@pytest.fixture
def owned():
    """A cluster of its own (test_owner's module cluster has another home), a fresh owner and
    its database."""
    cluster = _cluster("owner-worker")
    try:
        role, database = cluster.owner_database()
        yield Owned(cluster, role, database)
    finally:
        cluster.remove()


def _wait_current(conn, want: list) -> list:
    """Poll (bounded) until the stored allocations of version 2 are `want`; return the last read."""
    deadline = time.monotonic() + BOUND
    while True:
        got = stored(conn, version=2)
        if got == want or time.monotonic() > deadline:
            return got
        time.sleep(0.2)


def test_the_worker_keeps_a_bottrader_database_current_while_the_bot_writes_as_the_owner(owned, monkeypatch):
    # what a container or systemd unit gets: the DSN without the password, the password apart
    dsn = owned.dsn.replace(f" password={OWNER_PASSWORD}", "")
    assert OWNER_PASSWORD not in dsn and "host=127.0.0.1" in dsn
    env = {**os.environ, "FIFO_DB_DSN": dsn, "PGPASSWORD": OWNER_PASSWORD}
    with owned.conn() as conn:       # the bot's schema and story, written by the owner (the bot's login)
        trades = bottrader.build(conn)
    base = bottrader.recent_base()

    adopt = subprocess.run([sys.executable, "-m", "fifo_db", "install", "--adopt"], env=env,
                           capture_output=True, text=True, timeout=120)
    assert (adopt.returncode, adopt.stderr) == (0, ""), adopt.stderr
    assert OWNER_PASSWORD not in adopt.stdout

    c = owned.conn()
    try:
        assert c.execute("SELECT current_user, usesuper, inet_server_addr()::text FROM pg_user "
                         "WHERE usename = current_user").fetchone() == (owned.role, False, "127.0.0.1/32")
        last_run = c.execute("SELECT coalesce(max(run_id), 0) FROM fifo_runs").fetchone()[0]

        with monkeypatch.context() as m:      # the worker's environment only, not this process's
            m.setenv("PGPASSWORD", OWNER_PASSWORD)
            w = WorkerProcess(dsn, "--full-at", "none")
        try:
            w.wait_for(rf"active \(pid \d+, database '{owned.database}', user '{owned.role}'\); "
                       r"no nightly full recompute")
            # the adoption queued every pool: the worker's first run computes them
            assert _wait_current(c, reference(trades)) == reference(trades)

            # the bot keeps trading: one transaction per batch, upserts with floats, as it does
            h = base
            eth_s2 = next(t for t in trades if t["order_id"] == "eth-s2")
            writes = [
                # a new pool: a buy filled in two parts, then a sell
                [bottrader.trade("sol-b1", "SOL-USD", "buy", 1.5, 150.1, 0.1, h.replace(hour=1)),
                 bottrader.trade("sol-b1-FILL-2", "SOL-USD", "buy", 0.5, 150.1, 0.03, h.replace(hour=1))],
                [bottrader.trade("sol-s1", "SOL-USD", "sell", 1.75, 155.25, None, h.replace(hour=2))],
                # a fee correction: the reconciler re-upserts eth-s2 with its real fee
                [{**eth_s2, "total_fees_usd": 0.75, "source": "reconciled"}],
                # a back-dated sell: before btc-s1 and btc-s2, so their lots move
                [bottrader.trade("btc-s0", "BTC-USD", "sell", 0.005, 62000.0, 1.1, h.replace(hour=3),
                                 source="reconciled")],
                # a back-dated buy in the SOL pool, before its first lot
                [bottrader.trade("sol-b0", "SOL-USD", "buy", 0.25, 149.0, 0.02, h.replace(hour=0, minute=30))],
            ]
            engine = bottrader.engine_for(c)
            try:
                for batch in writes:
                    bottrader.upsert(engine, batch)
            finally:
                engine.dispose()
            want = reference(bottrader.final_rows([trades, *writes]))
            assert _wait_current(c, want) == want
            assert c.execute("SELECT count(*) FROM fifo.pool_changes WHERE processed_at IS NULL").fetchone()[0] == 0
            assert c.execute("SELECT * FROM verify_fifo()").fetchall() == []
            # the back-dated sell took btc-b1's first 0.005: btc-s1's 0.025 now reaches into btc-b2
            assert c.execute("SELECT buy_order_id, allocated_size::text FROM fifo_allocations "
                             "WHERE sell_order_id = 'btc-s0' AND allocation_version = 2").fetchall() == \
                [("btc-b1", "0.005")]

            before = len(w.lines)
            assert w.stop(signal.SIGTERM) == 0
        finally:
            w.close()
        lines = w.lines
        assert len(lines) == before + 1 and re.fullmatch(
            r"\S+ \S+ fifo-db worker: stopped on SIGTERM after \d+ runs?", lines[-1]), lines
        assert not any(OWNER_PASSWORD in line for line in lines)
        # one line per run, each the run fifo_runs recorded; nothing else was logged
        run_lines = [line for line in lines if " fifo-db worker: run " in line]
        assert len(lines) == 2 + len(run_lines), lines        # 'active', the runs, 'stopped'
        logged = {int(re.search(r" run (\d+) incremental: ", line).group(1)) for line in run_lines}
        assert len(logged) == len(run_lines) >= 2
        assert int(re.search(r"after (\d+) run", lines[-1]).group(1)) == len(run_lines)
        assert all(re.search(r" run \d+ incremental: [\d,]+ pools?, [\d,]+ allocations?, \d+ ms, ok$", line)
                   for line in run_lines), run_lines
        recorded = c.execute("SELECT run_id, mode, status FROM fifo_runs WHERE run_id > %s ORDER BY run_id",
                             (last_run,)).fetchall()
        assert recorded == [(r, "incremental", "ok") for r in sorted(logged)]
        assert c.execute("SELECT pid FROM fifo.workers").fetchone() == (None,)   # the row given up
    finally:
        c.close()
