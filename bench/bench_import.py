"""Benchmark `fifo-db import` on two generic CSV files of the same size, in the same run:

  bench    fifo_db.sample.synthetic_rows(): sizes with 1 decimal, prices with 4,
           times to the second with a +00:00 offset (the file of docs/import.md)
  decimal8 sizes, prices and fees with 8 decimals, times to the microsecond with a Z
           (2024-03-01T13:45:07.123456Z), as exchanges export them (issue 10)

Each run imports each file into an empty trade_records by each importer and path, alternating
(every other run in reverse order), each import in a new session as `fifo-db import` has, and
times where the import spends it (COPY into staging, the precise checks, the INSERT and the
rest); medians are printed, and a re-import of each file in the first run (adds 0 rows: the
order_ids are stored, so it takes the precise path).

--importers: fast (the importer as it is: one INSERT straight from the staging table when every
row is good and new), precise (the same importer with its fast path switched off: what a file
with one bad row, or a re-import, costs), baseline (another importer.py, --baseline FILE, e.g.
the one before a change: `git show REV:fifo_db/importer.py > /tmp/old_importer.py`), so that
the ratio comes from the same session; --baseline-dsn DSN: the database the baseline loads
into, installed from the baseline's own commit (when a migration changed trade_records since).
--path both (the default) imports by the ordinary path (rows into the indexed table) and by the
bulk path (indexes dropped and rebuilt, issue 16). Each import is the whole import_csv call,
timed from outside (the check of the file's bytes included, before or during the COPY), with
the server process's CPU time when the server runs on this machine (the embedded one does).

    FIFO_DB_HOME=/tmp/fdb-bench .venv/bin/python bench/bench_import.py --rows 1000000 --runs 3 \
        --files decimal8 --path bulk --importers fast,baseline --baseline /tmp/old_importer.py

Uses the embedded server (or --dsn). It TRUNCATEs trade_records and the allocation tables of
that database before each run: point it at a scratch database.
"""

from __future__ import annotations

import argparse
import csv
import importlib.util
import os
import platform
import random
import statistics
import sys
import tempfile
import time
from contextlib import contextmanager
from datetime import datetime, timedelta, timezone
from pathlib import Path

from fifo_db import importer
from fifo_db.connection import connect
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
def phases(module, times: dict):
    """Time an importer's phases by wrapping its own functions (the importer is not changed)."""
    names = [n for n in ("scan", "_stage", "_fast_import", "_validate") if hasattr(module, n)]
    originals = {name: getattr(module, name) for name in names}

    def wrap(name):
        def timed(*args, **kwargs):
            t = time.perf_counter()
            try:
                return originals[name](*args, **kwargs)
            finally:
                times[name] = time.perf_counter() - t
        return timed

    for name in originals:
        setattr(module, name, wrap(name))
    try:
        yield
    finally:
        for name, fn in originals.items():
            setattr(module, name, fn)


def backend_cpu(conn) -> float | None:
    """The CPU seconds (user + system) the connection's server process has used so far, when the server
    runs on this machine (the embedded one does); None otherwise."""
    try:
        with open(f"/proc/{conn.info.backend_pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return None


def load_baseline(path: Path):
    """An importer module from a file (e.g. `git show REV:fifo_db/importer.py > old.py`), to time beside."""
    spec = importlib.util.spec_from_file_location("baseline_importer", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--symbols", type=int, default=500)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--dsn")
    ap.add_argument("--path", choices=("both", "bulk", "ordinary"), default="both")
    ap.add_argument("--files", default="bench,decimal8", help="comma-separated: bench, decimal8")
    ap.add_argument("--importers", default="fast,precise",
                    help="comma-separated: fast (the importer as it is), precise (its fast path switched off: "
                         "what a file with a bad row costs), baseline (--baseline's)")
    ap.add_argument("--baseline", type=Path, help="an importer.py to time beside, e.g. the one before a change")
    ap.add_argument("--baseline-dsn", help="the database the baseline importer loads into (default: --dsn's), e.g. "
                                           "one installed from the same commit as --baseline, when a migration "
                                           "changed trade_records since")
    args = ap.parse_args()
    baseline = load_baseline(args.baseline) if args.baseline else None
    chosen_importers = args.importers.split(",")
    if "baseline" in chosen_importers and baseline is None:
        ap.error("--importers baseline needs --baseline FILE")
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
        cases = [(name, imp, path) for name in files for imp in chosen_importers for path in paths]
        results: dict[tuple, list[dict]] = {case: [] for case in cases}
        os.sync()   # the files just written are on disk before run 1: no writeback of them during a run
        with connect(args.dsn) as own, connect(args.baseline_dsn or args.dsn) as other:
            install(own)
            print(f"machine: {platform.machine()}, {os.cpu_count()} cores, PostgreSQL "
                  f"{own.execute('SHOW server_version').fetchone()[0]}; load average: "
                  f"{' '.join(f'{x:.2f}' for x in os.getloadavg())}", flush=True)
            if args.baseline_dsn:
                print(f"baseline into database {other.info.dbname} (migrations: "
                      f"{other.execute('SELECT max(migration_id) FROM fifo._yoyo_migration').fetchone()[0]}), "
                      f"the others into {own.info.dbname} (migrations: "
                      f"{own.execute('SELECT max(migration_id) FROM fifo._yoyo_migration').fetchone()[0]})", flush=True)
        for run in range(args.runs):
            for name, imp, path in (cases if run % 2 == 0 else list(reversed(cases))):
                module = baseline if imp == "baseline" else importer
                dsn = args.baseline_dsn or args.dsn if imp == "baseline" else args.dsn
                saved = module.BULK_MIN_ROWS, getattr(module, "_fast_import", None)
                module.BULK_MIN_ROWS = 1 if path == "bulk" else 10**15   # either path whatever --rows
                if imp == "precise":
                    module._fast_import = lambda *a, **k: None
                times: dict = {}
                try:
                    # each import in a new session, as each `fifo-db import` has one, so that every run is
                    # measured alike: a server process that has imported before has its shared buffers
                    # and memory mapped already (some 80,000 fewer page faults, 0.1-0.25 s less system
                    # CPU; docs/import.md, "Issue 16, fifth session")
                    with connect(dsn) as conn:
                        conn.execute("TRUNCATE trade_records, fifo.allocations, fifo_runs, fifo.pool_state, "
                                     "fifo.pool_changes")
                        conn.execute("CHECKPOINT")
                        cpu = backend_cpu(conn)
                        started = time.perf_counter()
                        with phases(module, times):
                            result = module.import_csv(conn, files[name])
                        times["total"] = time.perf_counter() - started   # the whole call: scan included
                        cpu_after = backend_cpu(conn)
                        times["cpu"] = cpu_after - cpu if cpu is not None and cpu_after is not None else float("nan")
                    if run == 0:
                        with connect(dsn) as conn:
                            started = time.perf_counter()
                            again = module.import_csv(conn, files[name])
                            again_seconds = time.perf_counter() - started
                finally:
                    module.BULK_MIN_ROWS = saved[0]
                    if saved[1] is not None:
                        module._fast_import = saved[1]
                assert result.inserted == args.rows, result
                assert result.bulk == (path == "bulk"), result
                # reading, checking and sending the file: scan() before the COPY (the importer before
                # issue 16's third session), or checked_blocks() during it (the one after)
                times["COPY"] = times["_stage"] + times.get("scan", 0.0)
                times["validate"] = times.get("_validate", 0.0)
                times["rest"] = times["total"] - times["COPY"] - times["validate"]
                results[(name, imp, path)].append(times)
                print(f"run {run + 1} {name} {imp} {path}: {result.inserted:,} rows in {times['total']:.2f} s "
                      f"(scan and COPY {times['COPY']:.2f} s, precise checks {times['validate']:.2f} s, "
                      f"INSERT and the rest {times['rest']:.2f} s; server CPU {times['cpu']:.2f} s; "
                      f"load average {os.getloadavg()[0]:.2f})", flush=True)
                if run == 0:
                    print(f"      re-import of the same file (adds {again.inserted}): {again_seconds:.2f} s",
                          flush=True)
        print()
        print(f"{'file':9} {'importer':9} {'path':9} {'import':>8} {'rows/s':>9} {'COPY':>6} {'checks':>7} "
              f"{'INSERT+':>8} {'srv CPU':>8}   (medians of {args.runs})")
        medians = {}
        for (name, imp, path), runs in results.items():
            med = medians[(name, imp, path)] = {k: statistics.median(r[k] for r in runs)
                                                for k in ("total", "COPY", "validate", "rest", "cpu")}
            print(f"{name:9} {imp:9} {path:9} {med['total']:7.2f}s {args.rows / med['total']:9,.0f} "
                  f"{med['COPY']:5.2f}s {med['validate']:6.2f}s {med['rest']:7.2f}s {med['cpu']:7.2f}s")
        first = chosen_importers[0]
        for name in files:
            for path in paths:
                for imp in chosen_importers[1:]:
                    ratio = medians[(name, first, path)]["total"] / medians[(name, imp, path)]["total"]
                    print(f"{name} {path}: {first} / {imp} = {ratio:.2f}")
        print(f"load average at the end: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
