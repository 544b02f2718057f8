"""Benchmark compute_fifo_assets() (the asset view, docs/engine.md "Cost, measured"):
random trades every 10 minutes over BTC-USD, ETH-USD, ETH-BTC and SOL-USD in 3 wallets
(9 pools), optionally TRANSFERS random transfers of BTC or ETH between them, then one
compute_fifo_assets(); prints the time, rounds, legs, pools and the largest pool.

    .venv/bin/python bench/bench_assets.py DSN TRADES TRANSFERS

It TRUNCATEs trade_records and empties fifo.transfers and fifo.prices of that database:
point it at a scratch database with fifo-db installed.
"""

from __future__ import annotations

import random
import sys
import time
from datetime import datetime, timedelta, timezone
from decimal import Decimal as D

import psycopg

dsn, n, transfers = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
rng = random.Random(1)
base = datetime(2024, 1, 1, tzinfo=timezone.utc)
with psycopg.connect(dsn, autocommit=True) as c:
    c.execute("TRUNCATE trade_records"); c.execute("DELETE FROM fifo.transfers"); c.execute("DELETE FROM fifo.prices")
    rows = []
    for i in range(n):
        sym = rng.choice(["BTC-USD", "ETH-USD", "ETH-BTC", "SOL-USD"])
        side = "buy" if rng.random() < 0.55 else "sell"
        price = D(rng.randint(100, 900)) if sym != "ETH-BTC" else D(rng.randint(40, 60)) / 1000
        rows.append((f"o{i}", rng.choice(["A", "B", "C"]), sym, side, D(rng.randint(1, 100)) / 100, price, D(0),
                     base + timedelta(minutes=10 * i)))
    with c.cursor() as cur:
        cur.executemany("INSERT INTO trade_records (order_id, account, symbol, side, size, price, total_fees, order_time) "
                        "VALUES (%s,%s,%s,%s,%s,%s,%s,%s)", rows)
        for k in range(transfers):
            a, b = rng.sample(["A", "B", "C"], 2)
            cur.execute("INSERT INTO fifo.transfers (transfer_id, asset, from_account, to_account, quantity, fee, at) "
                        "VALUES (%s,%s,%s,%s,%s,0,%s)", (f"x{k:05d}", rng.choice(["BTC", "ETH"]), a, b,
                                                         D(rng.randint(1, 50)) / 100,
                                                         base + timedelta(minutes=10 * rng.randint(0, n), seconds=1)))
    t = time.perf_counter()
    r = c.execute("SELECT rounds, legs, unmatched FROM compute_fifo_assets()").fetchone()
    dt = time.perf_counter() - t
    lots = c.execute("SELECT count(*), max(c) FROM (SELECT count(*) c FROM fifo.asset_lots GROUP BY wallet, asset) x").fetchone()
    print(f"{n} trades, {transfers} transfers: {dt:.2f} s, rounds {r[0]}, legs {r[1]}, pools {lots[0]}, largest pool {lots[1]} lots")
