"""fifo-db bench: the performance envelope of issues 2 and 3, printed as figures.

Everything runs in a scratch database (`fifo_bench`) on the server given
(default the embedded one): it is created, fifo-db is installed there, and it
is dropped at the end. The user's own database is never touched.

Timings are wall-clock medians of --runs runs, measured by the client around
one SQL call (round trip included). Loading data is never timed. Nothing here
asserts a time: the figures are printed next to their targets.

Data: deterministic trades shaped like fifo_db.sample.synthetic_rows() (buys
of 0.1-500 units, sells that exit 40% of the time and otherwise sell 10-90% of
the inventory, about 1 in 50 an oversell, fees 0.6% of notional), generated
with integer arithmetic and streamed as COPY text, because a Decimal
generator takes about 14 s per million trades. The price walk reverts to its
start so a million-trade pool keeps realistic prices. The seed workload uses
synthetic_rows() and the SAPIEN story themselves.
"""

from __future__ import annotations

import os
import random
import statistics
import time
from contextlib import contextmanager
from dataclasses import dataclass, field

import psycopg
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from fifo_db.errors import FifoError
from fifo_db.install import install
from fifo_db.sample import COLUMNS, copy_rows, sapien_story, synthetic_rows

SCRATCH_DB = "fifo_bench"
EPOCH_2025_09_01 = 1_756_684_800
TRADE_COLS = ", ".join(COLUMNS)


# -- data -------------------------------------------------------------------

def bench_lines(symbols: int, trades: int, seed: int = 7, max_gap_s: int = 14_400,
                prefix: str = "B"):
    """COPY text lines (COLUMNS order) of `trades` trades over `symbols` pools, deterministic."""
    rnd = random.Random(seed)
    per_pool = [trades // symbols + (1 if i < trades % symbols else 0) for i in range(symbols)]
    for i in range(symbols):
        name = f"{prefix}{i:04d}-USD"
        anchor = price = rnd.randint(10, 500_000)          # units of 0.0001
        held = 0                                           # units of 0.1
        t = EPOCH_2025_09_01 + rnd.randint(0, 36_000)
        for n in range(per_pool[i]):
            t += rnd.randint(1, max_gap_s)
            price = max(1, int(price * (1 + rnd.uniform(-0.03, 0.03)) + (anchor - price) * 0.01))
            if held == 0 or rnd.random() < 0.5:
                side, size = "buy", rnd.randint(1, 5000)
                held += size
            else:
                side = "sell"
                size = held if rnd.random() < 0.4 else max(1, held * rnd.randint(10, 90) // 100)
                if rnd.random() < 0.02:
                    size = held + rnd.randint(1, 50) * 10  # an oversell (rule 4)
                held = max(0, held - size)
            fee = size * price * 6                         # 0.6% of notional, units of 1e-8
            yield (f"{name}-{n:07d}\tdefault\t{name}\t{side}\t{size // 10}.{size % 10}\t"
                   f"{price // 10_000}.{price % 10_000:04d}\t{fee // 10**8}.{fee % 10**8:08d}\t"
                   f"{time.strftime('%Y-%m-%d %H:%M:%S', time.gmtime(t))}+00\tbench\n")


def copy_lines(conn: psycopg.Connection, lines, table: str = "trade_records") -> int:
    count = 0
    with conn.cursor() as cur:
        with cur.copy(sql.SQL("COPY {} ({}) FROM STDIN").format(
                sql.Identifier(table), sql.SQL(TRADE_COLS))) as copy:
            batch = []
            for line in lines:
                batch.append(line)
                if len(batch) == 10_000:
                    copy.write("".join(batch))
                    count += len(batch)
                    batch = []
            copy.write("".join(batch))
            count += len(batch)
    return count


# -- measuring ----------------------------------------------------------------

@dataclass
class Figure:
    label: str
    seconds: list[float] = field(default_factory=list)
    extra: str = ""
    target: str = ""

    @property
    def median(self) -> float:
        return statistics.median(self.seconds)


def timed(conn: psycopg.Connection, query: str, params: tuple = ()) -> tuple[float, tuple | None]:
    start = time.perf_counter()
    cur = conn.execute(query, params)
    row = cur.fetchone() if cur.description else None
    return time.perf_counter() - start, row


def fmt_time(seconds: float) -> str:
    return f"{seconds * 1000:,.1f} ms" if seconds < 1 else f"{seconds:,.2f} s"


def reset(conn: psycopg.Connection) -> None:
    conn.execute("TRUNCATE trade_records, fifo_allocations, fifo_runs, "
                 "fifo.pool_state, fifo.pool_changes")


def settle(conn: psycopg.Connection) -> None:
    """Same starting state for every timed run: no dead rows, fresh statistics."""
    conn.execute("VACUUM ANALYZE trade_records, fifo_allocations, fifo.pool_changes, fifo.pool_state")


# -- the benchmarks -----------------------------------------------------------

class Bench:
    def __init__(self, conn: psycopg.Connection, runs: int, out=print):
        self.conn = conn
        self.runs = runs
        self.out = out
        self.figures: list[Figure] = []
        self.staged: tuple[int, int] | None = None

    def record(self, fig: Figure) -> Figure:
        self.figures.append(fig)
        self.out(f"  {fig.label}: {fmt_time(fig.median)} {fig.extra}".rstrip())
        return fig

    def full_recompute(self, label: str, target: str = "") -> Figure:
        """compute_fifo_all(true): one untimed warm-up (allocations exist), then the runs."""
        self.conn.execute("SELECT compute_fifo_all(true)")
        fig = Figure(label, target=target)
        for _ in range(self.runs):
            settle(self.conn)
            seconds, row = timed(self.conn, "SELECT allocations, buys + sells FROM compute_fifo_all(true)")
            fig.seconds.append(seconds)
        allocations, trades = row
        fig.extra = (f"({trades:,} trades, {trades / fig.median:,.0f} trades/s, "
                     f"{allocations:,} allocations written)")
        return self.record(fig)

    def seed_workload(self) -> Figure:
        reset(self.conn)
        copy_rows(self.conn, list(synthetic_rows()) + sapien_story())
        return self.full_recompute("seed workload, 171 symbols + SAPIEN-USD, compute_fifo_all(true)",
                                   "<= 100 ms (the seed: 88.3 s)")

    def load(self, n: int, symbols: int) -> None:
        """n trades over `symbols` pools into an empty trade_records (staged once per size)."""
        reset(self.conn)
        if self.staged != (n, symbols):
            self.conn.execute("DROP TABLE IF EXISTS bench_stage")
            self.conn.execute(f"CREATE UNLOGGED TABLE bench_stage AS SELECT {TRADE_COLS} FROM trade_records "
                              "WITH NO DATA")
            copy_lines(self.conn, bench_lines(symbols, n), "bench_stage")
            self.staged = (n, symbols)
        self.conn.execute(f"INSERT INTO trade_records ({TRADE_COLS}) SELECT {TRADE_COLS} FROM bench_stage")

    def sizes(self, sizes: list[int], symbols: int) -> None:
        for n in sizes:
            self.load(n, symbols)
            self.full_recompute(f"full recompute, {n:,} trades over {symbols:,} symbols",
                                "<= 4 s" if n == 1_000_000 else "")
            if n == max(sizes):
                self.one_symbol(n, symbols)
                self.appended_across_pools(n, symbols)

    def one_symbol(self, n: int, symbols: int) -> Figure:
        symbol = f"B{symbols // 2:04d}-USD"
        count = self.conn.execute("SELECT count(*) FROM trade_records WHERE symbol = %s",
                                  (symbol,)).fetchone()[0]
        fig = Figure(f"compute_fifo('{symbol}'), {count:,} trades, in the {n:,}-trade database",
                     target="<= 15 ms" if count == 1000 else "")
        self.conn.execute("SELECT compute_fifo(%s)", (symbol,))
        for _ in range(self.runs):
            fig.seconds.append(timed(self.conn, "SELECT compute_fifo(%s)", (symbol,))[0])
        return self.record(fig)

    def _append(self, pools: list[str], tag: str) -> None:
        """One new trade at the end of each pool (a sell of 0.1 at the last price, fee 0)."""
        self.conn.execute(
            """INSERT INTO trade_records (order_id, symbol, side, size, price, total_fees, order_time, source)
               SELECT t.symbol || %s, t.symbol, 'sell', 0.1, t.price, 0, t.order_time + interval '1 second', 'bench'
               FROM unnest(%s::text[]) AS p(symbol)
               CROSS JOIN LATERAL (SELECT r.symbol, r.price, r.order_time FROM trade_records r
                                   WHERE r.symbol = p.symbol AND r.account = 'default'
                                   ORDER BY r.order_time DESC LIMIT 1) t""",
            (tag, pools))

    def appended_across_pools(self, n: int, symbols: int) -> Figure:
        pools = [f"B{i:04d}-USD" for i in range(0, symbols, max(1, symbols // 100))][:100]
        fig = Figure(f"{len(pools)} trades appended across {len(pools)} pools ({n:,}-trade database), "
                     "compute_fifo_incremental()", target="<= 200 ms")
        for run in range(self.runs):
            self._append(pools, f"-append-{run}")
            seconds, row = timed(self.conn, "SELECT pools, allocations FROM compute_fifo_incremental()")
            fig.seconds.append(seconds)
        fig.extra = f"({row[0]} pools, {row[1]} allocations rewritten)"
        return self.record(fig)

    def change_capture(self, n: int, symbols: int) -> tuple[Figure, Figure]:
        """INSERT ... SELECT of n trades from a staging table, capture trigger on vs off."""
        self.load(n, symbols)
        off = Figure(f"bulk insert of {n:,} trades, change capture off")
        on = Figure(f"bulk insert of {n:,} trades, change capture on", target="<= 15% slower than off")
        insert = f"INSERT INTO trade_records ({TRADE_COLS}) SELECT {TRADE_COLS} FROM bench_stage"
        for run in range(self.runs):
            for fig, enabled in ((off, False), (on, True)) if run % 2 == 0 else ((on, True), (off, False)):
                reset(self.conn)
                self.conn.execute("CHECKPOINT")
                self.conn.execute("ALTER TABLE trade_records {} TRIGGER fifo_capture_insert"
                                  .format("ENABLE" if enabled else "DISABLE"))
                try:
                    fig.seconds.append(timed(self.conn, insert)[0])
                finally:
                    self.conn.execute("ALTER TABLE trade_records ENABLE TRIGGER fifo_capture_insert")
        self.record(off)
        on.extra = f"(+{(on.median / off.median - 1) * 100:.1f}%)"
        self.record(on)
        return off, on

    def long_pool(self, n: int) -> None:
        """One pool of n trades: full compute, one appended trade, one back-dated trade."""
        reset(self.conn)
        copy_lines(self.conn, bench_lines(1, n, seed=11, max_gap_s=60, prefix="LONG"))
        settle(self.conn)
        symbol = "LONG0000-USD"
        self.conn.execute("SELECT compute_fifo(%s)", (symbol,))
        settle(self.conn)
        full = Figure(f"compute_fifo('{symbol}'), one pool of {n:,} trades (full)")
        for _ in range(self.runs):
            full.seconds.append(timed(self.conn, "SELECT compute_fifo(%s)", (symbol,))[0])
        self.record(full)

        appended = Figure(f"one trade appended to the {n:,}-trade pool, compute_fifo_incremental()",
                          target="<= 50 ms")
        for run in range(self.runs):
            self._append([symbol], f"-append-{run}")
            appended.seconds.append(timed(self.conn, "SELECT compute_fifo_incremental()")[0])
        self.record(appended)

        backdated = Figure(f"one back-dated trade near the start of the {n:,}-trade pool, "
                           "compute_fifo_incremental()", target="<= the full recompute above")
        for run in range(self.runs):
            self.conn.execute(
                """INSERT INTO trade_records (order_id, symbol, side, size, price, total_fees, order_time, source)
                   SELECT %s, symbol, 'buy', 1, price, 0, order_time + interval '1 millisecond' * %s, 'bench'
                   FROM trade_records WHERE symbol = %s ORDER BY order_time, side, order_id LIMIT 1""",
                (f"{symbol}-backdated-{run}", run + 1, symbol))
            backdated.seconds.append(timed(self.conn, "SELECT compute_fifo_incremental()")[0])
        backdated.extra = f"({backdated.median / full.median:.2f} x the full recompute)"
        self.record(backdated)


# -- the scratch database and the command ---------------------------------------

@contextmanager
def scratch_database(conn: psycopg.Connection, name: str = SCRATCH_DB):
    """A fresh database `name` on the server of `conn`, with fifo-db installed; dropped on exit."""
    ident = sql.Identifier(name)
    conn.execute(sql.SQL("DROP DATABASE IF EXISTS {}").format(ident))
    conn.execute(sql.SQL("CREATE DATABASE {}").format(ident))
    try:
        params = conninfo_to_dict(conn.info.dsn)
        if conn.info.password:
            params["password"] = conn.info.password
        with psycopg.connect(make_conninfo(**{**params, "dbname": name}), autocommit=True) as bench_conn:
            install(bench_conn)
            yield bench_conn
    finally:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {}").format(ident))


def register(sub) -> None:
    p = sub.add_parser("bench", help="run the benchmarks in a scratch database and print figures",
                       description=f"Benchmarks in a scratch database ({SCRATCH_DB}, created and "
                                   "dropped on the server given; your data is never touched).")
    p.add_argument("--sizes", default="10000,100000,1000000",
                   help="trade counts for the full recompute over --symbols symbols "
                        "(default 10000,100000,1000000)")
    p.add_argument("--symbols", type=int, default=1000, help="symbols for the sized runs (default 1000)")
    p.add_argument("--runs", type=int, default=3, help="timed runs per figure; medians are printed (default 3)")
    p.set_defaults(func=_cli_bench)


def _cli_bench(args, conn) -> int:
    try:
        sizes = sorted({int(s) for s in args.sizes.split(",") if s.strip()})
    except ValueError:
        raise FifoError(f"--sizes: expected comma-separated trade counts, got {args.sizes!r}") from None
    if not sizes or min(sizes) < args.symbols:
        raise FifoError(f"--sizes: each size must be at least --symbols ({args.symbols}), got {args.sizes!r}")
    if args.runs < 1:
        raise FifoError(f"--runs: must be at least 1, got {args.runs}")
    version = conn.execute("SHOW server_version").fetchone()[0]
    print(f"fifo-db bench: PostgreSQL {version}, {os.cpu_count()} CPUs, scratch database "
          f"{SCRATCH_DB!r} (dropped at the end), medians of {args.runs} runs", flush=True)
    with scratch_database(conn) as bench_conn:
        bench = Bench(bench_conn, args.runs, out=lambda line: print(line, flush=True))
        bench.seed_workload()
        bench.sizes(sizes, args.symbols)
        bench.change_capture(max(sizes), args.symbols)
        bench.long_pool(max(sizes))
    print()
    print(table(bench.figures))
    return 0


def table(figures: list[Figure]) -> str:
    width = max(len(f.label) for f in figures)
    lines = [f"{'benchmark':<{width}}  {'median':>10}  target", "-" * (width + 30)]
    for f in figures:
        lines.append(f"{f.label:<{width}}  {fmt_time(f.median):>10}  {f.target}")
    return "\n".join(lines)
