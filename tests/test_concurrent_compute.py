"""One symbol computed from two connections at once: the second run waits on the pool's
lock row (fifo.pool_locks) until the first commits, then recomputes; the result is exactly one set of
allocations, never duplicates. Synchronisation is by observing the lock wait in pg_locks,
not by sleeping."""

from __future__ import annotations

import threading
import time

from tests.helpers import add_trades, expected, findings, stored

TRADES = [
    {"order_id": "b1", "symbol": "X", "side": "buy", "size": 3, "price": 10, "total_fees": 1,
     "order_time": "2025-01-01"},
    {"order_id": "b2", "symbol": "X", "side": "buy", "size": 2, "price": 11, "order_time": "2025-01-02"},
    {"order_id": "s1", "symbol": "X", "side": "sell", "size": 4, "price": 12, "order_time": "2025-01-03"},
    {"order_id": "s2", "symbol": "X", "side": "sell", "size": 2, "price": 13, "order_time": "2025-01-04"},
    {"order_id": "c1", "account": "other", "symbol": "X", "side": "buy", "size": 1, "price": 5,
     "order_time": "2025-01-01"},
    {"order_id": "c2", "account": "other", "symbol": "X", "side": "sell", "size": 1, "price": 6,
     "order_time": "2025-01-02"},
]


class Call(threading.Thread):
    """Run one statement on its own connection in a thread; keep its result or error."""

    def __init__(self, conn, sql: str):
        super().__init__(daemon=True)
        self.conn, self.sql = conn, sql
        self.result = self.error = None

    def run(self) -> None:
        try:
            self.result = self.conn.execute(self.sql).fetchone()
        except Exception as exc:  # noqa: BLE001 - reported by the test thread
            self.error = exc


def wait_until_waiting_on_a_lock(observer, pid: int, limit: float = 60) -> None:
    """Poll pg_locks until backend `pid` waits for a lock (limit only bounds a hang)."""
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        if observer.execute("SELECT EXISTS (SELECT 1 FROM pg_locks WHERE pid = %s AND NOT granted)",
                            (pid,)).fetchone()[0]:
            return
        time.sleep(0.01)
    raise AssertionError(f"backend {pid} never waited on a lock")


def finish(call: Call, limit: float = 60):
    call.join(limit)
    assert not call.is_alive(), "the second run never finished"
    if call.error:
        raise call.error
    return call.result


def assert_one_clean_set(db, batch_id):
    dupes = db.execute(
        "SELECT version, sell_trade_id, buy_trade_id, count(*) FROM fifo_allocations "
        "GROUP BY 1, 2, 3 HAVING count(*) > 1").fetchall()
    assert dupes == []
    # the last run computed every pool; a row it found already right keeps the batch that wrote it
    # (sql/032), which must be an earlier run's
    assert db.execute("SELECT array_agg(DISTINCT batch_id) FROM fifo.pool_state").fetchone()[0] == [batch_id]
    assert db.execute("SELECT count(*) FROM fifo_allocations a WHERE a.batch_id <> %s AND NOT EXISTS "
                      "(SELECT 1 FROM fifo_runs r WHERE r.batch_id = a.batch_id AND r.status = 'ok')",
                      (batch_id,)).fetchone()[0] == 0
    assert stored(db) == expected(db)
    assert findings(db) == []


def test_one_symbol_from_two_connections(db, connect):
    add_trades(db, TRADES)
    first, second = connect(autocommit=False), connect()
    (first_batch,) = first.execute("SELECT batch_id FROM compute_fifo('X')").fetchone()   # transaction open

    call = Call(second, "SELECT batch_id FROM compute_fifo('X')")
    call.start()
    wait_until_waiting_on_a_lock(db, second.info.backend_pid)
    assert db.execute("SELECT count(*) FROM fifo_allocations").fetchone()[0] == 0   # first not committed

    first.commit()
    (second_batch,) = finish(call)
    assert second_batch != first_batch
    assert_one_clean_set(db, second_batch)
    assert db.execute("SELECT batch_id, status FROM fifo_runs ORDER BY run_id").fetchall() == [
        (first_batch, "ok"), (second_batch, "ok")]


def test_second_run_sees_trades_committed_while_it_waited(db, connect):
    add_trades(db, TRADES)
    first, second = connect(autocommit=False), connect()
    first.execute("SELECT compute_fifo('X')")
    first.execute("INSERT INTO trade_records (order_id, symbol, side, size, price, order_time) "
                  "VALUES ('s3', 'X', 'sell', 1, 20, '2025-01-05')")

    call = Call(second, "SELECT batch_id FROM compute_fifo('X')")
    call.start()
    wait_until_waiting_on_a_lock(db, second.info.backend_pid)
    first.commit()
    (batch,) = finish(call)
    assert_one_clean_set(db, batch)
    # s3 found nothing left (3 + 2 bought, 4 + 2 sold before it): one unmatched row of 1
    assert db.execute("SELECT buy_trade_id, allocated_size, batch_id FROM fifo_allocations "
                      "WHERE sell_trade_id = 's3'").fetchall() == [(None, 1, batch)]


def test_forced_full_recompute_waits_for_a_symbol_run(db, connect):
    add_trades(db, TRADES)
    first, second = connect(autocommit=False), connect()
    first.execute("SELECT compute_fifo('X')")

    call = Call(second, "SELECT batch_id FROM compute_fifo_all(true)")
    call.start()
    wait_until_waiting_on_a_lock(db, second.info.backend_pid)
    first.commit()
    (batch,) = finish(call)
    assert_one_clean_set(db, batch)
