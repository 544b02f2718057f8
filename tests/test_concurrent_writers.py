"""Concurrent writers of one pool leave one pending change row (issue 14, section 5): 20 bot
transactions committing at once left 20 pending rows, and the queue grew with the write
concurrency. Each writer now folds the pool's pending rows into its own at commit, the writers
of one pool taking turns for the instant of their commits, in (symbol, account) order, so two
writers of the same pools never deadlock, and never waiting for a running computation."""

from __future__ import annotations

import threading
import uuid

import psycopg
import pytest

from tests.helpers import add_trades, expected, findings, stored

WRITERS = 20


@pytest.fixture
def bots(db, dsn):
    """WRITERS connections, each logged in as a role with only the bot grant."""
    name = f"fdb_bot_{uuid.uuid4().hex[:8]}"
    db.execute(f'CREATE ROLE "{name}" LOGIN')
    db.execute("SELECT fifo_grant('bot', %s)", (name,))
    conns = [psycopg.connect(dsn, user=name) for _ in range(WRITERS)]
    yield conns
    for conn in conns:
        conn.close()
    db.execute(f'DROP OWNED BY "{name}"')
    db.execute(f'DROP ROLE "{name}"')


def at_once(conns, work) -> list[BaseException]:
    """Run work(i, conn) in one thread per connection; every thread commits after the barrier."""
    barrier = threading.Barrier(len(conns))
    errors: list[BaseException] = []

    def run(i, conn):
        try:
            conn.execute("SET lock_timeout = '10s'")
            work(i, conn)
            barrier.wait(timeout=60)
            conn.commit()
        except BaseException as exc:   # noqa: BLE001 - reported by the test
            errors.append(exc)
            barrier.abort()

    threads = [threading.Thread(target=run, args=(i, c)) for i, c in enumerate(conns)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    return errors


def pending(db):
    return db.execute("SELECT symbol, account, from_time::text FROM fifo.pool_changes "
                      "WHERE processed_at IS NULL ORDER BY 1, 2").fetchall()


def test_twenty_writers_committing_at_once_leave_one_pending_row(db, bots):
    def work(i, conn):
        conn.execute("INSERT INTO trade_records (order_id, symbol, side, size, price, order_time) "
                     "VALUES (%s, 'X', 'buy', 1, 10, %s::timestamptz)", (f"w{i}", f"2025-01-{2 + i:02d} 00:00+00"))

    assert at_once(bots, work) == []
    assert db.execute("SELECT count(*) FROM trade_records").fetchone()[0] == WRITERS
    assert pending(db) == [("X", "default", "2025-01-02 00:00:00+00")]   # the earliest of the 20
    db.execute("SELECT compute_fifo_incremental()")
    assert stored(db) == expected(db) and findings(db) == []


def test_writers_of_the_same_pools_in_opposite_orders_never_deadlock(db, bots):
    """Each writer changes pools A, B and C in its own order, one statement each, then all commit
    at once: no deadlock, no wait error, one pending row per pool."""
    orders = [("A", "B", "C"), ("C", "B", "A"), ("B", "A", "C")]

    def work(i, conn):
        for k, symbol in enumerate(orders[i % 3]):
            conn.execute("INSERT INTO trade_records (order_id, symbol, side, size, price, order_time) "
                         "VALUES (%s, %s, 'buy', 1, 10, %s::timestamptz)",
                         (f"w{i}-{symbol}", symbol, f"2025-02-{1 + (i + k) % 28:02d} 00:00+00"))
        conn.execute("UPDATE trade_records SET price = 11 WHERE order_id = %s", (f"w{i}-{orders[i % 3][0]}",))

    assert at_once(bots, work) == []
    assert pending(db) == [("A", "default", "2025-02-01 00:00:00+00"),
                           ("B", "default", "2025-02-02 00:00:00+00"),
                           ("C", "default", "2025-02-02 00:00:00+00")]


def test_the_queue_stays_at_one_row_per_pool_under_repeated_bursts(db, bots):
    for burst in range(3):
        def work(i, conn, burst=burst):
            conn.execute("INSERT INTO trade_records (order_id, symbol, side, size, price, order_time) "
                         "VALUES (%s, %s, 'buy', 1, 10, '2025-03-01 00:00+00')",
                         (f"b{burst}-{i}", f"S{i % 4}"))

        assert at_once(bots, work) == []
        assert [r[0] for r in pending(db)] == ["S0", "S1", "S2", "S3"]


def test_a_writer_does_not_wait_for_a_run_holding_the_pools_pending_row(db, connect):
    add_trades(db, [{"order_id": "b1", "symbol": "X", "side": "buy", "size": 1, "price": 10,
                     "order_time": "2025-01-05"}])
    run = connect(autocommit=False)
    run.execute("SELECT compute_fifo('X')")            # holds (and consumed) the pending row, not committed
    bot = connect()
    bot.execute("SET statement_timeout = '5s'")        # a wait would fail the insert or its commit
    add_trades(bot, [{"order_id": "b2", "symbol": "X", "side": "buy", "size": 1, "price": 11,
                      "order_time": "2025-01-03"}])
    run.commit()
    assert pending(db) == [("X", "default", "2025-01-03 00:00:00+00")]
    db.execute("SELECT compute_fifo_incremental()")
    assert stored(db) == expected(db) and findings(db) == []


def test_repeatable_read_writers_commit_and_are_folded_by_the_next_writer(db, connect):
    writers = [connect(autocommit=False) for _ in range(3)]
    for i, conn in enumerate(writers):
        conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
        add_trades(conn, [{"order_id": f"r{i}", "symbol": "X", "side": "buy", "size": 1, "price": 10,
                           "order_time": f"2025-01-0{i + 2}"}])
    for conn in writers:
        conn.commit()
    assert len(pending(db)) == 3                       # left as they were, never a failed commit
    add_trades(db, [{"order_id": "c1", "symbol": "X", "side": "buy", "size": 1, "price": 10,
                     "order_time": "2025-01-09"}])
    assert pending(db) == [("X", "default", "2025-01-02 00:00:00+00")]
