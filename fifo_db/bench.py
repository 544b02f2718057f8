"""fifo-db bench: the performance envelope, every figure beside a yardstick run on the same data.

Everything runs in a scratch database (`fifo_bench`) on the server given
(default the embedded one): it is created, fifo-db is installed there, and it
is dropped at the end. The user's own database is never touched.

Timings are wall-clock medians of --runs runs, measured by the client around
one SQL call (round trip included). Loading data is never timed. Nothing here
asserts a time: the figures are printed next to their targets.

The yardstick is bench/naive_fifo.sql: a straightforward set-based FIFO
(windows with PARTITION BY, one sweep, a join back by ordinal, unlogged tables,
no indexes). It runs on the same data, in the same run, interleaved with the
engine's runs, and the bench checks once per data set that it writes exactly
the engine's rows. On a shared machine absolute times swing 2x between runs;
the ratio to the yardstick is the figure to compare across runs.

Data shapes (--shapes):
  low           bench_lines(): buys of 0.1-500 units; sells exit 40% of the time, otherwise
                sell 10-90% of the inventory; about 1 in 50 an oversell; fees 0.6% of
                notional. Inventory stays low (about 2 open lots per pool).
  accumulating  the generator of issue 10 (55% buys, random 8-decimal sizes and prices):
                inventory grows, a 1,000-trade pool ends with about 100 open lots.
  decimal8      bench_lines() with 8-decimal sizes and prices (low inventory).
  long          one pool of max(--sizes) trades, low inventory and accumulating (about
                100,000 open lots at 1M): full compute, one appended trade, one back-dated.
  seed          synthetic_rows() with its defaults (171 symbols, 4,513 trades) plus SAPIEN-USD.
  appends       one pool of max(--sizes) trades of the accumulating shape, right after a bulk load
                (ANALYZE, no VACUUM): one sell appended, then each incremental entry point
                (compute_fifo_incremental, compute_fifo_since with an absolute time, the worker's
                run, the CLI's --since '1 minute ago' after many appends, after a forced run).
  worker        commit-to-allocation latency with `fifo-db worker` running (in a thread of
                this process): single-trade transactions at the bot's rate (20/s for 10 s) and
                in a burst (1,000/s for 3 s); on min(--sizes) trades of the low shape.
  queue         the change queue under a bot's sustained write load: 10,000 single-trade
                transactions (a server-side loop, one COMMIT each, synchronous_commit off), an
                incremental run every 500.

Every step says what it is doing on stderr (one line per step, `fifo-db bench: ...`); the
figures go to stdout. The first lines state the machine: CPU model, cores, memory, the
server's PostgreSQL version, and the load average at the start (and at the end, last line).
New cases: a method of Bench that builds a Figure, fills it through compare() (beside the
yardstick) or timed(), and record()s it; called from _cli_bench under a shape.
"""

from __future__ import annotations

import os
import platform
import random
import statistics
import sys
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import psycopg
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from fifo_db.errors import FifoError
from fifo_db.install import install
from fifo_db.sample import COLUMNS, copy_rows, sapien_story, synthetic_rows

SCRATCH_DB = "fifo_bench"
EPOCH_2025_09_01 = 1_756_684_800
TRADE_COLS = ", ".join(COLUMNS)
SHAPES = ("low", "accumulating", "decimal8", "long", "seed", "worker", "queue", "appends")
ALLOCATIONS = "fifo.allocations"
_PACKAGE_DIR = Path(__file__).resolve().parent


def _naive_sql_path() -> Path:
    """bench/naive_fifo.sql; shipped in the wheel as fifo_db/bench_naive_fifo.sql."""
    inside = _PACKAGE_DIR / "bench_naive_fifo.sql"
    return inside if inside.is_file() else _PACKAGE_DIR.parent / "bench" / "naive_fifo.sql"


# -- data -------------------------------------------------------------------

def _fixed(units: int, places: int) -> str:
    return f"{units // 10 ** places}.{units % 10 ** places:0{places}d}"


def bench_lines(symbols: int, trades: int, seed: int = 7, max_gap_s: int = 14_400,
                prefix: str = "B", places: int | None = None):
    """COPY text lines (COLUMNS order) of `trades` trades over `symbols` pools, deterministic.

    places=None: sizes with 1 decimal, prices with 4; places=8: both with 8 decimals."""
    rnd = random.Random(seed)
    size_places, price_places = (1, 4) if places is None else (places, places)
    per_pool = [trades // symbols + (1 if i < trades % symbols else 0) for i in range(symbols)]
    for i in range(symbols):
        name = f"{prefix}{i:04d}-USD"
        if places is None:
            anchor = price = rnd.randint(10, 500_000)      # units of 0.0001
        else:
            anchor = price = rnd.randint(10 ** (places - 3), 500 * 10 ** places)
        held = 0                                           # units of 10^-size_places
        t = EPOCH_2025_09_01 + rnd.randint(0, 36_000)
        for n in range(per_pool[i]):
            t += rnd.randint(1, max_gap_s)
            price = max(1, int(price * (1 + rnd.uniform(-0.03, 0.03)) + (anchor - price) * 0.01))
            if held == 0 or rnd.random() < 0.5:
                side = "buy"
                size = rnd.randint(1, 5000) if places is None else rnd.randint(1, 500 * 10 ** places)
                held += size
            else:
                side = "sell"
                size = held if rnd.random() < 0.4 else max(1, held * rnd.randint(10, 90) // 100)
                if rnd.random() < 0.02:                    # an oversell (rule 4)
                    size = held + (rnd.randint(1, 50) * 10 if places is None else rnd.randint(1, 50 * 10 ** places))
                held = max(0, held - size)
            # 0.6% of notional, in units of 1e-8, truncated
            fee = size * price * 6 * 10 ** 8 // (1000 * 10 ** (size_places + price_places))
            yield (f"{name}-{n:07d}\tdefault\t{name}\t{side}\t{_fixed(size, size_places)}\t"
                   f"{_fixed(price, price_places)}\t{_fixed(fee, 8)}\t"
                   f"{time.strftime('%Y-%m-%d %H:%M:%S', time.gmtime(t))}+00\tbench\n")


# Issue 10's generator of the accumulating shape (55% buys, random 8-decimal sizes and
# prices), into the staging table; setseed() makes it deterministic.
ACCUMULATING = """
    INSERT INTO bench_stage (order_id, account, symbol, side, size, price, total_fees, order_time, source)
    SELECT 'o' || i, 'default', 'S' || (i %% %(k)s) || '-USD',
           CASE WHEN random() < 0.55 THEN 'buy' ELSE 'sell' END,
           round((random() * 10 + 0.001)::numeric, 8), round((random() * 100 + 1)::numeric, 8),
           round((random() * 0.1)::numeric, 8),
           timestamptz '2024-01-01' + i * interval '1 second' + (random() * interval '900 ms'), 'bench'
    FROM generate_series(1, %(n)s) i"""


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
    naive: list[float] = field(default_factory=list)
    extra: str = ""
    target: str = ""
    shown: str = ""   # what the table shows instead of the median time (e.g. a size change)

    @property
    def median(self) -> float:
        return statistics.median(self.seconds)

    @property
    def naive_median(self) -> float | None:
        return statistics.median(self.naive) if self.naive else None

    @property
    def ratio(self) -> str:
        """How many times faster than the yardstick (above 1: faster)."""
        return f"{self.naive_median / self.median:,.2f}x" if self.naive else ""


def timed(conn: psycopg.Connection, query, params: tuple = ()) -> tuple[float, tuple | None]:
    start = time.perf_counter()
    cur = conn.execute(query, params)
    row = cur.fetchone() if cur.description else None
    return time.perf_counter() - start, row


def fmt_time(seconds: float | None) -> str:
    if seconds is None:
        return ""
    return f"{seconds * 1000:,.1f} ms" if seconds < 1 else f"{seconds:,.2f} s"


def reset(conn: psycopg.Connection) -> None:
    conn.execute(f"TRUNCATE trade_records, {ALLOCATIONS}, fifo_runs, fifo.pool_state, fifo.pool_changes")


def settle(conn: psycopg.Connection) -> None:
    """Same starting state for every timed run: no dead rows, fresh statistics."""
    conn.execute(f"VACUUM ANALYZE trade_records, {ALLOCATIONS}, fifo.pool_changes, fifo.pool_state")


def table_bytes(conn: psycopg.Connection) -> int:
    """Heap, indexes and TOAST of fifo.allocations, all its partitions included."""
    return conn.execute("SELECT sum(pg_total_relation_size(relid))::bigint FROM pg_partition_tree(%s::regclass)",
                        (ALLOCATIONS,)).fetchone()[0]


def step(text: str) -> None:
    """One line on stderr saying what the bench is doing now (long steps would otherwise be silent)."""
    print(f"fifo-db bench: {text}", file=sys.stderr, flush=True)


def load_average() -> str:
    try:
        return " / ".join(f"{x:.2f}" for x in os.getloadavg()) + " (1 / 5 / 15 min)"
    except OSError:
        return "unknown"


def machine() -> str:
    """CPU model, cores and memory of the machine the bench runs on (Linux: /proc), else what Python knows."""
    model = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            model = next((line.split(":", 1)[1].strip() for line in f if line.startswith("model name")), model)
    except OSError:
        pass
    memory = ""
    try:
        with open("/proc/meminfo") as f:
            kb = next(int(line.split()[1]) for line in f if line.startswith("MemTotal:"))
        memory = f", {kb / 2**20:.1f} GiB RAM"
    except (OSError, StopIteration, ValueError):
        pass
    return f"{model}, {os.cpu_count()} cores{memory}"


# -- the yardstick --------------------------------------------------------------

class Yardstick:
    """bench/naive_fifo.sql over the pools a filter selects."""

    # every column but the engine's bookkeeping (id, version, batch, computed_at, unmatched)
    COMPARED = ("account, symbol, sell_trade_id, buy_trade_id, allocated_size, buy_price, sell_price, "
                "buy_fees, sell_fees, cost_basis, sale_proceeds, pnl_amount, buy_time, sell_time")

    def __init__(self, conn: psycopg.Connection):
        self.conn = conn
        self.text = _naive_sql_path().read_text()

    def statements(self, symbols: list[str] | None) -> list[sql.Composable]:
        pools = (sql.SQL("TRUE") if symbols is None
                 else sql.SQL("t.symbol = ANY({})").format(sql.Literal(symbols)))
        body = "\n".join(line for line in self.text.splitlines() if not line.lstrip().startswith("--"))
        return [sql.SQL(s.strip()).format(pools=pools)
                for s in body.split(";") if s.strip()]

    def run(self, symbols: list[str] | None = None) -> float:
        """Seconds for the yardstick's statements (its tables dropped first, untimed)."""
        self.conn.execute("DROP TABLE IF EXISTS bench_naive, bench_naive_events, bench_naive_segments")
        self.conn.execute("SET work_mem = '256MB'")   # what the engine's fifo._match uses
        self.conn.execute("SET jit = off")            # ditto
        try:
            start = time.perf_counter()
            for statement in self.statements(symbols):
                self.conn.execute(statement)
            return time.perf_counter() - start
        finally:
            self.conn.execute("RESET work_mem")
            self.conn.execute("RESET jit")

    def check(self, symbols: list[str] | None = None) -> int:
        """The yardstick's last rows equal the engine's (every compared column); returns the row count."""
        where = "version = 1" + ("" if symbols is None else " AND symbol = ANY(%s)")
        params = () if symbols is None else (symbols,)
        engine = f"SELECT {self.COMPARED} FROM {ALLOCATIONS} WHERE {where}"
        naive = f"SELECT {self.COMPARED} FROM bench_naive"
        extra = self.conn.execute(f"SELECT count(*) FROM ({naive} EXCEPT ALL {engine}) x", params).fetchone()[0]
        missing = self.conn.execute(f"SELECT count(*) FROM ({engine} EXCEPT ALL {naive}) x", params).fetchone()[0]
        rows = self.conn.execute("SELECT count(*) FROM bench_naive").fetchone()[0]
        if extra or missing:
            raise FifoError(f"bench: the yardstick disagrees with the engine ({extra} rows only in the yardstick, "
                            f"{missing} only in the engine, of {rows}); its figures would mean nothing")
        return rows


# -- the benchmarks -----------------------------------------------------------

class Bench:
    def __init__(self, conn: psycopg.Connection, runs: int, out=print):
        self.conn = conn
        self.runs = runs
        self.out = out
        self.figures: list[Figure] = []
        self.staged: tuple | None = None
        self.naive = Yardstick(conn)
        self.appended = 0

    def record(self, fig: Figure) -> Figure:
        self.figures.append(fig)
        naive = (f" | yardstick {fmt_time(fig.naive_median)}, fifo-db {fig.ratio} as fast"
                 if fig.naive else "")
        self.out(f"  {fig.label}: {fmt_time(fig.median)}{naive} {fig.extra}".rstrip())
        return fig

    def heading(self, text: str) -> None:
        self.out(text)
        self.figures.append(Figure(text))

    def compare(self, fig: Figure, engine, symbols: list[str] | None = None, settle_first: bool = False) -> None:
        """Runs of `engine()` (returns seconds) interleaved with runs of the yardstick on `symbols`."""
        for run in range(self.runs):
            step(f"{fig.label}: run {run + 1} of {self.runs}, fifo-db then the yardstick")
            if settle_first:
                settle(self.conn)
            fig.seconds.append(engine())
            fig.naive.append(self.naive.run(symbols))
            if run == 0:
                self.naive.check(symbols)

    # data sets

    def stage(self, key: tuple, fill) -> None:
        """(Re)build the unlogged staging table with fill(conn) unless it already holds `key`."""
        if self.staged == key:
            return
        self.conn.execute("DROP TABLE IF EXISTS bench_stage")
        self.conn.execute(f"CREATE UNLOGGED TABLE bench_stage AS SELECT {TRADE_COLS} FROM trade_records "
                          "WITH NO DATA")
        fill(self.conn)
        self.staged = key

    def load(self, key: tuple, fill) -> None:
        """The data set `key` into an empty trade_records (staged once), vacuumed and analysed."""
        step(f"loading {' '.join(str(k) for k in key)} (not timed)")
        reset(self.conn)
        self.stage(key, fill)
        self.conn.execute(f"INSERT INTO trade_records ({TRADE_COLS}) SELECT {TRADE_COLS} FROM bench_stage")
        settle(self.conn)

    @staticmethod
    def shape_data(shape: str, n: int, symbols: int):
        """(key, fill, name of the pool of index i) of a sized data set."""
        if shape == "low":
            return (shape, n, symbols), lambda c: copy_lines(c, bench_lines(symbols, n), "bench_stage"), \
                lambda i: f"B{i:04d}-USD"
        if shape == "decimal8":
            return (shape, n, symbols), \
                lambda c: copy_lines(c, bench_lines(symbols, n, seed=13, prefix="D", places=8), "bench_stage"), \
                lambda i: f"D{i:04d}-USD"
        if shape == "accumulating":
            def fill(c):
                c.execute("SELECT setseed(0.5)")
                c.execute(ACCUMULATING, {"k": symbols, "n": n})
            return (shape, n, symbols), fill, lambda i: f"S{i}-USD"
        raise ValueError(shape)

    # the figures

    def full_recompute(self, label: str, target: str = "") -> Figure:
        """compute_fifo_all(true) beside the yardstick on every pool; one untimed warm-up first."""
        self.conn.execute("SELECT compute_fifo_all(true)")
        fig = Figure(label, target=target)
        result = {}

        def engine():
            seconds, result["row"] = timed(self.conn, "SELECT allocations, buys + sells FROM compute_fifo_all(true)")
            return seconds

        self.compare(fig, engine, settle_first=True)
        allocations, trades = result["row"]
        fig.extra = f"({trades:,} trades, {trades / fig.median:,.0f} trades/s, {allocations:,} allocations)"
        self.record(fig)
        self.verify_beside(label, fig)
        return fig

    def verify_beside(self, label: str, recompute: Figure) -> Figure:
        """verify_fifo() on the data just recomputed, as a multiple of that forced full recompute
        (issue 14: at most 2x); it must find nothing."""
        fig = Figure(f"{label}: verify_fifo()", target="<= 2x the forced full recompute")
        fig.naive = list(recompute.naive)   # the yardstick of the same data, same run
        step(f"{fig.label}: {self.runs} run(s)")
        for _ in range(self.runs):
            seconds, row = timed(self.conn, "SELECT count(*) FROM verify_fifo()")
            if row[0]:
                raise RuntimeError(f"verify_fifo() found {row[0]} finding(s) after a forced full recompute")
            fig.seconds.append(seconds)
        fig.extra = f"({fig.median / recompute.median:.2f}x the forced full recompute above, 0 findings)"
        return self.record(fig)

    def seed_workload(self) -> None:
        self.heading("seed workload: synthetic_rows() defaults + the SAPIEN-USD story")
        reset(self.conn)
        copy_rows(self.conn, list(synthetic_rows()) + sapien_story())
        settle(self.conn)
        self.staged = None
        self.full_recompute("seed workload, 171 symbols + SAPIEN-USD, compute_fifo_all(true)",
                            "<= 100 ms (the seed: 88.3 s)")

    def sized(self, shape: str, title: str, sizes: list[int], symbols: int) -> None:
        self.heading(f"{title}, over {symbols:,} symbols")
        for n in sizes:
            key, fill, pool = self.shape_data(shape, n, symbols)
            self.load(key, fill)
            self.full_recompute(f"{shape}: full recompute, {n:,} trades",
                                ">= 2x the yardstick, aim <= 4 s" if n == 1_000_000 else "")
            if n == max(sizes):
                self.one_symbol(shape, pool(symbols // 2), n)
                self.appended_across_pools(shape, [pool(i) for i in range(0, symbols, max(1, symbols // 100))][:100], n)

    def one_symbol(self, shape: str, symbol: str, n: int) -> Figure:
        count = self.conn.execute("SELECT count(*) FROM trade_records WHERE symbol = %s", (symbol,)).fetchone()[0]
        fig = Figure(f"{shape}: compute_fifo('{symbol}'), {count:,} trades, in the {n:,}-trade database",
                     target="<= 15 ms" if count == 1000 else "")
        self.conn.execute("SELECT compute_fifo(%s)", (symbol,))
        self.compare(fig, lambda: timed(self.conn, "SELECT compute_fifo(%s)", (symbol,))[0], [symbol])
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

    def open_lots(self, pools: list[str]) -> int:
        return self.conn.execute("SELECT count(*) FROM fifo_open_lots o WHERE o.symbol = ANY(%s)",
                                 (pools,)).fetchone()[0]

    def appended_across_pools(self, shape: str, pools: list[str], n: int) -> Figure:
        lots = self.open_lots(pools)
        fig = Figure(f"{shape}: {len(pools)} trades appended across {len(pools)} pools ({n:,}-trade database), "
                     "compute_fifo_incremental()", target="<= 200 ms")
        result = {}

        def engine():
            self._append(pools, f"-append-{len(fig.seconds)}")
            seconds, result["row"] = timed(self.conn, "SELECT pools, allocations FROM compute_fifo_incremental()")
            return seconds

        self.compare(fig, engine, pools)
        pools_done, rewritten = result["row"]
        fig.extra = f"({pools_done} pools, {lots:,} lots open, {rewritten} allocations computed)"
        return self.record(fig)

    def change_capture(self, n: int, symbols: int) -> tuple[Figure, Figure]:
        """INSERT ... SELECT of n trades from a staging table, capture trigger on vs off."""
        key, fill, _ = self.shape_data("low", n, symbols)
        self.load(key, fill)
        step(f"bulk insert of {n:,} trades, change capture off and on, {self.runs} run(s) each")
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
        on.extra = f"({(on.median / off.median - 1) * 100:+.1f}%)"
        self.record(on)
        return off, on

    def change_log_load(self, statements: int = 10_000, pools: int = 100, tick: int = 500) -> Figure:
        """A bot's sustained write load: `statements` single-trade INSERTs over `pools` pools, each
        its own transaction, an incremental run every `tick` statements (a cron tick);
        fifo.pool_changes' rows and size after it, and the most pending rows seen (the queue keeps
        one per pool). The statements run in a server-side loop (a DO block that COMMITs each
        INSERT) with synchronous_commit off for this session: 20,000 client round trips, each
        commit waiting for its WAL flush, took 80 s of a 87 s bench and measured the disk."""
        reset(self.conn)
        fig = Figure(f"change queue after {statements:,} single-trade statements over {pools} pools, "
                     f"compute_fifo_incremental() every {tick:,}", target="bounded by the pools, not the writes")
        step(f"{fig.label} (one run)")
        self.conn.execute("DROP TABLE IF EXISTS bench_pending")
        self.conn.execute("CREATE TABLE bench_pending (n bigint)")
        self.conn.execute("SET synchronous_commit = off")
        try:
            started = time.perf_counter()
            self.conn.execute(sql.SQL("""
                DO $bench$
                BEGIN
                    FOR i IN 0 .. {statements} - 1 LOOP
                        INSERT INTO public.trade_records (order_id, symbol, side, size, price, total_fees, order_time)
                        VALUES ('load-' || i, 'L' || lpad((i % {pools})::text, 3, '0') || '-USD',
                                CASE WHEN i % 3 = 0 THEN 'sell' ELSE 'buy' END, 0.5, 10 + i % 7, 0,
                                timestamptz '2025-01-01' + i * interval '1 second');
                        COMMIT;
                        IF i % {tick} = {tick} - 1 THEN
                            INSERT INTO bench_pending SELECT count(*) FROM fifo.pool_changes WHERE processed_at IS NULL;
                            PERFORM compute_fifo_incremental();
                            COMMIT;
                        END IF;
                    END LOOP;
                END
                $bench$""").format(statements=sql.Literal(statements), pools=sql.Literal(pools), tick=sql.Literal(tick)))
            fig.seconds.append(time.perf_counter() - started)
        finally:
            self.conn.execute("RESET synchronous_commit")
        most_pending = self.conn.execute("SELECT coalesce(max(n), 0) FROM bench_pending").fetchone()[0]
        self.conn.execute("DROP TABLE bench_pending")
        rows, size = self.conn.execute("SELECT count(*), pg_total_relation_size('fifo.pool_changes') "
                                       "FROM fifo.pool_changes").fetchone()
        self.conn.execute("VACUUM fifo.pool_changes")   # what autovacuum does: the merged rows' old versions
        vacuumed = self.conn.execute("SELECT pg_total_relation_size('fifo.pool_changes')").fetchone()[0]
        fig.shown = f"{rows} rows"
        fig.extra = (f"({rows:,} rows, {size / 1024:,.0f} kB after the load, {vacuumed / 1024:,.0f} kB after VACUUM; "
                     f"at most {most_pending:,} pending; {statements / fig.median:,.0f} single-statement "
                     f"transactions/s with capture, server-side)")
        return self.record(fig)

    def nightly(self, n: int, symbols: int, nights: int) -> Figure:
        """Table size after `nights` forced full recomputes in a row (no manual VACUUM) vs after one."""
        key, fill, _ = self.shape_data("low", n, symbols)
        self.load(key, fill)
        step(f"{nights} forced full recomputes in a row ({n:,} trades)")
        fig = Figure(f"low: {ALLOCATIONS} size after {nights} forced full recomputes vs after 1 ({n:,} trades)",
                     target="within 25%")
        self.conn.execute("SELECT compute_fifo_all(true)")
        first = table_bytes(self.conn)
        for _ in range(nights - 1):
            fig.seconds.append(timed(self.conn, "SELECT compute_fifo_all(true)")[0])
        last = table_bytes(self.conn)
        fig.extra = (f"(one forced run's median time; {first / 2**20:,.0f} MB after 1, {last / 2**20:,.0f} MB after "
                     f"{nights}: {(last / first - 1) * 100:+.0f}%)")
        fig.shown = f"{(last / first - 1) * 100:+.0f}%"
        return self.record(fig)

    def long_pool(self, n: int, accumulating: bool) -> None:
        """One pool of n trades: full compute, one appended trade, one back-dated trade."""
        shape = "long accumulating" if accumulating else "long low"
        if accumulating:
            symbol = "S0-USD"

            def fill(c):
                c.execute("SELECT setseed(0.25)")
                c.execute(ACCUMULATING, {"k": 1, "n": n})
        else:
            symbol = "LONG0000-USD"

            def fill(c):
                copy_lines(c, bench_lines(1, n, seed=11, max_gap_s=60, prefix="LONG"), "bench_stage")
        self.load((shape, n), fill)
        self.conn.execute("SELECT compute_fifo(%s)", (symbol,))
        full = Figure(f"{shape}: compute_fifo('{symbol}'), one pool of {n:,} trades (full)")
        self.compare(full, lambda: timed(self.conn, "SELECT compute_fifo(%s)", (symbol,))[0], [symbol],
                     settle_first=True)
        self.record(full)

        lots = self.open_lots([symbol])
        appended = Figure(f"{shape}: one trade appended to the {n:,}-trade pool, compute_fifo_since()",
                          target="<= 50 ms, whatever the open lots")

        def append():
            since = self.conn.execute("SELECT clock_timestamp()").fetchone()[0]
            self._append([symbol], f"-append-{len(appended.seconds)}")
            return timed(self.conn, "SELECT compute_fifo_since(%s)", (since,))[0]

        self.compare(appended, append, [symbol])
        appended.extra = f"({lots:,} lots open before the append)"
        self.record(appended)

        backdated = Figure(f"{shape}: one back-dated trade near the start of the {n:,}-trade pool, "
                           "compute_fifo_incremental()", target="<= the full recompute above")

        def backdate():
            run = len(backdated.seconds)
            self.conn.execute(
                """INSERT INTO trade_records (order_id, symbol, side, size, price, total_fees, order_time, source)
                   SELECT %s, symbol, 'buy', 1, price, 0, order_time + interval '1 millisecond' * %s, 'bench'
                   FROM trade_records WHERE symbol = %s ORDER BY order_time, side, order_id LIMIT 1""",
                (f"{symbol}-backdated-{run}", run + 1, symbol))
            return timed(self.conn, "SELECT compute_fifo_incremental()")[0]

        self.compare(backdated, backdate, [symbol])
        backdated.extra = f"({backdated.median / full.median:.2f} x the full recompute)"
        self.record(backdated)


# -- appends to a big pool: every incremental entry point (issue 16) ------------

def append_cases(bench: "Bench", n: int, appends: int = 50) -> None:
    """One pool of n trades of the accumulating shape (about n/10 lots open), loaded in one INSERT and
    ANALYZEd, not vacuumed (the state right after a bulk load: statistics, no visibility map), then
    computed once. Each figure appends one sell of 0.1 and times one entry point: the median of
    --runs runs, each on the state the previous one left. The load's change is moved an hour back
    (the pool was loaded an hour ago) so that '--since 1 minute ago' means the appends of that
    minute. The engine's own time (fifo_runs.duration_ms) is printed beside the client's."""
    from fifo_db.compute import compute_since, parse_since
    from fifo_db.worker import Worker

    conn = bench.conn
    symbol = "S0-USD"
    reset(conn)

    def fill(c):
        c.execute("SELECT setseed(0.25)")
        c.execute(ACCUMULATING, {"k": 1, "n": n})

    bench.stage(("long accumulating", n), fill)
    conn.execute(f"INSERT INTO trade_records ({TRADE_COLS}, recorded_at) "
                 f"SELECT {TRADE_COLS}, now() - interval '1 hour' FROM bench_stage")
    conn.execute("ANALYZE trade_records")
    conn.execute("SELECT compute_fifo_all()")                 # the run that first computes the pool
    conn.execute("UPDATE fifo.pool_changes SET changed_at = changed_at - interval '1 hour'")
    lots = bench.open_lots([symbol])
    bench.heading(f"one sell appended to a pool of {n:,} trades ({lots:,} lots open; loaded in one INSERT, "
                  "ANALYZE, no VACUUM)")
    worker = Worker(_dsn_of(conn), full_at=None, out=lambda line: None)

    def measure(label: str, call, target: str = "<= 50 ms engine") -> Figure:
        fig = Figure(label, target=target)
        engine = []
        for _ in range(bench.runs):
            since = conn.execute("SELECT clock_timestamp()").fetchone()[0]
            bench._append([symbol], f"-app-{bench.appended}")
            bench.appended += 1
            start = time.perf_counter()
            ms = call(since)
            fig.seconds.append(time.perf_counter() - start)
            engine.append(float(ms))
        fig.extra = f"(engine {statistics.median(engine):,.1f} ms)"
        return bench.record(fig)

    def incremental(_since):
        return timed(conn, "SELECT duration_ms FROM compute_fifo_incremental()")[1][0]

    def since_absolute(since):
        return timed(conn, "SELECT duration_ms FROM compute_fifo_since(%s)", (since,))[1][0]

    def cli_since(_since):
        return compute_since(conn, parse_since(conn, "1 minute ago"))["duration_ms"]

    def by_worker(_since):
        return worker._run(conn, False)["duration_ms"]

    try:
        measure("right after the load: compute_fifo_incremental()", incremental)
        measure("compute_fifo_since(T), T an absolute time just before the append", since_absolute)
        measure("fifo-db worker's run (compute_fifo_incremental() from fifo_db/worker.py)", by_worker)
        for i in range(appends):                              # many appends in the last minute, each computed
            bench._append([symbol], f"-app-{bench.appended}")
            bench.appended += 1
            conn.execute("SELECT compute_fifo_since(clock_timestamp() - interval '1 second')")
        measure(f"`compute --all-symbols --since '1 minute ago'` after {appends} earlier appends in that minute "
                "(fifo_db.compute, as the CLI calls it)", cli_since)
        conn.execute("SELECT compute_fifo_all(true)")
        measure("after a forced run (compute_fifo_all(true)): compute_fifo_incremental()", incremental)
    finally:
        worker.close()


# -- commit-to-allocation latency with `fifo-db worker` ------------------------

def _dsn_of(conn: psycopg.Connection) -> str:
    params = conninfo_to_dict(conn.info.dsn)
    if conn.info.password:
        params["password"] = conn.info.password
    return make_conninfo(**params)


def worker_latency(bench: "Bench", n: int, symbols: int, pools: int = 20) -> None:
    """Sells appended one trade per transaction by another session (a PL/pgSQL loop that COMMITs
    each INSERT, paced to the rate; the client language cannot slow it) while `fifo-db worker`
    runs: the time from each commit to the first poll that sees its allocation, both on the
    server's clock (clock_timestamp() after the COMMIT, statement_timestamp() of the poll). A third
    session polls every 5 ms: the figures are upper bounds, 5 ms plus one query coarse."""
    import threading

    from fifo_db.worker import Worker

    conn = bench.conn
    key, fill, _ = bench.shape_data("low", n, symbols)
    bench.load(key, fill)
    conn.execute("INSERT INTO trade_records (order_id, symbol, side, size, price, total_fees, order_time) "
                 "SELECT 'lat-buy-' || i, 'LAT' || lpad(i::text, 3, '0') || '-USD', 'buy', 1000000, 10, 0, "
                 "timestamptz '2025-01-01' FROM generate_series(0, %s - 1) i", (pools,))
    conn.execute("SELECT compute_fifo_all(true)")
    conn.execute("CREATE TABLE IF NOT EXISTS bench_commits (order_id text PRIMARY KEY, committed_at timestamptz)")
    dsn = _dsn_of(conn)
    worker = Worker(dsn, full_at=None, tick=30, out=lambda line: None)
    thread = threading.Thread(target=worker.run, daemon=True)
    thread.start()
    bench.heading(f"commit to allocation visible, `fifo-db worker` running ({n:,} trades over {symbols:,} "
                  f"pools loaded; one sell per transaction, appended to {pools} pools)")
    base = 0
    try:
        deadline = time.monotonic() + 30
        while conn.execute("SELECT pid FROM fifo.workers").fetchone()[0] is None:
            if time.monotonic() > deadline:
                raise FifoError("bench: the worker did not become active within 30 s")
            time.sleep(0.05)
        for label, rate, seconds in (("bot's rate", 20, 10), ("burst", 1000, 3)):
            step(f"worker latency: {label}, {rate}/s for {seconds} s")
            seen: dict[str, object] = {}
            finished = threading.Event()
            first = base

            def poll(seen=seen, finished=finished, first=first):
                with psycopg.connect(dsn, autocommit=True) as c:
                    stop_at = None
                    while True:
                        low = first
                        while f"lat-{low}" in seen:
                            low += 1
                        rows = c.execute(
                            "SELECT DISTINCT a.sell_trade_id, statement_timestamp() FROM fifo.allocations a "
                            "WHERE a.version = 1 AND a.symbol LIKE 'LAT%%' "
                            "AND a.sell_time >= timestamptz '2026-01-01' + %s * interval '1 millisecond'",
                            (low,)).fetchall()
                        for oid, at in rows:
                            seen.setdefault(oid, at)
                        if finished.is_set():
                            total = finished.total
                            if all(f"lat-{i}" in seen for i in range(first, first + total)):
                                return
                            stop_at = stop_at or time.monotonic() + 60
                            if time.monotonic() > stop_at:
                                return
                        time.sleep(0.005)

            poller = threading.Thread(target=poll, daemon=True)
            poller.start()
            conn.execute("TRUNCATE bench_commits")
            conn.execute(sql.SQL("""
                DO $bench$
                DECLARE
                    v_ids text[] := '{{}}';
                    v_at timestamptz[] := '{{}}';
                    v_start timestamptz := clock_timestamp();
                    v_i integer := 0;
                    v_pause double precision;
                BEGIN
                    WHILE clock_timestamp() < v_start + {seconds} * interval '1 second' LOOP
                        INSERT INTO public.trade_records (order_id, symbol, side, size, price, total_fees, order_time)
                        VALUES ('lat-' || ({base} + v_i), 'LAT' || lpad((({base} + v_i) % {pools})::text, 3, '0') || '-USD',
                                'sell', 0.001, 11, 0, timestamptz '2026-01-01' + ({base} + v_i) * interval '1 millisecond');
                        COMMIT;
                        v_ids := v_ids || ('lat-' || ({base} + v_i));
                        v_at := v_at || clock_timestamp();
                        v_i := v_i + 1;
                        v_pause := extract(epoch FROM v_start + v_i * {step} * interval '1 second' - clock_timestamp());
                        IF v_pause > 0 THEN
                            PERFORM pg_sleep(v_pause);
                        END IF;
                    END LOOP;
                    INSERT INTO bench_commits SELECT * FROM unnest(v_ids, v_at);
                END
                $bench$""").format(seconds=sql.Literal(seconds), base=sql.Literal(base), pools=sql.Literal(pools),
                                   step=sql.Literal(1.0 / rate)))
            committed = dict(conn.execute("SELECT order_id, committed_at FROM bench_commits").fetchall())
            wrote = conn.execute("SELECT extract(epoch FROM max(committed_at) - min(committed_at)) "
                                 "FROM bench_commits").fetchone()[0]
            finished.total = len(committed)
            finished.set()
            poller.join()
            base += len(committed)
            latencies = sorted((seen[o] - at).total_seconds() for o, at in committed.items() if o in seen)
            fig = Figure(f"{label}: {len(committed):,} single-trade transactions in {float(wrote or 0):.1f} s "
                         f"({len(committed) / max(float(wrote or 0), 0.001):,.0f}/s)",
                         target="within a second of the commit")
            if latencies:
                fig.seconds = latencies
                p95 = latencies[min(len(latencies) - 1, int(len(latencies) * 0.95))]
                fig.extra = (f"median (p95 {fmt_time(p95)}, max {fmt_time(latencies[-1])}); "
                             f"{len(latencies):,} of {len(committed):,} seen; {worker.runs:,} worker runs so far")
                bench.record(fig)
            else:
                bench.out(f"  {fig.label}: no allocation seen within 60 s")
    finally:
        worker.stop()
        thread.join(30)
        worker.close()


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
                                   "dropped on the server given; your data is never touched). Every "
                                   "compute figure is printed beside a naive set-based FIFO "
                                   "(bench/naive_fifo.sql) run on the same data in the same run.")
    p.add_argument("--sizes", default="10000,100000,1000000",
                   help="trade counts for the full recompute over --symbols symbols "
                        "(default 10000,100000,1000000); the long pools use the largest")
    p.add_argument("--symbols", type=int, default=1000, help="symbols for the sized runs (default 1000)")
    p.add_argument("--runs", type=int, default=3, help="timed runs per figure; medians are printed (default 3)")
    p.add_argument("--shapes", default=",".join(SHAPES),
                   help=f"data shapes to run (default {','.join(SHAPES)})")
    p.add_argument("--nights", type=int, default=10,
                   help="forced full recomputes in a row for the table-size figure (default 10; 0: skip)")
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
    shapes = [s.strip() for s in args.shapes.split(",") if s.strip()]
    unknown = [s for s in shapes if s not in SHAPES]
    if unknown or not shapes:
        raise FifoError(f"--shapes: expected some of {','.join(SHAPES)}, got {args.shapes!r}")
    if args.nights < 0 or args.nights == 1:
        raise FifoError(f"--nights: must be 0 (skip) or at least 2, got {args.nights}")
    version = conn.execute("SHOW server_version").fetchone()[0]
    started = time.perf_counter()
    print(f"fifo-db bench: PostgreSQL {version}, scratch database "
          f"{SCRATCH_DB!r} (dropped at the end), medians of {args.runs} runs; "
          f"yardstick: bench/naive_fifo.sql on the same data, same run", flush=True)
    print(f"machine: {machine()}; load average at the start {load_average()}", flush=True)
    titles = {"low": "low inventory", "accumulating": "accumulating inventory (issue 10's generator)",
              "decimal8": "8-decimal sizes and prices"}
    step(f"creating the scratch database {SCRATCH_DB!r} and installing fifo-db there")
    with scratch_database(conn) as bench_conn:
        print("install: the default one (fifo-db's own objects; no dblink, no extension it does not create); "
              "forced full recomputes in one session (fifo-db opens no connection of its own)", flush=True)
        bench = Bench(bench_conn, args.runs, out=lambda line: print(line, flush=True))
        if "seed" in shapes:
            bench.seed_workload()
        for shape in ("low", "accumulating", "decimal8"):
            if shape in shapes:
                bench.sized(shape, titles[shape], sizes, args.symbols)
        if "low" in shapes:
            bench.change_capture(max(sizes), args.symbols)
            if args.nights:
                bench.nightly(max(sizes), args.symbols, args.nights)
        if "queue" in shapes:
            bench.change_log_load()
        if "worker" in shapes:
            worker_latency(bench, min(sizes), args.symbols)
        if "appends" in shapes:
            append_cases(bench, max(sizes))
        if "long" in shapes:
            bench.heading(f"one pool of {max(sizes):,} trades")
            bench.long_pool(max(sizes), accumulating=False)
            bench.long_pool(max(sizes), accumulating=True)
        step(f"dropping the scratch database {SCRATCH_DB!r}")
    print()
    print(table(bench.figures))
    print(f"\nload average at the end {load_average()}; {time.perf_counter() - started:,.0f} s in all", flush=True)
    return 0


def table(figures: list[Figure]) -> str:
    rows = [f for f in figures if f.seconds]
    width = max((len(f.label) for f in rows), default=10)
    head = f"{'benchmark':<{width}}  {'fifo-db':>10}  {'yardstick':>10}  {'speed-up':>8}  target"
    lines = [head, "-" * (len(head) + 30)]
    for f in figures:
        if not f.seconds:
            lines.append(f"{f.label}")
            continue
        lines.append(f"{f.label:<{width}}  {f.shown or fmt_time(f.median):>10}  {fmt_time(f.naive_median):>10}  "
                     f"{f.ratio:>8}  {f.target}")
    return "\n".join(lines)
