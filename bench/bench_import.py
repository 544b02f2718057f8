"""Benchmark `fifo-db import` on two generic CSV files of the same size, in the same run:

  bench    fifo_db.sample.synthetic_rows(): sizes with 1 decimal, prices with 4,
           times to the second with a +00:00 offset (the file of docs/import.md)
  decimal8 sizes, prices and fees with 8 decimals, times to the microsecond with a Z
           (2024-03-01T13:45:07.123456Z), as exchanges export them (issue 10)

Each run imports each file into an empty trade_records, the two files alternating,
and times where the import spends it (COPY into staging, the validation, the INSERT);
medians are printed, then a re-import of each file (adds 0 rows).

--path both (the default) imports each file twice per run, by the ordinary path (rows into
the indexed table) and by the bulk path (indexes dropped and rebuilt, issue 16), alternating,
so that the ratio bulk/ordinary comes from the same session; --files decimal8 skips the other.

    FIFO_DB_HOME=/tmp/fdb-bench .venv/bin/python bench/bench_import.py --rows 1000000 --runs 3

Uses the embedded server (or --dsn). It TRUNCATEs trade_records and the allocation tables of
that database before each run: point it at a scratch database.
"""

from __future__ import annotations

import argparse
import csv
import os
import random
import statistics
import tempfile
import time
from contextlib import contextmanager
from datetime import datetime, timedelta, timezone
from pathlib import Path

from fifo_db import importer
from fifo_db.connection import connect
from fifo_db.importer import import_csv
from fifo_db.install import install
from fifo_db.sample import COLUMNS, synthetic_rows


def write_bench(path: Path, rows: int, symbols: int) -> None:
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(COLUMNS)
        for r in synthetic_rows(symbols=symbols, trades=rows, seed=11):
            w.writerow([*r[:7], r[7].isoformat(), r[8]])


def write_decimal8(path: Path, rows: int, symbols: int) -> None:
    """8-decimal sizes, prices and fees; microsecond Z times; buys 55%, random sizes (issue 10's shape)."""
    rnd = random.Random(13)
    start = datetime(2024, 3, 1, tzinfo=timezone.utc)
    with open(path, "w", newline="") as f:
        f.write(",".join(COLUMNS) + "\n")
        per = rows // symbols
        lines = []
        for i in range(rows):
            pool = i % symbols
            when = start + timedelta(microseconds=(i // symbols) * 1_000_123 + pool * 997 + rnd.randint(0, 999))
            size = rnd.randint(100_000, 1_000_000_000)              # 0.001 to 10, 8 decimals
            price = rnd.randint(100_000_000, 10_000_000_000)        # 1 to 100
            fee = size * price * 6 // 10**11                        # 0.6% of notional, 8 decimals
            lines.append(f"x{i:08d},default,S{pool:03d}-USD,{'buy' if rnd.random() < 0.55 else 'sell'},"
                         f"{size // 10**8}.{size % 10**8:08d},{price // 10**8}.{price % 10**8:08d},"
                         f"{fee // 10**8}.{fee % 10**8:08d},{when.strftime('%Y-%m-%dT%H:%M:%S.%fZ')},bench\n")
            if len(lines) == 100_000:
                f.write("".join(lines))
                lines = []
        f.write("".join(lines))
        assert per > 0


@contextmanager
def phases(times: dict):
    """Time the importer's phases by wrapping its own functions (the importer is not changed)."""
    originals = {name: getattr(importer, name) for name in ("_stage", "_validate")}

    def wrap(name):
        def timed(*args, **kwargs):
            t = time.perf_counter()
            try:
                return originals[name](*args, **kwargs)
            finally:
                times[name] = time.perf_counter() - t
        return timed

    for name in originals:
        setattr(importer, name, wrap(name))
    try:
        yield
    finally:
        for name, fn in originals.items():
            setattr(importer, name, fn)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--symbols", type=int, default=500)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--dsn")
    ap.add_argument("--path", choices=("both", "bulk", "ordinary"), default="both")
    ap.add_argument("--files", default="bench,decimal8", help="comma-separated: bench, decimal8")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        chosen = args.files.split(",")
        files = {name: Path(tmp) / f"{name}.csv" for name in ("bench", "decimal8") if name in chosen}
        for name, writer in (("bench", write_bench), ("decimal8", write_decimal8)):
            if name not in files:
                continue
            t = time.perf_counter()
            writer(files[name], args.rows, args.symbols)
            print(f"{name}: wrote {args.rows:,} rows over {args.symbols} symbols "
                  f"({files[name].stat().st_size / 1e6:.0f} MB) in {time.perf_counter() - t:.1f} s; first row: "
                  f"{files[name].open().readlines()[1].strip()}", flush=True)
        paths = ["ordinary", "bulk"] if args.path == "both" else [args.path]
        cases = [(name, path) for name in files for path in paths]
        results: dict[tuple, list[dict]] = {case: [] for case in cases}
        default_min = importer.BULK_MIN_ROWS
        with connect(args.dsn) as conn:
            install(conn)
            print(f"load average: {' '.join(f'{x:.2f}' for x in os.getloadavg())}", flush=True)
            for run in range(args.runs):
                for name, path in (cases if run % 2 == 0 else list(reversed(cases))):
                    importer.BULK_MIN_ROWS = 1 if path == "bulk" else 10**15   # either path whatever --rows
                    conn.execute("TRUNCATE trade_records, fifo.allocations, fifo_runs, fifo.pool_state, "
                                 "fifo.pool_changes")
                    conn.execute("CHECKPOINT")
                    times: dict = {}
                    with phases(times):
                        result = import_csv(conn, files[name])
                    assert result.inserted == args.rows, result
                    assert result.bulk == (path == "bulk"), result
                    times["total"] = result.seconds
                    times["insert and the rest"] = result.seconds - times["_stage"] - times["_validate"]
                    results[(name, path)].append(times)
                    print(f"run {run + 1} {name} {path}: {result.inserted:,} rows in {result.seconds:.2f} s "
                          f"(COPY {times['_stage']:.2f} s, validation {times['_validate']:.2f} s, "
                          f"insert and the rest {times['insert and the rest']:.2f} s; "
                          f"load average {os.getloadavg()[0]:.2f})", flush=True)
                    if run == 0:
                        again = import_csv(conn, files[name])
                        print(f"      re-import of the same file (adds {again.inserted}): {again.seconds:.2f} s",
                              flush=True)
            importer.BULK_MIN_ROWS = default_min
        print()
        print(f"{'file':10} {'path':9} {'import':>8} {'rows/s':>9} {'COPY':>6} {'validate':>9} {'insert+':>8}"
              f"   (medians of {args.runs})")
        medians = {}
        for (name, path), runs in results.items():
            med = medians[(name, path)] = {k: statistics.median(r[k] for r in runs) for k in runs[0]}
            print(f"{name:10} {path:9} {med['total']:7.2f}s {args.rows / med['total']:9,.0f} {med['_stage']:5.2f}s "
                  f"{med['_validate']:8.2f}s {med['insert and the rest']:7.2f}s")
        for name in files:
            if (name, "bulk") in medians and (name, "ordinary") in medians:
                ratio = medians[(name, "bulk")]["total"] / medians[(name, "ordinary")]["total"]
                print(f"{name}: bulk / ordinary = {ratio:.2f}")
        print(f"load average at the end: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")

if __name__ == "__main__":
    main()
