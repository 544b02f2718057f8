"""The cron job, analysts and the trading bot at once.

Several connections interleave inserts (appended and back-dated), updates,
deletes, compute_fifo, compute_fifo_incremental and compute_fifo_all(true)
for a bounded number of steps. Any error, a deadlock (40P01) included, fails
the test. At the end the incremental run drains what is pending and the
allocations equal the reference FIFO and a fresh full recompute, with
verify_fifo() clean. A deterministic test shows the incremental run skipping
a pool another session holds, saying so in fifo_runs, and computing it later.
"""

from __future__ import annotations

import random
import threading
from datetime import datetime, timedelta, timezone
from decimal import Decimal as D

from psycopg.rows import dict_row

from tests.helpers import add_trades, expected, findings, stored

BASE = datetime(2025, 1, 1, tzinfo=timezone.utc)
SYMBOLS = ["AAA", "BBB", "CCC", "DDD"]
ACCOUNTS = ["bot", "desk"]
STEPS = 30


def run_of(conn, sql, *params) -> dict | None:
    with conn.cursor(row_factory=dict_row) as cur:
        row = cur.execute(f"SELECT * FROM {sql}", params).fetchone()
    return row if row["batch_id"] is not None else None


def random_trade(rng: random.Random, order_id: str, day: int) -> dict:
    return {"order_id": order_id, "symbol": rng.choice(SYMBOLS), "account": rng.choice(ACCOUNTS),
            "side": rng.choice(["buy", "buy", "sell"]),
            "size": D(rng.randint(1, 400)).scaleb(-rng.choice([0, 2, 8])),
            "price": D(rng.randint(1, 10_000)).scaleb(-2), "total_fees": D(rng.randint(0, 99)).scaleb(-2),
            "order_time": BASE + timedelta(hours=day)}


def bot(conn, rng: random.Random, name: str) -> None:
    """Writes trades: appends, back-dated inserts, multi-row transactions, updates, deletes."""
    mine: list[str] = []
    for step in range(STEPS):
        action = rng.random()
        if action < 0.5 or not mine:
            day = 200 + step if rng.random() < 0.6 else rng.randint(0, 200)   # append or back-date
            rows = [random_trade(rng, f"{name}-{step}-{k}", day) for k in range(rng.randint(1, 3))]
            with conn.transaction():
                add_trades(conn, rows)
            mine.extend(r["order_id"] for r in rows)
        elif action < 0.8:
            field, value = rng.choice([("price", D(rng.randint(1, 9999)).scaleb(-2)),
                                       ("size", D(rng.randint(1, 300)).scaleb(-2)),
                                       ("order_time", BASE + timedelta(hours=rng.randint(0, 230))),
                                       ("symbol", rng.choice(SYMBOLS))])
            conn.execute(f"UPDATE trade_records SET {field} = %s WHERE order_id = %s", (value, rng.choice(mine)))
        else:
            victim = mine.pop(rng.randrange(len(mine)))
            conn.execute("DELETE FROM trade_records WHERE order_id = %s", (victim,))


def analyst(conn, rng: random.Random, name: str) -> None:
    for _ in range(STEPS):
        if rng.random() < 0.8:
            run_of(conn, "compute_fifo(%s)", rng.choice(SYMBOLS))
        else:
            run_of(conn, "compute_fifo_all()")


def cron(conn, rng: random.Random, name: str) -> None:
    for step in range(STEPS):
        if step % 10 == 9:
            run_of(conn, "compute_fifo_all(true)")   # the nightly full job
        else:
            run_of(conn, "compute_fifo_incremental()")


def test_cron_analysts_and_bot_at_once(db, connect):
    # every symbol has history of both accounts that the bots never delete
    seed_rng = random.Random(7)
    add_trades(db, [{**random_trade(seed_rng, f"seed-{s}-{a}-{k}", k), "symbol": s, "account": a}
                    for s in SYMBOLS for a in ACCOUNTS for k in range(6)])
    db.execute("SELECT compute_fifo_all()")

    workers = [(bot, "bot1"), (bot, "bot2"), (analyst, "analyst1"), (analyst, "analyst2"),
               (cron, "cron1"), (cron, "cron2")]
    errors: list[BaseException] = []
    start = threading.Barrier(len(workers))

    def work(fn, name, seed):
        conn = connect()
        try:
            start.wait()
            fn(conn, random.Random(seed), name)
        except BaseException as exc:   # a deadlock (40P01) or anything else fails the test
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(fn, name, i), name=name)
               for i, (fn, name) in enumerate(workers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=300)
    assert not any(t.is_alive() for t in threads), "a worker is stuck"
    assert errors == []

    for _ in range(10):   # drain: quiet now, so one run should do
        if run_of(db, "compute_fifo_incremental()") is None:
            break
    assert db.execute("SELECT count(*) FROM fifo.pool_changes WHERE processed_at IS NULL").fetchone()[0] == 0
    assert findings(db) == []
    want = expected(db)
    assert stored(db) == want
    db.execute("SELECT compute_fifo_all(true, 2)")
    assert stored(db, 2) == want
    assert db.execute("SELECT count(*) FROM fifo_runs WHERE status NOT IN ('ok', 'skipped')").fetchone()[0] == 0


def test_incremental_run_skips_a_pool_held_by_compute_fifo(db, connect):
    add_trades(db, [{"order_id": f"{s}1", "symbol": s, "side": "buy", "size": 5, "price": 10,
                     "order_time": "2025-01-01"} for s in ("X", "Y")])
    db.execute("SELECT compute_fifo_all()")

    analyst = connect(autocommit=False)
    analyst.execute("SELECT compute_fifo('X')")   # holds X's pool lock until it commits
    add_trades(db, [{"order_id": f"{s}2", "symbol": s, "side": "sell", "size": 2, "price": 12,
                     "order_time": "2025-01-02"} for s in ("X", "Y")])

    run = run_of(db, "compute_fifo_incremental()")
    assert (run["status"], run["pools"], run["skipped_pools"], run["symbols"]) == ("ok", 1, 1, ["Y"])
    assert db.execute("SELECT mode, pools, skipped_pools FROM fifo_runs ORDER BY run_id DESC LIMIT 1"
                      ).fetchone() == ("incremental", 1, 1)
    assert db.execute("SELECT symbol FROM fifo.pool_changes WHERE processed_at IS NULL").fetchall() == [("X",)]
    assert [(r[0], r[1]) for r in findings(db)] == [("stale", "X")]   # not checked row by row while stale

    # only X pending and still held: nothing computed, the run says it skipped
    run = run_of(db, "compute_fifo_incremental()")
    assert (run["status"], run["pools"], run["skipped_pools"]) == ("skipped", 0, 1)

    analyst.commit()
    run = run_of(db, "compute_fifo_incremental()")
    assert (run["status"], run["pools"], run["skipped_pools"], run["symbols"]) == ("ok", 1, 0, ["X"])
    assert stored(db) == expected(db) and findings(db) == []


def test_overlapping_cron_ticks_never_wait_and_compute_what_is_free(db, connect):
    """A tick left open (or slow) holds its pools: the next tick skips them, names the holder,
    and computes the others; it never waits, and never skips the whole tick."""
    add_trades(db, [{"order_id": "b1", "symbol": "X", "side": "buy", "size": 5, "price": 10,
                     "order_time": "2025-01-01"}])
    tick = connect(autocommit=False)
    assert run_of(tick, "compute_fifo_incremental()")["pools"] == 1   # still in its transaction
    add_trades(db, [{"order_id": "s1", "symbol": "X", "side": "sell", "size": 1, "price": 11,
                     "order_time": "2025-01-02"},
                    {"order_id": "y1", "symbol": "Y", "side": "buy", "size": 1, "price": 11,
                     "order_time": "2025-01-02"}])
    run = run_of(db, "compute_fifo_incremental()")
    assert (run["status"], run["pools"], run["skipped_pools"], run["symbols"]) == ("ok", 1, 1, ["Y"])
    assert run["error"].startswith(f"skipped 1 held pool, still pending: pool X/default held by pid "
                                   f"{tick.info.backend_pid} (role postgres, idle in transaction, "
                                   f"transaction open since ")
    tick.commit()
    assert run_of(db, "compute_fifo_incremental()")["pools"] == 1
    assert stored(db) == expected(db)


def test_forced_full_recompute_waits_for_no_one_and_skips_nothing(db, connect):
    """compute_fifo_all(true) holds the global lock: a concurrent incremental tick skips every pool."""
    add_trades(db, [{"order_id": "b1", "symbol": "X", "side": "buy", "size": 5, "price": 10,
                     "order_time": "2025-01-01"}])
    full = connect(autocommit=False)
    assert run_of(full, "compute_fifo_all(true)")["mode"] == "all"
    add_trades(db, [{"order_id": "s1", "symbol": "X", "side": "sell", "size": 1, "price": 11,
                     "order_time": "2025-01-02"}])
    run = run_of(db, "compute_fifo_incremental()")
    assert (run["status"], run["pools"], run["skipped_pools"]) == ("skipped", 0, 1)
    full.commit()
    assert run_of(db, "compute_fifo_incremental()")["pools"] == 1
    assert stored(db) == expected(db) and findings(db) == []
