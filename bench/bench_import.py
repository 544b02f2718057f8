"""Benchmark `fifo-db import`: write an N-row generic CSV (synthetic trades), import it into an
empty trade_records, several times; print each run and the median.

    FIFO_DB_HOME=/tmp/fdb-bench /tmp/venv/bin/python bench/bench_import.py --rows 1000000 --runs 3

Uses the embedded server (or --dsn). It TRUNCATEs trade_records and the allocation tables of that
database before each run: point it at a scratch database.
"""

from __future__ import annotations

import argparse
import csv
import statistics
import tempfile
import time
from pathlib import Path

from fifo_db.connection import connect
from fifo_db.importer import import_csv
from fifo_db.install import install
from fifo_db.sample import COLUMNS, synthetic_rows


def write_csv(path: Path, rows: int) -> None:
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(COLUMNS)
        for r in synthetic_rows(symbols=max(1, rows // 2000), trades=rows, seed=11):
            w.writerow([*r[:7], r[7].isoformat(), r[8]])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--dsn")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "trades.csv"
        t = time.perf_counter()
        write_csv(path, args.rows)
        print(f"wrote {args.rows:,} rows ({path.stat().st_size / 1e6:.0f} MB) in {time.perf_counter() - t:.1f}s")
        with connect(args.dsn) as conn:
            install(conn)
            times = []
            for i in range(args.runs):
                conn.execute("TRUNCATE trade_records, fifo_allocations, fifo_runs, fifo.pool_state, fifo.pool_changes")
                conn.execute("CHECKPOINT")
                result = import_csv(conn, path)
                assert result.inserted == args.rows, result
                times.append(result.seconds)
                print(f"run {i + 1}: imported {result.inserted:,} rows in {result.seconds:.2f}s "
                      f"({result.inserted / result.seconds:,.0f} rows/s)")
                t = time.perf_counter()
                again = import_csv(conn, path)
                print(f"        re-import (adds {again.inserted}): {time.perf_counter() - t:.2f}s")
            print(f"median import of {args.rows:,} rows: {statistics.median(times):.2f}s")


if __name__ == "__main__":
    main()
