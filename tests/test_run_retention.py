"""fifo_runs stays bounded (issue 14, section 5): each compute call records a run, and a reader
may call compute in a loop; every run prunes the runs beyond the setting run_retention."""

from __future__ import annotations

import uuid

import psycopg

from tests.helpers import add_trades

TRADES = [
    {"order_id": "b1", "symbol": "X", "side": "buy", "size": 2, "price": 10, "order_time": "2025-01-01"},
    {"order_id": "s1", "symbol": "X", "side": "sell", "size": 1, "price": 13, "order_time": "2025-01-02"},
]


def test_a_reader_in_a_loop_cannot_grow_fifo_runs_without_bound(db, dsn):
    add_trades(db, TRADES)
    db.execute("SELECT fifo_set_setting('run_retention', '100')")
    name = f"fdb_reader_{uuid.uuid4().hex[:8]}"
    db.execute(f'CREATE ROLE "{name}" LOGIN')
    db.execute("SELECT fifo_grant('reader', %s)", (name,))
    try:
        with psycopg.connect(dsn, user=name, autocommit=True) as reader:
            for _ in range(260):
                assert reader.execute("SELECT status FROM compute_fifo('X')").fetchone()[0] == "ok"
                reader.execute("SELECT compute_fifo_incremental()")
        count, oldest, newest = db.execute("SELECT count(*), min(run_id), max(run_id) FROM fifo_runs").fetchone()
        assert count == 100 and newest - oldest == 99     # the newest 100 runs
        # the newest runs are the ones kept, with their figures
        assert db.execute("SELECT status, allocations FROM fifo_runs ORDER BY run_id DESC LIMIT 1").fetchone() == (
            "ok", 1)
    finally:
        db.execute(f'DROP OWNED BY "{name}"')
        db.execute(f'DROP ROLE "{name}"')


def test_runs_still_running_and_rows_held_by_others_are_not_pruned(db, connect):
    add_trades(db, TRADES)
    db.execute("SELECT fifo_set_setting('run_retention', '100')")
    db.execute("INSERT INTO fifo_runs (batch_id, version, mode, started_at, status) "
               "VALUES (gen_random_uuid(), 1, 'symbol', now(), 'running')")
    held = connect()
    held.execute("BEGIN")
    first = db.execute("SELECT min(run_id) FROM fifo_runs").fetchone()[0]
    for _ in range(150):
        db.execute("SELECT compute_fifo('X')")
    # another session holds the second-oldest run: pruning skips it rather than wait
    second = db.execute("SELECT run_id FROM fifo_runs WHERE run_id > %s ORDER BY run_id LIMIT 1",
                        (first,)).fetchone()[0]
    held.execute("SELECT 1 FROM fifo_runs WHERE run_id = %s FOR UPDATE", (second,))
    db.execute("SET lock_timeout = '2s'")
    for _ in range(60):
        db.execute("SELECT compute_fifo('X')")
    kept = {r[0] for r in db.execute("SELECT run_id FROM fifo_runs")}
    assert first in kept and second in kept          # running; held by another session
    held.execute("ROLLBACK")
    db.execute("SELECT compute_fifo('X')")
    assert second not in {r[0] for r in db.execute("SELECT run_id FROM fifo_runs")}
